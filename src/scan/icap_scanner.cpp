// ICAP (RFC 3507): the file sent as the body of a RESPMOD or REQMOD request, with a
// preview when configured, over keep-alive connections. The response is read all along the
// upload (a server may answer before it has read everything); a 200's encapsulated body is
// walked to its end without keeping it, so the connection can go back to the pool.
#include <event2/buffer.h>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <optional>
#include <string>
#include <variant>

#include "inspection/icap_body.h"
#include "inspection/icap_message.h"
#include "scan/scan_pool.h"

namespace ftpsgate::inspection {

namespace {

std::string_view contiguous(evbuffer* in, std::size_t length) {
  return {reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ev_ssize_t>(length))), length};
}

// The length of the response head at the start of `in` (up to its blank line); 0 while it
// has not all come; `too_long` when kIcapMaxHead bytes came without one.
std::size_t head_length(evbuffer* in, bool& too_long) {
  const evbuffer_ptr blank = evbuffer_search(in, "\r\n\r\n", 4, nullptr);
  if (blank.pos < 0) {
    too_long = evbuffer_get_length(in) > kIcapMaxHead;
    return 0;
  }
  return static_cast<std::size_t>(blank.pos) + 4;
}

std::string status_line(std::string_view head) { return printable_excerpt(head.substr(0, head.find("\r\n"))); }

bool says_close(const IcapResponse& response) {
  const auto it = response.headers.find("connection");
  if (it == response.headers.end()) return false;
  std::string value = it->second;
  std::transform(value.begin(), value.end(), value.begin(), [](unsigned char c) { return std::tolower(c); });
  return value.find("close") != std::string::npos;
}

class IcapScan final : public ScanExchange {
 public:
  IcapScan(PooledScanner& scanner, const IcapUrl& url, const ScanSubject& subject, Scanner::Done done)
      : ScanExchange(scanner, scanner.scan_timeouts(), std::move(done)), spool_(*subject.content) {
    const ScannerConfig& config = scanner.config();
    IcapRequest request;
    request.method = config.icap_method == ftpsgate::IcapMethod::kReqmod ? IcapMethod::kReqmod : IcapMethod::kRespmod;
    request.url = url;
    request.file_name = subject.file_name;
    request.size = spool_.size();
    request.client_ip = subject.client_ip;
    request.user = subject.user;
    if (config.icap_preview > 0) {
      preview_end_ = std::min<uint64_t>(config.icap_preview, spool_.size());
      request.preview = preview_end_;
      preview_ = true;
    }
    head_ = icap_request_head(request);
  }

 private:
  enum class Sending { kPreview, kAwaitContinue, kBody, kSent, kStopped };
  enum class Reading { kHead, kHeaders, kBody };

  void begin() override {
    offset_ = 0;
    reading_ = Reading::kHead;
    response_ = {};
    skipper_ = {};
    write_error_.clear();
    evbuffer_add(connection().output(), head_.data(), head_.size());
    sending_ = preview_ ? Sending::kPreview : Sending::kBody;
    pump();
  }

  void writable() override { pump(); }

  void pump() {
    if (sending_ != Sending::kPreview && sending_ != Sending::kBody) return;
    const bool preview = sending_ == Sending::kPreview;
    const uint64_t end = preview ? preview_end_ : spool_.size();
    evbuffer* out = connection().output();
    std::string error;
    if (!add_chunks(out, spool_, ChunkFraming::kIcap, offset_, end, error)) {
      fail(error);
      return;
    }
    if (offset_ < end) return;
    // RFC 3507 §4.5: "0; ieof" when the preview already held the whole file.
    const std::string_view last = icap_last_chunk(preview && preview_end_ == spool_.size());
    evbuffer_add(out, last.data(), last.size());
    sending_ = preview ? Sending::kAwaitContinue : Sending::kSent;
  }

  // Our request is on its way whole: the server has all it asked for.
  bool request_complete() const { return sending_ == Sending::kSent || sending_ == Sending::kAwaitContinue; }

