#include "data/data_channel.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>

#include "data/backend_data_side.h"
#include "data/spool_pair.h"
#include "ftpsgate/limits.h"
#include "net/reset_on_close.h"
#include "policy/client_class.h"
#include "tls/bufferevent_errors.h"
#include "tls/bulk_transfer.h"
#include "tls/tls_bufferevent.h"
#include "tls/tls_errors.h"

namespace ftpsgate::data {

DataChannel::DataChannel(const Settings& settings, Observer& observer)
    : settings_(settings),
      observer_(&observer),
      connect_timer_(settings.base,
                     [this] {
                       refuse({"timed out waiting for the data connection",
                               "no data connection from the client within data_connect_timeout", std::nullopt});
                     }),
      handshake_timer_(settings.base,
                       [this] {
                         refuse({"TLS handshake timed out", "data connection TLS handshake timed out", std::nullopt});
                       }),
      linger_timer_(settings.base,
                    [this] {
                      downstream_.reset();
                      upstream_.reset();
                      state_ = State::kDone;
                      maybe_quiet();
                    }),
      relay_(nullptr) {}

DataChannel::~DataChannel() {
  // Cut while bytes flowed, or before the backend confirmed them (session end, ABOR,
  // backend failure): RST. A connection that carried nothing (e.g. the backend refused the
  // command) just closes.
  if (state_ == State::kRelaying || state_ == State::kDrained) reset_downstream();
  upstream_dial_.reset();
  release_reservation();
  active_event_.reset();
  if (active_fd_ >= 0) close(active_fd_);
}

std::unique_ptr<DataChannel> DataChannel::open_active(const Settings& settings, const net::SocketAddress& target,
                                                      const net::SocketAddress& source, Observer& observer) {
  std::unique_ptr<DataChannel> channel(new DataChannel(settings, observer));
  channel->state_ = State::kActivePending;
  channel->active_target_ = target;
  net::SocketAddress from = source;
  from.set_port(0);
  channel->active_source_ = from;
  return channel;
}

void DataChannel::connect_downstream() {
  if (state_ != State::kActivePending) return;
  const auto& target = *active_target_;
  active_fd_ = socket(target.get()->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (active_fd_ < 0 || ::bind(active_fd_, active_source_->get(), active_source_->length()) != 0 ||
      (::connect(active_fd_, target.get(), target.length()) != 0 && errno != EINPROGRESS)) {
    refuse({"cannot connect to " + target.to_string(), "active data connection to " + target.to_string() + " failed", std::nullopt});
    return;
  }
  state_ = State::kConnecting;
  active_event_.reset(event_new(settings_.base, active_fd_, EV_WRITE, &DataChannel::on_active_connect, this));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(settings_.connect_timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((settings_.connect_timeout.count() % 1000) * 1000);
  event_add(active_event_.get(), &tv);
}

void DataChannel::on_active_connect(evutil_socket_t fd, short what, void* self) {
  auto* channel = static_cast<DataChannel*>(self);
  int error = 0;
  socklen_t len = sizeof(error);
  if ((what & EV_TIMEOUT) || getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0 || error != 0) {
    const std::string target = channel->active_target_->to_string();
    channel->refuse({"cannot connect to " + target,
                     "active data connection to " + target + " failed: " +
                         ((what & EV_TIMEOUT) ? std::string("timeout") : evutil_socket_error_to_string(error)), std::nullopt});
    return;
  }
  channel->active_event_.reset();
  const evutil_socket_t connected = channel->active_fd_;
  channel->active_fd_ = -1;
  channel->adopt_downstream(connected);
}

std::unique_ptr<DataChannel> DataChannel::open_passive(const Settings& settings, const net::SocketAddress& listen_on,
                                                       PassivePortPool& pool, Observer& observer) {
  auto bound = pool.bind(listen_on);
  if (!bound) return nullptr;
  std::unique_ptr<DataChannel> channel(new DataChannel(settings, observer));
  channel->port_ = bound->port;
  channel->listener_.reset(evconnlistener_new(settings.base, &DataChannel::on_accept, channel.get(),
                                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, bound->fd));
  if (!channel->listener_) {
    close(bound->fd);
    return nullptr;
  }
  channel->connect_timer_.arm(settings.connect_timeout);
  return channel;
}

std::unique_ptr<DataChannel> DataChannel::open_shared(const Settings& settings, Observer& observer) {
  std::unique_ptr<DataChannel> channel(new DataChannel(settings, observer));
  SharedPassivePort& shared = *settings.shared;
  channel->reservation_ = shared.new_reservation_id();
  const auto port = shared.reserve(channel->reservation_, settings.owner, settings.client_address.ip(),
                                   settings.protect, settings.binding->own);
  channel->port_ = port.value_or(0);
  // While it waits for a port this bounds the wait; once granted, the client's connect.
  channel->connect_timer_.arm(settings.connect_timeout);
  return channel;
}

void DataChannel::port_granted(uint16_t port) {
  if (state_ != State::kListening || port_ != 0) return;
  port_ = port;
  connect_timer_.arm(settings_.connect_timeout);
  observer_->on_data_port_ready();
}

namespace {
// What a retired channel reports to: nobody.
class DetachedObserver final : public DataChannel::Observer {
 public:
  void on_data_ready() override {}
  void on_data_refused(const DataRefusal&) override {}
  void on_data_finished(const TransferOutcome&) override {}
  void on_data_handshake(SSL*, bool, const std::string&) override {}
  void on_data_unresumed(SSL*) override {}
  void on_data_port_ready() override {}
};
}  // namespace

void DataChannel::detach() {
  static DetachedObserver nobody;
  observer_ = &nobody;
  upstream_dial_.reset();  // a retired channel relays nothing more
}

void DataChannel::release_reservation() {
  if (reservation_ == 0 || settings_.shared == nullptr) return;
  settings_.shared->release(reservation_);
  reservation_ = 0;
}

void DataChannel::adopt_shared(std::unique_ptr<SharedDataConnection> connection) {
  // Claimed by the router already: nothing left to release. Refusals below leave the
  // connection to its destructor (TLS shutdown before the socket closes).
  reservation_ = 0;
  if (state_ != State::kListening) return;
  connect_timer_.cancel();
  if (port_ == 0) {
    // Claimed before this session even announced the port: not its client's connection
    // (a stray one from the same address), and the PASV still waits for an answer.
    refuse({"data connection before the port was announced",
            "shared port: a data connection from " + connection->client.to_string() +
                " took this transfer's reservation before its PASV/EPSV was answered",
            policy::Refusal::kSharedPortUnmatched});
    return;
  }
  const bool tls = connection->ssl != nullptr;
  if (tls != settings_.protect) {
    // Cannot happen by the routing rules; refuse rather than relay the wrong kind.
    refuse({"protection of the data connection does not match PROT", "shared port: data connection routed with the "
            "wrong protection", std::nullopt});
    return;
  }
  // SECURITY: a resumed session proves the TLS secret, not the network path; the source
  // address rule still holds (data.allow_foreign_address). Clear connections are routed
  // by their source address: the same host by construction.
  if (tls && !settings_.allow_foreign_address && !connection->client.same_host(settings_.client_address)) {
    refuse({"connection from a foreign address",
            "data connection from foreign address " + connection->client.to_string() +
                " refused (see data.allow_foreign_address)",
            policy::Refusal::kDataForeignAddress});
    return;
  }
  const evutil_socket_t fd = connection->fd;
  connection->fd = -1;
  if (!tls) {
    adopt_downstream(fd);
    return;
  }
  tls::SslPtr ssl(connection->ssl);
  connection->ssl = nullptr;
  handshake_worker_ = connection->handshake_worker;
  // The SSL's callbacks (SNI, ticket keys) point into the context it was made from.
  tls_owner_ = std::move(connection->tls_owner);
  if (attach_downstream_tls(fd, std::move(ssl), BUFFEREVENT_SSL_OPEN)) downstream_handshake_done();
}

void DataChannel::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* self) {
  static_cast<DataChannel*>(self)->accept_downstream(fd, sa, len);
}

void DataChannel::accept_downstream(evutil_socket_t fd, const sockaddr* sa, int len) {
  // One connection per PASV/EPSV: the port closes as soon as someone connects.
  listener_.reset();
  connect_timer_.cancel();
  auto peer = net::SocketAddress::from_sockaddr(sa, static_cast<socklen_t>(len));
  auto local = net::SocketAddress::local_of(fd);
  if (settings_.proxy_protocol && peer && !policy::any_contains(settings_.proxy_protocol_from, peer->ip())) {
    close(fd);
    refuse({"PROXY protocol header not accepted from your address",
            "data connection from " + peer->to_string() + " refused: not in the listener's proxy_protocol_from",
            policy::Refusal::kProxyProtocol});
    return;
  }
  if (settings_.proxy_protocol && peer && local) {
    proxy_reader_ = std::make_unique<net::ProxyHeaderReader>(
        settings_.base, net::UniqueFd(fd), *peer, *local, settings_.handshake_timeout,
        [this](net::UniqueFd accepted, const net::ProxyHeaderReader::Result& result) {
          // The reader stays until this channel goes; it holds nothing once done.
          if (!result.ok) {
            refuse({"bad PROXY protocol header", "data connection: " + result.error, policy::Refusal::kProxyProtocol});
            return;
          }
          check_source(accepted.release(), result.client);
        });
    return;
  }
  check_source(fd, peer);
}

void DataChannel::check_source(evutil_socket_t fd, const std::optional<net::SocketAddress>& peer) {
  // SECURITY: data-port theft (RFC 2577 §6, vsftpd "pasv_promiscuous"): only the control
  // connection's own host may connect to the port it was given.
  if (!settings_.allow_foreign_address && (!peer || !peer->same_host(settings_.client_address))) {
    close(fd);
    refuse({"connection from a foreign address",
            "data connection from foreign address " + (peer ? peer->to_string() : std::string("?")) +
                " refused (see data.allow_foreign_address)",
            policy::Refusal::kDataForeignAddress});
    return;
  }
  adopt_downstream(fd);
}

bool DataChannel::attach_downstream_tls(evutil_socket_t fd, tls::SslPtr ssl, bufferevent_ssl_state state) {
  downstream_ = tls::make_tls_bufferevent(settings_.base, fd, std::move(ssl), state);
  if (!downstream_) {
    refuse({"TLS unavailable", "cannot create TLS connection", std::nullopt});
    return false;
  }
  // Clients commonly end data connections with a bare FIN; the transfer's final reply
  // still comes from the backend, which knows how many bytes it got.
  bufferevent_openssl_set_allow_dirty_shutdown(downstream_.get(), 1);
  bufferevent_setcb(downstream_.get(), &DataChannel::on_read, &DataChannel::on_write, &DataChannel::on_downstream_event,
                    this);
  state_ = State::kHandshaking;
  return true;
}

void DataChannel::adopt_downstream(evutil_socket_t fd) {
  evutil_make_socket_nonblocking(fd);
  if (settings_.protect) {
    tls::SslPtr ssl(SSL_new(settings_.ssl_ctx));
    if (!ssl) {
      close(fd);
      refuse({"TLS unavailable", "cannot create TLS state: " + tls::drain_errors(), std::nullopt});
      return;
    }
    tls::mark_data_connection(ssl.get());  // tickets and sessions come from the control connection only
    tls::tune_for_bulk(ssl.get());
    if (!attach_downstream_tls(fd, std::move(ssl), BUFFEREVENT_SSL_ACCEPTING)) return;
    handshake_timer_.arm(settings_.handshake_timeout);
    bufferevent_enable(downstream_.get(), EV_READ | EV_WRITE);
    return;
  }
  downstream_.reset(bufferevent_socket_new(settings_.base, fd, BEV_OPT_CLOSE_ON_FREE));
  bufferevent_setcb(downstream_.get(), &DataChannel::on_read, &DataChannel::on_write, &DataChannel::on_downstream_event,
                    this);
  state_ = State::kReady;
  observer_->on_data_ready();
  maybe_begin_relay();
}

void DataChannel::on_downstream_event(bufferevent*, short what, void* self) {
  auto* channel = static_cast<DataChannel*>(self);
  if (channel->state_ == State::kHandshaking) {
    if (what & BEV_EVENT_CONNECTED) {
      channel->downstream_handshake_done();
      return;
    }
    const std::string error =
        tls::drain_bufferevent_errors(channel->downstream_.get(), "connection closed during handshake");
    SSL* ssl = bufferevent_openssl_get_ssl(channel->downstream_.get());
    channel->observer_->on_data_handshake(ssl, false, error);
    channel->downstream_.reset();
    channel->refuse({"TLS handshake failed", "data connection TLS handshake failed: " + error, std::nullopt});
    return;
  }
  if (channel->state_ == State::kClosing) {
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
      channel->downstream_.reset();
      channel->state_ = State::kDone;
      if (!channel->lingering()) channel->linger_timer_.cancel();
      channel->maybe_quiet();
    }
    return;
  }
  if (channel->state_ == State::kRelaying) {
    if ((what & BEV_EVENT_EOF) && channel->direction_ == Direction::kUpload) {
      channel->relay_->source_ended();
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
      channel->finish(false, "client data connection closed early");
    }
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    // Closed while waiting for the transfer to begin.
    channel->downstream_.reset();
    channel->refuse({"client closed the data connection", "client closed the data connection", std::nullopt});
  }
}

void DataChannel::downstream_handshake_done() {
  handshake_timer_.cancel();
  SSL* ssl = bufferevent_openssl_get_ssl(downstream_.get());
  observer_->on_data_handshake(ssl, true, "");
  if (settings_.require_reuse || settings_.audit_reuse) {
    const auto check = tls::check_resumed_binding(ssl, *settings_.binding);
    // Audit mode lets a fresh handshake through; another connection's session never.
    if (check == tls::ResumeCheck::kNotResumed && !settings_.require_reuse) {
      observer_->on_data_unresumed(ssl);
    } else if (check != tls::ResumeCheck::kOk) {
      close_downstream_gracefully();
      refuse({check == tls::ResumeCheck::kNotResumed ? "TLS session of the control connection not reused"
                                                     : "TLS session of another connection",
              std::string(tls::describe(check)),
              check == tls::ResumeCheck::kNotResumed ? policy::Refusal::kSessionReuseRequired
                                                     : policy::Refusal::kSessionForeign});
      return;
    }
  }
  bufferevent_disable(downstream_.get(), EV_READ);
  state_ = State::kReady;
  observer_->on_data_ready();
  maybe_begin_relay();
}

void DataChannel::refuse(DataRefusal refusal) {
  if (state_ == State::kRefused || state_ == State::kDone) return;
  release_reservation();
  connect_timer_.cancel();
  handshake_timer_.cancel();
  listener_.reset();
  upstream_listener_.reset();
  active_event_.reset();
  if (active_fd_ >= 0) {
    close(active_fd_);
    active_fd_ = -1;
  }
  upstream_dial_.reset();
  upstream_.reset();
  if (state_ != State::kClosing) downstream_.reset();
  state_ = State::kRefused;
  observer_->on_data_refused(refusal);
}

std::optional<uint16_t> DataChannel::listen_upstream(const net::SocketAddress& local,
                                                        const net::SocketAddress& upstream_host) {
  net::SocketAddress address = local;
  address.set_port(0);
  upstream_listener_.reset(evconnlistener_new_bind(settings_.base, &DataChannel::on_upstream_accept, this,
                                                  LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                                  limits::kUpstreamDataListenBacklog, address.get(),
                                                  static_cast<int>(address.length())));
  if (!upstream_listener_) return std::nullopt;
  auto bound = net::SocketAddress::local_of(evconnlistener_get_fd(upstream_listener_.get()));
  if (!bound) return std::nullopt;
  upstream_host_ = upstream_host;
  return bound->port();
}

void DataChannel::on_upstream_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* self) {
  auto* channel = static_cast<DataChannel*>(self);
  channel->upstream_listener_.reset();
  auto peer = net::SocketAddress::from_sockaddr(sa, static_cast<socklen_t>(len));
  // SECURITY: only the backend server itself may deliver (or fetch) the data.
  if (!peer || !peer->same_host(*channel->upstream_host_)) {
    close(fd);
    channel->finish(false, "backend data connection from a foreign address");
    return;
  }
  evutil_make_socket_nonblocking(fd);
  if (!channel->make_upstream_side(fd)) {
    channel->finish(false, "cannot set up the backend data connection");
    return;
  }
  if (channel->settings_.upstream_tls.context != nullptr) {
    bufferevent_enable(channel->upstream_.get(), EV_READ | EV_WRITE);  // the handshake; CONNECTED follows
    return;
  }
  channel->upstream_connected_ = true;
  channel->maybe_begin_relay();
}

