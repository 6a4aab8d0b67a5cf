// passive.shared_port (issue 6): every PASV/EPSV names the same port(s), and each data
// connection arriving there is matched to its control session, which may live on any
// worker. This is the thread-safe registry of pending transfers (the rules are in
// policy::SharedPortAssignment) and the way connections and late port grants reach
// their sessions.
#pragma once

#include <event2/util.h>
#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/socket_address.h"
#include "policy/shared_port_assignment.h"
#include "tls/session_binding.h"

namespace ftpsgate::data {

// A data connection accepted on a shared port, on its way to its session. Owns the
// socket and, for a protected one, the established TLS state.
struct SharedDataConnection {
  SharedDataConnection(evutil_socket_t socket, net::SocketAddress client_address, uint16_t local_port)
      : fd(socket), client(std::move(client_address)), port(local_port) {}
  ~SharedDataConnection();
  SharedDataConnection(const SharedDataConnection&) = delete;
  SharedDataConnection& operator=(const SharedDataConnection&) = delete;

  evutil_socket_t fd = -1;
  SSL* ssl = nullptr;       // protected: handshake done, session resumed
  net::SocketAddress client;  // after PROXY protocol
  uint16_t port = 0;          // the shared port it arrived on
  unsigned handshake_worker = 0;
  // The connection's place among the handshakes in flight (limits.max_sessions and
  // max_sessions_per_ip); given back when the handshake ends, or with the connection.
  std::shared_ptr<void> handshake_slot;
  // What the SSL's context and its callbacks (SNI, ticket keys) belong to: kept alive as
  // long as the SSL, whatever reloads happen meanwhile.
  std::shared_ptr<const void> tls_owner;
};

// Where a reservation's session lives.
struct ShareOwner {
  unsigned worker = 0;
  uint64_t session = 0;
};

// Implemented by the gateway, which knows the workers. Both calls may come from any
// thread; the session runs them on its own loop (or drops them if it is gone).
class SharedPortRouter {
 public:
  virtual void port_granted(const ShareOwner& owner, uint64_t reservation, uint16_t port) = 0;
  virtual void deliver(const ShareOwner& owner, uint64_t reservation,
                       std::unique_ptr<SharedDataConnection> connection) = 0;

 protected:
  ~SharedPortRouter() = default;
};

class SharedPassivePort {
 public:
  SharedPassivePort(std::vector<uint16_t> ports, SharedPortRouter& router);

  const std::vector<uint16_t>& ports() const { return ports_; }
  uint64_t new_reservation_id() { return next_id_.fetch_add(1) + 1; }
  // The port for a new pending transfer, or nullopt: it waits, and port_granted() follows.
  std::optional<uint16_t> reserve(uint64_t id, const ShareOwner& owner, const std::string& address, bool protect,
                                  const tls::BindingToken& token);
  void release(uint64_t id);

  // The acceptor's side. A clear connection is routed when a clear transfer of its address
  // waits on its port; otherwise the connection is taken for TLS.
  bool clear_pending(const std::string& address, uint16_t port);
  bool route_clear(std::unique_ptr<SharedDataConnection>& connection);
  // After the handshake: routed by the resumed session's binding token; false when no
  // pending transfer has it (the connection stays with the caller).
  bool route_protected(const tls::BindingToken& token, std::unique_ptr<SharedDataConnection>& connection);

 private:
  using Claim = std::function<std::optional<uint64_t>(std::vector<policy::SharedPortAssignment::Grant>&)>;
  bool route(std::unique_ptr<SharedDataConnection>& connection, const Claim& claim);
  void announce(const std::vector<policy::SharedPortAssignment::Grant>& granted);

  std::vector<uint16_t> ports_;
  SharedPortRouter& router_;
  std::atomic<uint64_t> next_id_{0};
  std::mutex mutex_;
  policy::SharedPortAssignment assignment_;
  std::unordered_map<uint64_t, ShareOwner> owners_;
};

}  // namespace ftpsgate::data
