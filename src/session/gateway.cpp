#include "session/gateway.h"

#include <sys/socket.h>
#include <unistd.h>

#include "ftp/reply.h"
#include "policy/client_class.h"

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
  for (const auto& backend : config.backends) {
    runtime->backends[backend.name] = std::make_unique<backend::BackendPool>(backend, errors);
  }
  if (!errors.empty()) return nullptr;
  return runtime;
}

namespace {
policy::LoginThrottle::Settings throttle_settings(const Config& config) {
  policy::LoginThrottle::Settings settings;
  settings.max_failures = config.limits.max_login_failures;
  settings.ban_time = config.limits.login_ban_time;
  return settings;
}
}  // namespace

Gateway::Gateway(const Services& services, std::shared_ptr<Runtime> runtime)
    : login_throttle_(throttle_settings(runtime->config)),
      services_(services),
      runtime_(std::move(runtime)),
      reaper_(services.base, [this] { retired_readers_.clear(); }) {
  services_.login_throttle = &login_throttle_;
  start_health_checks(*runtime_);
}

Gateway::~Gateway() {
  for (auto& [name, pool] : runtime_->backends) pool->stop_health_checks();
  listeners_.clear();
  proxy_readers_.clear();
  retired_readers_.clear();
  workers_.clear();
}

std::unique_ptr<Gateway> Gateway::create(const Services& services, std::shared_ptr<Runtime> runtime,
                                         unsigned workers, std::string& error) {
  std::unique_ptr<Gateway> gateway(new Gateway(services, std::move(runtime)));
  for (unsigned i = 0; i < std::max(1u, workers); ++i) {
    gateway->workers_.push_back(std::make_unique<Worker>(i, gateway->services_, gateway->limits_));
  }
  const auto& listeners = gateway->runtime_->config.listeners;
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    const auto& config = listeners[i];
    auto address = net::SocketAddress::resolve(config.address.host, config.address.port);
    if (!address) {
      error = "listener '" + config.name + "': cannot resolve " + config.address.to_string();
      return nullptr;
    }
    auto slot = std::make_unique<ListenerSlot>();
    slot->gateway = gateway.get();
    slot->index = i;
    slot->listener.reset(evconnlistener_new_bind(services.base, &Gateway::on_accept, slot.get(),
                                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                                 512, address->get(), static_cast<int>(address->length())));
    if (!slot->listener) {
      error = "listener '" + config.name + "': cannot listen on " + config.address.to_string() + ": " +
              evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
      return nullptr;
    }
    gateway->listeners_.push_back(std::move(slot));
  }
  return gateway;
}

void Gateway::replace_runtime(std::shared_ptr<Runtime> runtime) {
  login_throttle_.set_settings(throttle_settings(runtime->config));
  // Sessions still holding the old Runtime keep its last-known health; only the new one probes.
  for (auto& [name, pool] : runtime_->backends) pool->stop_health_checks();
  runtime_ = std::move(runtime);
  start_health_checks(*runtime_);
}

void Gateway::start_health_checks(Runtime& runtime) {
  for (auto& [name, pool] : runtime.backends) {
    pool->start_health_checks(services_.base, *services_.metrics, *services_.logger);
  }
}

void Gateway::stop_accepting() { listeners_.clear(); }

void Gateway::on_accept(evconnlistener*, evutil_socket_t fd, sockaddr* sa, int len, void* slot) {
  auto* s = static_cast<ListenerSlot*>(slot);
  s->gateway->accept(s->index, fd, sa, len);
}

