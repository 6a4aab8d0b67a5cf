#include "session/acceptor.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <map>

#include "ftp/reply.h"
#include "ftpsgate/limits.h"
#include "policy/client_class.h"
#include "tls/certificate_files.h"

namespace ftpsgate::session {

std::shared_ptr<Runtime> build_runtime(const Config& config, std::vector<std::string>& errors,
                                       std::vector<std::string>& warnings) {
  auto runtime = std::make_shared<Runtime>();
  runtime->config = config;
  bool class_verifies = false;
  for (const auto& cls : config.classes) {
    class_verifies |= cls.verify_client.has_value() && *cls.verify_client != VerifyClient::kOff;
  }
  runtime->tls = tls::ServerContext::create(config.tls, class_verifies, errors, warnings);
  if (config.agents) tls::check_agents_tls(*config.agents, errors);
  for (const auto& backend : config.backends) {
    runtime->backends[backend.name] = std::make_unique<backend::BackendPool>(backend, errors);
  }
  for (const auto& scanner : config.inspection.scanners) {
    runtime->scanners[scanner.name] = std::make_unique<inspection::ScannerHealth>(scanner);
  }
  if (!errors.empty()) return nullptr;
  return runtime;
}

namespace {
policy::LoginThrottle::Settings throttle_settings(const Config& config) {
  policy::LoginThrottle::Settings settings;
  settings.max_failures = config.limits.max_login_failures;
  settings.max_user_failures = config.limits.max_user_login_failures;
  settings.ban_time = config.limits.login_ban_time;
  return settings;
}
}  // namespace

Acceptor::Acceptor(const Services& services, std::shared_ptr<Runtime> runtime)
    : login_throttle_(throttle_settings(runtime->config)),
      services_(services),
      runtime_(std::move(runtime)),
      retired_readers_(services.base) {
  services_.login_throttle = &login_throttle_;
  services_.bandwidth = &bandwidth_;
  spool_budget_.set_max(runtime_->config.inspection.max_spool_bytes);
  spool_budget_.report_to(&services_.metrics->spool_bytes());
  services_.spool_budget = &spool_budget_;
  // Sized once: a reload keeps the pool (a different auth.workers needs a restart).
  auth_pool_ = std::make_unique<auth::AuthPool>(runtime_->config.auth.workers, runtime_->config.auth.max_pending);
  services_.auth_pool = auth_pool_.get();
  const auto& passive = runtime_->config.passive;
  // One ticket key and one session store for the process, whatever the reloads (a shared
  // port's data handshake runs on the newest runtime's context, whatever the session's).
  // SECURITY: both are ours, not OpenSSL's built-in ones, so that data connections can be
  // kept from issuing anything resumable (see tls::mark_data_connection).
  shared_ticket_keys_ = tls::TicketKeys::generate();
  if (shared_ticket_keys_) runtime_->tls->share_ticket_keys(*shared_ticket_keys_);
  shared_session_cache_ =
      std::make_unique<tls::SessionCache>(std::max<std::size_t>(1024, runtime_->config.limits.max_sessions));
  runtime_->tls->share_session_cache(*shared_session_cache_);
  if (passive.shared_port) {
    std::vector<uint16_t> ports;
    for (uint32_t port = passive.port_min; port <= passive.port_max; ++port) ports.push_back(static_cast<uint16_t>(port));
    shared_port_ = std::make_unique<data::SharedPassivePort>(std::move(ports), static_cast<data::SharedPortRouter&>(*this));
    services_.shared_port = shared_port_.get();
  }
  start_health_checks(*runtime_);
}

Acceptor::~Acceptor() {
  for (auto& [name, pool] : runtime_->backends) pool->stop_health_checks();
  for (auto& [name, health] : runtime_->scanners) health->stop();
  listeners_.clear();
  shared_listeners_.clear();
  proxy_readers_.clear();
  retired_readers_.clear();
  // Its running jobs report to the workers' loops, so it stops first.
  auth_pool_.reset();
  // Every loop stops before any Worker goes: a session ending on one worker may still route
  // a shared-port grant or connection to another.
  for (auto& worker : workers_) worker->stop();
  routing_ = false;
  workers_.clear();
}

std::unique_ptr<Acceptor> Acceptor::create(const Services& services, std::shared_ptr<Runtime> runtime,
                                         unsigned workers, std::string& error) {
  std::unique_ptr<Acceptor> acceptor(new Acceptor(services, std::move(runtime)));
  if (!acceptor->shared_ticket_keys_) {
    error = "cannot generate the TLS session ticket key";
    return nullptr;
  }
  for (unsigned i = 0; i < std::max(1u, workers); ++i) {
    acceptor->workers_.push_back(std::make_unique<Worker>(i, acceptor->services_, acceptor->limits_));
  }
  // Data ports first: once a control port accepts (what readiness probes see), the shared
  // data ports its PASV replies name accept too.
  if (acceptor->shared_port_ && !acceptor->bind_shared_ports(error)) return nullptr;
  const auto& listeners = acceptor->runtime_->config.listeners;
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    const auto& config = listeners[i];
    auto address = net::SocketAddress::resolve(config.address.host, config.address.port);
    if (!address) {
      error = "listener '" + config.name + "': cannot resolve " + config.address.to_string();
      return nullptr;
    }
    auto slot = std::make_unique<ListenerSlot>();
    slot->acceptor = acceptor.get();
    slot->name = config.name;
    slot->listener.reset(evconnlistener_new_bind(services.base, &Acceptor::on_accept, slot.get(),
                                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                                 limits::kListenBacklog, address->get(),
                                                 static_cast<int>(address->length())));
    if (!slot->listener) {
      error = "listener '" + config.name + "': cannot listen on " + config.address.to_string() + ": " +
              evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
      return nullptr;
    }
    acceptor->listeners_.push_back(std::move(slot));
  }
  return acceptor;
}

