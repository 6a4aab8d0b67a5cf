#include "hub/agent_service.h"

namespace ftpsgate::hub {

AgentService::AgentService(event_base* base, log::Logger& logger, metrics::Metrics& metrics, bool with_agents)
    : hub_(with_agents ? std::make_unique<AgentHub>(base, logger, metrics) : nullptr),
      agent_dialer_(with_agents ? std::make_unique<AgentDialer>(*hub_, logger, metrics) : nullptr),
      gateway_dialer_(direct_, agent_dialer_.get()) {}

AgentService::~AgentService() { shutdown(); }

std::unique_ptr<AgentService> AgentService::create(event_base* base, const Config& config, log::Logger& logger,
                                                   metrics::Metrics& metrics, std::string& error) {
  std::unique_ptr<AgentService> service(new AgentService(base, logger, metrics, config.agents.has_value()));
  if (!config.agents) return service;
  service->hub_->configure(*config.agents);
  service->listener_ = AgentListener::create(base, *config.agents, *service->hub_, logger, metrics, error);
  if (!service->listener_) return nullptr;
  return service;
}

void AgentService::on_transition(AgentHub::Transition hook) {
  if (hub_) hub_->on_transition(std::move(hook));
}

std::optional<std::string> AgentService::reload_conflict(const Config& next) const {
  if (next.agents.has_value() != (hub_ != nullptr)) return "the agents section was added or removed";
  if (listener_) {
    if (auto conflict = listener_->reload_conflict(*next.agents)) return conflict;
  }
  return std::nullopt;
}

bool AgentService::reload(const Config& next, std::vector<std::string>& errors) {
  if (!listener_ || !next.agents) return true;
  if (!listener_->reload(*next.agents, errors)) return false;
  hub_->configure(*next.agents);
  return true;
}

void AgentService::shutdown() {
  if (listener_) listener_->stop();
  if (hub_) hub_->shutdown();
}

}  // namespace ftpsgate::hub
