// One link to a gateway (docs/agent-design.md 1.2): TCP connect and TLS 1.3 handshake
// (dialing), then idle (PING answered with PONG, nothing else but one CONNECT accepted, no
// byte for pool.keepalive_timeout drops it), then the request (the allowlist, the target's
// connect, OK or ERR) and the pipe. A link carries one request in its life.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "agent/agent_context.h"
#include "agent/agent_pipe.h"
#include "agent/tcp_connector.h"
#include "net/libevent_handles.h"
#include "net/reset_on_close.h"
#include "net/timer.h"
#include "tunnel/agent_protocol.h"

namespace ftpsgate::agent {

class AgentLink {
 public:
  enum class State { kDialing, kIdle, kRequest, kPiped, kClosing, kClosed };

  // How a link ended, for its keeper (backoff, metrics, transition logs).
  struct End {
    State reached = State::kDialing;  // the last state before the end
    // Dialing only: a dials_total result (connect_failed, connect_timeout, resolve_failed,
    // tls_failed, refused) and, for refused, the certificate verification error.
    std::string dial_result;
    std::string detail;
    std::optional<tunnel::ErrReason> gateway_err;  // an ERR line received while idle
    bool gateway_spoke = false;                    // a PING or CONNECT arrived: the gateway took the link
    bool dropped_by_us = false;                    // keepalive timeout, drain
  };

  class Owner {
   public:
    virtual void link_idle(AgentLink& link) = 0;
    // A CONNECT took the link: it is no longer idle (before the target connect ends).
    virtual void link_leased(AgentLink& link) = 0;
    // Once; the owner frees the link from the loop, not inside this call.
    virtual void link_closed(AgentLink& link, const End& end) = 0;

   protected:
    ~Owner() = default;
  };

  AgentLink(AgentContext& context, const AgentGatewayConfig& gateway, std::string gateway_label, Owner& owner);
  ~AgentLink();
  AgentLink(const AgentLink&) = delete;
  AgentLink& operator=(const AgentLink&) = delete;

  void start();
  // Drain: a dialing or idle link goes, quietly (the agent sends nothing unsolicited).
  void drop();
  // The drain deadline: a link in a request or pipe is cut (RST).
  void cut();
  State state() const { return state_; }

 private:
  static void on_read(bufferevent*, void* self);
  static void on_write(bufferevent*, void* self);
  static void on_event(bufferevent*, short what, void* self);
  void connected(net::UniqueFd fd, TcpConnector::Failure failure, const std::string& detail);
  void handshake_done();
  void read_lines();
  void request(const tunnel::ConnectRequest& request);
  void target_connected(net::UniqueFd fd, TcpConnector::Failure failure, const std::string& detail);
  void refuse(tunnel::ErrReason reason);
  void fail_dial(const std::string& result, const std::string& detail);
  void close(const std::string& detail);
  void say_goodbye();
  void end();
  nlohmann::json request_fields() const;

  AgentContext& context_;
  const AgentGatewayConfig& gateway_;
  std::string gateway_label_;
  Owner& owner_;
  State state_ = State::kDialing;
  End end_;
  std::optional<tunnel::ConnectRequest> request_;
  std::chrono::steady_clock::time_point request_started_;
  std::unique_ptr<TcpConnector> connector_;       // the gateway, then the target
  std::unique_ptr<TcpConnector> done_connector_;  // one that reported (not freed in its callback)
  net::BufferEventPtr bev_;                       // the link's TLS, until the pipe takes it
  std::unique_ptr<AgentPipe> pipe_;
  net::Timer timer_;  // dial deadline, keepalive, the ERR's flush
};

std::string_view state_name(AgentLink::State state);

}  // namespace ftpsgate::agent
