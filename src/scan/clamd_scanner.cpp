// clamd: one connection per scan (clamd ends an INSTREAM session with its reply), the file
// streamed as INSTREAM chunks as fast as the socket drains, the reply read all along —
// clamd answers early when the stream is too long for it, then closes.
#include <event2/buffer.h>

#include <cassert>
#include <optional>
#include <string>

#include "inspection/clamd_protocol.h"
#include "scan/scan_pool.h"

namespace ftpsgate::inspection {

namespace {

constexpr std::string_view kPing{"zPING\0", 6};

// The NUL-terminated reply at the head of `in`, taken out (without its NUL); nullopt while
// the NUL has not come. `too_long`: more than kClamdMaxReply bytes came without one.
std::optional<std::string> take_reply(evbuffer* in, bool& too_long) {
  const evbuffer_ptr nul = evbuffer_search(in, "\0", 1, nullptr);
  if (nul.pos < 0) {
    too_long = evbuffer_get_length(in) > kClamdMaxReply;
    return std::nullopt;
  }
  std::string reply(static_cast<std::size_t>(nul.pos), '\0');
  evbuffer_remove(in, reply.data(), reply.size());
  evbuffer_drain(in, 1);
  return reply;
}

class ClamdScan final : public ScanExchange {
 public:
  ClamdScan(PooledScanner& scanner, const Spool& spool, Scanner::Done done)
      : ScanExchange(scanner, scanner.scan_timeouts(), std::move(done)), spool_(spool) {}

 private:
  void begin() override {
    offset_ = 0;
    terminated_ = false;
    const std::string_view command = clamd_instream_command();
    evbuffer_add(connection().output(), command.data(), command.size());
    pump();
  }

  void writable() override { pump(); }

  void pump() {
    if (!write_error_.empty()) return;
    evbuffer* out = connection().output();
    std::string error;
    if (!add_chunks(out, spool_, ChunkFraming::kClamd, offset_, spool_.size(), error)) {
      fail(error);
      return;
    }
    if (offset_ == spool_.size() && !terminated_) {
      const auto end = clamd_chunk_prefix(0);
      evbuffer_add(out, end.data(), end.size());
      terminated_ = true;
    }
  }

  void read() override {
    bool too_long = false;
    std::optional<std::string> reply = take_reply(connection().input(), too_long);
    if (too_long) {
      fail("reply too long");
      return;
    }
    if (!reply) return;
    ScanResult result = parse_clamd_reply(*reply);
    if (result.verdict == Verdict::kError && !result.error.starts_with("clamd"))
      result.error = "clamd: " + result.error;
    // SECURITY: "OK" before clamd has the whole stream would pass a file nobody scanned to
    // its end (a confused or hostile peer on the socket); only a refusal may come early.
    const bool all_sent = terminated_ && evbuffer_get_length(connection().output()) == 0;
    if (result.verdict == Verdict::kClean && !all_sent)
      result = ScanResult::failed("clamd: answered OK before the end of the stream");
    finish(std::move(result));
  }

  void write_failed(const std::string& why) override { write_error_ = why; }

  void ended(const std::string& why) override {
    fail(write_error_.empty() ? why + " before the reply" : "cannot send the file: " + write_error_);
  }

  const Spool& spool_;
  uint64_t offset_ = 0;
  bool terminated_ = false;  // the zero-length chunk is queued
  std::string write_error_;  // writing failed: stop, but read on (the reply says why)
};

class ClamdScanner final : public PooledScanner {
 public:
  using PooledScanner::PooledScanner;

  std::unique_ptr<ScanHandle> scan(const ScanSubject& subject, Done done) override {
    assert(subject.content != nullptr);
    return admit(std::make_unique<ClamdScan>(*this, *subject.content, std::move(done)));
  }

  std::unique_ptr<ScanHandle> probe(ProbeDone done) override {
    auto judge = [](evbuffer* in) -> std::optional<ScanResult> {
      bool too_long = false;
      std::optional<std::string> reply = take_reply(in, too_long);
      if (too_long) return ScanResult::failed("reply to PING too long");
      if (!reply) return std::nullopt;
      if (*reply == "PONG" || *reply == "PONG\n") return ScanResult::clean();
      return ScanResult::failed("unexpected answer to PING: " + printable_excerpt(*reply));
    };
    return admit_probe(std::make_unique<RequestProbe>(*this, std::string(kPing), "PING", judge, std::move(done)));
  }

  std::string_view engine() const override { return "clamd"; }
};

}  // namespace

std::unique_ptr<Scanner> make_clamd_scanner(event_base* base, const ScannerConfig& config) {
  std::optional<ScanEndpoint> endpoint;
  std::string error;
  if (!config.clamd_socket.empty()) {
    endpoint = ScanEndpoint{config.clamd_socket, {}};
  } else if (config.clamd_address) {
    if (auto address = scanner_address(config.clamd_address->host, config.clamd_address->port)) {
      endpoint = ScanEndpoint{{}, *address};
    } else {
      error = "cannot connect to " + config.clamd_address->to_string() +
              ": not an IP address (names other than localhost are not resolved)";
    }
  } else {
    error = "neither clamd_socket nor clamd_address is set";
  }
  return std::make_unique<ClamdScanner>(base, config, "clamd", std::move(endpoint), std::move(error));
}

}  // namespace ftpsgate::inspection
