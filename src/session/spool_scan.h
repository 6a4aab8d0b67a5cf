// The inspection of one spooled file (issue 16), the same for uploads and downloads: the
// max_scan_size rule, the scan, its metrics and `inspection` record, and what the class's
// policy makes of the verdict — pass the file, or refuse it with the client's reply.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "scan/scanner.h"
#include "scan/spool.h"
#include "session/runtime.h"
#include "session/session_log.h"

namespace ftpsgate::session {

class SpoolScan {
 public:
  struct Decision {
    bool pass = false;
    std::string verdict = "skipped";  // clean | infected | error | skipped
    std::string signature;            // infected: what the scanner found (printable, bounded)
    std::string error;                // refused: why, for the transfer record
    std::string reply;                // refused: the client's final reply, on the wire
  };
  using Done = std::function<void(const Decision& decision)>;

  struct Context {
    const Services& services;
    inspection::InspectionPolicy policy;
    const ScannerConfig& scanner;
    SessionLog& log;
    std::string what;  // "Upload" or "Download": the refusal says which
  };

  // `subject.content` is the spool; it must outlive this scan.
  SpoolScan(Context context, inspection::ScanSubject subject, Done done);
  ~SpoolScan();  // cancels a scan in progress: `done` never runs afterwards
  SpoolScan(const SpoolScan&) = delete;
  SpoolScan& operator=(const SpoolScan&) = delete;

  // `done` runs once, on the loop (from inside start() when the size rule decides); it
  // may destroy this scan.
  void start();

 private:
  void verdict(const inspection::ScanResult& result);
  std::string engine() const;
  std::string direction() const;  // "upload" or "download", for the record

  Context context_;
  inspection::ScanSubject subject_;
  Done done_;
  std::shared_ptr<SpoolScan*> self_;  // the scanner's callback holds it weakly
  std::shared_ptr<inspection::Scanner> scanner_;
  std::unique_ptr<inspection::ScanHandle> scan_;  // after scanner_: cancelled first
  std::chrono::steady_clock::time_point started_;
};

}  // namespace ftpsgate::session
