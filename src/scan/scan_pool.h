// What the clamd and ICAP scanners share: a bounded set of connections (busy ones plus idle
// keep-alive ones at most max_connections), a bounded FIFO of scans waiting for one, the
// connect and no-progress timeouts, and the rule that a verdict is delivered once, later,
// on the loop.
//
// Ownership: the caller owns each exchange (it is the ScanHandle); the exchange owns its
// connection while it runs; the scanner owns the idle connections and only points at the
// waiting exchanges. A handle must not outlive its scanner (asserted).
#pragma once

#include <cstddef>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "net/libevent_handles.h"
#include "net/timer.h"
#include "scan/scan_connection.h"
#include "scan/scanner.h"

namespace ftpsgate::inspection {

// Scans waiting for a connection beyond max_connections; one more is "scanner busy".
inline constexpr std::size_t kMaxQueuedScans = 1024;

class PooledScanner;

// One scan or health check: a request written over a connection, a verdict read back.
class ScanExchange : public ScanHandle, private ScanConnection::User {
 public:
  struct Timeouts {
    Duration connect;
    Duration stall;  // no byte written or read for this long
  };
  ScanExchange(PooledScanner& scanner, Timeouts timeouts, Scanner::Done done);
  // Cancels: the callback never runs, a connection mid-exchange is closed (not pooled).
  ~ScanExchange() override;
  ScanExchange(const ScanExchange&) = delete;
  ScanExchange& operator=(const ScanExchange&) = delete;

 protected:
  // The engine's part, called only while the exchange runs. begin(): a connection is up,
  // fresh or reused (or fresh again for a retry): write the request from the start.
  virtual void begin() = 0;
  virtual void read() = 0;                                // bytes in connection().input()
  virtual void writable() = 0;                            // the output drained to the low watermark
  virtual void write_failed(const std::string& why) = 0;  // reading goes on
  virtual void ended(const std::string& why) = 0;         // closed or broken before a verdict

  ScanConnection& connection() { return *connection_; }
  PooledScanner& scanner() { return scanner_; }
  bool running() const { return phase_ == Phase::kRunning; }
  // The verdict: delivered on the loop later; `keep` puts the connection back in the pool
  // (when it is clean: nothing unread or unsent).
  void finish(ScanResult result, bool keep = false);
  void fail(std::string_view why);  // "<engine>: <why>", the connection closed
  // The connection broke before the verdict: a reused connection that brought nothing
  // back is replaced by a fresh one once (the server may have closed it while idle, with
  // the close still on its way); otherwise fail(why).
  void lost(std::string_view why);

 private:
  friend class PooledScanner;
  enum class Phase { kNew, kQueued, kConnecting, kRunning, kDone };

  void start(std::unique_ptr<ScanConnection> connection, bool reused);
  void run();
  void on_deadline();
  static void on_report(evutil_socket_t, short, void* self);
  void on_connected() final;
  void on_input() final;
  void on_output_low() final;
  void on_write_failed(const std::string& why) final;
  void on_end(const std::string& why) final;

  PooledScanner& scanner_;  // outlives the exchange
  const Timeouts timeouts_;
  Scanner::Done done_;
  Phase phase_ = Phase::kNew;
  bool slot_ = false;    // counts against max_connections (scans do, health checks do not)
  bool reused_ = false;  // the connection came from the idle list
  bool retried_ = false;
  std::list<ScanExchange*>::iterator queued_at_;
  std::unique_ptr<ScanConnection> connection_;
  ScanResult result_;
  net::Timer deadline_;   // the connect timeout, then the no-progress one
  net::EventPtr report_;  // delivers result_; freed with the exchange, so a cancel silences it
};

// A health check: one request written, one bounded answer judged (clamd PING, ICAP OPTIONS).
class RequestProbe final : public ScanExchange {
 public:
  // The answer in `input`, once complete: kClean = up, or why not (without the engine's
  // label); nullopt while more is needed. It bounds what it waits for.
  using Judge = std::function<std::optional<ScanResult>(evbuffer* input)>;
  RequestProbe(PooledScanner& scanner, std::string request, std::string what, Judge judge, Scanner::ProbeDone done);

 private:
  void begin() override;
  void read() override;
  void writable() override {}
  void write_failed(const std::string&) override {}  // the read side tells the end
  void ended(const std::string& why) override;

  const std::string request_;
  const std::string what_;  // "PING", "OPTIONS"
  const Judge judge_;
};

class PooledScanner : public Scanner {
 public:
  // `endpoint` nullopt: every scan fails with `endpoint_error` (a bad or unsupported address
  // in the configuration). `label` starts every error: "clamd", "ICAP".
  PooledScanner(event_base* base, const ScannerConfig& config, std::string label, std::optional<ScanEndpoint> endpoint,
                std::string endpoint_error);
  ~PooledScanner() override;
  const ScannerConfig& config() const override { return config_; }
  event_base* base() const { return base_; }
  const std::string& label() const { return label_; }
  std::size_t idle_connections() const;  // open ones (the server may have closed some)
  ScanExchange::Timeouts scan_timeouts() const { return {config_.connect_timeout, config_.timeout}; }
  // Health checks: health_check.timeout bounds the connect and each wait for a byte.
  ScanExchange::Timeouts probe_timeouts() const;

 protected:
  // A scan: starts now when a connection is free or may be opened, else waits in the queue
  // (or fails "scanner busy" when the queue is full).
  std::unique_ptr<ScanHandle> admit(std::unique_ptr<ScanExchange> exchange);
  // A health check: its own fresh connection, outside the pool and its limit, closed after.
  std::unique_ptr<ScanHandle> admit_probe(std::unique_ptr<ScanExchange> exchange);

 private:
  friend class ScanExchange;
  bool can_start();
  void launch(ScanExchange& exchange);
  void connect(ScanExchange& exchange);
  void release(ScanExchange& exchange, bool keep);
  void dispatch();

  event_base* base_;
  const ScannerConfig config_;
  const std::string label_;
  const std::optional<ScanEndpoint> endpoint_;
  const std::string endpoint_error_;
  const std::size_t max_connections_;
  std::size_t busy_ = 0;                               // exchanges holding a slot: connecting or running
  std::size_t live_ = 0;                               // exchanges not yet destroyed (handles must not outlive us)
  std::vector<std::unique_ptr<ScanConnection>> idle_;  // most recently used last
  std::list<ScanExchange*> waiting_;                   // FIFO; each removes itself when cancelled
  net::Timer dispatch_;  // starts waiting scans from the loop, not from a callback in flight
};

// The engines (make_scanner picks one).
std::unique_ptr<Scanner> make_clamd_scanner(event_base* base, const ScannerConfig& config);
std::unique_ptr<Scanner> make_icap_scanner(event_base* base, const ScannerConfig& config);

// A configured host as an address: numeric, or "localhost" (127.0.0.1). Names are not
// resolved: that would block the loop.
std::optional<net::SocketAddress> scanner_address(const std::string& host, uint16_t port);

}  // namespace ftpsgate::inspection
