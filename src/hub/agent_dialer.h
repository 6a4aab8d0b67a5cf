// The worker side of a dial through an inside-out agent (docs/agent-design.md 3.1, 3.3). On
// the caller's loop W: a LinkTicket goes to the AgentHub; the hub posts a link (socket,
// established TLS, lease) back to W, which wraps it in a TLS bufferevent
// (BUFFEREVENT_SSL_OPEN), writes `CONNECT host:port session purpose` and reads one reply line
// (at most limits::kAgentMaxReplyLine) within what is left of the timeout. OK: the bufferevent
// is the pipe, whatever followed OK stays in its input. ERR r: "agent NAME refused host:port:
// r" and an agent_request_refused record. A control or health dial whose link closes before
// a byte of the answer asks the hub once more (an agent_link_lost record); a data dial never
// does. Destroying the PendingDial cancels: the link is closed and `done` never runs.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "hub/agent_hub.h"
#include "log/logger.h"
#include "metrics/metrics.h"
#include "net/dialer.h"

namespace ftpsgate::hub {

class AgentDialer : public net::Dialer {
 public:
  // `hub` outlives every dial (workers stop before the hub goes).
  AgentDialer(AgentHub& hub, log::Logger& logger, metrics::Metrics& metrics);
  // Any thread with an event loop (libevent's pthreads locking on, evthread_use_pthreads,
  // before `base` was made). target.agent names the agent; host and port are the agent's
  // to reach.
  std::unique_ptr<net::PendingDial> dial(event_base* base, const net::DialTarget& target,
                                         std::chrono::milliseconds timeout, Done done) override;

 private:
  AgentHub& hub_;
  log::Logger& logger_;
  metrics::Metrics& metrics_;
};

// A dial that fails with `error` from `base`'s loop soon after (never inside dial()).
std::unique_ptr<net::PendingDial> fail_dial_later(event_base* base, std::string error, net::Dialer::Done done);

std::string_view purpose_name(net::DialPurpose purpose);

}  // namespace ftpsgate::hub
