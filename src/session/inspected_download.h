// A download held for inspection (issue 16): the gateway sends the client's RETR, reads
// the backend's data into a spool, and once the backend confirmed the file (its 2xx) and
// every byte is spooled, scans it. The client gets nothing before the verdict: a file
// that passes is then streamed to it from the spool (the coordinator's part), one that
// does not ends with 550 and the scanner's verdict, or 451 when no verdict could be had.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "data/spool_receiver.h"
#include "ftp/command.h"
#include "ftp/reply.h"
#include "net/dialer.h"
#include "scan/spool.h"
#include "session/runtime.h"
#include "session/session_log.h"
#include "session/spool_scan.h"
#include "session/upstream_channel.h"

namespace ftpsgate::session {

class InspectedDownload {
 public:
  struct Result {
    bool pass = false;     // stream the spool to the client, then send `reply` (the backend's 2xx)
    std::string reply;     // the client's final reply, on the wire
    bool refused = false;  // !pass: refused (verdict, size, the backend's own refusal), not a fault
    std::string error;     // !pass: why
    std::string verdict;   // clean | infected | error | skipped ("" when nothing was scanned)
    std::string signature;
    double spool_seconds = 0;  // the command to the last byte spooled
    double scan_seconds = 0;
  };
  using Done = std::function<void(const Result& result)>;
  // A reply to RETR after the download was given up (ABOR): it belongs to the client.
  using Orphan = std::function<void(const ftp::Reply& reply)>;

  struct Context {
    const Services& services;
    inspection::InspectionPolicy policy;
    const ScannerConfig& scanner;
    UpstreamChannel& upstream;
    SessionLog& log;
    data::SpoolReceiver::Settings receiver;
    inspection::Spool::Settings spool;
    net::DialTarget backend_data;  // the backend's passive endpoint for this transfer
    inspection::ScanSubject subject;  // content is set here from the spool
  };

  InspectedDownload(Context context, ftp::Command command, Done done, Orphan orphan);
  ~InspectedDownload();
  InspectedDownload(const InspectedDownload&) = delete;
  InspectedDownload& operator=(const InspectedDownload&) = delete;

  void start();
  // Given up (ABOR, the end of the transfer or session): the scan and the backend's data
  // connection stop now, and a reply still due goes to the orphan handler, even before
  // this object is freed.
  void abandon();
  // The backend still owes RETR's final reply: an ABOR must go there.
  bool backend_busy() const { return !backend_final_.has_value(); }
  const inspection::Spool& spool() const { return *spool_; }
  uint64_t bytes() const { return spool_->size(); }

 private:
  void backend_reply(const ftp::Reply& reply);
  void received(const data::SpoolReceiver::Outcome& outcome);
  void maybe_scan();
  void decided(const SpoolScan::Decision& decision);
  void finish(Result result);
  Result base_result() const;

  Context context_;
  ftp::Command command_;
  Done done_;
  Orphan orphan_;
  std::shared_ptr<InspectedDownload*> self_;  // reply handlers hold it weakly
  std::unique_ptr<inspection::Spool> spool_;
  std::unique_ptr<data::SpoolReceiver> receiver_;  // after spool_: goes first
  std::unique_ptr<SpoolScan> scan_;                // likewise
  std::optional<data::SpoolReceiver::Outcome> received_;
  std::optional<ftp::Reply> backend_final_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point scan_started_;
  std::string verdict_;
  std::string signature_;
  bool finished_ = false;
};

}  // namespace ftpsgate::session