void Gateway::refuse_connection(evutil_socket_t fd, const net::SocketAddress& client, std::string_view reason,
                                std::string_view text) {
  services_.metrics->policy_denials(reason).Increment();
  services_.logger->write(LogLevel::kInfo, "policy_denial",
                          {{"reason", reason}, {"client", client.to_string()}, {"reply", 421}, {"message", text}});
  const std::string wire = ftp::make_reply(421, text);
  // Best effort, non-blocking: the socket is fresh, its send buffer empty.
  (void)send(fd, wire.data(), wire.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  close(fd);
}

void Gateway::accept(std::size_t listener_index, evutil_socket_t fd, const sockaddr* sa, int len) {
  auto client = net::SocketAddress::from_sockaddr(sa, static_cast<socklen_t>(len));
  auto local = net::SocketAddress::local_of(fd);
  if (!client || !local || listener_index >= runtime_->config.listeners.size()) {
    close(fd);
    return;
  }
  if (!runtime_->config.listeners[listener_index].proxy_protocol) {
    admit(listener_index, fd, *client, *local, *local);
    return;
  }
  // Headers still in flight count against max_sessions, so a flood of silent connections
  // cannot grow this without bound.
  if (limits_.total() + proxy_readers_.size() >= runtime_->config.limits.max_sessions) {
    refuse_connection(fd, *client, "max_sessions", "Too many sessions, try again later");
    return;
  }
  const uint64_t reader_id = next_id_++;
  const net::SocketAddress balancer = *client;
  const net::SocketAddress own = *local;
  proxy_readers_.emplace(
      reader_id, std::make_unique<net::ProxyHeaderReader>(
                     services_.base, fd, *client, *local, runtime_->config.limits.handshake_timeout,
                     [this, reader_id, listener_index, balancer, own](evutil_socket_t accepted,
                                                                 const net::ProxyHeaderReader::Result& result) {
                       // The reader is on the call stack: free it from the event loop.
                       auto it = proxy_readers_.find(reader_id);
                       retired_readers_.push_back(std::move(it->second));
                       proxy_readers_.erase(it);
                       reaper_.arm(std::chrono::milliseconds(0));
                       if (!result.ok) {
                         services_.metrics->policy_denials("proxy_protocol").Increment();
                         services_.logger->write(LogLevel::kWarn, "policy_denial",
                                                 {{"reason", "proxy_protocol"},
                                                  {"client", balancer.to_string()},
                                                  {"message", result.error}});
                         return;
                       }
                       if (listener_index < runtime_->config.listeners.size()) {
                         admit(listener_index, accepted, result.client, own, result.destination);
                       } else {
                         close(accepted);
                       }
                     }));
}

void Gateway::admit(std::size_t listener_index, evutil_socket_t fd, const net::SocketAddress& client,
                    const net::SocketAddress& local, const net::SocketAddress& advertised) {
  const Runtime& runtime = *runtime_;
  const auto& limits = runtime.config.limits;
  const std::string ip = client.ip();
  auto parsed = policy::IpAddress::parse(ip);
  const ClassConfig* cls = parsed ? policy::select_class(runtime.config.classes, *parsed) : nullptr;
  if (cls == nullptr) {
    refuse_connection(fd, client, "no_class", "No access for your address");
    return;
  }
  if (login_throttle_.banned(ip, std::chrono::steady_clock::now())) {
    refuse_connection(fd, client, "login_banned", "Too many failed logins, try again later");
    return;
  }
  switch (limits_.admit(ip, limits.max_sessions, limits.max_sessions_per_ip)) {
    case SessionLimits::Admission::kMaxSessions:
      refuse_connection(fd, client, "max_sessions", "Too many sessions, try again later");
      return;
    case SessionLimits::Admission::kMaxSessionsPerIp:
      refuse_connection(fd, client, "max_sessions_per_ip", "Too many sessions from your address");
      return;
    case SessionLimits::Admission::kAdmitted:
      break;
  }
  Handoff handoff;
  handoff.runtime = runtime_;
  handoff.listener_index = listener_index;
  handoff.cls = cls;
  handoff.id = next_id_++;
  handoff.fd = fd;
  handoff.client = client;
  handoff.local = local;
  handoff.advertised = advertised;
  // Round robin: sessions are long and alike enough that counting them buys little.
  Worker& worker = *workers_[next_worker_++ % workers_.size()];
  worker.hand_over(std::move(handoff));
}

}  // namespace ftpsgate::session
