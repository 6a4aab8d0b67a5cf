#include "data/passive_port_pool.h"

#include <event2/util.h>
#include <openssl/rand.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ftpsgate::data {

std::optional<BoundPort> PassivePortPool::bind(const net::SocketAddress& local) {
  std::lock_guard lock(mutex_);
  const uint32_t span = static_cast<uint32_t>(max_) - min_ + 1;
  // SECURITY: data-port theft. A neighbour behind the client's address who can predict
  // the next passive port connects to it first; a random start leaves it guessing.
  uint32_t start = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&start), sizeof(start)) != 1) start = 0;
  for (uint32_t attempt = 0; attempt < span; ++attempt) {
    const auto port = static_cast<uint16_t>(min_ + (start + attempt) % span);
    net::SocketAddress address = local;
    address.set_port(port);
    const int fd = socket(address.get()->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::nullopt;
    evutil_make_listen_socket_reuseable(fd);
    if (::bind(fd, address.get(), address.length()) == 0 && listen(fd, 8) == 0) return BoundPort{fd, port};
    close(fd);
  }
  return std::nullopt;
}

}  // namespace ftpsgate::data