bool DataChannel::make_upstream_side(evutil_socket_t fd) {
  upstream_ = make_backend_data_side(settings_.base, fd, settings_.upstream_tls);
  if (!upstream_) return false;
  watch_upstream();
  return true;
}

void DataChannel::watch_upstream() {
  bufferevent_setcb(upstream_.get(), &DataChannel::on_read, &DataChannel::on_write, &DataChannel::on_upstream_event,
                    this);
}

void DataChannel::start_spool(inspection::Spool& spool, std::optional<uint64_t> max_bytes, Throttle throttle) {
  direction_ = Direction::kUpload;
  max_bytes_ = max_bytes;
  throttle_ = std::move(throttle);
  relay_requested_ = true;
  // The relay's sink is one end of a pair; what reaches the other end goes to the spool,
  // so the relay's limits, throttle, digest and end-of-stream rules hold unchanged.
  SpoolPair pair = make_spool_pair(settings_.base);
  if (!pair.relay_end) {
    finish(false, "cannot set up the spool");
    return;
  }
  upstream_ = std::move(pair.relay_end);
  spool_end_ = std::move(pair.spool_end);
  spool_ = &spool;
  bufferevent_setcb(upstream_.get(), &DataChannel::on_read, &DataChannel::on_write, nullptr, this);
  bufferevent_setcb(spool_end_.get(), &DataChannel::on_spool_readable, nullptr, nullptr, this);
  bufferevent_enable(spool_end_.get(), EV_READ);
  upstream_connected_ = true;
  maybe_begin_relay();
}

