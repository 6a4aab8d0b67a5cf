#include "policy/shared_port_assignment.h"

#include <algorithm>

namespace ftpsgate::policy {

SharedPortAssignment::SharedPortAssignment(std::vector<uint16_t> ports) : ports_(std::move(ports)) {}

std::optional<uint16_t> SharedPortAssignment::reserve(const Request& request) {
  AddressState& state = addresses_[request.address];
  // First come, first served: nobody overtakes a request of the same address that waits.
  if (state.waiting.empty()) {
    if (auto port = place(request)) return port;
  }
  state.waiting.push_back(request);
  ++queued_count_;
  return std::nullopt;
}

std::optional<uint16_t> SharedPortAssignment::place(const Request& request) {
  if (ports_.empty()) return std::nullopt;
  AddressState& state = addresses_[request.address];
  const bool clear = request.protection == Protection::kClear;
  for (std::size_t i = 0; i < ports_.size(); ++i) {
    const uint16_t port = ports_[(next_ + i) % ports_.size()];
    auto it = state.ports.find(port);
    const bool busy = it != state.ports.end() && (it->second.clear.has_value() || (clear && it->second.protected_count > 0));
    if (busy) continue;
    next_ = (next_ + i + 1) % ports_.size();
    PortUse& use = state.ports[port];
    if (clear) {
      use.clear = request.id;
    } else {
      ++use.protected_count;
      by_token_[request.token] = request.id;
    }
    placed_[request.id] = Placed{request, port};
    return port;
  }
  return std::nullopt;
}

void SharedPortAssignment::unplace(uint64_t id) {
  auto it = placed_.find(id);
  if (it == placed_.end()) return;
  const Placed& placed = it->second;
  auto address = addresses_.find(placed.request.address);
  if (address != addresses_.end()) {
    auto use = address->second.ports.find(placed.port);
    if (use != address->second.ports.end()) {
      if (placed.request.protection == Protection::kClear) {
        use->second.clear.reset();
      } else if (use->second.protected_count > 0) {
        --use->second.protected_count;
      }
      if (!use->second.clear && use->second.protected_count == 0) address->second.ports.erase(use);
    }
  }
  if (placed.request.protection == Protection::kProtected) {
    auto token = by_token_.find(placed.request.token);
    if (token != by_token_.end() && token->second == id) by_token_.erase(token);
  }
  placed_.erase(it);
}

void SharedPortAssignment::admit_waiting(const std::string& address, std::vector<Grant>& granted) {
  auto it = addresses_.find(address);
  if (it == addresses_.end()) return;
  auto& waiting = it->second.waiting;
  while (!waiting.empty()) {
    auto port = place(waiting.front());
    if (!port) break;
    granted.push_back({waiting.front().id, *port});
    waiting.pop_front();
    --queued_count_;
  }
  if (waiting.empty() && it->second.ports.empty()) addresses_.erase(it);
}

std::vector<SharedPortAssignment::Grant> SharedPortAssignment::release(uint64_t id) {
  std::vector<Grant> granted;
  auto it = placed_.find(id);
  if (it != placed_.end()) {
    const std::string address = it->second.request.address;
    unplace(id);
    admit_waiting(address, granted);
    return granted;
  }
  for (auto& [address, state] : addresses_) {
    auto queued = std::find_if(state.waiting.begin(), state.waiting.end(),
                               [id](const Request& request) { return request.id == id; });
    if (queued == state.waiting.end()) continue;
    state.waiting.erase(queued);
    --queued_count_;
    // The head may have been the one holding the others back.
    const std::string key = address;
    admit_waiting(key, granted);
    break;
  }
  return granted;
}

std::optional<uint64_t> SharedPortAssignment::claim_clear(const std::string& address, uint16_t port,
                                                         std::vector<Grant>& granted) {
  auto it = addresses_.find(address);
  if (it == addresses_.end()) return std::nullopt;
  auto use = it->second.ports.find(port);
  if (use == it->second.ports.end() || !use->second.clear) return std::nullopt;
  const uint64_t id = *use->second.clear;
  unplace(id);
  admit_waiting(address, granted);
  return id;
}

std::optional<uint64_t> SharedPortAssignment::claim_protected(const std::string& token, std::vector<Grant>& granted) {
  auto it = by_token_.find(token);
  if (it == by_token_.end()) return std::nullopt;
  const uint64_t id = it->second;
  const std::string address = placed_.at(id).request.address;
  unplace(id);
  admit_waiting(address, granted);
  return id;
}

bool SharedPortAssignment::clear_pending(const std::string& address, uint16_t port) const {
  auto it = addresses_.find(address);
  if (it == addresses_.end()) return false;
  auto use = it->second.ports.find(port);
  return use != it->second.ports.end() && use->second.clear.has_value();
}

}  // namespace ftpsgate::policy
