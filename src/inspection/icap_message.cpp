#include "inspection/icap_message.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>

namespace ftpsgate::inspection {

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r')) text.remove_suffix(1);
  return text;
}

bool clean_text(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte > 0x20 && byte < 0x7f;
  });
}

// An upload's name as an HTTP path: unreserved bytes and '/' as they are, the rest %XX.
std::string percent_encoded(std::string_view name) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  if (name.empty() || name.front() != '/') out += '/';
  for (char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    if (std::isalnum(byte) != 0 || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    }
  }
  return out;
}

std::string base64(std::string_view text) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < text.size(); i += 3) {
    const uint32_t n =
        (uint32_t(uint8_t(text[i])) << 16) | (uint32_t(uint8_t(text[i + 1])) << 8) | uint8_t(text[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(n >> shift) & 63];
  }
  if (i < text.size()) {
    uint32_t n = uint32_t(uint8_t(text[i])) << 16;
    if (i + 1 < text.size()) n |= uint32_t(uint8_t(text[i + 1])) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < text.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// "Type=0; Resolution=2; Threat=Eicar-Signature;" -> "Eicar-Signature".
std::string threat_of(std::string_view infection) {
  std::size_t at = 0;
  while (at < infection.size()) {
    std::size_t end = infection.find(';', at);
    if (end == std::string_view::npos) end = infection.size();
    const std::string_view part = trim(infection.substr(at, end - at));
    if (lower(part.substr(0, 7)) == "threat=") return std::string(trim(part.substr(7)));
    at = end + 1;
  }
  return std::string(trim(infection));
}

// "1<TAB>-<TAB>Eicar-Test-Signature<TAB>0<TAB>0" (folded lines, joined by tabs): the count,
// then for each violation its file name, threat description, problem ID and resolution.
// The first threat description names it; an unfolded value is taken whole.
std::string violation_of(std::string_view violations) {
  std::size_t at = 0;
  for (int field = 0; field < 2; ++field) {
    at = violations.find('\t', at);
    if (at == std::string_view::npos) return std::string(trim(violations));
    ++at;
  }
  return std::string(trim(violations.substr(at, violations.find('\t', at) - at)));
}

std::optional<int> status_code(std::string_view text) {
  int code = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + std::min<std::size_t>(text.size(), 3), code);
  if (error != std::errc() || end != text.data() + 3) return std::nullopt;
  return code;
}

}  // namespace

std::string IcapUrl::text() const {
  const bool v6 = host.find(':') != std::string::npos;
  return "icap://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" + service;
}

std::optional<IcapUrl> parse_icap_url(std::string_view url) {
  constexpr std::string_view kScheme = "icap://";
  if (url.size() <= kScheme.size() || lower(url.substr(0, kScheme.size())) != kScheme || !clean_text(url)) {
    return std::nullopt;
  }
  std::string_view rest = url.substr(kScheme.size());
  const std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash + 1 >= rest.size()) return std::nullopt;
  std::string_view authority = rest.substr(0, slash);
  IcapUrl out;
  out.service = std::string(rest.substr(slash + 1));
  if (authority.find('@') != std::string_view::npos || authority.empty()) return std::nullopt;
  std::string_view port_text;
  if (authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    out.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port_text = after.substr(1);
    }
  } else {
    const std::size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
    if (out.host.empty()) return std::nullopt;
  }
  // A name or an address: letters, digits, '-', '.', and ':' only inside brackets.
  const bool bracketed = authority.front() == '[';
  const bool host_ok = std::all_of(out.host.begin(), out.host.end(), [bracketed](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || (bracketed && c == ':');
  });
  if (!host_ok || (bracketed && out.host.find(':') == std::string::npos)) return std::nullopt;
  if (port_text.data() != nullptr) {  // a ':' was there: a port must follow
    unsigned port = 0;
    const auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (error != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535) {
      return std::nullopt;
    }
    out.port = static_cast<uint16_t>(port);
  }
  return out;
}

std::string icap_request_head(const IcapRequest& request) {
  const bool reqmod = request.method == IcapMethod::kReqmod;
  std::string http;
  if (reqmod) {
    http = "PUT " + percent_encoded(request.file_name) + " HTTP/1.1\r\nHost: ftpsgate\r\n";
    if (request.size) http += "Content-Length: " + std::to_string(*request.size) + "\r\n";
    http += "\r\n";
  }
  std::string req_hdr;
  std::string res_hdr;
  if (reqmod) {
    req_hdr = http;
  } else {
    req_hdr = "GET " + percent_encoded(request.file_name) + " HTTP/1.1\r\nHost: ftpsgate\r\n\r\n";
    res_hdr = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n";
    if (request.size) res_hdr += "Content-Length: " + std::to_string(*request.size) + "\r\n";
    res_hdr += "\r\n";
  }
  std::string encapsulated = "req-hdr=0";
  if (reqmod) {
    encapsulated += ", req-body=" + std::to_string(req_hdr.size());
  } else {
    encapsulated +=
        ", res-hdr=" + std::to_string(req_hdr.size()) + ", res-body=" + std::to_string(req_hdr.size() + res_hdr.size());
  }
  std::string head = std::string(reqmod ? "REQMOD " : "RESPMOD ") + request.url.text() + " ICAP/1.0\r\n";
  head += "Host: " + request.url.host + "\r\n";
  if (request.allow_204) head += "Allow: 204\r\n";
  if (request.preview) head += "Preview: " + std::to_string(*request.preview) + "\r\n";
  if (!request.client_ip.empty() && clean_text(request.client_ip)) head += "X-Client-IP: " + request.client_ip + "\r\n";
  if (!request.user.empty()) head += "X-Authenticated-User: " + base64("Local://" + request.user) + "\r\n";
  head += "Encapsulated: " + encapsulated + "\r\n\r\n";
  return head + req_hdr + res_hdr;
}

