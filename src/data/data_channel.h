// One data connection of a control session: the passive listener the client connects
// to, the downstream connection (clear or TLS, verified), the upstream connection to the
// backend's data port, and the ByteRelay between them.
#pragma once

#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "data/backend_data_side.h"
#include "data/byte_relay.h"
#include "data/passive_port_pool.h"
#include "data/shared_passive_port.h"
#include "data/spool_sender.h"
#include "net/dialer.h"
#include "net/libevent_handles.h"
#include "net/proxy_header_reader.h"
#include "net/socket_address.h"
#include "net/timer.h"
#include "policy/refusal.h"
#include "scan/spool.h"
#include "tls/client_context.h"
#include "tls/openssl_handles.h"
#include "tls/session_binding.h"

namespace ftpsgate::data {

struct DataRefusal {
  std::string reply_reason;   // after "425 Unable to build data connection: "
  std::string log_message;    // the log line (SPEC §3 wording where one exists)
  std::optional<policy::Refusal> denial;  // policy_denials_total{reason}; none when not a policy refusal
};

struct TransferOutcome {
  bool ok = false;
  uint64_t bytes = 0;
  std::string error;  // when !ok
  std::string sha256;  // of the bytes relayed (logging.transfer_sha256), else ""
  bool size_exceeded = false;  // an upload cut at its size limit (ByteRelay::limit)
  bool spool_failed = false;   // inspection: the spool refused bytes (full, or a write error)
};

class DataChannel final : private ByteRelay::Observer {
 public:
  class Observer {
   public:
    virtual void on_data_ready() = 0;
    virtual void on_data_refused(const DataRefusal& refusal) = 0;
    virtual void on_data_finished(const TransferOutcome& outcome) = 0;
    virtual void on_data_handshake(SSL* ssl, bool ok, const std::string& error) = 0;
    // session_reuse_required: audit — accepted, though it did not resume the session.
    virtual void on_data_unresumed(SSL* ssl) = 0;
    // Shared port: the port a waiting reservation got (port() was 0 until now).
    virtual void on_data_port_ready() = 0;

   protected:
    ~Observer() = default;
  };

  struct Settings {
    event_base* base = nullptr;
    net::Dialer* dialer = nullptr;  // connects to the backend's data port; outlives the channel
    SSL_CTX* ssl_ctx = nullptr;  // used when protect
    bool protect = false;
    const tls::ControlBinding* binding = nullptr;
    bool require_reuse = true;
    bool audit_reuse = false;  // with !require_reuse: report a connection that does not resume
    net::SocketAddress client_address;  // the control connection's peer
    bool allow_foreign_address = false;
    // The control listener takes PROXY protocol: so does the passive port (the balancer
    // forwards the passive range the same way), and its header names the real source.
    bool proxy_protocol = false;
    std::vector<std::string> proxy_protocol_from;  // the balancers it is believed from
    // FTPS backend: the data connection towards it is TLS too, resuming this session.
    BackendDataTls upstream_tls;
    // passive.shared_port: the registry, and where this session lives.
    SharedPassivePort* shared = nullptr;
    ShareOwner owner;
    std::chrono::milliseconds handshake_timeout{10000};
    std::chrono::milliseconds connect_timeout{30000};  // the client's connection, and the dial to the backend
    std::chrono::milliseconds stall_timeout{300000};  // data.stall_timeout
    bool sha256 = false;  // logging.transfer_sha256
  };

  // kDrained: a download's bytes all reached the client, whose end of stream waits for
  // the backend's verdict (end_download).
  enum class State {
    kListening, kActivePending, kConnecting, kHandshaking, kReady, kRelaying, kDrained, kClosing, kDone, kRefused
  };

