// The links to one gateway address (docs/agent-design.md 1.4): pool.idle idle links kept
// ready, never more than pool.max_links in all nor pool.max_dialing handshakes at once;
// dials again when a CONNECT takes a link, when a link is lost and on the backoff timer
// (full jitter, reset once a link reaches idle; ERR shutting_down restarts at `initial`).
// Logs the transitions gateway_connected / gateway_unreachable, and gateway_refused.
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <string>

#include "agent/agent_context.h"
#include "agent/agent_link.h"
#include "net/deferred_delete.h"
#include "net/timer.h"
#include "tunnel/backoff.h"

namespace ftpsgate::agent {

class LinkKeeper : public AgentLink::Owner {
 public:
  // `gateway` outlives the keeper (it lives in the AgentConfig).
  LinkKeeper(AgentContext& context, const AgentGatewayConfig& gateway);
  ~LinkKeeper();
  LinkKeeper(const LinkKeeper&) = delete;
  LinkKeeper& operator=(const LinkKeeper&) = delete;

  void start();
  // After a reload: the pool's sizes may have grown.
  void reconfigured() { fill(); }
  // Drain: no more dials; dialing and idle links go; requests and pipes go on.
  void stop();
  // After stop(), while pipes still run: the address is wanted again (a name's answer came
  // back), the pool fills again.
  void resume() {
    stopping_ = false;
    fill();
  }
  // The drain deadline: whatever is left is cut.
  void cut();

  // The metric label and log name: the address as written.
  const std::string& label() const { return label_; }
  std::size_t dialing() const { return dialing_; }
  std::size_t idle() const { return idle_; }
  std::size_t piped() const { return piped_; }
  std::size_t total() const { return dialing_ + idle_ + piped_; }
  bool up() const { return up_; }

  void link_idle(AgentLink& link) override;
  void link_leased(AgentLink& link) override;
  void link_closed(AgentLink& link, const AgentLink::End& end) override;

 private:
  void fill();
  void dial();
  // A failed dial or a refused link: wait `delay` before the next probe.
  void back_off(std::chrono::milliseconds delay, const std::string& result, const std::string& detail);
  void set_gauges();
  void set_up(bool up);

  AgentContext& context_;
  const AgentGatewayConfig& gateway_;
  std::string label_;
  std::size_t dialing_ = 0;
  std::size_t idle_ = 0;
  std::size_t piped_ = 0;
  bool up_ = false;      // some link is idle or piped
  bool healthy_ = true;  // the last dial reached idle: dial in parallel again
  bool unreachable_logged_ = false;
  bool stopping_ = false;
  tunnel::Backoff backoff_;          // dial failures; reset once a link reaches idle
  tunnel::Backoff refused_backoff_;  // links closed by the gateway before it used them
  // Member order: retired links may still touch the loop, the list is freed first.
  net::DeferredDelete<AgentLink> retired_;
  net::Timer backoff_timer_;
  std::list<std::unique_ptr<AgentLink>> links_;
};

}  // namespace ftpsgate::agent
