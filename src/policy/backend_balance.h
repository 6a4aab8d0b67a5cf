// Which backend server a new session tries first, and in what order it fails over:
// pure selection over a snapshot of the pool, so every balance policy is unit-testable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "ftpsgate/config.h"

namespace ftpsgate::policy {

enum class ServerHealth { kUnknown, kUp, kDown };

struct ServerSnapshot {
  ServerHealth health = ServerHealth::kUnknown;
  uint32_t active_sessions = 0;
};

struct BalanceInput {
  BalancePolicy policy = BalancePolicy::kRoundRobin;
  std::size_t round_robin_counter = 0;  // advanced by the caller once per pick
  std::string_view client_ip;           // source_hash
  std::string_view user;                // per_user
};

// Indexes of the servers to try, best first. Servers known to be down are left out, so an
// empty result means "none healthy" (421). Servers not yet checked count as healthy but
// are tried after the ones known to be up.
std::vector<std::size_t> balance_order(const std::vector<ServerSnapshot>& servers, const BalanceInput& input);

// Stable 64-bit FNV-1a, so source_hash and per_user pick the same server across restarts
// and replicas (std::hash gives no such promise).
uint64_t stable_hash(std::string_view text);

}  // namespace ftpsgate::policy
