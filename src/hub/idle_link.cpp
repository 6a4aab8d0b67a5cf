#include "hub/idle_link.h"

#include <openssl/err.h>
#include <sys/socket.h>

#include <cerrno>

#include "ftpsgate/limits.h"
#include "tls/tls_errors.h"

namespace ftpsgate::hub {

void send_final_line(SSL* ssl, std::string_view line) {
  if (ssl == nullptr) return;
  ERR_clear_error();
  // A few bytes on an idle socket: the send buffer has room. If it has not, the agent
  // sees the close without the reason, which it also handles.
  if (SSL_write(ssl, line.data(), static_cast<int>(line.size())) > 0) SSL_shutdown(ssl);
  ERR_clear_error();
}

IdleLink::IdleLink(event_base* base, uint64_t id, std::string agent, net::UniqueFd fd, tls::SslPtr ssl,
                   net::SocketAddress peer, std::chrono::milliseconds keepalive_interval,
                   std::chrono::milliseconds keepalive_timeout, Owner& owner)
    : id_(id),
      agent_(std::move(agent)),
      peer_(std::move(peer)),
      interval_(keepalive_interval),
      timeout_(keepalive_timeout),
      owner_(owner),
      fd_(std::move(fd)),
      ssl_(std::move(ssl)),
      read_(event_new(base, fd_.get(), EV_READ | EV_PERSIST, &IdleLink::on_event, this)),
      keepalive_(base, [this] { on_timer(); }) {}

void IdleLink::start() {
  event_add(read_.get(), nullptr);
  keepalive_.arm(interval_);
}

void IdleLink::stop() {
  if (read_) event_del(read_.get());
  keepalive_.cancel();
}

void IdleLink::on_event(evutil_socket_t, short, void* self) { static_cast<IdleLink*>(self)->on_readable(); }

bool IdleLink::quiet() {
  if (lost_) return false;
  char byte;
  const ssize_t n = ::recv(fd_.get(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  const bool socket_quiet = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  if (socket_quiet && SSL_has_pending(ssl_.get()) == 0) return true;
  on_readable();
  return false;
}

void IdleLink::on_readable() {
  if (lost_) return;
  char buffer[limits::kAgentMaxReplyLine];
  for (;;) {
    ERR_clear_error();
    const int n = SSL_read(ssl_.get(), buffer, sizeof(buffer));
    if (n > 0) {
      received_.append(buffer, static_cast<std::size_t>(n));
      for (;;) {
        const auto split = tunnel::split_line(received_, limits::kAgentMaxReplyLine);
        if (split.status == tunnel::LineSplit::Status::kNeedMore) break;
        if (split.status != tunnel::LineSplit::Status::kLine) {
          lose("agent sent an overlong or malformed line on an idle link");
          return;
        }
        const auto parsed = tunnel::parse_line(std::string_view(received_).substr(0, split.length));
        received_.erase(0, split.length);
        // SECURITY: an agent only answers; anything but the PONG we asked for (an OK or
        // data nobody requested, a second PONG) is a protocol error and ends the link.
        if (!parsed.message || parsed.message->kind != tunnel::Message::Kind::kPong || !ping_outstanding_) {
          lose("agent sent an unsolicited line on an idle link");
          return;
        }
        if (!received_.empty()) {
          lose("agent sent bytes after its PONG on an idle link");
          return;
        }
        ping_outstanding_ = false;
        keepalive_.arm(interval_);
        owner_.link_ready(*this);
        if (lost_) return;  // leased or closed meanwhile
        break;
      }
      if (received_.size() >= limits::kAgentMaxReplyLine) {
        lose("agent sent an overlong line on an idle link");
        return;
      }
      continue;
    }
    switch (SSL_get_error(ssl_.get(), n)) {
      case SSL_ERROR_WANT_READ:
        return;
      case SSL_ERROR_ZERO_RETURN:
        lose("agent closed the link");
        return;
      case SSL_ERROR_SYSCALL:
        lose("agent link lost: " + tls::drain_errors_or("connection closed"));
        return;
      default:
        // WANT_WRITE included: an idle link has nothing to write but its PING.
        lose("agent link failed: " + tls::drain_errors_or("TLS error"));
        return;
    }
  }
}

void IdleLink::on_timer() {
  if (lost_) return;
  if (ping_outstanding_) {
    lose("no PONG within agents.keepalive_timeout");
    return;
  }
  const std::string_view ping = tunnel::ping_line();
  ERR_clear_error();
  // Six bytes into an idle socket's empty send buffer: a short or refused write means the
  // link is broken, not busy.
  if (SSL_write(ssl_.get(), ping.data(), static_cast<int>(ping.size())) != static_cast<int>(ping.size())) {
    lose("cannot send PING: " + tls::drain_errors_or("link not writable"));
    return;
  }
  ping_outstanding_ = true;
  keepalive_.arm(timeout_);
}

void IdleLink::lose(const std::string& why) {
  if (lost_) return;
  lost_ = true;
  stop();
  owner_.link_lost(*this, why);
}

IdleLink::Released IdleLink::release() {
  stop();
  lost_ = true;  // inert: nothing of it is left here
  read_.reset();
  return Released{std::move(fd_), std::move(ssl_)};
}

void IdleLink::close_with(tunnel::ErrReason reason) {
  stop();
  lost_ = true;
  send_final_line(ssl_.get(), tunnel::build_err(reason));
  read_.reset();
  ssl_.reset();
  fd_.reset();
}

}  // namespace ftpsgate::hub
