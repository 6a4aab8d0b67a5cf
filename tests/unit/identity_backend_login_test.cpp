#include <doctest/doctest.h>

#include "identity/backend_login.h"

using ftpsgate::identity::BackendLoginRule;
using ftpsgate::identity::Identity;
using ftpsgate::identity::map_backend_login;
using ftpsgate::identity::Secret;
using ftpsgate::identity::UserBackendFields;

namespace {

BackendLoginRule service(std::string user, std::string password) {
  BackendLoginRule rule;
  rule.backend_user = std::move(user);
  rule.backend_password = Secret(std::move(password));
  return rule;
}

}  // namespace

TEST_CASE("no rule and no entry: passthrough under the gateway user's name") {
  const auto login = map_backend_login({"alice", {}, "local"}, "default", std::nullopt, {});
  CHECK(login.user == "alice");
  CHECK(login.backend.empty());
  CHECK_FALSE(login.service_account());
}

TEST_CASE("rules match by user, group or class; the first match wins") {
  BackendLoginRule finance = service("fin-svc", "p1");
  finance.groups = {"finance"};
  finance.backend = "finance-pool";
  BackendLoginRule by_user = service("bob-svc", "p2");
  by_user.users = {"bob"};
  BackendLoginRule by_class = service("class-svc", "p3");
  by_class.classes = {"partners"};
  const std::vector<BackendLoginRule> rules = {finance, by_user, by_class};

  auto alice = map_backend_login({"alice", {"staff", "finance"}, "ldap"}, "default", std::nullopt, rules);
  CHECK(alice.user == "fin-svc");
  CHECK(alice.backend == "finance-pool");
  REQUIRE(alice.service_account());
  CHECK(alice.password->reveal() == "p1");
  CHECK(map_backend_login({"bob", {}, "local"}, "default", std::nullopt, rules).user == "bob-svc");
  CHECK(map_backend_login({"carol", {}, "local"}, "partners", std::nullopt, rules).user == "class-svc");
  CHECK_FALSE(map_backend_login({"dave", {"ops"}, "local"}, "default", std::nullopt, rules).service_account());
}

TEST_CASE("a users-file entry wins, and rules fill in what it leaves unset") {
  BackendLoginRule route = service("group-svc", "gp");
  route.groups = {"finance"};
  route.backend = "finance-pool";
  const Secret own_password("own");
  const UserBackendFields own{"", "alice-svc", &own_password};
  const auto login = map_backend_login({"alice", {"finance"}, "local"}, "default", own, {route});
  CHECK(login.user == "alice-svc");
  CHECK(login.password->reveal() == "own");
  CHECK(login.backend == "finance-pool");  // routing from the group rule

  const UserBackendFields routed{"own-pool", "", nullptr};
  const auto second = map_backend_login({"alice", {"finance"}, "local"}, "default", routed, {route});
  CHECK(second.backend == "own-pool");
  CHECK(second.user == "group-svc");
}

TEST_CASE("a rule with no lists applies to everyone") {
  const auto login = map_backend_login({"x", {}, "local"}, "any", std::nullopt, {service("svc", "pw")});
  CHECK(login.user == "svc");
}
