#include <doctest/doctest.h>

#include "policy/shared_port_assignment.h"

#include <iterator>
#include <map>

using ftpsgate::policy::SharedPortAssignment;
using Protection = SharedPortAssignment::Protection;

namespace {
SharedPortAssignment::Request protected_request(uint64_t id, const std::string& address, const std::string& token) {
  return {id, address, Protection::kProtected, token};
}
SharedPortAssignment::Request clear_request(uint64_t id, const std::string& address) {
  return {id, address, Protection::kClear, ""};
}
}  // namespace

TEST_CASE("protected transfers share one port, even from one address, and are found by token") {
  SharedPortAssignment table({30000});
  for (uint64_t id = 1; id <= 100; ++id) {
    CHECK(table.reserve(protected_request(id, "127.0.0.1", "token-" + std::to_string(id))) == 30000);
  }
  std::vector<SharedPortAssignment::Grant> granted;
  CHECK(table.claim_protected("token-42", granted) == 42u);
  CHECK_FALSE(table.claim_protected("token-42", granted).has_value());  // consumed
  CHECK_FALSE(table.claim_protected("unknown", granted).has_value());
  CHECK(table.reservations() == 99);
  CHECK(granted.empty());
}

TEST_CASE("a clear reservation is exclusive per address and port; the next request waits its turn") {
  SharedPortAssignment table({30000});
  CHECK(table.reserve(clear_request(1, "10.0.0.1")) == 30000);
  CHECK(table.clear_pending("10.0.0.1", 30000));
  CHECK_FALSE(table.clear_pending("10.0.0.2", 30000));
  // Another address is not affected.
  CHECK(table.reserve(clear_request(2, "10.0.0.2")) == 30000);
  // Same address: neither clear nor protected may join while the clear one waits.
  CHECK_FALSE(table.reserve(clear_request(3, "10.0.0.1")).has_value());
  CHECK_FALSE(table.reserve(protected_request(4, "10.0.0.1", "t4")).has_value());
  CHECK(table.queued() == 2);

  std::vector<SharedPortAssignment::Grant> granted;
  CHECK_FALSE(table.claim_clear("10.0.0.1", 30001, granted).has_value());  // wrong port
  CHECK(table.claim_clear("10.0.0.1", 30000, granted) == 1u);
  // Request 3 (clear) gets the port; 4 still waits behind it (first come, first served).
  REQUIRE(granted.size() == 1);
  CHECK(granted[0].id == 3);
  CHECK(granted[0].port == 30000);
  granted.clear();
  CHECK(table.claim_clear("10.0.0.1", 30000, granted) == 3u);
  REQUIRE(granted.size() == 1);
  CHECK(granted[0].id == 4);
  CHECK(table.queued() == 0);
}

TEST_CASE("a clear request does not join protected ones of its address, but takes another port of the range") {
  SharedPortAssignment table({30000, 30001});
  const auto first = table.reserve(protected_request(1, "10.0.0.1", "t1"));
  REQUIRE(first.has_value());
  const auto clear = table.reserve(clear_request(2, "10.0.0.1"));
  REQUIRE(clear.has_value());
  CHECK(*clear != *first);
  // Both ports now hold something of 10.0.0.1: another clear request waits.
  CHECK_FALSE(table.reserve(clear_request(3, "10.0.0.1")).has_value());
  // Giving up the protected one frees its port for the waiting clear request.
  auto granted = table.release(1);
  REQUIRE(granted.size() == 1);
  CHECK(granted[0].id == 3);
  CHECK(granted[0].port == *first);
}

TEST_CASE("releasing a queued request lets the ones behind it through") {
  SharedPortAssignment table({30000});
  CHECK(table.reserve(clear_request(1, "10.0.0.1")) == 30000);
  CHECK_FALSE(table.reserve(clear_request(2, "10.0.0.1")).has_value());
  CHECK_FALSE(table.reserve(protected_request(3, "10.0.0.1", "t3")).has_value());
  CHECK(table.release(2).empty());  // 1 still holds the port
  CHECK(table.queued() == 1);
  auto granted = table.release(1);
  REQUIRE(granted.size() == 1);
  CHECK(granted[0].id == 3);
  CHECK(table.release(99).empty());
  std::vector<SharedPortAssignment::Grant> more;
  CHECK(table.claim_protected("t3", more) == 3u);
  CHECK(table.reservations() == 0);
  CHECK(table.queued() == 0);
}

