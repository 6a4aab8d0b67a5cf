#include "tls/tls_errors.h"

#include <openssl/err.h>

namespace ftpsgate::tls {

std::string drain_errors() {
  std::string out;
  unsigned long code = 0;
  while ((code = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

std::string drain_errors_or(const std::string& fallback) {
  std::string text = drain_errors();
  return text.empty() ? fallback : text;
}

}  // namespace ftpsgate::tls
