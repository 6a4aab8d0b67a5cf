// Abortive close: SO_LINGER {1, 0} makes the coming close() send RST instead of FIN, so
// the peer sees the stream was cut. A FIN would tell a backend that a truncated upload
// was complete, and it would keep the file with 226.
#pragma once

#include <sys/socket.h>

namespace ftpsgate::net {

inline void reset_on_close(int fd) {
  if (fd < 0) return;
  const linger abort_close{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof(abort_close));
}

}  // namespace ftpsgate::net