namespace {
// A listening socket for a shared data port. IPv6 sockets are IPv6-only when IPv4 ports
// are bound too, so a "::" and a "0.0.0.0" listener do not collide on the same port.
net::UniqueFd listen_shared(const net::SocketAddress& address, bool v6only) {
  net::UniqueFd fd(socket(address.get()->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return fd;
  evutil_make_listen_socket_reuseable(fd.get());
  const int on = 1;
  if (address.is_v6() && v6only) setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
  if (::bind(fd.get(), address.get(), address.length()) != 0 || listen(fd.get(), limits::kListenBacklog) != 0) {
    const int saved = errno;
    fd.reset();
    errno = saved;
  }
  return fd;
}
}  // namespace

bool Acceptor::bind_shared_ports(std::string& error) {
  // Each listener address gets the shared ports: PASV names the control connection's
  // own address (or a masquerade address that leads to it).
  std::map<std::string, std::vector<std::string>> hosts;  // ip -> listener names
  for (const auto& config : runtime_->config.listeners) {
    auto address = net::SocketAddress::resolve(config.address.host, config.address.port);
    if (!address) continue;  // reported with the listener
    hosts[address->ip()].push_back(config.name);
  }
  // A wildcard covers the other addresses of its family (binding both would collide).
  const bool any4 = hosts.count("0.0.0.0") != 0;
  const bool any6 = hosts.count("::") != 0;
  bool have4 = false;
  for (auto it = hosts.begin(); it != hosts.end();) {
    const bool v6 = it->first.find(':') != std::string::npos;
    have4 |= !v6;
    const bool covered = v6 ? (any6 && it->first != "::") : (any4 && it->first != "0.0.0.0");
    if (covered) {
      auto& wildcard = hosts[v6 ? "::" : "0.0.0.0"];
      wildcard.insert(wildcard.end(), it->second.begin(), it->second.end());
    }
    it = covered ? hosts.erase(it) : std::next(it);
  }
  for (const auto& [host, names] : hosts) {
    for (uint16_t port : shared_port_->ports()) {
      auto address = net::SocketAddress::resolve(host, port);
      net::UniqueFd fd = address ? listen_shared(*address, have4) : net::UniqueFd();
      auto slot = std::make_unique<SharedSlot>();
      slot->acceptor = this;
      slot->port = port;
      slot->listeners = names;
      if (fd) {
        slot->listener.reset(evconnlistener_new(services_.base, &Acceptor::on_shared_accept, slot.get(),
                                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd.get()));
        if (slot->listener) (void)fd.release();  // the listener owns it now
      }
      if (!slot->listener) {
        error = "passive.shared_port: cannot listen on " + host + " port " + std::to_string(port) + ": " +
                evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
        return false;
      }
      shared_listeners_.push_back(std::move(slot));
    }
  }
  return true;
}

void Acceptor::replace_runtime(std::shared_ptr<Runtime> runtime) {
  login_throttle_.set_settings(throttle_settings(runtime->config));
  spool_budget_.set_max(runtime->config.inspection.max_spool_bytes);
  // Sessions still holding the old Runtime keep its last-known health; only the new one probes.
  for (auto& [name, pool] : runtime_->backends) pool->stop_health_checks();
  for (auto& [name, health] : runtime_->scanners) health->stop();
  runtime_ = std::move(runtime);
  if (shared_ticket_keys_) runtime_->tls->share_ticket_keys(*shared_ticket_keys_);
  if (shared_session_cache_) runtime_->tls->share_session_cache(*shared_session_cache_);
  start_health_checks(*runtime_);
}

void Acceptor::start_health_checks(Runtime& runtime) {
  for (auto& [name, pool] : runtime.backends) {
    pool->start_health_checks(services_.base, *services_.dialer, *services_.metrics, *services_.logger);
  }
  for (auto& [name, health] : runtime.scanners) health->start(services_.base, *services_.metrics, *services_.logger);
}

void Acceptor::stop_accepting() { listeners_.clear(); }

void Acceptor::say_goodbye() {
  for (auto& worker : workers_) worker->say_goodbye();
}

std::optional<std::string> Acceptor::reload_conflict(const Config& next) const {
  const Config& now = runtime_->config;
  for (const auto& listener : now.listeners) {
    const ListenerConfig* after = next.find_listener(listener.name);
    if (after == nullptr) return "listener '" + listener.name + "' was removed";
    if (after->address.to_string() != listener.address.to_string()) {
      return "listener '" + listener.name + "' moved from " + listener.address.to_string() + " to " +
             after->address.to_string();
    }
    if (now.passive.shared_port && after->proxy_protocol != listener.proxy_protocol) {
      return "listener '" + listener.name + "' changed proxy_protocol, which its shared data ports follow";
    }
  }
  for (const auto& listener : next.listeners) {
    if (now.find_listener(listener.name) == nullptr) return "listener '" + listener.name + "' was added";
  }
  if (next.passive.port_min != now.passive.port_min || next.passive.port_max != now.passive.port_max ||
      next.passive.shared_port != now.passive.shared_port) {
    return "passive.ports or passive.shared_port changed";
  }
  return std::nullopt;
}

void Acceptor::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* slot) {
  auto* s = static_cast<ListenerSlot*>(slot);
  s->acceptor->accept(s->name, net::UniqueFd(fd), sa, len);
}

bool Acceptor::trusted_balancer(const ListenerConfig& listener, const net::SocketAddress& peer) const {
  return policy::any_contains(listener.proxy_protocol_from, peer.ip());
}

void Acceptor::refuse_connection(net::UniqueFd fd, const net::SocketAddress& client, policy::Refusal reason) {
  const policy::RefusalInfo& refusal = policy::refusal_info(reason);
  services_.metrics->policy_denials(refusal.name).Increment();
  services_.logger->write(LogLevel::kInfo, "policy_denial",
                          {{"reason", refusal.name},
                           {"client", client.to_string()},
                           {"reply", refusal.code},
                           {"message", refusal.text}});
  const std::string wire = ftp::make_reply(refusal.code, refusal.text);
  // Best effort, non-blocking: the socket is fresh, its send buffer empty.
  (void)send(fd.get(), wire.data(), wire.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

void Acceptor::accept(const std::string& name, net::UniqueFd fd, const sockaddr* sa, int len) {
  auto client = net::SocketAddress::from_sockaddr(sa, static_cast<socklen_t>(len));
  auto local = net::SocketAddress::local_of(fd.get());
  const ListenerConfig* listener = runtime_->config.find_listener(name);
  if (!client || !local || listener == nullptr) return;  // closes it
  if (!listener->proxy_protocol) {
    admit(name, std::move(fd), *client, *local, *local);
    return;
  }
  if (!trusted_balancer(*listener, *client)) {
    refuse_connection(std::move(fd), *client, policy::Refusal::kProxyProtocol);
    return;
  }
  // Headers still in flight count against max_sessions, so a flood of silent connections
  // cannot grow this without bound.
  if (limits_.total() + proxy_readers_.size() >= runtime_->config.limits.max_sessions) {
    refuse_connection(std::move(fd), *client, policy::Refusal::kMaxSessions);
    return;
  }
  const net::SocketAddress own = *local;
  read_proxy_header(std::move(fd), *client, *local,
                    [this, name, own](net::UniqueFd accepted, const net::ProxyHeaderReader::Result& result) {
                      admit(name, std::move(accepted), result.client, own, result.destination);
                    });
}

void Acceptor::read_proxy_header(net::UniqueFd fd, const net::SocketAddress& peer, const net::SocketAddress& local,
                                AfterHeader then) {
  const uint64_t reader_id = next_id_++;
  const net::SocketAddress balancer = peer;
  auto done = [this, reader_id, balancer, then = std::move(then)](net::UniqueFd accepted,
                                                                   const net::ProxyHeaderReader::Result& result) {
    // The reader is on the call stack: free it from the event loop.
    auto it = proxy_readers_.find(reader_id);
    retired_readers_.retire(std::move(it->second));
    proxy_readers_.erase(it);
    if (!result.ok) {
      services_.metrics->policy_denials(policy::reason_name(policy::Refusal::kProxyProtocol)).Increment();
      services_.logger->write(LogLevel::kWarn, "policy_denial",
                              {{"reason", policy::reason_name(policy::Refusal::kProxyProtocol)},
                               {"client", balancer.to_string()}, {"message", result.error}});
      return;
    }
    then(std::move(accepted), result);
  };
  proxy_readers_.emplace(reader_id, std::make_unique<net::ProxyHeaderReader>(
                                        services_.base, std::move(fd), peer, local, runtime_->config.limits.handshake_timeout,
                                        std::move(done)));
}

void Acceptor::on_shared_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* slot) {
  auto* s = static_cast<SharedSlot*>(slot);
  s->acceptor->accept_shared(*s, net::UniqueFd(fd), sa, len);
}

void Acceptor::accept_shared(const SharedSlot& slot, net::UniqueFd fd, const sockaddr* sa, int len) {
  auto client = net::SocketAddress::from_sockaddr(sa, static_cast<socklen_t>(len));
  auto local = net::SocketAddress::local_of(fd.get());
  if (!client || !local) return;  // closes it
  const uint16_t port = slot.port;
  // The listeners of one address agree on proxy_protocol (config check; a reload may not
  // change it); the trusted balancers are those of any of them, as configured now.
  bool proxy_protocol = false;
  bool trusted = false;
  for (const auto& name : slot.listeners) {
    const ListenerConfig* listener = runtime_->config.find_listener(name);
    if (listener == nullptr || !listener->proxy_protocol) continue;
    proxy_protocol = true;
    trusted |= trusted_balancer(*listener, *client);
  }
  if (!proxy_protocol) {
    dispatch_shared(std::move(fd), *client, port);
    return;
  }
  if (!trusted) {
    services_.metrics->policy_denials(policy::reason_name(policy::Refusal::kProxyProtocol)).Increment();
    services_.logger->write(LogLevel::kWarn, "policy_denial",
                            {{"reason", policy::reason_name(policy::Refusal::kProxyProtocol)},
                             {"client", client->to_string()}, {"channel", "data"},
                             {"message", "PROXY protocol header not accepted from this address"}});
    return;  // closes it
  }
  if (limits_.total() + proxy_readers_.size() >= runtime_->config.limits.max_sessions) return;
  read_proxy_header(std::move(fd), *client, *local,
                    [this, port](net::UniqueFd accepted, const net::ProxyHeaderReader::Result& result) {
                      dispatch_shared(std::move(accepted), result.client, port);
                    });
}

void Acceptor::dispatch_shared(net::UniqueFd fd, const net::SocketAddress& client, uint16_t port) {
  auto connection = std::make_unique<data::SharedDataConnection>(fd.release(), client, port);
  if (shared_port_->route_clear(connection)) return;
  const auto& limits = runtime_->config.limits;
  const std::string ip = connection->client.ip();
  switch (shared_handshakes_.admit(ip, limits.max_sessions, limits.max_sessions_per_ip)) {
    case SessionLimits::Admission::kMaxSessions:
      services_.metrics->policy_denials(policy::reason_name(policy::Refusal::kMaxSessions)).Increment();
      return;  // closes the connection
    case SessionLimits::Admission::kMaxSessionsPerIp:
      services_.metrics->policy_denials(policy::reason_name(policy::Refusal::kMaxSessionsPerIp)).Increment();
      return;
    case SessionLimits::Admission::kAdmitted:
      break;
  }
  connection->handshake_slot =
      std::shared_ptr<void>(nullptr, [this, ip](void*) { shared_handshakes_.release(ip); });
  // Handshakes are the expensive part: spread them over the workers; the resumed session
  // then decides which worker's session gets the connection.
  Worker& worker = *workers_[next_handshake_worker_++ % workers_.size()];
  worker.handshake_shared(std::move(connection), runtime_);
}

void Acceptor::port_granted(const data::ShareOwner& owner, uint64_t reservation, uint16_t port) {
  if (!routing_ || owner.worker >= workers_.size()) return;
  workers_[owner.worker]->for_session(
      owner.session, [reservation, port](ControlSession& session) { session.shared_port_granted(reservation, port); });
}

void Acceptor::deliver(const data::ShareOwner& owner, uint64_t reservation,
                      std::unique_ptr<data::SharedDataConnection> connection) {
  if (!routing_ || owner.worker >= workers_.size()) return;
  auto held = std::make_shared<std::unique_ptr<data::SharedDataConnection>>(std::move(connection));
  workers_[owner.worker]->for_session(owner.session, [reservation, held](ControlSession& session) {
    session.adopt_shared_data(reservation, std::move(*held));
  });
}

void Acceptor::admit(const std::string& listener, net::UniqueFd fd, const net::SocketAddress& client,
                    const net::SocketAddress& local, const net::SocketAddress& advertised) {
  const Runtime& runtime = *runtime_;
  const ListenerConfig* found = runtime.config.find_listener(listener);
  if (found == nullptr) return;  // closes it
  const auto listener_index = static_cast<std::size_t>(found - runtime.config.listeners.data());
  const auto& limits = runtime.config.limits;
  const std::string ip = client.ip();
  auto parsed = policy::IpAddress::parse(ip);
  const ClassConfig* cls = parsed ? policy::select_class(runtime.config.classes, *parsed) : nullptr;
  if (cls == nullptr) {
    refuse_connection(std::move(fd), client, policy::Refusal::kNoClass);
    return;
  }
  if (login_throttle_.banned(ip, std::chrono::steady_clock::now())) {
    refuse_connection(std::move(fd), client, policy::Refusal::kLoginBanned);
    return;
  }
  switch (limits_.admit(ip, limits.max_sessions, limits.max_sessions_per_ip)) {
    case SessionLimits::Admission::kMaxSessions:
      refuse_connection(std::move(fd), client, policy::Refusal::kMaxSessions);
      return;
    case SessionLimits::Admission::kMaxSessionsPerIp:
      refuse_connection(std::move(fd), client, policy::Refusal::kMaxSessionsPerIp);
      return;
    case SessionLimits::Admission::kAdmitted:
      break;
  }
  Handoff handoff;
  handoff.runtime = runtime_;
  handoff.listener_index = listener_index;
  handoff.cls = cls;
  handoff.id = next_id_++;
  handoff.fd = std::move(fd);
  handoff.client = client;
  handoff.local = local;
  handoff.advertised = advertised;
  // Round robin: sessions are long and alike enough that counting them buys little.
  Worker& worker = *workers_[next_worker_++ % workers_.size()];
  worker.hand_over(std::move(handoff));
}

}  // namespace ftpsgate::session
