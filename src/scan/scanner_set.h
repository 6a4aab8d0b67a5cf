// A worker loop's scanners, one per configured scanner, made on first use. A reload that
// changes a scanner makes a new one; scans running on the old one keep it alive.
#pragma once

#include <event2/event.h>

#include <map>
#include <memory>
#include <string>

#include "ftpsgate/config.h"
#include "scan/scanner.h"

namespace ftpsgate::inspection {

class ScannerSet {
 public:
  explicit ScannerSet(event_base* base) : base_(base) {}
  std::shared_ptr<Scanner> get(const ScannerConfig& config);

 private:
  event_base* base_;
  std::map<std::string, std::pair<ScannerConfig, std::shared_ptr<Scanner>>> scanners_;
};

// Same service and connection settings (health check and readyz aside).
bool same_scanner(const ScannerConfig& a, const ScannerConfig& b);

}  // namespace ftpsgate::inspection
