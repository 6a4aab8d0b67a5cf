// One client's control connection and everything hanging off it: the downstream
// control channel (clear, then TLS after AUTH, or TLS from the start when implicit), the
// upstream control connection to the backend, the command router and the data channel.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "data/data_channel.h"
#include "ftp/command.h"
#include "ftp/line_reader.h"
#include "ftp/reply.h"
#include "net/libevent_handles.h"
#include "net/socket_address.h"
#include "net/timer.h"
#include "policy/tls_policy.h"
#include "session/runtime.h"
#include "tls/openssl_handles.h"
#include "tls/session_binding.h"

namespace ftpsgate::session {

class ControlSession final : public data::DataChannel::Observer {
 public:
  using RetireFn = std::function<void(uint64_t id)>;

  ControlSession(const Services& services, std::shared_ptr<Runtime> runtime, const ListenerConfig& listener,
                 const ClassConfig& cls, uint64_t id, evutil_socket_t fd, net::SocketAddress client,
                 net::SocketAddress local, net::SocketAddress advertised, RetireFn retire);
  ~ControlSession();
  ControlSession(const ControlSession&) = delete;
  ControlSession& operator=(const ControlSession&) = delete;

  void start();
  // The drain deadline passed: log the cut transfer and the session's end, then close.
  void shut_down();
  uint64_t id() const { return id_; }
  const std::string& client_ip() const { return client_ip_; }

  // DataChannel::Observer
  void on_data_ready() override;
  void on_data_refused(const data::DataRefusal& refusal) override;
  void on_data_finished(const data::TransferOutcome& outcome) override;
  void on_data_handshake(SSL* ssl, bool ok, const std::string& error) override;
  void on_data_port_ready() override;

  // passive.shared_port, routed here by the gateway on this session's loop.
  void shared_port_granted(uint64_t reservation, uint16_t port);
  void adopt_shared_data(uint64_t reservation, std::unique_ptr<data::SharedDataConnection> connection);

 private:
  enum class Phase { kAwaitUser, kConnecting, kBackendGreeting, kLogin, kLoggedIn, kClosing };

  // What the next reply from the backend answers.
  enum class Expect { kGreeting, kRelay, kBackendPassive, kTransfer, kFeat, kSwallow, kBackendSetup };
  struct Expectation {
    Expect kind = Expect::kRelay;
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
    bool data_done = false;
    bool recorded = false;  // its `transfer` record is written
    std::optional<ftp::Reply> held_final;
    data::TransferOutcome outcome;
    std::chrono::steady_clock::time_point started;
  };

  // libevent trampolines
  static void on_down_read(bufferevent*, void* self);
  static void on_down_write(bufferevent*, void* self);
  static void on_down_event(bufferevent*, short what, void* self);
  static void on_up_read(bufferevent*, void* self);
  static void on_up_event(bufferevent*, short what, void* self);

  // downstream
  void process_lines();
  // Feeds the line reader from the input buffer, one line at a time, while fewer than
  // kMaxPendingLines wait and the client reads its replies.
  void pull_input();
  bool downstream_backlogged() const;
  bool busy() const;
  void handle_line(const ftp::LineEvent& line);
  void handle_command(const ftp::Command& cmd);
  void handle_auth(const ftp::Command& cmd);
  void switch_to_tls();
  void clear_control_channel();
  void attach_plain_downstream();
  bool skip_peer_close_notify(evbuffer* in);
  void control_handshake_done();
  void handle_pbsz(const ftp::Command& cmd);
  void handle_prot(const ftp::Command& cmd);
  void handle_ccc();
  void handle_feat();
  std::vector<std::string> gateway_features() const;
  void handle_host(const ftp::Command& cmd);
  void handle_quit();
  void handle_user(const ftp::Command& cmd);
  void handle_pass(const ftp::Command& cmd);
  void handle_passive(const ftp::Command& cmd, bool epsv);
  void handle_active(const ftp::Command& cmd, bool eprt);
  void request_backend_passive(Expectation expectation);
  bool open_client_side(const Expectation& expectation);
  void answer_data_command(const Expectation& expectation);
  data::DataChannel::Settings data_settings() const;
  void handle_transfer(const ftp::Command& cmd, data::Direction direction);
  void handle_abort();
  void relay_command(const ftp::Command& cmd, const std::string& line);
  bool refused_by_policy(policy::CommandKind kind, const ftp::Command& cmd);
  // A banned client address or a locked user name: 421, close, nothing reaches the backend.
  bool refused_by_login_throttle(std::string_view verb, const std::string& user);

