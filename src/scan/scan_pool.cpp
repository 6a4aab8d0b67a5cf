#include "scan/scan_pool.h"

#include <algorithm>
#include <cassert>
#include <chrono>

namespace ftpsgate::inspection {

namespace {

std::chrono::milliseconds ms(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d); }

}  // namespace

// ---------------------------------------------------------------------------------------
// ScanExchange

ScanExchange::ScanExchange(PooledScanner& scanner, Timeouts timeouts, Scanner::Done done)
    : scanner_(scanner),
      timeouts_(timeouts),
      done_(std::move(done)),
      deadline_(scanner.base(), [this] { on_deadline(); }),
      report_(evtimer_new(scanner.base(), &ScanExchange::on_report, this)) {
  ++scanner_.live_;
}

ScanExchange::~ScanExchange() {
  if (phase_ == Phase::kQueued) {
    scanner_.waiting_.erase(queued_at_);
  } else if (phase_ != Phase::kDone) {
    scanner_.release(*this, false);  // mid-exchange: closed, never pooled
  }
  --scanner_.live_;
}

void ScanExchange::start(std::unique_ptr<ScanConnection> connection, bool reused) {
  connection_ = std::move(connection);
  reused_ = reused;
  connection_->attach(this);
  if (connection_->connected()) {
    run();
    return;
  }
  phase_ = Phase::kConnecting;
  deadline_.arm(ms(timeouts_.connect));
}

void ScanExchange::run() {
  phase_ = Phase::kRunning;
  deadline_.arm(ms(timeouts_.stall));
  begin();
}

void ScanExchange::finish(ScanResult result, bool keep) {
  if (phase_ == Phase::kDone) return;
  if (phase_ == Phase::kQueued) scanner_.waiting_.erase(queued_at_);
  phase_ = Phase::kDone;
  deadline_.cancel();
  scanner_.release(*this, keep);
  result_ = std::move(result);
  event_active(report_.get(), EV_TIMEOUT, 1);  // runs from the loop, after the current callback
}

void ScanExchange::fail(std::string_view why) {
  finish(ScanResult::failed(scanner_.label() + ": " + std::string(why)));
}

void ScanExchange::lost(std::string_view why) {
  if (reused_ && !retried_ && !connection_->received()) {
    retried_ = true;
    deadline_.cancel();
    connection_.reset();  // maybe from its own callback, which touches nothing of it after
    scanner_.connect(*this);
    return;
  }
  fail(why);
}

void ScanExchange::on_deadline() {
  if (phase_ == Phase::kConnecting) {
    fail("cannot connect to " + scanner_.endpoint_->text() + ": timed out");
    return;
  }
  if (phase_ != Phase::kRunning) return;
  const auto quiet = std::chrono::steady_clock::now() - connection_->last_progress();
  if (quiet >= timeouts_.stall) {
    fail("scanner timed out (no progress for " + std::to_string(ms(timeouts_.stall).count()) + " ms)");
    return;
  }
  deadline_.arm(std::chrono::ceil<std::chrono::milliseconds>(timeouts_.stall - quiet));
}

void ScanExchange::on_report(evutil_socket_t, short, void* self) {
  auto& exchange = *static_cast<ScanExchange*>(self);
  Scanner::Done done = std::move(exchange.done_);
  ScanResult result = std::move(exchange.result_);
  if (done) done(std::move(result));  // may destroy the exchange: nothing of it is touched after
}

void ScanExchange::on_connected() {
  if (phase_ == Phase::kConnecting) run();
}

void ScanExchange::on_input() {
  if (phase_ == Phase::kRunning) read();
}

void ScanExchange::on_output_low() {
  if (phase_ == Phase::kRunning) writable();
}

void ScanExchange::on_write_failed(const std::string& why) {
  if (phase_ == Phase::kRunning) write_failed(why);
}

void ScanExchange::on_end(const std::string& why) {
  if (phase_ == Phase::kConnecting) {
    fail("cannot connect to " + scanner_.endpoint_->text() + ": " + why);
  } else if (phase_ == Phase::kRunning) {
    ended(why);
  }
}

// ---------------------------------------------------------------------------------------
// RequestProbe