TEST_CASE("protected requests spread over a range round robin") {
  SharedPortAssignment table({30000, 30001, 30002});
  CHECK(table.reserve(protected_request(1, "a", "1")) == 30000);
  CHECK(table.reserve(protected_request(2, "a", "2")) == 30001);
  CHECK(table.reserve(protected_request(3, "b", "3")) == 30002);
  CHECK(table.reserve(protected_request(4, "b", "4")) == 30000);
}

TEST_CASE("no ports: every request waits") {
  SharedPortAssignment table({});
  CHECK_FALSE(table.reserve(protected_request(1, "a", "1")).has_value());
}

TEST_CASE("random reserve/release/claim sequences keep the exclusivity rules and lose nobody") {
  // A model of what is placed, checked against the table after every step.
  struct Live {
    std::string address;
    Protection protection;
    std::string token;
    std::optional<uint16_t> port;  // nullopt: queued
  };
  const std::vector<uint16_t> ports = {30000, 30001};
  const std::vector<std::string> addresses = {"a", "b", "c"};
  uint32_t seed = 12345;
  auto next = [&seed](uint32_t bound) {
    seed = seed * 1664525u + 1013904223u;
    return (seed >> 8) % bound;
  };
  SharedPortAssignment table(ports);
  std::map<uint64_t, Live> live;
  uint64_t next_id = 1;
  auto apply = [&live](const std::vector<SharedPortAssignment::Grant>& granted) {
    for (const auto& grant : granted) {
      REQUIRE(live.count(grant.id) == 1);
      CHECK_FALSE(live[grant.id].port.has_value());
      live[grant.id].port = grant.port;
    }
  };
  for (int step = 0; step < 5000; ++step) {
    const uint32_t op = next(4);
    if (op == 0 || live.empty()) {
      const uint64_t id = next_id++;
      const auto& address = addresses[next(addresses.size())];
      const Protection protection = next(3) == 0 ? Protection::kClear : Protection::kProtected;
      const std::string token = "t" + std::to_string(id);
      live[id] = {address, protection, token, table.reserve({id, address, protection, token})};
    } else {
      auto it = live.begin();
      std::advance(it, next(static_cast<uint32_t>(live.size())));
      const uint64_t id = it->first;
      const Live entry = it->second;
      std::vector<SharedPortAssignment::Grant> granted;
      if (op == 1 || !entry.port) {
        live.erase(it);
        apply(table.release(id));
      } else if (entry.protection == Protection::kClear) {
        live.erase(it);
        CHECK(table.claim_clear(entry.address, *entry.port, granted) == id);
        apply(granted);
      } else {
        live.erase(it);
        CHECK(table.claim_protected(entry.token, granted) == id);
        apply(granted);
      }
    }
    // Invariants: a clear reservation is alone on its (address, port), and the table's
    // counts match the model.
    std::size_t placed = 0, queued = 0;
    std::map<std::pair<std::string, uint16_t>, std::pair<int, int>> use;  // clear, protected
    for (const auto& [id, entry] : live) {
      if (!entry.port) {
        ++queued;
        continue;
      }
      ++placed;
      auto& u = use[{entry.address, *entry.port}];
      (entry.protection == Protection::kClear ? u.first : u.second) += 1;
    }
    for (const auto& [key, u] : use) {
      CHECK(u.first <= 1);
      if (u.first == 1) CHECK(u.second == 0);
      CHECK(table.clear_pending(key.first, key.second) == (u.first == 1));
    }
    REQUIRE(table.reservations() == placed);
    REQUIRE(table.queued() == queued);
  }
  // Drain: releasing everything placed lets every queued request through, then nothing is left.
  for (int round = 0; round < 100 && !live.empty(); ++round) {
    std::vector<uint64_t> placed_ids;
    for (const auto& [id, entry] : live) {
      if (entry.port) placed_ids.push_back(id);
    }
    for (uint64_t id : placed_ids) {
      live.erase(id);
      apply(table.release(id));
    }
  }
  CHECK(live.empty());
  CHECK(table.reservations() == 0);
  CHECK(table.queued() == 0);
}
