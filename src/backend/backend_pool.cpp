#include "backend/backend_pool.h"

#include "backend/health_checker.h"
#include "ftp/feat.h"
#include "log/logger.h"
#include "metrics/metrics.h"

namespace ftpsgate::backend {

BackendPool::Lease& BackendPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    release();
    server_ = other.server_;
    other.server_ = nullptr;
  }
  return *this;
}

void BackendPool::Lease::release() {
  if (server_ != nullptr) server_->active_sessions.fetch_sub(1);
  server_ = nullptr;
}

bool Server::prefers_epsv() const {
  // A direct server as resolved at load; an agent's by its written host (only the agent
  // resolves names, so a name there is taken for IPv4).
  if (target.address) return target.address->is_v6();
  const auto literal = net::SocketAddress::from_numeric(host, target.port);
  return literal && literal->is_v6();
}

BackendPool::BackendPool(const BackendConfig& config, std::vector<std::string>& errors) : config_(config) {
  for (const auto& entry : config.servers) {
    const HostPort& hp = entry.address;
    auto server = std::make_unique<Server>();
    server->name = entry.to_string();
    server->host = hp.host;
    server->target.agent = entry.agent;
    server->target.host = hp.host;
    server->target.port = hp.port;
    if (entry.agent.empty()) {
      server->target.address = net::SocketAddress::resolve(hp.host, hp.port);
      if (!server->target.address) {
        errors.push_back(config.position.prefix() + "backend '" + config.name + "': cannot resolve " + hp.to_string());
        continue;
      }
    }
    servers_.push_back(std::move(server));
  }
  if (config.tls != BackendTls::kOff) tls_ = tls::ClientContext::create(config, errors);
}

BackendPool::~BackendPool() { stop_health_checks(); }

std::vector<Server*> BackendPool::connect_order(std::string_view client_ip, std::string_view user) {
  std::vector<policy::ServerSnapshot> snapshot;
  snapshot.reserve(servers_.size());
  for (const auto& server : servers_) snapshot.push_back({server->health.load(), server->active_sessions.load()});
  const policy::BalanceInput input{config_.balance, round_robin_.fetch_add(1), client_ip, user};
  std::vector<Server*> order;
  for (std::size_t index : policy::balance_order(snapshot, input)) order.push_back(servers_[index].get());
  return order;
}

bool BackendPool::any_up() const {
  for (const auto& server : servers_) {
    if (server->health.load() == policy::ServerHealth::kUp) return true;
  }
  return false;
}

void BackendPool::report(Server& server, bool up, std::string_view why) {
  const auto now = up ? policy::ServerHealth::kUp : policy::ServerHealth::kDown;
  const auto before = server.health.exchange(now);
  if (auto* metrics = metrics_.load()) metrics->backend_up(config_.name, server.name).Set(up ? 1 : 0);
  auto* logger = logger_.load();
  if (before != now && logger != nullptr) {
    nlohmann::json fields{{"backend", config_.name}, {"server", server.name}, {"up", up}};
    if (!why.empty()) fields["reason"] = std::string(why);
    logger->write(up ? LogLevel::kInfo : LogLevel::kWarn, "backend_health", fields);
  }
}

void BackendPool::start_health_checks(event_base* base, net::Dialer& dialer, metrics::Metrics& metrics,
                                      log::Logger& logger) {
  metrics_.store(&metrics);
  logger_.store(&logger);
  // Every server's series exists from the start (0 until proven up / failing), so
  // dashboards and alerts see them before the first event.
  for (const auto& server : servers_) {
    metrics.backend_connect_failures(config_.name, server->name);
    if (server->health.load() == policy::ServerHealth::kUnknown) metrics.backend_up(config_.name, server->name).Set(0);
  }
  check_base_ = base;
  check_dialer_ = &dialer;
  checker_ = std::make_unique<HealthChecker>(base, dialer, *this);
}

void BackendPool::check_now() {
  // A new checker probes at once; the old one's probes in flight are cancelled with it.
  if (checker_) checker_ = std::make_unique<HealthChecker>(check_base_, *check_dialer_, *this);
}

std::vector<Server*> BackendPool::servers_of_agent(const std::string& agent) {
  std::vector<Server*> out;
  for (const auto& server : servers_) {
    if (server->target.agent == agent) out.push_back(server.get());
  }
  return out;
}

void BackendPool::stop_health_checks() { checker_.reset(); }

void BackendPool::learn_features(const Server& server, std::vector<std::string> features) {
  std::lock_guard lock(features_mutex_);
  features_[&server] = std::move(features);
}

std::vector<std::string> BackendPool::common_features() const {
  std::vector<std::vector<std::string>> per_server;
  {
    std::lock_guard lock(features_mutex_);
    // In configuration order, so the answer does not depend on who answered first.
    for (const auto& server : servers_) {
      auto it = features_.find(server.get());
      // A server not heard from yet may be where the session lands: nothing is promised
      // until every server of the pool has answered once.
      if (it == features_.end()) return {};
      per_server.push_back(it->second);
    }
  }
  return ftp::common_features(per_server);
}

}  // namespace ftpsgate::backend
