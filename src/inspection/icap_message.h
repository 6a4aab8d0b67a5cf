// ICAP (RFC 3507) messages for scanning an uploaded file, pure: the service URL, the request
// head with its encapsulated HTTP headers, the chunked body framing, and the response head
// and verdict. The file travels as the body of an HTTP message: REQMOD carries it as a PUT
// request body, RESPMOD as a 200 response body (for a GET of the file's name).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "inspection/scan_result.h"

namespace ftpsgate::inspection {

struct IcapUrl {
  std::string host;  // as written (brackets stripped from an IPv6 literal)
  uint16_t port = 1344;
  std::string service;       // the path after the authority, without the leading '/'
  std::string text() const;  // icap://host:port/service, as put on the request line
};

// icap://host[:port]/service; nullopt for anything else (another scheme, no service,
// user info, a query with spaces or control bytes).
std::optional<IcapUrl> parse_icap_url(std::string_view url);

enum class IcapMethod { kReqmod, kRespmod };

struct IcapRequest {
  IcapMethod method = IcapMethod::kRespmod;
  IcapUrl url;
  std::string file_name;            // the upload's path (percent-encoded into the HTTP URL)
  std::optional<uint64_t> size;     // Content-Length of the encapsulated body, when known
  std::optional<uint64_t> preview;  // Preview: bytes sent before the server says 100 Continue
  bool allow_204 = true;
  std::string client_ip;  // X-Client-IP (optional)
  std::string user;       // X-Authenticated-User (optional, base64 per the draft)
};

// Everything before the body: ICAP request line and headers, then the encapsulated HTTP
// header block(s). The body follows as chunks (chunk_head, data, "\r\n").
std::string icap_request_head(const IcapRequest& request);
std::string icap_chunk_head(std::size_t length);  // "1f40\r\n"
// The last chunk: "0\r\n\r\n", or "0; ieof\r\n\r\n" when the preview already held the
// whole file (RFC 3507 §4.5).
std::string_view icap_last_chunk(bool ieof);
// The health check: "OPTIONS icap://host:port/service ICAP/1.0" with no body.
std::string icap_options_request(const IcapUrl& url);

struct IcapResponse {
  int status = 0;  // 100, 200, 204, 4xx, 5xx
  // Lower-case names; repeated ones joined with ", ", folded continuation lines with a tab.
  std::map<std::string, std::string> headers;
  std::size_t head_length = 0;    // bytes up to and including the blank line
  int http_status = 0;            // the encapsulated HTTP response's status when one is in the data given
  bool request_returned = false;  // REQMOD: the (unmodified) request came back, no response
};

// The longest response head accepted (headers and encapsulated headers); more is an error.
inline constexpr std::size_t kIcapMaxHead = 64 * 1024;

enum class IcapParse { kNeedMore };
// Parses the response head at the start of `data`: nullopt-like kNeedMore while the blank
// line has not arrived; a ScanResult error when malformed or too long.
std::variant<IcapResponse, IcapParse, ScanResult> parse_icap_response(std::string_view data);

// The verdict of a final response: 204 = clean; 200 = clean when the encapsulated message
// comes back as a request (REQMOD passed it) or an HTTP 2xx response and no infection
// header is set, infected otherwise
// (X-Infection-Found's Threat, X-Virus-ID, X-Violations-Found's first threat description);
// anything else is an error.
ScanResult icap_verdict(const IcapResponse& response);

}  // namespace ftpsgate::inspection