  // upstream
  void connect_backend();
  void try_next_backend_server();
  void backend_connected();
  // This server failed to connect or greet: count, mark it down, try the next one.
  void server_failed(const std::string& why);
  // FTPS backends: AUTH TLS (explicit) or TLS from the start (implicit), then PBSZ 0 and
  // PROT P, all checked, before the client's USER goes up.
  void start_upstream_tls();
  void upstream_tls_established();
  void handle_backend_setup(const Expectation& expectation, const ftp::Reply& backend_reply);
  void send_login_upstream();
  // The transfer's metrics and `transfer` log record (SPEC §5), once per transfer.
  void record_transfer(const data::TransferOutcome& outcome);
  void handle_reply(ftp::Reply reply);
  void handle_greeting(const ftp::Reply& reply);
  void handle_relayed_reply(const Expectation& expectation, const ftp::Reply& reply);
  void handle_backend_passive(const Expectation& expectation, const ftp::Reply& reply);
  void handle_transfer_reply(const ftp::Reply& reply);
  void handle_feat_reply(const ftp::Reply& reply);
  // Reads backend replies from up_'s input buffer while the client's backlog has room.
  void pull_upstream();
  void send_upstream(const std::string& line);
  void backend_failed(const std::string& why);

  // data
  void forward_transfer();
  void complete_transfer();
  void retire_data_channel();

  // output / lifecycle
  void reply(int code, std::string_view text);
  void send_down(const std::string& wire);
  void close_after_flush();
  void close_flushed();
  void close_now();
  // A record a client can make us repeat (policy_denial, data_error, host): at most
  // kDenialsLoggedPerReason per reason (or event), the rest counted.
  void log_bounded(LogLevel level, std::string_view event, nlohmann::json fields);
  void deny(std::string_view reason, std::string_view command, int code, std::string_view text,
            const std::string& message = "");
  void log(LogLevel level, std::string_view event, nlohmann::json fields = nlohmann::json::object());
  TlsRequired tls_required() const;
  bool session_reuse_required() const;
  std::string backend_name() const;

  Services services_;
  std::shared_ptr<Runtime> runtime_;
  const ListenerConfig& listener_;
  const ClassConfig& class_;
  uint64_t id_;
  net::SocketAddress client_;
  net::SocketAddress local_;       // this socket's own address: passive ports bind here
  net::SocketAddress advertised_;  // what the client connected to (the balancer's, with PROXY protocol)
  std::string client_ip_;
  RetireFn retire_;
  tls::ControlBinding binding_;

  Phase phase_ = Phase::kAwaitUser;
  std::string user_;
  std::string host_;
  std::string routed_backend_;  // chosen by HOST; empty = the listener's backend
  std::string pending_user_line_;
  bool control_tls_ = false;
  bool tls_switch_pending_ = false;
  bool handshaking_ = false;
  bool prot_private_ = false;
  bool closing_ = false;
  bool retired_ = false;
  bool epsv_all_ = false;
  bool ccc_pending_ = false;              // 200 sent, close_notify follows once it is out
  bool peer_close_notify_possible_ = false;  // after CCC: the client's own close_notify may precede plaintext

  ftp::LineReader down_lines_;
  std::deque<ftp::LineEvent> deferred_;  // lines that arrived during a transfer, in order (bounded)
  ftp::LineReader up_lines_;
  ftp::ReplyAssembler up_replies_;
  std::deque<Expectation> expectations_;
  std::vector<backend::Server*> server_order_;
  std::size_t server_index_ = 0;
  backend::Server* server_ = nullptr;
  backend::BackendPool::Lease backend_lease_;
  SSL* up_ssl_ = nullptr;         // owned by up_ when the backend speaks TLS
  bool up_handshaking_ = false;  // after runtime_: released before the pool goes
  std::chrono::steady_clock::time_point connect_started_;

  std::optional<net::SocketAddress> backend_data_endpoint_;  // data_mode passive
  bool backend_data_ready_ = false;  // backend's PASV/EPSV answered, or our PORT/EPRT accepted
  std::optional<data::DataRefusal> data_refusal_;
  // Shared port: the PASV/EPSV answer waits until the data channel gets its port.
  std::optional<Expectation> deferred_answer_;
  std::optional<Transfer> transfer_;

  // Declaration order = reverse destruction order: the connections and the data channel
  // go first, the timers and the event that frees retired data channels last.
  net::Timer login_timer_;
  net::Timer idle_timer_;
  net::Timer handshake_timer_;
  net::Timer backend_timer_;
  net::Timer close_timer_;
  net::Timer login_delay_timer_;  // holds a failed login's reply (brute-force throttling)
  std::optional<std::string> held_login_reply_;
  net::Timer reaper_;
  std::vector<std::unique_ptr<data::DataChannel>> retired_data_;
  static constexpr unsigned kDenialsLoggedPerReason = 5;
  std::map<std::string, unsigned> denials_logged_;
  uint64_t denials_suppressed_ = 0;
  evutil_socket_t down_fd_;  // owned; closed after down_ and down_ssl_ are gone
  tls::SslPtr down_ssl_;     // the control channel's TLS state; outlives down_
  net::BufferEventPtr down_;
  net::BufferEventPtr up_;
  std::unique_ptr<data::DataChannel> data_;
};

}  // namespace ftpsgate::session