void DataChannel::start_unspool(const inspection::Spool& spool, Throttle throttle) {
  direction_ = Direction::kDownload;
  throttle_ = std::move(throttle);
  relay_requested_ = true;
  // A socketpair, not a bufferevent pair: the relay reads its source directly (readv), as
  // it reads a backend's stream.
  int fds[2] = {-1, -1};
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    finish(false, "cannot set up the spool's reader");
    return;
  }
  upstream_.reset(bufferevent_socket_new(settings_.base, fds[0], BEV_OPT_CLOSE_ON_FREE));
  if (!upstream_) {
    evutil_closesocket(fds[0]);
    evutil_closesocket(fds[1]);
    finish(false, "cannot set up the spool's reader");
    return;
  }
  bufferevent_setcb(upstream_.get(), &DataChannel::on_read, &DataChannel::on_write, &DataChannel::on_upstream_event,
                    this);
  upstream_connected_ = true;
  SpoolSender::Settings feed;
  feed.base = settings_.base;
  feed.stall_timeout = settings_.stall_timeout;
  unspool_ = std::make_unique<SpoolSender>(feed, spool, [this](bool ok, const std::string& error) {
    if (!ok) finish(false, "cannot read the spool: " + error);
  });
  maybe_begin_relay();
  unspool_->start_on(fds[1]);
}

