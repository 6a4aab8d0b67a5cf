// The keepers of one `agent.gateways[]` entry (docs/agent-design.md 1.4). An IP address gets
// one LinkKeeper. A DNS name is resolved now and every kGatewayReresolve, and each of its
// answers (at most kMaxGatewayAnswers) is a gateway of its own: its own keeper, pool and
// metric series ("ip:port"), all checked against the same server_name, so every replica
// behind the name gets its idle links. An answer that goes away stops dialing and leaves
// once its pipes are done (one that comes back before gets the same keeper again); a failed
// resolution keeps the keepers it has.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent/agent_context.h"
#include "agent/link_keeper.h"
#include "net/timer.h"
#include "tunnel/backoff.h"

struct evdns_getaddrinfo_request;
struct evutil_addrinfo;

namespace ftpsgate::agent {

inline constexpr std::size_t kMaxGatewayAnswers = 16;
inline constexpr std::chrono::seconds kGatewayReresolve{30};

// The addresses ("ip" as SocketAddress::ip() spells it) a name's keepers should dial: the
// answers in order, each once, at most kMaxGatewayAnswers. Pure.
std::vector<std::string> gateway_answers(const std::vector<std::string>& resolved);

class GatewayGroup {
 public:
  // `gateway` outlives the group (it lives in the AgentConfig). `reresolve`: tests shorten it.
  GatewayGroup(AgentContext& context, const AgentGatewayConfig& gateway,
               std::chrono::milliseconds reresolve = kGatewayReresolve);
  ~GatewayGroup();
  GatewayGroup(const GatewayGroup&) = delete;
  GatewayGroup& operator=(const GatewayGroup&) = delete;

  void start();
  void reconfigured();
  // Drain: no more dials or resolutions; pipes go on.
  void stop();
  void cut();

  // /readyz: at least one address, and every address has an idle link.
  bool ready() const;
  std::size_t piped() const;
  std::size_t total() const;  // links of every keeper, leaving ones included
  // The addresses dialed now ("ip:port" labels); for logs and tests.
  std::vector<std::string> labels() const;

 private:
  // A keeper and the gateway entry it dials (an answer's address, the name's server_name).
  struct Member {
    AgentGatewayConfig gateway;
    std::unique_ptr<LinkKeeper> keeper;  // after `gateway`: it keeps a reference to it
  };
  static void on_resolved(int result, evutil_addrinfo* answers, void* self);
  void resolve();
  void apply(const std::vector<std::string>& answers);
  void resolve_failed(const std::string& error);
  void prune_leaving();
  // A keeper for one address (the literal, or an answer of the name), its series at 0.
  void add_member(const std::string& ip);

  AgentContext& context_;
  const AgentGatewayConfig& gateway_;
  const bool by_name_;
  const std::chrono::milliseconds reresolve_;
  bool stopping_ = false;
  std::map<std::string, std::unique_ptr<Member>> members_;  // by ip
  std::vector<std::unique_ptr<Member>> leaving_;            // stopped, pipes still running
  tunnel::Backoff backoff_;                                 // resolutions while no address is known
  evdns_getaddrinfo_request* resolving_ = nullptr;
  net::Timer timer_;
};

}  // namespace ftpsgate::agent
