// libFuzzer target: the agent link protocol (src/tunnel/agent_protocol.h) and the agent's
// target allowlist (src/tunnel/target_allowlist.h).
//
// The input is what a (compromised) gateway or agent sends on a link. It is cut into lines
// by split_line, as the link readers do, and every line is parsed. Whatever parses is one
// CRLF line within the limits, and comes back unchanged through build_line (parse -> build
// -> parse gives the same message, and building again the same bytes). A CONNECT target
// reaches an allowlist of 127.0.0.1:21 only when it is exactly that address and port, and
// the input also serves as a host and as an allowlist entry.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ftpsgate/limits.h"
#include "fuzz_check.h"
#include "tunnel/agent_protocol.h"
#include "tunnel/target_allowlist.h"

namespace {

using namespace ftpsgate::tunnel;
using ftpsgate::limits::kAgentMaxReplyLine;
using ftpsgate::limits::kAgentMaxRequestLine;

bool one_crlf_line(std::string_view line) {
  return line.ends_with("\r\n") && line.find_first_of("\r\n") == line.size() - 2;
}

void check_message(const Message& message, std::string_view line) {
  FUZZ_CHECK(one_crlf_line(line));
  FUZZ_CHECK(line.size() <= (message.kind == Message::Kind::kConnect ? kAgentMaxRequestLine : kAgentMaxReplyLine));
  const std::string built = build_line(message);
  FUZZ_CHECK(one_crlf_line(built));
  const auto again = parse_line(built);
  FUZZ_CHECK(again.message && *again.message == message && again.error.empty());
  FUZZ_CHECK(build_line(*again.message) == built);
  const auto split = split_line(built, kAgentMaxRequestLine);
  FUZZ_CHECK(split.status == LineSplit::Status::kLine && split.length == built.size());
  // Only an IPv6 host can be spelled otherwise on the wire: everything else is verbatim.
  if (message.kind != Message::Kind::kConnect || message.connect.host.kind != Host::Kind::kIpv6) {
    FUZZ_CHECK(built == line);
  }
  if (message.kind != Message::Kind::kConnect) return;

  const ConnectRequest& request = message.connect;
  FUZZ_CHECK(request.port != 0);
  std::string error;
  FUZZ_CHECK(parse_host(request.host.to_string(), error) == request.host);
  // SECURITY: no other spelling of 127.0.0.1 (or of the local host) gets through.
  static const auto loopback = [] {
    std::string list_error;
    return *TargetAllowlist::parse({"127.0.0.1:21", "[::1]:21"}, list_error);
  }();
  const bool exact = (request.host.text == "127.0.0.1" || request.host.text == "::1") && request.port == 21 &&
                     request.host.kind != Host::Kind::kName;
  FUZZ_CHECK(loopback.allowed(request.host, request.port) == exact);
  FUZZ_CHECK(request.host.text.find('%') == std::string::npos);
  if (request.host.kind == Host::Kind::kIpv6) {
    // By the address, not its text: ::ffff:1:1b00:1 is not v4-mapped, though it reads so.
    in6_addr address{};
    FUZZ_CHECK(inet_pton(AF_INET6, request.host.text.c_str(), &address) == 1);
    FUZZ_CHECK(!IN6_IS_ADDR_V4MAPPED(&address) && !IN6_IS_ADDR_V4COMPAT(&address) &&
               !IN6_IS_ADDR_UNSPECIFIED(&address));
  }
}

void check_lines(std::string_view input, std::size_t max_line) {
  while (!input.empty()) {
    const auto split = split_line(input, max_line);
    if (split.status != LineSplit::Status::kLine) {
      FUZZ_CHECK(split.length == 0);
      if (split.status == LineSplit::Status::kNeedMore) FUZZ_CHECK(input.size() < max_line);
      return;
    }
    FUZZ_CHECK(split.length >= 2 && split.length <= max_line && split.length <= input.size());
    const std::string_view line = input.substr(0, split.length);
    // The splitter only finds the LF; a lone CR inside the line is the parser's to refuse.
    FUZZ_CHECK(line.ends_with("\r\n") && line.find('\n') == line.size() - 1);
    const auto parsed = parse_line(line);
    FUZZ_CHECK(parsed.message.has_value() == parsed.error.empty());
    if (parsed.message) check_message(*parsed.message, line);
    input.remove_prefix(split.length);
  }
}

void check_host_and_entry(std::string_view text) {
  std::string error;
  if (const auto host = parse_host(text, error)) {
    FUZZ_CHECK(error.empty());
    FUZZ_CHECK(parse_host(host->to_string(), error) == host);
    if (host->kind != Host::Kind::kIpv6) FUZZ_CHECK(host->text == text);
  } else {
    FUZZ_CHECK(!error.empty());
  }
  if (const auto entry = TargetEntry::parse(text, error)) {
    FUZZ_CHECK(entry->port_low != 0 && entry->port_low <= entry->port_high);
    FUZZ_CHECK(entry->network.has_value() != !entry->name.empty());
    // A name entry matches its own name on its ports, and never an address.
    if (!entry->name.empty()) {
      FUZZ_CHECK(entry->matches(Host{Host::Kind::kName, entry->name}, entry->port_low));
      FUZZ_CHECK(!entry->matches(Host{Host::Kind::kIpv4, "127.0.0.1"}, entry->port_low));
    }
  } else {
    FUZZ_CHECK(error.rfind("invalid target '", 0) == 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_lines(input, kAgentMaxRequestLine);
  check_lines(input, kAgentMaxReplyLine);
  const auto whole = parse_line(input);
  if (whole.message) {
    FUZZ_CHECK(split_line(input, kAgentMaxRequestLine).length == input.size());
  }
  check_host_and_entry(input.substr(0, input.find_first_of("\r\n")));
  return 0;
}
