// The gateway's one net::Dialer (docs/agent-design.md 3.1): every backend connection goes
// through it. Targets without an agent go to the direct dialer; agent targets go through the
// agent hub's links, or fail ("agent NAME is not connected") when the configuration has no
// `agents` section.
#pragma once

#include "net/dialer.h"

namespace ftpsgate::hub {

class GatewayDialer : public net::Dialer {
 public:
  // Both outlive this. `agents` nullptr: no `agents` section.
  GatewayDialer(net::Dialer& direct, net::Dialer* agents) : direct_(direct), agents_(agents) {}
  std::unique_ptr<net::PendingDial> dial(event_base* base, const net::DialTarget& target,
                                         std::chrono::milliseconds timeout, Done done) override;

 private:
  net::Dialer& direct_;
  net::Dialer* agents_;
};

}  // namespace ftpsgate::hub
