// One client's session: the mediator between the client's control channel (downstream),
// the backend's (upstream) and the data side (transfer coordinator). It owns the session
// lifecycle (timers, logging context, retirement) and the command pipeline: each client
// line is parsed, looked up in the dispatch table (verb -> handler and the login phase it
// needs), passed through the command filters (tls_required first) and handled.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "auth/login_decision.h"
#include "ftp/command.h"
#include "identity/backend_login.h"
#include "identity/certificate_rules.h"
#include "ftp/line_reader.h"
#include "ftp/reply.h"
#include "net/socket_address.h"
#include "net/unique_fd.h"
#include "net/timer.h"
#include "pipeline/command_table.h"
#include "pipeline/filter_chain.h"
#include "session/downstream_channel.h"
#include "session/runtime.h"
#include "session/session_log.h"
#include "session/transfer_coordinator.h"
#include "session/upstream_channel.h"

namespace ftpsgate::session {

class ControlSession final : private DownstreamChannel::Observer,
                             private UpstreamChannel::Observer,
                             private TransferCoordinator::Session {
 public:
  using RetireFn = std::function<void(uint64_t id)>;

  ControlSession(const Services& services, std::shared_ptr<Runtime> runtime, const ListenerConfig& listener,
                 const ClassConfig& cls, uint64_t id, net::UniqueFd fd, net::SocketAddress client,
                 net::SocketAddress local, net::SocketAddress advertised, RetireFn retire);
  ControlSession(const ControlSession&) = delete;
  ControlSession& operator=(const ControlSession&) = delete;

  void start();
  // The drain deadline passed: log the cut transfer and the session's end, then close.
  void shut_down();
  // The drain deadline passed: 421 and a clean close (close_notify), its transfer cut.
  void say_goodbye();
  uint64_t id() const { return id_; }
  const std::string& client_ip() const { return client_ip_; }

  // passive.shared_port, routed here by the gateway on this session's loop.
  void shared_port_granted(uint64_t reservation, uint16_t port);
  void adopt_shared_data(uint64_t reservation, std::unique_ptr<data::SharedDataConnection> connection);

 private:
  enum class Lifecycle { kOpen, kClosing, kRetired };

  // The dispatch table's handlers (pipeline::route_command says which one a verb gets).
  struct Handler {
    void (ControlSession::*handle)(const ftp::Command&);
    // Syntax and state checks answered before the filters (nullptr: none); false = answered.
    bool (ControlSession::*validate)(const ftp::Command&) = nullptr;
  };
  static const Handler& handler(pipeline::CommandHandler id);

  // DownstreamChannel::Observer
  void on_downstream_input() override { process_lines(); }
  void on_downstream_drained() override;
  void on_downstream_tls(SSL* ssl) override;
  void on_downstream_closed() override { close_now(); }
  // UpstreamChannel::Observer
  void on_upstream_ready() override;
  void on_upstream_failed(const std::string& why) override;
  void on_upstream_unsolicited(const ftp::Reply& reply) override { downstream_.send(reply.wire()); }
  void on_upstream_reply_handled() override { process_lines(); }
  bool upstream_paused() const override;
  // TransferCoordinator::Session
  bool data_protected() const override { return prot_private_; }
  SessionReuse session_reuse() const override;
  const ClientIdentity& client_identity() const override { return identity_; }
  void resume_commands() override { process_lines(); }
  std::string_view user() const override { return authenticated_ ? authenticated_->user : user_; }

 public:
  // The auth pool's verdict on this session's login attempt `attempt` (on the loop).
  void login_decided(uint64_t attempt, const auth::LoginDecision& decision);

 private:

  // The command pipeline.
  void process_lines();
  bool busy() const;
  void handle_line(const ftp::LineEvent& line);
  void dispatch(const ftp::Command& cmd);
  // Runs the filter chain; true = the command may go on as `cmd` (possibly rewritten).
  bool filters_pass(ftp::Command& cmd, policy::CommandKind kind);
  pipeline::SessionView view() const;

  // Handlers (dispatch table).
  void handle_auth(const ftp::Command& cmd);
  void handle_pbsz(const ftp::Command& cmd);
  bool validate_prot(const ftp::Command& cmd);
  void handle_prot(const ftp::Command& cmd);
  void handle_ccc(const ftp::Command& cmd);
  void handle_feat(const ftp::Command& cmd);
  void handle_host(const ftp::Command& cmd);
  void handle_clnt(const ftp::Command& cmd);
  void handle_quit(const ftp::Command& cmd);
  bool validate_user(const ftp::Command& cmd);
  void handle_user(const ftp::Command& cmd);
  bool validate_pass(const ftp::Command& cmd);
  void handle_pass(const ftp::Command& cmd);
  void handle_noop(const ftp::Command& cmd);
  void handle_pasv(const ftp::Command& cmd) { transfers_.passive(cmd, false); }
  void handle_epsv(const ftp::Command& cmd) { transfers_.passive(cmd, true); }
  void handle_port(const ftp::Command& cmd) { transfers_.active(cmd, false); }
  void handle_eprt(const ftp::Command& cmd) { transfers_.active(cmd, true); }
  void handle_obsolete_data(const ftp::Command& cmd);
  void handle_download(const ftp::Command& cmd);
  void handle_upload(const ftp::Command& cmd);
  void start_upload(const ftp::Command& cmd, const rules::UploadLimits& limits);
  void handle_relay(const ftp::Command& cmd);

  std::vector<std::string> gateway_features() const;
  void handle_feat_reply(const ftp::Reply& reply);
  // A relayed command's reply; a login's decides the phase and feeds the login throttle.
  void handle_relayed_reply(const std::string& verb, const ftp::Reply& reply);
  void relay(const std::string& verb, const std::string& line);
  // A banned client address or a locked user name: 421, close, nothing reaches the backend.
  bool refused_by_login_throttle(std::string_view verb, const std::string& user);
  // A failed login (backend's or the gateway's reply): throttle, log, delayed reply.
  void login_failed(std::string_view verb, const std::string& reply_wire, nlohmann::json fields);
  // Feeds the login throttle (address and user name) and logs a ban it starts.
  void count_failed_login();
  void logged_in(nlohmann::json fields);

  // Gateway-side login (control_session_login.cpp): USER and PASS are answered here and
  // the backend sees only a login the gateway verified (or the mapped service account).
  enum class EdgeLogin { kOff, kAwaitPass, kVerifying, kBackendLogin };
  bool gateway_auth() const { return !auth_chain_.empty(); }
  void edge_user();
  void edge_pass(const ftp::Command& cmd);
  void edge_authenticated(identity::Identity who, const identity::UserEntry* entry);
  void send_backend_user();
  void send_backend_pass();
  void backend_login_reply(const ftp::Reply& reply);
  void edge_unavailable(policy::Refusal reason, std::string_view message);
  void forget_password();
  TlsRequired tls_required_now() const;

  // A refusal from the vocabulary: its usual reply unless code/text say otherwise.
  void deny(policy::Refusal reason, std::string_view command, int code = 0, std::string_view text = {},
            std::string_view message = {}, std::string_view rule = {});
  // Rules: the working directory as the backend reports it (PWD after login and after a
  // directory change; the client's own PWD replies too). Unknown (empty) until then.
  bool rules_active() const { return !runtime_->config.rules.empty(); }
  rules::Subject rules_subject() const;
  // Upload inspection for this session's user: a rule's for the user, a group or the
  // class (most specific first), else the class's own.
  const inspection::InspectionPolicy& inspection_policy() const;
  // The buckets a transfer in `direction` draws from: the session's own, the user's and
  // the class's, as the class's bandwidth section sets them.
  data::Throttle bandwidth_throttle(data::Direction direction);
  void track_working_directory(const std::string& verb, const ftp::Reply& reply);
  void ask_working_directory();
  void close_after_flush();
  void close_now();
  std::string backend_name() const;

  Services services_;
  std::shared_ptr<Runtime> runtime_;
  const ListenerConfig& listener_;
  const ClassConfig& class_;
  uint64_t id_;
  std::string client_ip_;
  RetireFn retire_;

  Lifecycle lifecycle_ = Lifecycle::kOpen;
  pipeline::LoginPhase phase_ = pipeline::LoginPhase::kAwaitUser;
  bool prot_private_ = false;
  std::string user_;
  std::string host_;
  ClientIdentity identity_;
  std::string routed_backend_;  // chosen by HOST; empty = the listener's backend
  std::string working_directory_;  // rules: absolute, normalised; empty = unknown
  std::optional<uint64_t> rest_pending_;  // REST sent, its 350 not yet seen
  uint64_t rest_offset_ = 0;              // the REST the backend accepted, for the next transfer
  std::shared_ptr<data::SharedBucket> session_buckets_[2];  // bandwidth.session: download, upload
  std::string pending_user_line_;
  std::optional<std::string> held_login_reply_;  // a failed login's reply, held (brute-force throttling)

  // Gateway-side login: the chain (nullptr = passthrough), where the login stands, the
  // verified certificate's facts, who the gateway decided the client is.
  std::vector<const AuthProviderConfig*> auth_chain_;
  EdgeLogin edge_ = EdgeLogin::kOff;
  uint64_t login_attempt_ = 0;  // late verdicts of older attempts are ignored
  std::optional<identity::CertificateFacts> client_certificate_;
  std::optional<identity::CertificateMatch> certificate_user_;
  std::optional<identity::Identity> authenticated_;
  std::optional<TlsRequired> identity_tls_required_;
  identity::BackendLogin backend_login_;
  std::string client_password_;  // for a passthrough backend login only; wiped once sent
  std::chrono::steady_clock::time_point login_started_;

  SessionLog log_;
  pipeline::FilterChain filters_;
  net::Timer login_timer_;
  net::Timer idle_timer_;
  net::Timer login_delay_timer_;
  net::Timer auth_timer_;
  // Destruction order (reverse): the data side first, then the backend's connection (its
  // pool lease before runtime_), then the client's.
  DownstreamChannel downstream_;
  UpstreamChannel upstream_;
  TransferCoordinator transfers_;
};

}  // namespace ftpsgate::session
