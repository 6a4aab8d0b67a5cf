#include <doctest/doctest.h>

#include "policy/shared_port_assignment.h"

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
