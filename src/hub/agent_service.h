// The gateway's side of inside-out agents as main.cpp sees it (issue 17): the hub, its
// listener and the one net::Dialer every backend connection goes through. Without an
// `agents` section it is only the direct dialer (agent targets then fail: "agent NAME is
// not connected", which --check prevents anyway).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ftpsgate/config.h"
#include "hub/agent_dialer.h"
#include "hub/agent_hub.h"
#include "hub/agent_listener.h"
#include "hub/gateway_dialer.h"
#include "log/logger.h"
#include "metrics/metrics.h"
#include "net/direct_dialer.h"

namespace ftpsgate::hub {

class AgentService {
 public:
  // Binds agents.address when `config.agents` is set; nullptr with `error` on failure.
  // Main loop; `logger` and `metrics` outlive it.
  static std::unique_ptr<AgentService> create(event_base* base, const Config& config, log::Logger& logger,
                                              metrics::Metrics& metrics, std::string& error);
  ~AgentService();
  AgentService(const AgentService&) = delete;
  AgentService& operator=(const AgentService&) = delete;

  net::Dialer& dialer() { return gateway_dialer_; }
  // An agent's first link came (up) or its last one went (down); main loop.
  void on_transition(AgentHub::Transition hook);
  // SIGHUP: adding or removing the section, or moving its address, needs a restart.
  std::optional<std::string> reload_conflict(const Config& next) const;
  // SIGHUP, after reload_conflict said nothing: certificates, peers, bounds.
  bool reload(const Config& next, std::vector<std::string>& errors);
  // At exit, once sessions are gone: idle links get ERR shutting_down.
  void shutdown();

 private:
  AgentService(event_base* base, log::Logger& logger, metrics::Metrics& metrics, bool with_agents);

  net::DirectDialer direct_;
  std::unique_ptr<AgentHub> hub_;
  std::unique_ptr<AgentDialer> agent_dialer_;
  GatewayDialer gateway_dialer_;
  std::unique_ptr<AgentListener> listener_;
};

}  // namespace ftpsgate::hub