RequestProbe::RequestProbe(PooledScanner& scanner, std::string request, std::string what, Judge judge,
                           Scanner::ProbeDone done)
    : ScanExchange(scanner, scanner.probe_timeouts(),
                   [done = std::move(done)](ScanResult result) {
                     done(result.verdict == Verdict::kClean, std::move(result.error));
                   }),
      request_(std::move(request)),
      what_(std::move(what)),
      judge_(std::move(judge)) {}

void RequestProbe::begin() { evbuffer_add(connection().output(), request_.data(), request_.size()); }

void RequestProbe::read() {
  std::optional<ScanResult> answer = judge_(connection().input());
  if (!answer) return;
  if (answer->verdict == Verdict::kClean) {
    finish(std::move(*answer));
  } else {
    fail(answer->error);
  }
}

void RequestProbe::ended(const std::string& why) { fail(why + " before answering " + what_); }

// ---------------------------------------------------------------------------------------
// PooledScanner

PooledScanner::PooledScanner(event_base* base, const ScannerConfig& config, std::string label,
                             std::optional<ScanEndpoint> endpoint, std::string endpoint_error)
    : base_(base),
      config_(config),
      label_(std::move(label)),
      endpoint_(std::move(endpoint)),
      endpoint_error_(std::move(endpoint_error)),
      max_connections_(std::max<std::size_t>(1, config.max_connections)),
      dispatch_(base, [this] { dispatch(); }) {}

PooledScanner::~PooledScanner() {
  // Idle connections close with idle_. Exchanges point at us: they must be gone already.
  assert(live_ == 0 && "a ScanHandle outlived its Scanner");
}

std::size_t PooledScanner::idle_connections() const {
  return static_cast<std::size_t>(
      std::count_if(idle_.begin(), idle_.end(), [](const auto& connection) { return !connection->dead(); }));
}

ScanExchange::Timeouts PooledScanner::probe_timeouts() const {
  return {std::min(config_.connect_timeout, config_.health_check.timeout), config_.health_check.timeout};
}

std::unique_ptr<ScanHandle> PooledScanner::admit(std::unique_ptr<ScanExchange> exchange) {
  if (waiting_.empty() && can_start()) {
    launch(*exchange);
  } else if (waiting_.size() >= kMaxQueuedScans) {
    exchange->fail("scanner busy (" + std::to_string(waiting_.size()) + " scans waiting)");
  } else {
    exchange->phase_ = ScanExchange::Phase::kQueued;
    exchange->queued_at_ = waiting_.insert(waiting_.end(), exchange.get());
  }
  return exchange;
}

std::unique_ptr<ScanHandle> PooledScanner::admit_probe(std::unique_ptr<ScanExchange> exchange) {
  connect(*exchange);
  return exchange;
}

bool PooledScanner::can_start() {
  std::erase_if(idle_, [](const auto& connection) { return !connection->reusable(); });
  return !idle_.empty() || busy_ + idle_.size() < max_connections_;
}

void PooledScanner::launch(ScanExchange& exchange) {
  exchange.slot_ = true;
  ++busy_;
  if (!idle_.empty()) {
    std::unique_ptr<ScanConnection> connection = std::move(idle_.back());
    idle_.pop_back();
    exchange.start(std::move(connection), true);
    return;
  }
  connect(exchange);
}

void PooledScanner::connect(ScanExchange& exchange) {
  if (!endpoint_) {
    exchange.fail(endpoint_error_);
    return;
  }
  std::string error;
  std::unique_ptr<ScanConnection> connection = ScanConnection::open(base_, *endpoint_, error);
  if (!connection) {
    exchange.fail("cannot connect to " + endpoint_->text() + ": " + error);
    return;
  }
  exchange.start(std::move(connection), false);
}

void PooledScanner::release(ScanExchange& exchange, bool keep) {
  std::unique_ptr<ScanConnection> connection = std::move(exchange.connection_);
  if (connection && keep && exchange.slot_ && connection->reusable()) {
    connection->attach(nullptr);
    idle_.push_back(std::move(connection));
  }
  connection.reset();
  if (!exchange.slot_) return;
  exchange.slot_ = false;
  --busy_;
  if (!waiting_.empty()) dispatch_.arm(std::chrono::milliseconds(0));
}

void PooledScanner::dispatch() {
  while (!waiting_.empty() && can_start()) {
    ScanExchange& exchange = *waiting_.front();
    waiting_.pop_front();
    exchange.phase_ = ScanExchange::Phase::kNew;
    launch(exchange);
  }
}

}  // namespace ftpsgate::inspection