  void read() override {
    while (running()) {
      bool more = false;
      switch (reading_) {
        case Reading::kHead:
          more = read_head();
          break;
        case Reading::kHeaders:
          more = read_headers();
          break;
        case Reading::kBody:
          read_body();
          break;
      }
      if (!more) return;
    }
  }

  // False when it needs more bytes or the exchange is over.
  bool read_head() {
    evbuffer* in = connection().input();
    bool too_long = false;
    head_length_ = head_length(in, too_long);
    if (head_length_ == 0) {
      if (too_long) fail("response head too long");
      return false;
    }
    const std::string_view head = contiguous(in, head_length_);
    auto parsed = parse_icap_response(head);
    if (auto* error = std::get_if<ScanResult>(&parsed)) {
      fail(error->error);
      return false;
    }
    response_ = std::get<IcapResponse>(std::move(parsed));
    if (response_.status == 100) {
      if (sending_ != Sending::kAwaitContinue || preview_end_ == spool_.size()) {
        fail("unexpected " + status_line(head));
        return false;
      }
      evbuffer_drain(in, head_length_);
      sending_ = Sending::kBody;
      pump();
      return running();
    }
    if (response_.status != 200 && response_.status != 204) {
      fail(status_line(head));
      return false;
    }
    // A 204 may come without any Encapsulated header; a 200 says where its parts are.
    std::optional<IcapEncapsulated> encapsulated = IcapEncapsulated{};
    const auto it = response_.headers.find("encapsulated");
    if (it != response_.headers.end()) {
      encapsulated = parse_icap_encapsulated(it->second);
    } else if (response_.status == 200) {
      encapsulated.reset();
    }
    if (!encapsulated) {
      fail("bad or missing Encapsulated header in " + status_line(head));
      return false;
    }
    headers_end_ = head_length_ + encapsulated->headers_length;
    if (headers_end_ > kIcapMaxHead) {
      fail("response head too long");
      return false;
    }
    has_body_ = encapsulated->has_body;
    reading_ = Reading::kHeaders;
    return true;
  }

  // The encapsulated HTTP headers (the verdict needs their status line).
  bool read_headers() {
    evbuffer* in = connection().input();
    if (evbuffer_get_length(in) < headers_end_) return false;
    if (headers_end_ > head_length_) {
      // The same head again, now with the encapsulated status line after it.
      auto parsed = parse_icap_response(contiguous(in, headers_end_));
      auto* response = std::get_if<IcapResponse>(&parsed);
      if (response == nullptr) {
        fail("bad response head");
        return false;
      }
      response_ = std::move(*response);
    }
    evbuffer_drain(in, headers_end_);
    verdict_ = icap_verdict(response_);
    if (verdict_.verdict != Verdict::kClean) {
      finish(std::move(verdict_));  // infected or refused: the rest is not worth reading
      return false;
    }
    if (response_.status == 204) {
      finish(ScanResult::clean(), request_complete() && !has_body_ && !says_close(response_));
      return false;
    }
    if (!has_body_) {
      complete();
      return false;
    }
    reading_ = Reading::kBody;
    return true;
  }

  void read_body() {
    evbuffer* in = connection().input();
    while (evbuffer_get_length(in) > 0) {
      evbuffer_iovec segment{};
      evbuffer_peek(in, -1, nullptr, &segment, 1);
      std::size_t used = 0;
      const auto status =
          skipper_.feed(std::string_view(static_cast<const char*>(segment.iov_base), segment.iov_len), used);
      evbuffer_drain(in, used);
      if (status == IcapBodySkipper::Status::kError) {
        fail("bad chunked body: " + std::string(skipper_.error()));
        return;
      }
      if (status == IcapBodySkipper::Status::kDone) {
        complete();
        return;
      }
    }
  }

