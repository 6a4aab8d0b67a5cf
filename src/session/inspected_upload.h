// An upload held for inspection (issue 16), from the moment its last byte is in the spool:
// the scan (or the decision not to scan), then for a file that may pass, a fresh passive
// connection to the backend, the client's command, and the spooled bytes. The client's
// final reply is decided here: the backend's own (226 when it stored the file), 550 with
// the scanner's verdict, 451 when no verdict could be had (fail closed), 550 above
// max_scan_size. The backend sees nothing of a file that does not pass.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "data/spool_sender.h"
#include "ftp/command.h"
#include "ftp/reply.h"
#include "net/dialer.h"
#include "scan/scanner.h"
#include "scan/spool.h"
#include "session/runtime.h"
#include "session/session_log.h"
#include "session/spool_scan.h"
#include "session/upstream_channel.h"

namespace ftpsgate::session {

class InspectedUpload {
 public:
  struct Result {
    std::string reply;     // the client's final reply, on the wire
    bool ok = false;       // the backend stored the file
    bool refused = false;  // refused (verdict, size, the backend's own refusal): not a gateway fault
    std::string error;     // when !ok
    std::string verdict;   // clean | infected | error | skipped
    std::string signature;  // infected: what the scanner found
    std::string scanner;
    double scan_seconds = 0;     // spooled to verdict
    double forward_seconds = 0;  // verdict to the backend's final reply
  };
  using Done = std::function<void(const Result& result)>;
  // A reply to a command this upload sent after it was given up (ABOR, session end):
  // STOR's own final reply still belongs to the client.
  using Orphan = std::function<void(const ftp::Reply& reply)>;

  struct Context {
    const Services& services;
    inspection::InspectionPolicy policy;  // the class's, or a rule's for this user or group
    const ScannerConfig& scanner;
    UpstreamChannel& upstream;
    SessionLog& log;
    data::SpoolSender::Settings sender;
    net::DialTarget backend;  // the server of the control connection (never the PASV reply's host)
    inspection::ScanSubject subject;  // content is set here from the spool
  };

  InspectedUpload(Context context, ftp::Command command, std::unique_ptr<inspection::Spool> spool, Done done,
                  Orphan orphan);
  ~InspectedUpload();
  InspectedUpload(const InspectedUpload&) = delete;
  InspectedUpload& operator=(const InspectedUpload&) = delete;

  void start();
  // Given up (ABOR, the end of the transfer or session): the scan and the sender stop
  // now, and a reply still due goes to the orphan handler, even before this object is freed.
  void abandon();
  // The backend has the command: an abort must ABOR there too.
  bool forwarded() const { return forwarded_; }
  uint64_t bytes() const { return spool_->size(); }

 private:
  void decided(const SpoolScan::Decision& decision);
  void forward();
  void backend_passive(const ftp::Reply& reply);
  void backend_final(const ftp::Reply& reply);
  void sender_done(bool ok, const std::string& error);
  void maybe_finish();
  void finish(Result result);
  Result base_result() const;
  // Wraps a reply handler so that it does nothing once this upload is gone.
  UpstreamChannel::ReplyHandler guarded(void (InspectedUpload::*handler)(const ftp::Reply&), bool orphan_final);

  Context context_;
  ftp::Command command_;
  std::unique_ptr<inspection::Spool> spool_;
  Done done_;
  Orphan orphan_;
  std::shared_ptr<InspectedUpload*> self_;  // reply handlers hold it weakly
  std::unique_ptr<SpoolScan> scan_;  // after spool_: cancelled first
  std::chrono::steady_clock::time_point scan_started_;
  std::chrono::steady_clock::time_point forward_started_;
  std::string verdict_ = "skipped";
  std::string signature_;
  bool forwarded_ = false;
  bool finished_ = false;
  std::unique_ptr<data::SpoolSender> sender_;
  std::optional<bool> sender_ok_;
  std::string sender_error_;
  std::optional<ftp::Reply> backend_final_;
};

}  // namespace ftpsgate::session