  static std::unique_ptr<DataChannel> open_passive(const Settings& settings, const net::SocketAddress& listen_on,
                                                   PassivePortPool& pool, Observer& observer);
  // Shared port: no listener of its own; the connection arrives through adopt_shared().
  // port() stays 0 while the reservation waits (see SharedPortAssignment).
  static std::unique_ptr<DataChannel> open_shared(const Settings& settings, Observer& observer);
  // Active mode (PORT/EPRT): the gateway connects out to `target` from `source` (the
  // control connection's local address) when connect_downstream() is called.
  static std::unique_ptr<DataChannel> open_active(const Settings& settings, const net::SocketAddress& target,
                                                  const net::SocketAddress& source, Observer& observer);
  ~DataChannel();
  DataChannel(const DataChannel&) = delete;
  DataChannel& operator=(const DataChannel&) = delete;

  uint16_t port() const { return port_; }
  uint64_t reservation() const { return reservation_; }
  // Shared port: the worker that ran this connection's TLS handshake.
  std::optional<unsigned> handshake_worker() const { return handshake_worker_; }
  void port_granted(uint16_t port);
  void adopt_shared(std::unique_ptr<SharedDataConnection> connection);
  // The session is done with this channel: its shared port reservation goes at once.
  void release_reservation();
  // Retired (freed later from the loop, or lingering): whatever its connections still do,
  // nothing is reported any more — a late event must not reach the session's next transfer.
  void detach();
  uint64_t bytes() const { return relay_ ? relay_->bytes() : 0; }
  // Of the bytes relayed so far; "" when not enabled or nothing was relayed.
  std::string sha256() const { return relay_ ? relay_->sha256() : ""; }
  std::chrono::nanoseconds throttled() const { return relay_ ? relay_->throttled() : std::chrono::nanoseconds(0); }
  bool active() const { return active_target_.has_value(); }
  void connect_downstream();
  State state() const { return state_; }
  bool protect() const { return settings_.protect; }

  // Backend data_mode active: listen on `local` (port chosen by the kernel) for the
  // backend, which must connect from `upstream_host`. Returns the port.
  std::optional<uint16_t> listen_upstream(const net::SocketAddress& local, const net::SocketAddress& upstream_host);
  // Dials the backend's data endpoint (or, when listening for the backend, waits for it)
  // and relays once both sides are up.
  // `max_bytes`: an upload's size limit (nullopt = none).
  void start_relay(Direction direction, const std::optional<net::DialTarget>& upstream_endpoint,
                   std::optional<uint64_t> max_bytes = std::nullopt, Throttle throttle = {});
  // Inspection: the upload goes to `spool` (which must outlive the channel's relay)
  // instead of the backend; on_data_finished reports when every byte is in it.
  void start_spool(inspection::Spool& spool, std::optional<uint64_t> max_bytes = std::nullopt, Throttle throttle = {});
  // Download inspection: the client gets `spool` (scanned, which must outlive the relay)
  // instead of the backend's stream, through the usual relay (throttle, digest, stall
  // check); on_data_finished reports as for a relayed download, and end_download() follows.
  void start_unspool(const inspection::Spool& spool, Throttle throttle = {});
  // The spool is about to go (abort, session end): nothing touches it any more.
  void drop_spool();
  // SECURITY: truncation. A download's clean end (close_notify, FIN) reaches the client
  // only once the backend confirmed the transfer (its 226); otherwise the client's data
  // connection is reset, so a cut backend stream never looks like a complete file.
  void end_download(bool confirmed);
  // The backend refused the command (550 for a missing file, 553; no 1xx first): the
  // client's data connection ends cleanly (close_notify, then a bounded linger that reads
  // and discards what an uploading client still sends), so TLS clients stay in step and
  // read the refusal on the control channel.
  void end_refused();
  // An aborted or failed upload: the backend's data connection ends with a reset.
  void reset_upstream();
  // A graceful close still waits for the peer's own close (at most limits::kDataLinger).
  bool lingering() const;
  // Called once when lingering() turns false; the channel may be freed from it (deferred).
  void on_quiet(std::function<void()> callback) { on_quiet_ = std::move(callback); }

