// The control connection to the backend: server choice and failover over the pool, the
// greeting, FTPS-backend setup (AUTH TLS or implicit TLS, then PBSZ 0 and PROT P), reply
// assembly and the queue of commands awaiting replies. The session sends a command with
// the handler for its reply; this class knows nothing about the client.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend_pool.h"
#include "ftp/line_reader.h"
#include "ftp/reply.h"
#include "net/dialer.h"
#include "net/libevent_handles.h"
#include "net/socket_address.h"
#include "net/timer.h"
#include "session/runtime.h"
#include "session/session_log.h"

namespace ftpsgate::session {

class UpstreamChannel {
 public:
  enum class State {
    kIdle,        // no connection yet (before USER)
    kConnecting,     // dialing one server of the pool
    kTlsConnecting,  // implicit FTPS: the TLS handshake on the dialed connection
    kGreeting,       // connected, waiting for the 220
    kAuthSent,       // explicit FTPS: AUTH TLS sent, waiting for the 234
    kTlsHandshake,   // explicit FTPS: the TLS handshake after the 234
    kReady,          // commands may go up (PBSZ/PROT of FTPS backends may still be queued)
    kGone,        // failed or closed; never reused
  };

  // Gets every reply to its command: preliminary ones (1xx) while the command stays
  // queued, then the final one after it left the queue.
  using ReplyHandler = std::function<void(const ftp::Reply& reply)>;

  class Observer {
   public:
    virtual ~Observer() = default;
    // Greeted and (FTPS) secured: the login may go up.
    virtual void on_upstream_ready() = 0;
    // The connection is gone (every server failed, a refusal during setup, a broken
    // reply, the backend closed): the session ends.
    virtual void on_upstream_failed(const std::string& why) = 0;
    // A reply nobody asked for (e.g. 421 before the backend closes).
    virtual void on_upstream_unsolicited(const ftp::Reply& reply) = 0;
    // A handler ran: commands held back meanwhile may proceed.
    virtual void on_upstream_reply_handled() = 0;
    // SECURITY: replies are not read while the client leaves its own unread.
    virtual bool upstream_paused() const = 0;
  };

  UpstreamChannel(const Services& services, const Runtime& runtime, SessionLog& log, Observer& observer);
  UpstreamChannel(const UpstreamChannel&) = delete;
  UpstreamChannel& operator=(const UpstreamChannel&) = delete;

  // Connects to the first server of `backend` (a pool name) that answers, in the pool's
  // order for this client and user.
  void connect(const std::string& backend, const std::string& client_ip, const std::string& user);

  State state() const { return state_; }
  // A connection made or being made.
  bool connected() const { return bev_ != nullptr || dial_ != nullptr; }
  // Setting up, or replies outstanding.
  bool busy() const {
    return (state_ != State::kReady && state_ != State::kIdle && state_ != State::kGone) || !pending_.empty();
  }

  void send(const std::string& line, ReplyHandler handler);
  // A command whose reply nobody waits for (QUIT on the way out).
  void send_and_forget(const std::string& line);
  // Reads replies that waited (the client read its backlog).
  void pull();
  // Drops the connection without further callbacks.
  void close();
  void stop();

  const std::string& backend() const { return backend_; }
  backend::BackendPool* pool() const;
  const backend::Server* server() const { return server_; }
  // The upstream TLS state (FTPS backends), nullptr for a clear backend.
  SSL* ssl() const { return handshaking() ? nullptr : ssl_; }
  std::optional<net::SocketAddress> local_address() const;

 private:
  static void on_read(bufferevent*, void* self);
  static void on_event(bufferevent*, short what, void* self);

  bool connecting() const { return state_ == State::kConnecting || state_ == State::kTlsConnecting; }
  bool handshaking() const { return state_ == State::kTlsConnecting || state_ == State::kTlsHandshake; }
  void try_next_server();
  void dialed(net::Dialed dialed, const std::string& error);
  // Callbacks and read watermark on a new bev_; false (and no TLS state) if there is none.
  bool watch();
  void connected_to_server();
  // This server failed to connect or greet: count, mark it down, try the next one.
  void server_failed(const std::string& why);
  void fail(const std::string& why);
  void handle_greeting(const ftp::Reply& greeting);
  void setup_step(const std::string& verb, const ftp::Reply& reply);
  void start_tls();
  void tls_established();
  void secured();
  void deliver(ftp::Reply reply);
  void write_line(const std::string& line);

  const Services& services_;
  const Runtime& runtime_;
  SessionLog& log_;
  Observer& observer_;
  State state_ = State::kIdle;
  std::string backend_;
  std::vector<backend::Server*> order_;
  std::size_t next_server_ = 0;
  backend::Server* server_ = nullptr;
  backend::BackendPool::Lease lease_;
  std::chrono::steady_clock::time_point connect_started_;
  ftp::LineReader lines_;
  ftp::ReplyAssembler replies_;
  std::deque<ReplyHandler> pending_;
  net::Timer timer_;  // implicit TLS handshake, greeting and TLS setup deadlines (the dial has its own)
  SSL* ssl_ = nullptr;  // owned by bev_ when the backend speaks TLS
  std::unique_ptr<net::PendingDial> dial_;
  std::shared_ptr<void> pipe_lease_;  // what an agent's pipe needs; outlives bev_
  net::BufferEventPtr bev_;
};

}  // namespace ftpsgate::session
