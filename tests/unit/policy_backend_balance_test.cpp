#include <doctest/doctest.h>

#include <set>
#include <string>

#include "policy/backend_balance.h"

using ftpsgate::BalancePolicy;
using ftpsgate::policy::balance_order;
using ftpsgate::policy::BalanceInput;
using ftpsgate::policy::ServerHealth;
using ftpsgate::policy::ServerSnapshot;
using Order = std::vector<std::size_t>;

namespace {
std::vector<ServerSnapshot> healthy(std::size_t n) { return std::vector<ServerSnapshot>(n, {ServerHealth::kUp, 0}); }
}  // namespace

TEST_CASE("round robin starts one further each pick and fails over through the rest") {
  const auto servers = healthy(3);
  CHECK(balance_order(servers, {BalancePolicy::kRoundRobin, 0, "", ""}) == Order{0, 1, 2});
  CHECK(balance_order(servers, {BalancePolicy::kRoundRobin, 1, "", ""}) == Order{1, 2, 0});
  CHECK(balance_order(servers, {BalancePolicy::kRoundRobin, 5, "", ""}) == Order{2, 0, 1});
}

TEST_CASE("servers known to be down are never tried; none healthy gives an empty order") {
  auto servers = healthy(3);
  servers[1].health = ServerHealth::kDown;
  CHECK(balance_order(servers, {BalancePolicy::kRoundRobin, 1, "", ""}) == Order{2, 0});
  for (auto& s : servers) s.health = ServerHealth::kDown;
  CHECK(balance_order(servers, {BalancePolicy::kRoundRobin, 0, "", ""}).empty());
  CHECK(balance_order({}, {BalancePolicy::kRoundRobin, 0, "", ""}).empty());
}

TEST_CASE("unchecked servers are tried after the ones known to be up") {
  std::vector<ServerSnapshot> servers{{ServerHealth::kUnknown, 0}, {ServerHealth::kUp, 0}, {ServerHealth::kUnknown, 0}};
  CHECK(balance_order(servers, {BalancePolicy::kRoundRobin, 0, "", ""}) == Order{1, 0, 2});
}

TEST_CASE("least_conn picks the server with the fewest sessions, ties by round robin") {
  std::vector<ServerSnapshot> servers{{ServerHealth::kUp, 5}, {ServerHealth::kUp, 2}, {ServerHealth::kUp, 9}};
  CHECK(balance_order(servers, {BalancePolicy::kLeastConn, 0, "", ""}) == Order{1, 0, 2});
  servers = {{ServerHealth::kUp, 1}, {ServerHealth::kUp, 1}};
  CHECK(balance_order(servers, {BalancePolicy::kLeastConn, 0, "", ""}).front() == 0);
  CHECK(balance_order(servers, {BalancePolicy::kLeastConn, 1, "", ""}).front() == 1);
}

TEST_CASE("source_hash sends one address to one server whatever the counter, and spreads addresses") {
  const auto servers = healthy(4);
  const auto a = balance_order(servers, {BalancePolicy::kSourceHash, 0, "10.1.2.3", ""});
  CHECK(balance_order(servers, {BalancePolicy::kSourceHash, 7, "10.1.2.3", ""}) == a);
  std::set<std::size_t> firsts;
  for (int i = 0; i < 64; ++i) {
    const std::string ip = "10.0.0." + std::to_string(i);
    firsts.insert(balance_order(servers, {BalancePolicy::kSourceHash, 0, ip, ""}).front());
  }
  CHECK(firsts.size() == 4);
}

TEST_CASE("a server going down moves only its own clients under source_hash") {
  auto servers = healthy(3);
  const auto before = balance_order(servers, {BalancePolicy::kSourceHash, 0, "192.0.2.7", ""});
  servers[(before.front() + 1) % 3].health = ServerHealth::kDown;
  CHECK(balance_order(servers, {BalancePolicy::kSourceHash, 0, "192.0.2.7", ""}).front() == before.front());
  servers[before.front()].health = ServerHealth::kDown;
  const auto after = balance_order(servers, {BalancePolicy::kSourceHash, 0, "192.0.2.7", ""});
  REQUIRE(after.size() == 1);
  CHECK(after.front() != before.front());
}

TEST_CASE("per_user sends one user to one server") {
  const auto servers = healthy(3);
  const auto alice = balance_order(servers, {BalancePolicy::kPerUser, 0, "10.0.0.1", "alice"});
  CHECK(balance_order(servers, {BalancePolicy::kPerUser, 9, "10.0.0.2", "alice"}) == alice);
  CHECK(ftpsgate::policy::stable_hash("alice") == ftpsgate::policy::stable_hash("alice"));
  CHECK(ftpsgate::policy::stable_hash("alice") != ftpsgate::policy::stable_hash("bob"));
}
