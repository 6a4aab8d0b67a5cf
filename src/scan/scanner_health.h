// Health checks of one scanner (inspection.scanners[].health_check), run on the main loop
// like the backends': every interval a probe (clamd PING, ICAP OPTIONS) within the
// timeout. The state feeds ftpsgate_scanner_up, the scanner_down/scanner_up log records
// and /readyz (readyz: true). Scans do not wait for it: a scan to a scanner marked down
// still tries, so a recovery counts at once.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "ftpsgate/config.h"
#include "log/logger.h"
#include "metrics/metrics.h"
#include "net/timer.h"
#include "scan/scanner.h"

namespace ftpsgate::inspection {

class ScannerHealth {
 public:
  explicit ScannerHealth(ScannerConfig config) : config_(std::move(config)) {}
  ~ScannerHealth() { stop(); }
  ScannerHealth(const ScannerHealth&) = delete;
  ScannerHealth& operator=(const ScannerHealth&) = delete;

  void start(event_base* base, metrics::Metrics& metrics, log::Logger& logger);
  void stop();
  // Thread-safe. Down until the first probe answers.
  bool up() const { return up_.load(); }
  const ScannerConfig& config() const { return config_; }

 private:
  void probe();
  void result(bool up, const std::string& error);

  ScannerConfig config_;
  std::atomic<bool> up_{false};
  bool checked_ = false;  // a first result was logged
  metrics::Metrics* metrics_ = nullptr;
  log::Logger* logger_ = nullptr;
  std::unique_ptr<Scanner> scanner_;
  std::unique_ptr<ScanHandle> probe_;  // after scanner_: cancelled first
  std::unique_ptr<net::Timer> next_;
  std::unique_ptr<net::Timer> deadline_;
};

}  // namespace ftpsgate::inspection
