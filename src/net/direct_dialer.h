// The Dialer for backends this host reaches itself: a non-blocking connect watched by one
// EV_WRITE event that carries the timeout; SO_ERROR says how it went. Agent targets are
// not its business: it fails them ("agent NAME is not connected"), so a process without
// agent support answers them the way a gateway with no link from that agent does.
#pragma once

#include "net/dialer.h"

namespace ftpsgate::net {

class DirectDialer final : public Dialer {
 public:
  // Holds no state: every dial owns what it needs, so a PendingDial never refers back here.
  std::unique_ptr<PendingDial> dial(event_base* base, const DialTarget& target, std::chrono::milliseconds timeout,
                                    Done done) override;
};

}  // namespace ftpsgate::net
