#include "identity/ldap_escape.h"

namespace ftpsgate::identity {

namespace {

void append_hex_escape(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '\\';
  out += kHex[c >> 4];
  out += kHex[c & 0x0f];
}

}  // namespace

std::string ldap_escape_filter_value(std::string_view value) {
  // SECURITY: only these five bytes have meaning inside an assertion value; everything
  // else (UTF-8 included) is passed through unchanged, as RFC 4515 allows.
  std::string out;
  out.reserve(value.size());
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '*' || c == '(' || c == ')' || c == '\\' || c == '\0') {
      append_hex_escape(out, c);
    } else {
      out += ch;
    }
  }
  return out;
}

std::string ldap_escape_dn_value(std::string_view value) {
  // SECURITY: a user name becomes one RDN value, never extra RDNs or attributes.
  std::string out;
  out.reserve(value.size() + 2);
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char ch = value[i];
    switch (ch) {
      case '\0':
        append_hex_escape(out, 0);  // NUL has no "\c" form
        continue;
      case ',': case '+': case '"': case '\\': case '<': case '>': case ';': case '=':
        out += '\\';
        out += ch;
        continue;
      case '#':
        if (i == 0) out += '\\';
        out += ch;
        continue;
      case ' ':
        if (i == 0 || i + 1 == value.size()) out += '\\';
        out += ch;
        continue;
      default:
        out += ch;
    }
  }
  return out;
}

std::string replace_placeholder(std::string text, std::string_view name, std::string_view value) {
  std::string token;
  token.reserve(name.size() + 2);
  token += '{';
  token += name;
  token += '}';
  std::string out;
  out.reserve(text.size());
  std::size_t from = 0;
  // The value is copied, never scanned again: a user named "{user}" stays literal.
  for (std::size_t at = text.find(token); at != std::string::npos; at = text.find(token, from)) {
    out.append(text, from, at - from);
    out += value;
    from = at + token.size();
  }
  out.append(text, from, std::string::npos);
  return out;
}

}  // namespace ftpsgate::identity
