#include "hub/gateway_dialer.h"

#include "hub/agent_dialer.h"

namespace ftpsgate::hub {

std::unique_ptr<net::PendingDial> GatewayDialer::dial(event_base* base, const net::DialTarget& target,
                                                      std::chrono::milliseconds timeout, Done done) {
  if (!target.via_agent()) return direct_.dial(base, target, timeout, std::move(done));
  if (agents_ == nullptr) return fail_dial_later(base, "agent " + target.agent + " is not connected", std::move(done));
  return agents_->dial(base, target, timeout, std::move(done));
}

}  // namespace ftpsgate::hub
