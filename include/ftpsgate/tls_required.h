// TLSRequired semantics of ProFTPD mod_tls (SPEC §2 classes[].tls_required).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ftpsgate {

enum class TlsRequired {
  kOn,           // control and data must be protected
  kOff,          // nothing required
  kCtrl,         // control channel must be protected
  kData,         // data channel must be protected
  kNotData,      // "!data": data must NOT be protected (PROT P refused)
  kCtrlNotData,  // "ctrl+!data"
  kAuth,         // control protected for authentication (USER/PASS) only; CCC allowed later
  kAuthData,     // "auth+data"
  kAuthNotData,  // "auth+!data"
};

std::optional<TlsRequired> parse_tls_required(std::string_view text);
std::string_view to_string(TlsRequired value);

}  // namespace ftpsgate
