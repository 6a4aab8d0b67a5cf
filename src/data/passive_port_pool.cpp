#include "data/passive_port_pool.h"

#include <event2/util.h>
#include <openssl/rand.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ftpsgate/limits.h"
#include "net/unique_fd.h"

namespace ftpsgate::data {

std::optional<BoundPort> PassivePortPool::bind(const net::SocketAddress& local) {
  // No lock: the kernel arbitrates. Two workers trying one port concurrently cannot both
  // listen on it (the second bind or listen fails with EADDRINUSE), and the loser moves on.
  const uint32_t span = static_cast<uint32_t>(max_) - min_ + 1;
  // SECURITY: data-port theft. A neighbour behind the client's address who can predict
  // the next passive port connects to it first; a random start leaves it guessing.
  uint32_t start = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&start), sizeof(start)) != 1) start = 0;
  for (uint32_t attempt = 0; attempt < span; ++attempt) {
    const auto port = static_cast<uint16_t>(min_ + (start + attempt) % span);
    net::SocketAddress address = local;
    address.set_port(port);
    net::UniqueFd fd(socket(address.get()->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return std::nullopt;
    evutil_make_listen_socket_reuseable(fd.get());
    if (::bind(fd.get(), address.get(), address.length()) == 0 && listen(fd.get(), limits::kPassiveListenBacklog) == 0) {
      return BoundPort{fd.release(), port};
    }
  }
  return std::nullopt;
}

}  // namespace ftpsgate::data
