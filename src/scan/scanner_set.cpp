#include "scan/scanner_set.h"

namespace ftpsgate::inspection {

bool same_scanner(const ScannerConfig& a, const ScannerConfig& b) {
  const auto address = [](const ScannerConfig& c) { return c.clamd_address ? c.clamd_address->to_string() : ""; };
  return a.name == b.name && a.engine == b.engine && a.clamd_socket == b.clamd_socket && address(a) == address(b) &&
         a.icap_url == b.icap_url && a.icap_method == b.icap_method && a.icap_preview == b.icap_preview &&
         a.max_connections == b.max_connections && a.connect_timeout == b.connect_timeout && a.timeout == b.timeout;
}

std::shared_ptr<Scanner> ScannerSet::get(const ScannerConfig& config) {
  auto it = scanners_.find(config.name);
  if (it != scanners_.end() && same_scanner(it->second.first, config)) return it->second.second;
  std::shared_ptr<Scanner> scanner = make_scanner(base_, config);
  scanners_[config.name] = {config, scanner};
  return scanner;
}

}  // namespace ftpsgate::inspection