void DataChannel::drop_spool() {
  unspool_.reset();
  if (spool_ == nullptr) return;
  stop_waiting();
  spool_end_.reset();
  upstream_.reset();
  spool_ = nullptr;
}

void DataChannel::on_spool_readable(bufferevent*, void* self) {
  auto* channel = static_cast<DataChannel*>(self);
  if (!channel->drain_to_spool()) channel->finish(false, channel->spool_error());
}

bool DataChannel::drain_to_spool() {
  if (spool_ == nullptr || !spool_end_ || spool_failed_) return !spool_failed_;
  if (!move_to_spool(bufferevent_get_input(spool_end_.get()), *spool_)) spool_failed_ = true;
  return !spool_failed_;
}

std::string DataChannel::spool_error() const {
  return spool_->full() ? "the gateway's spool is full (inspection.max_spool_bytes)" : spool_->error();
}

void DataChannel::reset_upstream() {
  // SECURITY: a plain FIN would tell the backend an upload was complete and it would keep
  // the truncated file with 226; a reset makes it fail the transfer (426).
  if (!upstream_ || direction_ != Direction::kUpload) return;
  net::reset_on_close(bufferevent_getfd(upstream_.get()));
}

void DataChannel::close_upstream_gracefully() {
  // Our close_notify tells an FTPS backend that the upload is complete, not truncated.
  // Then half-close and keep reading: closing with its unread TLS tickets in our receive
  // queue would make the kernel send RST, and the backend lose the upload's tail.
  tls::send_close_notify(upstream_.get());
  shutdown(bufferevent_getfd(upstream_.get()), SHUT_WR);
  upstream_lingering_ = true;
  bufferevent_enable(upstream_.get(), EV_READ);
  linger_timer_.arm(limits::kDataLinger);
}

