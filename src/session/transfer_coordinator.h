// The session's data side: PASV/EPSV/PORT/EPRT, the transfer in flight, the data
// channel's lifecycle and the shared-port hand-over. It holds a transfer command back
// until the data connection is verified, then forwards it upstream and relays the
// backend's replies around the data channel's outcome.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/data_channel.h"
#include "rules/rule_set.h"
#include "ftp/command.h"
#include "ftp/reply.h"
#include "net/deferred_delete.h"
#include "net/dialer.h"
#include "net/socket_address.h"
#include "net/timer.h"
#include "session/downstream_channel.h"
#include "session/inspected_download.h"
#include "session/inspected_upload.h"
#include "session/runtime.h"
#include "session/session_log.h"
#include "session/upstream_channel.h"

namespace ftpsgate::session {

class TransferCoordinator final : public data::DataChannel::Observer {
 public:
  // What the coordinator needs from its session.
  class Session {
   public:
    virtual ~Session() = default;
    virtual bool data_protected() const = 0;  // PROT P in force
    virtual SessionReuse session_reuse() const = 0;
    // What the client showed of itself, for audit records.
    struct ClientIdentity {
      std::string control_fingerprint;  // JA4 of the control connection's ClientHello
      std::string client_name;          // the CLNT command's text
    };
    virtual const ClientIdentity& client_identity() const = 0;
    virtual void resume_commands() = 0;  // a held-back command may run now
    virtual std::string_view user() const = 0;  // the user in force (records, per-user metrics)
  };

  struct Endpoints {
    net::SocketAddress client;
    net::SocketAddress local;       // this socket's own address: passive ports bind here
    net::SocketAddress advertised;  // what the client connected to (the balancer's, with PROXY protocol)
  };

  TransferCoordinator(const Services& services, const Runtime& runtime, const ListenerConfig& listener,
                      const ClassConfig& cls, uint64_t session_id, Endpoints endpoints, DownstreamChannel& downstream,
                      UpstreamChannel& upstream, SessionLog& log, Session& session);
  ~TransferCoordinator();
  TransferCoordinator(const TransferCoordinator&) = delete;
  TransferCoordinator& operator=(const TransferCoordinator&) = delete;

  void passive(const ftp::Command& cmd, bool epsv);
  void active(const ftp::Command& cmd, bool eprt);
  // `limits`: the rules' upload size limit; `throttle`: the bandwidth buckets.
  // `inspection`: what the class, or a rule for this user or group, asks of uploads and
  // downloads (RETR).
  void transfer(const ftp::Command& cmd, data::Direction direction,
                const rules::UploadLimits& limits = rules::UploadLimits{}, data::Throttle throttle = {},
                const inspection::InspectionPolicy& inspection = {});
  void abort();

  bool in_transfer() const { return transfer_.has_value(); }
  // A transfer runs, or a PASV/EPSV answer waits for its shared port.
  bool busy() const { return transfer_.has_value() || deferred_answer_.has_value(); }

  // passive.shared_port, routed here by the gateway on this session's loop.
  void shared_port_granted(uint64_t reservation, uint16_t port);
  void adopt_shared_data(uint64_t reservation, std::unique_ptr<data::SharedDataConnection> connection);

  void retire_data_channel();
  // The drain deadline passed: the transfer in flight gets its failed record.
  void cut_by_shutdown();
  // The session ends: a forwarded transfer in flight is cut (backend reset) and recorded.
  void session_ending();

  // data::DataChannel::Observer
  void on_data_ready() override;
  void on_data_refused(const data::DataRefusal& refusal) override;
  void on_data_finished(const data::TransferOutcome& outcome) override;
  void on_data_handshake(SSL* ssl, bool ok, const std::string& error) override;
  void on_data_unresumed(SSL* ssl) override;
  void on_data_port_ready() override;

 private:
  // A data command the backend's side is being prepared for.
  struct DataRequest {
    std::string verb;
    bool client_wants_epsv = false;
    std::optional<net::SocketAddress> active_target;  // PORT/EPRT: where to connect later
    bool backend_active = false;                      // we sent PORT/EPRT to the backend
  };

