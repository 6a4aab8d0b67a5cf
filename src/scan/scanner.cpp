#include "scan/scanner.h"

#include "scan/scan_pool.h"

namespace ftpsgate::inspection {

std::unique_ptr<Scanner> make_scanner(event_base* base, const ScannerConfig& config) {
  switch (config.engine) {
    case ScanEngine::kClamd:
      return make_clamd_scanner(base, config);
    case ScanEngine::kIcap:
      return make_icap_scanner(base, config);
  }
  return make_clamd_scanner(base, config);
}

std::optional<net::SocketAddress> scanner_address(const std::string& host, uint16_t port) {
  return net::SocketAddress::from_numeric(host == "localhost" ? "127.0.0.1" : host, port);
}

}  // namespace ftpsgate::inspection