 private:
  DataChannel(const Settings& settings, Observer& observer);

  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* self);
  static void on_downstream_event(bufferevent*, short what, void* self);
  static void on_upstream_event(bufferevent*, short what, void* self);
  static void on_read(bufferevent* bev, void* self);
  static void on_write(bufferevent* bev, void* self);
  static void on_spool_readable(bufferevent* bev, void* self);
  // Moves what reached the spool's end of the pair into the spool; false when it refused.
  bool drain_to_spool();
  std::string spool_error() const;

  void accept_downstream(evutil_socket_t fd, const sockaddr* sa, int len);
  // The backend side's bufferevent: clear, or TLS (client role even when the backend
  // connected to us in active mode, RFC 4217 §7) on the connected `fd`.
  bool make_upstream_side(evutil_socket_t fd);
  void watch_upstream();
  void upstream_dialed(DialedDataSide side, const std::string& error);
  void close_upstream_gracefully();

  void check_source(evutil_socket_t fd, const std::optional<net::SocketAddress>& peer);
  void adopt_downstream(evutil_socket_t fd);
  // The client side's TLS bufferevent (owns fd and ssl, also on failure, then refused).
  bool attach_downstream_tls(evutil_socket_t fd, tls::SslPtr ssl, bufferevent_ssl_state state);
  static void on_active_connect(evutil_socket_t fd, short what, void* self);
  static void on_upstream_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* self);
  void downstream_handshake_done();
  void refuse(DataRefusal refusal);
  void maybe_begin_relay();
  void on_relay_end(bool ok, const std::string& error) override;
  void finish(bool ok, const std::string& error);
  void close_downstream_gracefully();
  // An unconfirmed end: RST, not FIN (a clear client would take a FIN for a complete file).
  void reset_downstream();
  // No more accepts, reads or timeouts: the channel's outcome is decided.
  void stop_waiting();
  void maybe_quiet();

  Settings settings_;
  Observer* observer_;  // never null; a do-nothing one once detached
  State state_ = State::kListening;
  uint16_t port_ = 0;
  uint64_t reservation_ = 0;  // shared port: pending until the connection is routed here
  std::optional<unsigned> handshake_worker_;
  Direction direction_ = Direction::kDownload;
  bool relay_requested_ = false;
  std::optional<uint64_t> max_bytes_;
  Throttle throttle_;
  bool upstream_connected_ = false;
  bool upstream_agent_pipe_ = false;  // the upstream is an agent link's pipe
  bool upstream_lingering_ = false;  // upload done: half-closed, draining until EOF
  std::function<void()> on_quiet_;
  inspection::Spool* spool_ = nullptr;  // inspection: where an upload goes instead of the backend
  bool spool_failed_ = false;
  // Timers before the connections they watch: they are destroyed last.
  net::Timer connect_timer_;
  net::Timer handshake_timer_;
  net::Timer linger_timer_;
  net::ListenerPtr listener_;
  std::unique_ptr<net::ProxyHeaderReader> proxy_reader_;
  net::ListenerPtr upstream_listener_;
  std::optional<net::SocketAddress> upstream_host_;
  std::optional<net::SocketAddress> active_target_;
  std::optional<net::SocketAddress> active_source_;
  evutil_socket_t active_fd_ = -1;  // connecting; owned until adopted
  net::EventPtr active_event_;
  std::unique_ptr<net::PendingDial> upstream_dial_;  // passive backend: dialing its data port
  std::shared_ptr<const void> tls_owner_;  // keeps a shared-port SSL's context alive; outlives downstream_
  std::shared_ptr<void> upstream_lease_;   // what an agent's pipe needs; outlives upstream_
  net::BufferEventPtr downstream_;   // downstream data connection (owns fd, and SSL when protected)
  net::BufferEventPtr upstream_;  // upstream data connection (inspection: the relay's end of the spool pair)
  net::BufferEventPtr spool_end_;  // inspection: the pair's end that feeds the spool
  std::unique_ptr<SpoolSender> unspool_;  // download inspection: the spool into the relay's source
  // After the connections it reads and writes: it goes first. Kept once ended (bytes()).
  std::unique_ptr<ByteRelay> relay_;
};

}  // namespace ftpsgate::data