  struct Transfer {
    ftp::Command command;
    data::Direction direction = data::Direction::kDownload;
    bool forwarded = false;        // the backend has the command
    bool own_preliminary = false;  // we sent our own 150 (the backend's is swallowed)
    bool backend_preliminary = false;  // the backend answered 1xx
    bool data_done = false;
    bool recorded = false;  // its `transfer` record is written
    std::optional<ftp::Reply> held_final;
    data::TransferOutcome outcome;
    std::chrono::steady_clock::time_point started;
    rules::UploadLimits limits;  // uploads: the rules' max_size (unset = none)
    data::Throttle throttle;
    // Inspection (issue 16): the upload spools, is scanned, and only then goes upstream.
    const ScannerConfig* scanner = nullptr;
    inspection::InspectionPolicy inspection;  // what `scanner` was chosen by
    std::unique_ptr<inspection::Spool> spool;      // while the client's bytes arrive
    std::unique_ptr<InspectedUpload> inspected;    // once they are all in
    // Download inspection: RETR sent, the file spooled and scanned, then streamed.
    std::unique_ptr<InspectedDownload> download;
    std::string download_final;  // the backend's 2xx, sent once the client has the file
    bool unspooling = false;
    std::chrono::steady_clock::time_point unspool_started;
    std::optional<data::TransferOutcome> client_failed;  // the client's side ended before the stream
    std::optional<InspectedUpload::Result> inspection_result;
    double spool_seconds = 0;  // from the command to the last byte in the spool
    std::unique_ptr<net::Timer> keepalive;  // NOOPs to the backend until the command goes there
  };

  void prepare_backend_side(DataRequest request);
  bool open_client_side(const DataRequest& request);
  void answer_data_command(const DataRequest& request);
  data::DataChannel::Settings data_settings() const;
  // The control connection's server as a data target (the port is the backend's to say).
  net::DialTarget backend_data_target() const;
  data::BackendDataTls backend_data_tls() const;
  void handle_backend_passive(const DataRequest& request, const ftp::Reply& reply);
  void forward_transfer();
  // Inspection: the client's bytes go to a spool; then the scan and the forward.
  void spool_upload();
  void spooled(const data::TransferOutcome& outcome);
  void inspected(const InspectedUpload::Result& result);
  // The transfer's inspected upload or download is done with: abandoned now, freed later.
  void retire_inspection();
  void inspect_download();
  void download_inspected(const InspectedDownload::Result& result);
  void unspooled(const data::TransferOutcome& outcome);
  // Ends an inspected transfer whose client already has every reply it will get.
  void end_inspected(const std::string& reply);
  void handle_transfer_reply(const ftp::Reply& reply);
  void complete_transfer();
  // An upload cut at its rule's max_size: 552, and the partial file deleted when the rule
  // says so (STOR only: an APPE's file held data before, STOU's name is the server's).
  void refuse_oversized_upload();
  // The transfer's metrics and `transfer` log record (SPEC §5), once per transfer.
  void record_transfer(const data::TransferOutcome& outcome, bool refused = false);
  // logging.xferlog: the transfer's xferlog(5) line (files only).
  void write_xferlog(const data::TransferOutcome& outcome, double seconds) const;
  std::string relayed_sha256() const { return data_ ? data_->sha256() : ""; }
  void deny(policy::Refusal reason, std::string_view command, std::string_view text = {});
  // A retired channel still closing gracefully stays until the peer's close (bounded).
  void keep_until_quiet(std::unique_ptr<data::DataChannel> channel);

  const Services& services_;
  const Runtime& runtime_;
  const ListenerConfig& listener_;
  const ClassConfig& class_;
  uint64_t session_id_;
  Endpoints endpoints_;
  DownstreamChannel& downstream_;
  UpstreamChannel& upstream_;
  SessionLog& log_;
  Session& session_;

  bool epsv_all_ = false;
  std::optional<net::DialTarget> backend_data_endpoint_;  // data_mode passive
  bool backend_data_ready_ = false;  // backend's PASV/EPSV answered, or our PORT/EPRT accepted
  std::optional<data::DataRefusal> data_refusal_;
  // Shared port: the PASV/EPSV answer waits until the data channel gets its port.
  std::optional<DataRequest> deferred_answer_;
  std::optional<Transfer> transfer_;
  // Retired data channels are freed from the loop; the live one goes first.
  net::DeferredDelete<data::DataChannel> retired_data_;
  std::vector<std::unique_ptr<data::DataChannel>> lingering_data_;  // before retired_data_ in teardown
  net::DeferredDelete<InspectedUpload> retired_uploads_;  // an upload ends from its own callback
  net::DeferredDelete<InspectedDownload> retired_downloads_;  // likewise a download
  std::unique_ptr<data::DataChannel> data_;
};

}  // namespace ftpsgate::session