std::string icap_chunk_head(std::size_t length) {
  char buffer[32];
  const int n = std::snprintf(buffer, sizeof(buffer), "%zx\r\n", length);
  return std::string(buffer, static_cast<std::size_t>(n));
}

std::string_view icap_last_chunk(bool ieof) { return ieof ? "0; ieof\r\n\r\n" : "0\r\n\r\n"; }

std::string icap_options_request(const IcapUrl& url) {
  return "OPTIONS " + url.text() + " ICAP/1.0\r\nHost: " + url.host + "\r\nEncapsulated: null-body=0\r\n\r\n";
}

std::variant<IcapResponse, IcapParse, ScanResult> parse_icap_response(std::string_view data) {
  const std::size_t blank = data.find("\r\n\r\n");
  if (blank == std::string_view::npos) {
    if (data.size() > kIcapMaxHead) return ScanResult::failed("ICAP response head too long");
    return IcapParse::kNeedMore;
  }
  if (blank + 4 > kIcapMaxHead) return ScanResult::failed("ICAP response head too long");
  IcapResponse response;
  response.head_length = blank + 4;
  std::string_view head = data.substr(0, blank);
  const std::size_t first_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, first_end);
  if (!status_line.starts_with("ICAP/1.0 ") || status_line.size() < 12) {
    return ScanResult::failed("not an ICAP response");
  }
  const auto code = status_code(status_line.substr(9));
  if (!code || *code < 100 || *code > 599) return ScanResult::failed("bad ICAP status line");
  response.status = *code;
  std::string_view rest = first_end == std::string_view::npos ? std::string_view() : head.substr(first_end + 2);
  std::string* last = nullptr;  // the value a continuation line extends
  while (!rest.empty()) {
    const std::size_t end = rest.find("\r\n");
    const std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 2);
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      // Folded onto more lines: RFC 3507 §4.7's X-Violations-Found puts each field of each
      // violation on a line of its own (c-icap sends it so).
      if (last == nullptr) return ScanResult::failed("malformed ICAP header line");
      *last += '\t';
      *last += trim(line);
      continue;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return ScanResult::failed("malformed ICAP header line");
    const std::string name = lower(trim(line.substr(0, colon)));
    const std::string value(trim(line.substr(colon + 1)));
    auto [it, fresh] = response.headers.emplace(name, value);
    if (!fresh) it->second += ", " + value;
    last = &it->second;
  }
  // The encapsulated HTTP response's status line, when a res-hdr section follows.
  const auto encapsulated = response.headers.find("encapsulated");
  if (encapsulated != response.headers.end()) {
    const std::string& value = encapsulated->second;
    response.request_returned =
        value.find("req-hdr=") != std::string::npos && value.find("res-hdr=") == std::string::npos;
    const std::size_t at = value.find("res-hdr=");
    if (at != std::string::npos) {
      std::size_t offset = 0;
      const char* begin = value.data() + at + 8;
      const auto [end, error] = std::from_chars(begin, value.data() + value.size(), offset);
      const std::string_view body = data.substr(response.head_length);
      if (error == std::errc() && end != begin && offset < body.size() && body.substr(offset).starts_with("HTTP/1.")) {
        const std::string_view http = body.substr(offset);
        const std::size_t space = http.find(' ');
        if (space != std::string_view::npos) {
          if (auto http_code = status_code(http.substr(space + 1))) response.http_status = *http_code;
        }
      }
    }
  }
  return response;
}

ScanResult icap_verdict(const IcapResponse& response) {
  for (const char* header : {"x-infection-found", "x-virus-id", "x-violations-found"}) {
    const auto it = response.headers.find(header);
    if (it == response.headers.end()) continue;
    const std::string_view kind = header;
    std::string name = kind == "x-infection-found"    ? threat_of(it->second)
                       : kind == "x-violations-found" ? violation_of(it->second)
                                                      : it->second;
    if (name.empty()) name = "unnamed threat";
    return ScanResult::infected(name.substr(0, 256));
  }
  if (response.status == 204) return ScanResult::clean();
  if (response.status == 200) {
    if (response.http_status >= 200 && response.http_status < 300) return ScanResult::clean();
    if (response.request_returned) return ScanResult::clean();  // REQMOD: the request passed on
    if (response.http_status == 0) return ScanResult::failed("ICAP 200 without an encapsulated HTTP status");
    return ScanResult::infected("blocked by the ICAP service (HTTP " + std::to_string(response.http_status) + ")");
  }
  return ScanResult::failed("ICAP status " + std::to_string(response.status));
}

}  // namespace ftpsgate::inspection
