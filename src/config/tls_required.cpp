#include "ftpsgate/tls_required.h"

#include <array>
#include <utility>

namespace ftpsgate {
namespace {

// The spellings of ProFTPD's TLSRequired, in the order the docs list them.
constexpr std::array<std::pair<std::string_view, TlsRequired>, 9> kNames = {{
    {"on", TlsRequired::kOn},
    {"off", TlsRequired::kOff},
    {"ctrl", TlsRequired::kCtrl},
    {"data", TlsRequired::kData},
    {"!data", TlsRequired::kNotData},
    {"ctrl+!data", TlsRequired::kCtrlNotData},
    {"auth", TlsRequired::kAuth},
    {"auth+data", TlsRequired::kAuthData},
    {"auth+!data", TlsRequired::kAuthNotData},
}};

}  // namespace

std::optional<TlsRequired> parse_tls_required(std::string_view text) {
  for (const auto& [name, value] : kNames) {
    if (name == text) return value;
  }
  return std::nullopt;
}

std::string_view to_string(TlsRequired value) {
  for (const auto& [name, candidate] : kNames) {
    if (candidate == value) return name;
  }
  return "?";  // unreachable for valid enumerators
}

}  // namespace ftpsgate
