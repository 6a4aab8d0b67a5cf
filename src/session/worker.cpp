#include "session/worker.h"

#include <unistd.h>

#include "data/relay_heap.h"
#include "net/thread_signals.h"
#include "tls/bulk_transfer.h"
#include "tls/session_binding.h"

namespace ftpsgate::session {

Worker::Worker(unsigned index, const Services& shared, SessionLimits& limits)
    : index_(index), limits_(limits), base_(event_base_new()), services_(shared) {
  services_.base = base_.get();
  services_.worker = index;
  scanners_ = std::make_unique<inspection::ScannerSet>(base_.get());
  services_.scanners = scanners_.get();
  services_.in_session = [this](uint64_t id, std::function<void(ControlSession&)> job) {
    for_session(id, std::move(job));
  };
  wakeup_.reset(event_new(base_.get(), -1, 0, &Worker::on_wakeup, this));
  retired_ = std::make_unique<net::DeferredDelete<ControlSession>>(base_.get(), [this] {
    // glibc keeps freed memory in per-thread arenas; once a worker is idle, hand it back so
    // RSS returns to its baseline after a burst of sessions.
    if (sessions_.empty()) data::return_free_memory();
  });
  retired_handshakes_ = std::make_unique<net::DeferredDelete<data::SharedDataHandshake>>(base_.get());
  thread_ = std::thread([this] { run(); });
}

Worker::~Worker() {
  stop();
  jobs_.clear();  // hand-overs that never ran close their sockets (Handoff's destructor)
  retired_.reset();
  retired_handshakes_.reset();
  wakeup_.reset();
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  post([this] {
    // Sessions end on their own thread, before the loop stops, and say so in the log.
    std::vector<ControlSession*> running;
    for (auto& [id, session] : sessions_) running.push_back(session.get());
    for (ControlSession* session : running) session->shut_down();
    sessions_.clear();
    retired_->clear();
    handshakes_.clear();
    retired_handshakes_->clear();
    event_base_loopbreak(base_.get());
  });
  thread_.join();
}

void Worker::run() {
  net::leave_signals_to_main_thread();
  event_base_loop(base_.get(), EVLOOP_NO_EXIT_ON_EMPTY);
  // One more pass runs the deferred callbacks and finalizers of the bufferevents that
  // stop() freed (a suspended session's sockets would otherwise leak at shutdown).
  event_base_loop(base_.get(), EVLOOP_NONBLOCK);
}

void Worker::post(std::function<void()> job) {
  {
    std::lock_guard lock(jobs_mutex_);
    jobs_.push_back(std::move(job));
  }
  event_active(wakeup_.get(), EV_READ, 0);
}

void Worker::on_wakeup(evutil_socket_t, short, void* self) {
  auto* worker = static_cast<Worker*>(self);
  std::deque<std::function<void()>> jobs;
  {
    std::lock_guard lock(worker->jobs_mutex_);
    jobs.swap(worker->jobs_);
  }
  for (auto& job : jobs) job();
}

void Worker::hand_over(Handoff handoff) {
  session_count_.fetch_add(1);
  auto shared = std::make_shared<Handoff>(std::move(handoff));
  post([this, shared] { adopt(*shared); });
}

void Worker::say_goodbye() {
  post([this] {
    std::vector<ControlSession*> running;
    for (auto& [id, session] : sessions_) running.push_back(session.get());
    for (ControlSession* session : running) session->say_goodbye();
  });
}

void Worker::for_session(uint64_t id, std::function<void(ControlSession&)> job) {
  post([this, id, job = std::move(job)] {
    auto it = sessions_.find(id);
    if (it != sessions_.end()) job(*it->second);
  });
}

void Worker::handshake_shared(std::unique_ptr<data::SharedDataConnection> connection,
                              std::shared_ptr<Runtime> runtime) {
  // std::function needs a copyable job; the connection closes if the job never runs.
  auto held = std::make_shared<std::unique_ptr<data::SharedDataConnection>>(std::move(connection));
  post([this, held, runtime] {
    SSL* ssl = SSL_new(runtime->tls->get());
    if (ssl == nullptr) return;
    tls::mark_data_connection(ssl);  // tickets and sessions come from the control connection only
    tls::tune_for_bulk(ssl);
    (*held)->handshake_worker = index_;
    (*held)->tls_owner = runtime;
    const uint64_t key = ++next_handshake_;
    auto handshake = std::make_unique<data::SharedDataHandshake>(
        base_.get(), std::move(*held), ssl, runtime->config.limits.handshake_timeout,
        [this, key](std::unique_ptr<data::SharedDataConnection> done, const std::string& error) {
          shared_handshake_done(key, std::move(done), error);
        });
    // Tracked before it starts: it may finish at once (bytes already there) and retire itself.
    data::SharedDataHandshake* raw = handshake.get();
    handshakes_.emplace(key, std::move(handshake));
    raw->start();
  });
}

void Worker::shared_handshake_done(uint64_t key, std::unique_ptr<data::SharedDataConnection> connection,
                                   const std::string& error) {
  // The handshake is on the call stack: free it from the event loop.
  connection->handshake_slot.reset();
  auto it = handshakes_.find(key);
  if (it != handshakes_.end()) {
    retired_handshakes_->retire(std::move(it->second));
    handshakes_.erase(it);
  }
  if (!error.empty()) {
    services_.metrics->tls_handshakes("data", "unknown", "failure").Increment();
    refuse_shared(*connection, std::nullopt, error);
    return;
  }
  const auto token = tls::resumed_token(connection->ssl);
  if (!token) {
    const bool resumed = SSL_session_reused(connection->ssl) == 1;
    refuse_shared(*connection, resumed ? policy::Refusal::kSharedPortUnmatched : policy::Refusal::kSessionReuseRequired,
                  resumed ? "shared port: data connection resumed a session the gateway did not bind, rejecting it"
                          : tls::describe(tls::ResumeCheck::kNotResumed));
    return;
  }
  if (!services_.shared_port->route_protected(*token, connection)) {
    refuse_shared(*connection, policy::Refusal::kSharedPortUnmatched,
                  "shared port: data connection resumed the TLS session of a control connection with no pending "
                  "transfer, rejecting it");
  }
}

void Worker::refuse_shared(const data::SharedDataConnection& connection, std::optional<policy::Refusal> reason,
                           std::string_view message) {
  if (reason) services_.metrics->policy_denials(policy::reason_name(*reason)).Increment();
  services_.logger->write(LogLevel::kWarn, reason ? "policy_denial" : "data_error",
                          {{"reason", reason ? policy::reason_name(*reason) : std::string_view("data_connection_failed")},
                           {"client", connection.client.to_string()},
                           {"port", connection.port},
                           {"worker", index_},
                           {"message", message}});
}

void Worker::adopt(Handoff& h) {
  const ListenerConfig& listener = h.runtime->config.listeners[h.listener_index];
  auto session = std::make_unique<ControlSession>(services_, h.runtime, listener, *h.cls, h.id, std::move(h.fd), h.client,
                                                  h.local, h.advertised, [this](uint64_t id) { retire(id); });
  ControlSession* raw = session.get();
  sessions_.emplace(h.id, std::move(session));
  raw->start();
}

void Worker::retire(uint64_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  limits_.release(it->second->client_ip());
  session_count_.fetch_sub(1);
  // The session is on the call stack: free it from the event loop.
  retired_->retire(std::move(it->second));
  sessions_.erase(it);
}

}  // namespace ftpsgate::session
