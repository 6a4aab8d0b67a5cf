#include "tls/bufferevent_errors.h"

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "tls/tls_errors.h"

namespace ftpsgate::tls {

std::string drain_bufferevent_errors(bufferevent* bev, const std::string& fallback) {
  std::string error = drain_errors();
  for (unsigned long e = bufferevent_get_openssl_error(bev); e != 0; e = bufferevent_get_openssl_error(bev)) {
    if (ERR_GET_LIB(e) == 0) continue;  // libevent also queues bare SSL_get_error codes
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    error += (error.empty() ? "" : "; ") + std::string(buf);
  }
  return error.empty() ? fallback : error;
}

}  // namespace ftpsgate::tls