void DataChannel::start_relay(Direction direction, const std::optional<net::DialTarget>& upstream_endpoint,
                              std::optional<uint64_t> max_bytes, Throttle throttle) {
  direction_ = direction;
  max_bytes_ = max_bytes;
  throttle_ = std::move(throttle);
  relay_requested_ = true;
  if (!upstream_endpoint) {
    if (upstream_listener_) return;  // the backend connects when it processes the command
    finish(false, "no backend data endpoint");
    return;
  }
  upstream_dial_ = dial_backend_data(settings_.base, *settings_.dialer, *upstream_endpoint, settings_.connect_timeout,
                                     settings_.upstream_tls, [this](DialedDataSide side, const std::string& error) {
                                       upstream_dialed(std::move(side), error);
                                     });
}

void DataChannel::upstream_dialed(DialedDataSide side, const std::string& error) {
  upstream_dial_.reset();
  if (!error.empty()) {
    finish(false, error);
    return;
  }
  upstream_lease_ = std::move(side.lease);
  upstream_ = std::move(side.bev);
  upstream_agent_pipe_ = side.agent_pipe;
  watch_upstream();
  if (!side.open) return;  // the TLS handshake runs; BEV_EVENT_CONNECTED follows
  upstream_connected_ = true;
  maybe_begin_relay();
}