  // A clean 200, its body (if any) read to the end.
  void complete() {
    // SECURITY: a server that streams the file back as it reads it (c-icap's virus_scan
    // with SendPercentData) says 200 before it has seen the end; when the end turns out
    // infected it ends the body early, with a proper last chunk. So a 200 is a clean
    // verdict only once its body is whole, only about a request we finished sending, and
    // only when the body it sent back is as long as the file (a null body counts as empty).
    if (!request_complete()) {
      fail("the server answered before the whole file was sent");
      return;
    }
    const uint64_t returned = has_body_ ? skipper_.data_bytes() : 0;
    if (returned != spool_.size()) {
      fail("the server sent back " + std::to_string(returned) + " of the file's " + std::to_string(spool_.size()) +
           " bytes (c-icap cuts a file short when it finds a threat after sending part of it)");
      return;
    }
    finish(std::move(verdict_), !says_close(response_));
  }

  void write_failed(const std::string& why) override {
    sending_ = Sending::kStopped;
    write_error_ = why;
  }

  void ended(const std::string& why) override {
    lost(write_error_.empty() ? why + " before the verdict" : "cannot send the file: " + write_error_);
  }

  const Spool& spool_;
  std::string head_;
  bool preview_ = false;
  uint64_t preview_end_ = 0;  // with a preview: the bytes it holds (the whole file when smaller)
  // One exchange (begin() starts them afresh for a retry):
  uint64_t offset_ = 0;
  Sending sending_ = Sending::kBody;
  Reading reading_ = Reading::kHead;
  IcapResponse response_;
  std::size_t head_length_ = 0;
  std::size_t headers_end_ = 0;  // head plus encapsulated HTTP headers
  bool has_body_ = false;
  ScanResult verdict_;
  IcapBodySkipper skipper_;
  std::string write_error_;
};

class IcapScanner final : public PooledScanner {
 public:
  IcapScanner(event_base* base, const ScannerConfig& config, std::optional<IcapUrl> url,
              std::optional<ScanEndpoint> endpoint, std::string error)
      : PooledScanner(base, config, "ICAP", std::move(endpoint), std::move(error)), url_(std::move(url)) {}

  std::unique_ptr<ScanHandle> scan(const ScanSubject& subject, Done done) override {
    assert(subject.content != nullptr);
    return admit(std::make_unique<IcapScan>(*this, url_.value_or(IcapUrl{}), subject, std::move(done)));
  }

  std::unique_ptr<ScanHandle> probe(ProbeDone done) override {
    auto judge = [](evbuffer* in) -> std::optional<ScanResult> {
      bool too_long = false;
      const std::size_t length = head_length(in, too_long);
      if (too_long) return ScanResult::failed("answer to OPTIONS too long");
      if (length == 0) return std::nullopt;
      const std::string_view head = contiguous(in, length);
      auto parsed = parse_icap_response(head);
      if (auto* error = std::get_if<ScanResult>(&parsed)) return std::move(*error);
      if (std::get<IcapResponse>(parsed).status == 200) return ScanResult::clean();
      return ScanResult::failed("OPTIONS answered " + status_line(head));
    };
    const std::string request = url_ ? icap_options_request(*url_) : std::string();
    return admit_probe(std::make_unique<RequestProbe>(*this, request, "OPTIONS", judge, std::move(done)));
  }

  std::string_view engine() const override { return "icap"; }

 private:
  const std::optional<IcapUrl> url_;
};

}  // namespace

std::unique_ptr<Scanner> make_icap_scanner(event_base* base, const ScannerConfig& config) {
  std::optional<IcapUrl> url = parse_icap_url(config.icap_url);
  std::optional<ScanEndpoint> endpoint;
  std::string error;
  if (!url) {
    error = "bad icap_url '" + printable_excerpt(config.icap_url) + "'";
  } else if (auto address = scanner_address(url->host, url->port)) {
    endpoint = ScanEndpoint{{}, *address};
  } else {
    error = "cannot connect to " + url->host + ": not an IP address (names other than localhost are not resolved)";
  }
  return std::make_unique<IcapScanner>(base, config, std::move(url), std::move(endpoint), std::move(error));
}

}  // namespace ftpsgate::inspection
