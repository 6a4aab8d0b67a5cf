#include "data/shared_passive_port.h"

#include <unistd.h>

#include <tuple>

namespace ftpsgate::data {

namespace {
std::string token_key(const tls::BindingToken& token) {
  return std::string(reinterpret_cast<const char*>(token.data()), token.size());
}
}  // namespace

SharedDataConnection::~SharedDataConnection() {
  if (ssl != nullptr) {
    SSL_shutdown(ssl);  // refused after the handshake: say goodbye properly (non-blocking)
    SSL_free(ssl);
  }
  if (fd >= 0) close(fd);
}

SharedPassivePort::SharedPassivePort(std::vector<uint16_t> ports, SharedPortRouter& router)
    : ports_(ports), router_(router), assignment_(std::move(ports)) {}

std::optional<uint16_t> SharedPassivePort::reserve(uint64_t id, const ShareOwner& owner, const std::string& address,
                                                   bool protect, const tls::BindingToken& token) {
  using Protection = policy::SharedPortAssignment::Protection;
  std::lock_guard lock(mutex_);
  owners_[id] = owner;
  return assignment_.reserve({id, address, protect ? Protection::kProtected : Protection::kClear,
                              protect ? token_key(token) : std::string()});
}

void SharedPassivePort::release(uint64_t id) {
  std::vector<policy::SharedPortAssignment::Grant> granted;
  {
    std::lock_guard lock(mutex_);
    if (owners_.erase(id) == 0) return;
    granted = assignment_.release(id);
  }
  announce(granted);
}

void SharedPassivePort::announce(const std::vector<policy::SharedPortAssignment::Grant>& granted) {
  std::vector<std::tuple<ShareOwner, uint64_t, uint16_t>> calls;
  {
    std::lock_guard lock(mutex_);
    for (const auto& grant : granted) {
      auto it = owners_.find(grant.id);
      if (it != owners_.end()) calls.emplace_back(it->second, grant.id, grant.port);
    }
  }
  for (const auto& [owner, id, port] : calls) router_.port_granted(owner, id, port);
}

bool SharedPassivePort::clear_pending(const std::string& address, uint16_t port) {
  std::lock_guard lock(mutex_);
  return assignment_.clear_pending(address, port);
}

bool SharedPassivePort::route_clear(std::unique_ptr<SharedDataConnection>& connection) {
  const std::string address = connection->client.ip();
  const uint16_t port = connection->port;
  return route(connection, [&](std::vector<policy::SharedPortAssignment::Grant>& granted) {
    return assignment_.claim_clear(address, port, granted);
  });
}

bool SharedPassivePort::route_protected(const tls::BindingToken& token,
                                        std::unique_ptr<SharedDataConnection>& connection) {
  const std::string key = token_key(token);
  return route(connection, [&](std::vector<policy::SharedPortAssignment::Grant>& granted) {
    return assignment_.claim_protected(key, granted);
  });
}

bool SharedPassivePort::route(std::unique_ptr<SharedDataConnection>& connection, const Claim& claim) {
  std::vector<policy::SharedPortAssignment::Grant> granted;
  std::optional<uint64_t> id;
  ShareOwner owner;
  {
    std::lock_guard lock(mutex_);
    id = claim(granted);
    if (id) {
      owner = owners_[*id];
      owners_.erase(*id);
    }
  }
  announce(granted);
  if (!id) return false;
  router_.deliver(owner, *id, std::move(connection));
  return true;
}

}  // namespace ftpsgate::data
