#include "policy/backend_balance.h"

#include <algorithm>

namespace ftpsgate::policy {

uint64_t stable_hash(std::string_view text) {
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

std::vector<std::size_t> balance_order(const std::vector<ServerSnapshot>& servers, const BalanceInput& input) {
  std::vector<std::size_t> order;
  const std::size_t n = servers.size();
  if (n == 0) return order;

  std::size_t first = 0;
  switch (input.policy) {
    case BalancePolicy::kRoundRobin:
      first = input.round_robin_counter % n;
      break;
    case BalancePolicy::kSourceHash:
      first = static_cast<std::size_t>(stable_hash(input.client_ip) % n);
      break;
    case BalancePolicy::kPerUser:
      first = static_cast<std::size_t>(stable_hash(input.user) % n);
      break;
    case BalancePolicy::kLeastConn:
      // Ties go round robin, so equal servers share new sessions.
      first = input.round_robin_counter % n;
      break;
  }
  // Hash policies keep their position over the whole list (not just the healthy part), so
  // a server going down moves only its own clients.
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t index = (first + i) % n;
    if (servers[index].health != ServerHealth::kDown) order.push_back(index);
  }
  if (input.policy == BalancePolicy::kLeastConn) {
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return servers[a].active_sessions < servers[b].active_sessions;
    });
  }
  // Known-good before unchecked; stable, so the policy's order holds within each group.
  std::stable_partition(order.begin(), order.end(),
                        [&](std::size_t index) { return servers[index].health == ServerHealth::kUp; });
  return order;
}

}  // namespace ftpsgate::policy
