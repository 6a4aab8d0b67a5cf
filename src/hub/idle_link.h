// One agent link between its handshake and its lease, on the main loop (docs/agent-design.md
// 1.2, 3.3): a raw read event and a keepalive timer on the socket, never a bufferevent, so no
// byte sits buffered in user space when the link moves to a worker. It sends PING every
// keepalive interval and wants PONG within the keepalive timeout; anything else the agent
// sends closes it (the agent sends nothing unsolicited).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/libevent_handles.h"
#include "net/socket_address.h"
#include "net/timer.h"
#include "net/unique_fd.h"
#include "tls/openssl_handles.h"
#include "tunnel/agent_protocol.h"

namespace ftpsgate::hub {

// Best effort, non-blocking: `line` (an ERR) and close_notify on an established link, so the
// agent learns why (its backoff depends on it). The caller closes the socket afterwards.
void send_final_line(SSL* ssl, std::string_view line);

class IdleLink {
 public:
  class Owner {
   public:
    // A PONG came: the link may be leased again.
    virtual void link_ready(IdleLink& link) = 0;
    // The link failed (closed, protocol error, no PONG); it is inert now. Called from the
    // link's own callbacks: the owner frees it later on the loop.
    virtual void link_lost(IdleLink& link, const std::string& why) = 0;

   protected:
    ~Owner() = default;
  };

  // `ssl` is established on `fd` (SSL_set_fd), without read-ahead: SSL_has_pending then
  // tells whether the SSL holds bytes the socket no longer shows.
  IdleLink(event_base* base, uint64_t id, std::string agent, net::UniqueFd fd, tls::SslPtr ssl, net::SocketAddress peer,
           std::chrono::milliseconds keepalive_interval, std::chrono::milliseconds keepalive_timeout, Owner& owner);
  IdleLink(const IdleLink&) = delete;
  IdleLink& operator=(const IdleLink&) = delete;

  void start();
  uint64_t id() const { return id_; }
  const std::string& agent() const { return agent_; }
  const net::SocketAddress& peer() const { return peer_; }
  bool lost() const { return lost_; }
  // SECURITY: a link with a PING outstanding is never leased: its PONG would arrive on the
  // worker and be taken for the start of the agent's reply.
  bool ping_outstanding() const { return ping_outstanding_; }

  // Whether nothing at all waits to be read, neither in the SSL nor in the socket (no
  // data, no EOF). When something does, the link reads it now (which may lose it) and
  // this is false: such a link is not handed out.
  bool quiet();

  struct Released {
    net::UniqueFd fd;
    tls::SslPtr ssl;
  };
  // For a lease: events stop, the socket and its TLS state go to the caller.
  Released release();
  // Refuse or retire it: ERR `reason`, close_notify, close. The link is inert afterwards.
  void close_with(tunnel::ErrReason reason);

 private:
  static void on_event(evutil_socket_t, short what, void* self);
  void on_readable();
  void on_timer();
  void lose(const std::string& why);
  void stop();

  uint64_t id_;
  std::string agent_;
  net::SocketAddress peer_;
  std::chrono::milliseconds interval_;
  std::chrono::milliseconds timeout_;
  Owner& owner_;
  // Declared before the events that use it; the SSL before the socket it reads.
  net::UniqueFd fd_;
  tls::SslPtr ssl_;
  std::string received_;  // at most limits::kAgentMaxReplyLine bytes
  bool ping_outstanding_ = false;
  bool lost_ = false;
  net::EventPtr read_;
  net::Timer keepalive_;
};

}  // namespace ftpsgate::hub