void DataChannel::on_upstream_event(bufferevent*, short what, void* self) {
  auto* channel = static_cast<DataChannel*>(self);
  if (channel->upstream_lingering_) {
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
      channel->upstream_.reset();
      channel->maybe_quiet();
    }
    return;
  }
  if (what & BEV_EVENT_CONNECTED) {
    channel->upstream_connected_ = true;
    channel->maybe_begin_relay();
    return;
  }
  if (!channel->upstream_connected_) {
    SSL* ssl = bufferevent_openssl_get_ssl(channel->upstream_.get());
    channel->finish(false, ssl != nullptr ? "TLS with the backend data port failed: " +
                                                tls::client_handshake_error(ssl, "connection closed")
                                          : std::string("cannot connect to the backend data port"));
    return;
  }
  if ((what & BEV_EVENT_EOF) && channel->direction_ == Direction::kDownload && channel->state_ == State::kRelaying) {
    channel->relay_->source_ended();
  } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    channel->finish(false, "backend data connection closed early");
  }
}

void DataChannel::maybe_begin_relay() {
  if (state_ != State::kReady || !relay_requested_ || !upstream_connected_) return;
  state_ = State::kRelaying;
  bufferevent* source = direction_ == Direction::kDownload ? upstream_.get() : downstream_.get();
  bufferevent* sink = direction_ == Direction::kDownload ? downstream_.get() : upstream_.get();
  ByteRelay::Observer& observer = *this;
  // Only a download reads the upstream; an upload's source is the client.
  const bool batch_tls = upstream_agent_pipe_ && direction_ == Direction::kDownload;
  relay_ = std::make_unique<ByteRelay>(
      settings_.base, direction_, source, sink,
      ByteRelay::Options{.stall_timeout = settings_.stall_timeout, .batch_tls_reads = batch_tls}, observer);
  if (max_bytes_) relay_->limit(*max_bytes_);
  relay_->throttle(throttle_);
  if (settings_.sha256) relay_->enable_sha256();
  relay_->start();
}

