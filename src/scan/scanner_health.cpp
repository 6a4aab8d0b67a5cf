#include "scan/scanner_health.h"

namespace ftpsgate::inspection {

void ScannerHealth::start(event_base* base, metrics::Metrics& metrics, log::Logger& logger) {
  metrics_ = &metrics;
  logger_ = &logger;
  scanner_ = make_scanner(base, config_);
  next_ = std::make_unique<net::Timer>(base, [this] { probe(); });
  deadline_ = std::make_unique<net::Timer>(base, [this] {
    probe_.reset();
    result(false, "no answer within health_check.timeout");
  });
  metrics_->scanner_up(config_.name).Set(0);
  probe();
}

void ScannerHealth::stop() {
  probe_.reset();
  deadline_.reset();
  next_.reset();
  scanner_.reset();
}

void ScannerHealth::probe() {
  if (!scanner_) return;
  deadline_->arm(config_.health_check.timeout);
  probe_ = scanner_->probe([this](bool up, std::string error) {
    deadline_->cancel();
    result(up, error);
  });
}

void ScannerHealth::result(bool up, const std::string& error) {
  const bool was = up_.exchange(up);
  metrics_->scanner_up(config_.name).Set(up ? 1 : 0);
  if (!checked_ || was != up) {
    nlohmann::json fields = {{"scanner", config_.name}};
    if (!up) fields["error"] = error;
    logger_->write(up ? LogLevel::kInfo : LogLevel::kWarn, up ? "scanner_up" : "scanner_down", fields);
  }
  checked_ = true;
  next_->arm(config_.health_check.interval);
}

}  // namespace ftpsgate::inspection
