// Escaping of user-supplied values put into LDAP filters and DNs (pure).
#pragma once

#include <string>
#include <string_view>

namespace ftpsgate::identity {

// RFC 4515 §3: '*', '(', ')', '\' and NUL become \2a, \28, \29, \5c, \00 (so a user name
// like "*)(uid=*" matches nobody).
std::string ldap_escape_filter_value(std::string_view value);
// RFC 4514 §2.4: an attribute value inside a DN (',', '+', '"', '\', '<', '>', ';', '=',
// leading '#' or space, trailing space, NUL).
std::string ldap_escape_dn_value(std::string_view value);
// Replaces every "{name}" in `text` by `value` (already escaped by the caller).
std::string replace_placeholder(std::string text, std::string_view name, std::string_view value);

}  // namespace ftpsgate::identity
