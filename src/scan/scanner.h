// A scanning service as the session sees it: hand it a spooled file, get one verdict on
// the loop. One Scanner per worker loop and configured scanner; it keeps a bounded pool
// of connections (ICAP keep-alive) and queues scans beyond it.
#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "ftpsgate/config.h"
#include "inspection/scan_result.h"
#include "scan/spool.h"

namespace ftpsgate::inspection {

struct ScanSubject {
  const Spool* content = nullptr;  // must outlive the scan's handle
  std::string file_name;           // the upload's path, as the client named it
  std::string client_ip;           // ICAP X-Client-IP
  std::string user;                // ICAP X-Authenticated-User
};

// Destroying it cancels the scan: its callback never runs afterwards, and a connection in
// the middle of an exchange is closed (never pooled). It must not outlive its Scanner.
class ScanHandle {
 public:
  virtual ~ScanHandle() = default;
};

class Scanner {
 public:
  using Done = std::function<void(ScanResult)>;
  using ProbeDone = std::function<void(bool up, std::string error)>;
  virtual ~Scanner() = default;

  // `done` runs once, on the loop, never from inside scan(); a scan that cannot start
  // (queue full, bad socket) reports kError the same way.
  virtual std::unique_ptr<ScanHandle> scan(const ScanSubject& subject, Done done) = 0;
  // Health check: clamd PING/PONG, ICAP OPTIONS answered 200. Same callback rules.
  virtual std::unique_ptr<ScanHandle> probe(ProbeDone done) = 0;
  virtual std::string_view engine() const = 0;  // "clamd" or "icap"
  virtual const ScannerConfig& config() const = 0;
};

// Builds the engine `config` names, on `base`; never null. Addresses are numeric or
// "localhost" (no name is resolved on the loop); a bad one makes every scan fail, saying so.
// Destroying the Scanner closes its idle connections; every handle must be gone before.
std::unique_ptr<Scanner> make_scanner(event_base* base, const ScannerConfig& config);

}  // namespace ftpsgate::inspection
