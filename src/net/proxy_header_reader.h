// Reads the PROXY protocol header that a load balancer puts in front of a connection,
// without consuming a byte beyond it: what follows (a TLS ClientHello, FTP commands,
// data) belongs to the session that adopts the socket afterwards.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "net/libevent_handles.h"
#include "net/socket_address.h"
#include "net/timer.h"
#include "net/unique_fd.h"
#include "proxy/proxy_header.h"

namespace ftpsgate::net {

class ProxyHeaderReader {
 public:
  struct Result {
    bool ok = false;
    std::string error;  // when !ok (the socket is closed then)
    // The addresses the header carries, or the socket's own when it carries none (LOCAL).
    SocketAddress client;
    SocketAddress destination;  // what the client connected to (the balancer's address)
  };
  // Called once; the socket now belongs to the callee when ok. The reader may be
  // destroyed from inside the callback.
  using Done = std::function<void(UniqueFd fd, const Result& result)>;

  // The socket closes with the reader unless it was handed over.
  ProxyHeaderReader(event_base* base, UniqueFd fd, SocketAddress peer, SocketAddress local,
                    std::chrono::milliseconds timeout, Done done);
  ~ProxyHeaderReader();
  ProxyHeaderReader(const ProxyHeaderReader&) = delete;
  ProxyHeaderReader& operator=(const ProxyHeaderReader&) = delete;

 private:
  static void on_readable(evutil_socket_t fd, short what, void* self);
  void fail(std::string error);
  void complete(const proxy::ProxyHeader& header);

  UniqueFd fd_;
  SocketAddress peer_;
  SocketAddress local_;
  Done done_;
  EventPtr event_;
  Timer timeout_;
};

}  // namespace ftpsgate::net
