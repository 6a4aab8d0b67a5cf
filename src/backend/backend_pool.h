// A named pool of backend servers with round-robin selection and failover order.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "ftpsgate/config.h"
#include "net/socket_address.h"

namespace ftpsgate::backend {

struct Server {
  std::string name;  // as configured, "host:port"
  net::SocketAddress address;
};

class BackendPool {
 public:
  // Resolves server names once (start-up / reload); unresolvable ones go to `errors`.
  BackendPool(const BackendConfig& config, std::vector<std::string>& errors);

  const std::string& name() const { return config_.name; }
  const BackendConfig& config() const { return config_; }
  // Servers to try for one new session, best first: round robin, then the others as failover.
  std::vector<const Server*> connect_order();

 private:
  BackendConfig config_;
  std::vector<Server> servers_;
  std::size_t next_ = 0;
};

}  // namespace ftpsgate::backend
