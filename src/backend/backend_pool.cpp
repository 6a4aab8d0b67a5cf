#include "backend/backend_pool.h"

namespace ftpsgate::backend {

BackendPool::BackendPool(const BackendConfig& config, std::vector<std::string>& errors) : config_(config) {
  for (const auto& hp : config.servers) {
    auto address = net::SocketAddress::resolve(hp.host, hp.port);
    if (!address) {
      errors.push_back(config.position.prefix() + "backend '" + config.name + "': cannot resolve " + hp.to_string());
      continue;
    }
    servers_.push_back(Server{hp.to_string(), *address});
  }
}

std::vector<const Server*> BackendPool::connect_order() {
  std::vector<const Server*> order;
  if (servers_.empty()) return order;
  const std::size_t first = next_++ % servers_.size();
  for (std::size_t i = 0; i < servers_.size(); ++i) order.push_back(&servers_[(first + i) % servers_.size()]);
  return order;
}

}  // namespace ftpsgate::backend
