#include "tunnel/agent_protocol.h"

#include <array>
#include <cassert>
#include <charconv>

#include "ftpsgate/limits.h"
#include "policy/client_class.h"

namespace ftpsgate::tunnel {

namespace {

constexpr std::size_t kMaxNameLength = 253;
constexpr std::size_t kMaxLabelLength = 63;
constexpr std::size_t kMaxSessionDigits = 20;
constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kConnectVerb = "CONNECT ";
constexpr std::string_view kErrVerb = "ERR ";

constexpr std::array<std::string_view, 9> kReasonNames = {
    "not_allowed", "connect_failed", "connect_timeout", "resolve_failed", "bad_request",
    "busy",        "shutting_down",  "unknown_agent",   "too_many_links",
};
constexpr std::array<std::string_view, 3> kPurposeNames = {"control", "data", "health"};

bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
bool is_alnum(char ch) { return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'); }
bool is_hex(char ch) { return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'); }

bool all_of(std::string_view text, bool (*predicate)(char)) {
  for (const char ch : text) {
    if (!predicate(ch)) return false;
  }
  return true;
}

// Decimal digits only, no leading zero except "0" itself, at most max_digits, fitting T.
template <typename T>
std::optional<T> parse_canonical_decimal(std::string_view text, std::size_t max_digits) {
  if (text.empty() || text.size() > max_digits || !all_of(text, is_digit)) return std::nullopt;
  if (text.size() > 1 && text[0] == '0') return std::nullopt;
  T value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// The last label is numeric when a resolver could read the name as an IPv4 number
// ("127.1", "0x7f000001", WHATWG's "ends in a number"): all digits, or 0x and hex digits.
bool numeric_label(std::string_view label) {
  if (all_of(label, is_digit)) return true;
  return label.size() >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X') &&
         all_of(label.substr(2), is_hex);
}

bool valid_name(std::string_view name, std::string& error) {
  if (name.empty() || name.size() > kMaxNameLength) {
    error = "host name empty or longer than 253 characters";
    return false;
  }
  std::string_view last;
  std::size_t start = 0;
  while (start <= name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    const std::string_view label = name.substr(start, dot - start);
    const bool ldh = all_of(label, [](char ch) { return is_alnum(ch) || ch == '-'; });
    if (label.empty() || label.size() > kMaxLabelLength || !ldh || label.front() == '-' || label.back() == '-') {
      error = "host is not an IPv4 address, [IPv6] address or DNS name";
      return false;
    }
    last = label;
    start = dot + 1;
  }
  // SECURITY: "127.1", "010.0.0.1" or "0x7f000001" is 127.0.0.1 to a lenient resolver;
  // an IP target must be a canonical literal, checked against the IP entries only.
  if (numeric_label(last)) {
    error = "host is neither a canonical IPv4 address nor a DNS name";
    return false;
  }
  return true;
}

// SECURITY: addresses that are other spellings of an IPv4 address (::ffff:a.b.c.d,
// ::a.b.c.d) or of the local host (0.0.0.0/8, ::): an allowlist would see one address and
// the kernel connect to another.
std::string refused_address(const policy::IpAddress& address) {
  if (!address.v6) return address.bytes[0] == 0 ? "unspecified IPv4 address (0.0.0.0/8)" : "";
  bool first_ten_zero = true;
  for (std::size_t i = 0; i < 10; ++i) first_ten_zero = first_ten_zero && address.bytes[i] == 0;
  if (!first_ten_zero) return "";
  if (address.bytes[10] == 0xFF && address.bytes[11] == 0xFF) return "IPv4-mapped IPv6 address";
  if (address.bytes[10] != 0 || address.bytes[11] != 0) return "";
  for (std::size_t i = 12; i < 15; ++i) {
    if (address.bytes[i] != 0) return "IPv4-compatible IPv6 address";
  }
  if (address.bytes[15] == 0) return "unspecified IPv6 address (::)";
  return address.bytes[15] == 1 ? "" : "IPv4-compatible IPv6 address";
}

std::optional<Host> parse_ipv6(std::string_view text, std::string& error) {
  const std::string_view inner = text.substr(1, text.size() - 2);
  if (text.back() != ']' || inner.empty()) {
    error = "IPv6 host without its closing ']'";
    return std::nullopt;
  }
  if (inner.find('%') != std::string_view::npos) {
    error = "IPv6 zone ids are not allowed";
    return std::nullopt;
  }
  const auto address = policy::IpAddress::parse(inner);
  if (!address || !address->v6) {
    error = "invalid IPv6 address";
    return std::nullopt;
  }
  error = refused_address(*address);
  if (!error.empty()) return std::nullopt;
  return Host{Host::Kind::kIpv6, address->to_string()};
}

std::optional<ConnectRequest> parse_connect(std::string_view args, std::string& error) {
  // <host>:<port> <session> <purpose>: exactly two spaces, the target's last ':' before the port.
  const std::size_t first_space = args.find(' ');
  const std::size_t second_space =
      first_space == std::string_view::npos ? first_space : args.find(' ', first_space + 1);
  if (second_space == std::string_view::npos || args.find(' ', second_space + 1) != std::string_view::npos) {
    error = "CONNECT needs <host>:<port> <session> <purpose> separated by single spaces";
    return std::nullopt;
  }
  const std::string_view target = args.substr(0, first_space);
  const std::string_view session = args.substr(first_space + 1, second_space - first_space - 1);
  const std::string_view purpose = args.substr(second_space + 1);
  const std::size_t colon = target.rfind(':');
  if (colon == std::string_view::npos) {
    error = "CONNECT target without a port";
    return std::nullopt;
  }
  ConnectRequest out;
  auto host = parse_host(target.substr(0, colon), error);
  if (!host) return std::nullopt;
  out.host = std::move(*host);
  const auto port = parse_port(target.substr(colon + 1));
  if (!port) {
    error = "port not 1-65535 without leading zeros";
    return std::nullopt;
  }
  out.port = *port;
  const auto session_id = parse_canonical_decimal<uint64_t>(session, kMaxSessionDigits);
  if (!session_id) {
    error = "session not a 64-bit decimal number without leading zeros";
    return std::nullopt;
  }
  out.session = *session_id;
  for (std::size_t i = 0; i < kPurposeNames.size(); ++i) {
    if (purpose == kPurposeNames[i]) {
      out.purpose = static_cast<Purpose>(i);
      return out;
    }
  }
  error = "purpose not control, data or health";
  return std::nullopt;
}

ParsedLine refused(std::string error) { return ParsedLine{std::nullopt, std::move(error)}; }

}  // namespace

std::string Host::to_string() const { return kind == Kind::kIpv6 ? "[" + text + "]" : text; }

std::optional<Host> parse_host(std::string_view text, std::string& error) {
  error.clear();
  if (!text.empty() && text.front() == '[') return parse_ipv6(text, error);
  if (const auto address = policy::IpAddress::parse(text); address && !address->v6) {
    // inet_pton already refuses "127.1", hex and leading zeros; the text must also be the
    // one inet_ntop writes, whatever the C library.
    if (address->to_string() != text) {
      error = "IPv4 address not in canonical dotted-quad form";
      return std::nullopt;
    }
    error = refused_address(*address);
    if (!error.empty()) return std::nullopt;
    return Host{Host::Kind::kIpv4, std::string(text)};
  }
  if (!valid_name(text, error)) return std::nullopt;
  return Host{Host::Kind::kName, std::string(text)};
}

std::optional<uint16_t> parse_port(std::string_view text) {
  const auto value = parse_canonical_decimal<uint16_t>(text, 5);
  // SECURITY: port 0 is never a target.
  if (!value || *value == 0) return std::nullopt;
  return value;
}

std::string_view purpose_name(Purpose purpose) { return kPurposeNames.at(static_cast<std::size_t>(purpose)); }

std::string_view reason_name(ErrReason reason) { return kReasonNames.at(static_cast<std::size_t>(reason)); }

std::optional<ErrReason> parse_reason(std::string_view token) {
  for (std::size_t i = 0; i < kReasonNames.size(); ++i) {
    if (token == kReasonNames[i]) return static_cast<ErrReason>(i);
  }
  return std::nullopt;
}

ParsedLine parse_line(std::string_view line) {
  if (line.size() > limits::kAgentMaxRequestLine) return refused("line too long");
  if (!line.ends_with(kCrlf)) return refused("line without CRLF");
  const std::string_view body = line.substr(0, line.size() - kCrlf.size());
  // SECURITY: one line, printable ASCII: no second line, NUL or control byte hides in it.
  if (!all_of(body, [](char ch) { return ch >= 0x20 && ch < 0x7f; })) return refused("control character in line");
  Message message;
  if (body.starts_with(kConnectVerb)) {
    std::string error;
    auto request = parse_connect(body.substr(kConnectVerb.size()), error);
    if (!request) return refused(std::move(error));
    message.kind = Message::Kind::kConnect;
    message.connect = std::move(*request);
    return ParsedLine{std::move(message), {}};
  }
  if (line.size() > limits::kAgentMaxReplyLine) return refused("line too long");
  if (body.starts_with(kErrVerb)) {
    const auto reason = parse_reason(body.substr(kErrVerb.size()));
    if (!reason) return refused("ERR with an unknown reason");
    message.kind = Message::Kind::kErr;
    message.reason = *reason;
  } else if (body == "OK") {
    message.kind = Message::Kind::kOk;
  } else if (body == "PING") {
    message.kind = Message::Kind::kPing;
  } else if (body == "PONG") {
    message.kind = Message::Kind::kPong;
  } else {
    return refused("unknown line");
  }
  return ParsedLine{std::move(message), {}};
}

std::string build_connect(const ConnectRequest& request) {
  std::string error;
  // Callers pass hosts from parse_host (the config, or a parsed request).
  assert(parse_host(request.host.to_string(), error) == request.host);
  assert(request.port != 0);
  std::string line = std::string(kConnectVerb) + request.host.to_string() + ":" + std::to_string(request.port) + " " +
                     std::to_string(request.session) + " " + std::string(purpose_name(request.purpose)) +
                     std::string(kCrlf);
  assert(line.size() <= limits::kAgentMaxRequestLine);
  return line;
}

std::string build_err(ErrReason reason) { return std::string(kErrVerb) + std::string(reason_name(reason)) + "\r\n"; }

std::string_view ok_line() { return "OK\r\n"; }
std::string_view ping_line() { return "PING\r\n"; }
std::string_view pong_line() { return "PONG\r\n"; }

std::string build_line(const Message& message) {
  switch (message.kind) {
    case Message::Kind::kConnect:
      return build_connect(message.connect);
    case Message::Kind::kErr:
      return build_err(message.reason);
    case Message::Kind::kOk:
      return std::string(ok_line());
    case Message::Kind::kPing:
      return std::string(ping_line());
    case Message::Kind::kPong:
      return std::string(pong_line());
  }
  return std::string(ping_line());
}

LineSplit split_line(std::string_view received, std::size_t max_line) {
  const std::size_t lf = received.substr(0, max_line).find('\n');
  if (lf == std::string_view::npos) {
    return LineSplit{received.size() >= max_line ? LineSplit::Status::kTooLong : LineSplit::Status::kNeedMore, 0};
  }
  // SECURITY: CRLF only, so a peer cannot make two parsers disagree on where a line ends.
  if (lf == 0 || received[lf - 1] != '\r') return LineSplit{LineSplit::Status::kBareLf, 0};
  return LineSplit{LineSplit::Status::kLine, lf + 1};
}

}  // namespace ftpsgate::tunnel