void DataChannel::on_relay_end(bool ok, const std::string& error) { finish(ok, error); }

void DataChannel::on_read(bufferevent* bev, void* self) {
  auto* channel = static_cast<DataChannel*>(self);
  if (channel->state_ == State::kRelaying && bev == channel->relay_->source()) {
    channel->relay_->source_readable();
  } else {
    // Lingering close or unexpected bytes: discard.
    evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
  }
}

void DataChannel::on_write(bufferevent* bev, void* self) {
  auto* channel = static_cast<DataChannel*>(self);
  if (channel->state_ != State::kRelaying || bev != channel->relay_->sink()) return;
  channel->relay_->sink_drained();
}

void DataChannel::finish(bool ok, const std::string& error) {
  if (state_ == State::kDone || state_ == State::kDrained || state_ == State::kClosing || state_ == State::kRefused) {
    return;
  }
  stop_waiting();
  // An upload cut at its size limit ends cleanly towards the backend too: it holds exactly
  // the limit (then deleted when the rule says delete_partial), not whatever a reset left.
  const bool exceeded = relay_ && relay_->exceeded();
  std::string why = error;
  if (spool_ != nullptr) {
    // The pair may still hold the last bytes the relay delivered.
    if (ok && !drain_to_spool()) {
      ok = false;
      why = spool_error();
    }
    upstream_.reset();
    spool_end_.reset();
  }
  if ((ok || exceeded) && upstream_ && direction_ == Direction::kUpload) {
    close_upstream_gracefully();
  } else {
    if (!ok) reset_upstream();
    // A download's TLS source ended with its close_notify: ours answers it (nothing is read
    // afterwards, so no linger).
    if (ok) tls::send_close_notify(upstream_.get());
    upstream_.reset();
  }
  if (ok && downstream_ && direction_ == Direction::kDownload) {
    state_ = State::kDrained;  // end_download() follows the backend's final reply
  } else if (downstream_ && (ok || (direction_ == Direction::kUpload && relay_))) {
    // An upload's client is the sender: a clean close tells it nothing about completeness
    // (the final reply does), and it lets the client finish sending and read that reply
    // instead of losing both to a reset.
    close_downstream_gracefully();
  } else {
    reset_downstream();
  }
  observer_->on_data_finished(TransferOutcome{ok, bytes(), why, sha256(), exceeded, spool_failed_});
}

bool DataChannel::lingering() const {
  return (state_ == State::kClosing && downstream_) || (upstream_lingering_ && upstream_);
}

void DataChannel::maybe_quiet() {
  if (lingering() || !on_quiet_) return;
  auto callback = std::move(on_quiet_);
  on_quiet_ = nullptr;
  callback();
}

void DataChannel::stop_waiting() {
  if (relay_) relay_->stop();
  upstream_dial_.reset();
  connect_timer_.cancel();
  handshake_timer_.cancel();
  listener_.reset();
  upstream_listener_.reset();
}

void DataChannel::end_download(bool confirmed) {
  if (state_ != State::kDrained) return;
  if (confirmed && downstream_) {
    close_downstream_gracefully();
  } else {
    reset_downstream();
  }
}

void DataChannel::end_refused() {
  if (!downstream_) return;
  if (state_ != State::kReady && state_ != State::kRelaying && state_ != State::kDrained) return;
  stop_waiting();
  reset_upstream();
  upstream_.reset();
  close_downstream_gracefully();
}

void DataChannel::reset_downstream() {
  if (downstream_) {
    net::reset_on_close(bufferevent_getfd(downstream_.get()));
    downstream_.reset();
  }
  state_ = State::kDone;
}

void DataChannel::close_downstream_gracefully() {
  // close_notify (clients such as Python's ftplib treat a bare FIN as truncation), then a
  // half-close and a short linger so the client's own close_notify does not make the
  // kernel answer with RST and destroy data still in flight.
  tls::send_close_notify(downstream_.get());
  shutdown(bufferevent_getfd(downstream_.get()), SHUT_WR);
  state_ = State::kClosing;
  bufferevent_enable(downstream_.get(), EV_READ);
  linger_timer_.arm(limits::kDataLinger);
}

}  // namespace ftpsgate::data
