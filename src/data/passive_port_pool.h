// Hands out listening sockets on ports of passive.ports, starting each search at a random
// port of the range (as vsftpd does); shared by the workers without a lock (see bind).
#pragma once

#include <cstdint>
#include <optional>

#include "net/socket_address.h"

namespace ftpsgate::data {

struct BoundPort {
  int fd = -1;  // listening, non-blocking; the caller owns it
  uint16_t port = 0;
};

class PassivePortPool {
 public:
  PassivePortPool(uint16_t min_port, uint16_t max_port) : min_(min_port), max_(max_port) {}

  // Binds a free port of the range on `local` (the control connection's local address).
  std::optional<BoundPort> bind(const net::SocketAddress& local);

 private:
  uint16_t min_;
  uint16_t max_;
};

}  // namespace ftpsgate::data
