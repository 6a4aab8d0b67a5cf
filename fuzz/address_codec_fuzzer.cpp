// libFuzzer target: PASV/EPSV reply and PORT/EPRT/EPSV argument codecs
// (src/ftp/address_codec.h). Every parser sees the whole input and, for inputs like
// "PORT 1,2,3,4,5,6", the text after the first space too. Whatever parses must come back
// unchanged through the matching builder: that is what the gateway does when it rewrites
// a backend's 227 reply or a client's PORT/EPRT.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ftp/address_codec.h"
#include "fuzz_check.h"

namespace {

using namespace ftpsgate::ftp;

// inet_pton then inet_ntop, refusing embedded NULs: the canonical text, or "".
std::string canonical(int family, const std::string& text) {
  if (text.find('\0') != std::string::npos) return {};
  std::array<unsigned char, sizeof(in6_addr)> raw{};
  if (inet_pton(family, text.c_str(), raw.data()) != 1) return {};
  std::array<char, INET6_ADDRSTRLEN> buffer{};
  if (inet_ntop(family, raw.data(), buffer.data(), buffer.size()) == nullptr) return {};
  return buffer.data();
}

bool same(const HostAndPort& a, const HostAndPort& b) { return a.host == b.host && a.port == b.port; }

// A parsed IPv4 endpoint: canonical, port != 0, and stable through every IPv4 builder.
void check_ipv4_endpoint(const HostAndPort& hp) {
  FUZZ_CHECK(hp.port != 0);
  FUZZ_CHECK(is_ipv4_literal(hp.host));
  FUZZ_CHECK(canonical(AF_INET, hp.host) == hp.host);

  const std::string pasv = build_pasv_reply(hp.host, hp.port);
  FUZZ_CHECK(pasv.rfind("227 ", 0) == 0 && pasv.find_first_of("\r\n") == std::string::npos);
  const auto pasv_again = parse_pasv_reply(pasv);
  FUZZ_CHECK(pasv_again && same(*pasv_again, hp));

  const std::string port = build_port_argument(hp.host, hp.port);
  const auto port_again = parse_port_argument(port);
  FUZZ_CHECK(port_again && same(*port_again, hp));
  FUZZ_CHECK(pasv.find("(" + port + ")") != std::string::npos);

  const std::string eprt = build_eprt_argument(hp.host, hp.port);
  FUZZ_CHECK(eprt.rfind("|1|", 0) == 0);
  const auto eprt_again = parse_eprt_argument(eprt);
  FUZZ_CHECK(eprt_again && same(*eprt_again, hp));
}

void check(std::string_view text) {
  if (const auto pasv = parse_pasv_reply(text)) check_ipv4_endpoint(*pasv);

  if (const auto port = parse_port_argument(text)) {
    // Exactly six numbers and five commas, nothing else.
    FUZZ_CHECK(text.find_first_not_of("0123456789,") == std::string_view::npos);
    check_ipv4_endpoint(*port);
  }

  if (const auto epsv = parse_epsv_reply(text)) {
    FUZZ_CHECK(*epsv != 0);
    const std::string built = build_epsv_reply(*epsv);
    FUZZ_CHECK(built.rfind("229 ", 0) == 0);
    FUZZ_CHECK(parse_epsv_reply(built) == epsv);
  }

  if (const auto eprt = parse_eprt_argument(text)) {
    FUZZ_CHECK(eprt->port != 0);
    FUZZ_CHECK(text.size() >= 7 && text[2] == text[0]);
    const int family = text[1] == '1' ? AF_INET : AF_INET6;
    FUZZ_CHECK(text[1] == '1' || text[1] == '2');
    // SECURITY: the host is of the announced family and canonical, so the anti-bounce
    // comparison with the client's address sees what will be connected to.
    FUZZ_CHECK(canonical(family, eprt->host) == eprt->host);
    if (family == AF_INET) {
      check_ipv4_endpoint(*eprt);
    } else {
      FUZZ_CHECK(!is_ipv4_literal(eprt->host));
      const auto again = parse_eprt_argument(build_eprt_argument(eprt->host, eprt->port));
      FUZZ_CHECK(again && same(*again, *eprt));
    }
  }

  const auto epsv_argument = parse_epsv_argument(text);
  FUZZ_CHECK((epsv_argument.kind == EpsvArgument::Kind::kAny) == text.empty());

  if (is_ipv4_literal(text)) {
    // SECURITY: "1.2.3.4\0junk" is not 1.2.3.4.
    const std::string host(text);
    FUZZ_CHECK(!canonical(AF_INET, host).empty());
    const auto again = parse_pasv_reply(build_pasv_reply(text, 21));
    FUZZ_CHECK(again && again->host == canonical(AF_INET, host) && again->port == 21);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check(text);
  const std::size_t space = text.find(' ');
  if (space != std::string_view::npos) check(text.substr(space + 1));
  return 0;
}
