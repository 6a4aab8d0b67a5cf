#include "agent/link_keeper.h"

#include <vector>

#include "data/relay_heap.h"

namespace ftpsgate::agent {

LinkKeeper::LinkKeeper(AgentContext& context, const AgentGatewayConfig& gateway)
    : context_(context),
      gateway_(gateway),
      label_(gateway.address.to_string()),
      backoff_(context.config.pool.backoff.initial, context.config.pool.backoff.max, tunnel::seeded_uniform()),
      refused_backoff_(context.config.pool.backoff.initial, context.config.pool.backoff.max, tunnel::seeded_uniform()),
      retired_(context.base),
      backoff_timer_(context.base, [this] { fill(); }) {}

LinkKeeper::~LinkKeeper() {
  // Links report to us while they go; nothing is counted any more.
  stopping_ = true;
  links_.clear();
  retired_.clear();
}

void LinkKeeper::start() {
  set_gauges();
  fill();
}

void LinkKeeper::fill() {
  if (stopping_ || backoff_timer_.armed()) return;
  const auto& pool = context_.config.pool;
  while (idle_ + dialing_ < pool.idle && total() < pool.max_links && dialing_ < pool.max_dialing) {
    // After a failure, one probe at a time until a link reaches idle again.
    if (!healthy_ && dialing_ > 0) break;
    dial();
  }
}

void LinkKeeper::dial() {
  auto link = std::make_unique<AgentLink>(context_, gateway_, label_, *this);
  AgentLink& started = *link;
  links_.push_back(std::move(link));
  ++dialing_;
  set_gauges();
  started.start();
}

void LinkKeeper::link_idle(AgentLink&) {
  --dialing_;
  ++idle_;
  healthy_ = true;
  backoff_.reset();
  context_.metrics.dials(label_, "success").Increment();
  set_up(true);
  set_gauges();
  fill();
}

void LinkKeeper::link_leased(AgentLink&) {
  --idle_;
  ++piped_;
  refused_backoff_.reset();  // the gateway uses our links: it accepted us
  set_gauges();
  fill();
}

void LinkKeeper::link_closed(AgentLink& link, const AgentLink::End& end) {
  for (auto it = links_.begin(); it != links_.end(); ++it) {
    if (it->get() != &link) continue;
    retired_.retire(std::move(*it));
    links_.erase(it);
    break;
  }
  switch (end.reached) {
    case AgentLink::State::kDialing:
      --dialing_;
      break;
    case AgentLink::State::kIdle:
      --idle_;
      break;
    default:
      --piped_;
      // The pipes' buffers stay in the heap while busy (data/relay_heap.h); hand them back
      // once none is left.
      if (piped_ == 0) data::return_free_memory();
      break;
  }
  set_gauges();
  if (idle_ + piped_ == 0) set_up(false);
  if (stopping_) return;
  if (end.reached == AgentLink::State::kDialing) {
    if (end.dropped_by_us) return;
    context_.metrics.dials(label_, end.dial_result).Increment();
    if (end.dial_result == "refused") {
      context_.logger.write(LogLevel::kWarn, "gateway_refused", {{"gateway", label_}, {"reason", end.detail}});
    }
    back_off(backoff_.next(), end.dial_result, end.detail);
    return;
  }
  if (end.reached == AgentLink::State::kIdle && !end.dropped_by_us) {
    if (end.gateway_err == tunnel::ErrReason::kShuttingDown) {
      // A restarting gateway: come back from `initial` on, with jitter, not in step.
      backoff_.reset();
      back_off(backoff_.next(), "shutting_down", end.detail);
      return;
    }
    if (!end.gateway_spoke) {
      // Closed (or ERR) before the gateway ever used the link: it does not want us.
      back_off(refused_backoff_.next(), "refused", end.detail);
      return;
    }
  }
  fill();
}

void LinkKeeper::back_off(std::chrono::milliseconds delay, const std::string& result, const std::string& detail) {
  healthy_ = false;
  if (!unreachable_logged_) {
    unreachable_logged_ = true;
    context_.logger.write(
        LogLevel::kWarn, "gateway_unreachable",
        {{"gateway", label_}, {"result", result}, {"error", detail}, {"next_attempt_ms", delay.count()}});
  } else {
    context_.logger.write(
        LogLevel::kDebug, "gateway_unreachable",
        {{"gateway", label_}, {"result", result}, {"error", detail}, {"next_attempt_ms", delay.count()}});
  }
  if (!backoff_timer_.armed()) backoff_timer_.arm(delay);
}

void LinkKeeper::set_up(bool up) {
  if (up == up_) return;
  up_ = up;
  context_.metrics.gateway_up(label_).Set(up ? 1 : 0);
  if (up) {
    unreachable_logged_ = false;
    context_.logger.write(LogLevel::kInfo, "gateway_connected", {{"gateway", label_}});
  } else if (!stopping_) {
    context_.logger.write(LogLevel::kInfo, "gateway_disconnected", {{"gateway", label_}});
  }
}

void LinkKeeper::set_gauges() {
  context_.metrics.links(label_, "dialing").Set(static_cast<double>(dialing_));
  context_.metrics.links(label_, "idle").Set(static_cast<double>(idle_));
  context_.metrics.links(label_, "piped").Set(static_cast<double>(piped_));
}

void LinkKeeper::stop() {
  stopping_ = true;
  backoff_timer_.cancel();
  std::vector<AgentLink*> going;
  for (auto& link : links_) {
    if (link->state() == AgentLink::State::kDialing || link->state() == AgentLink::State::kIdle)
      going.push_back(link.get());
  }
  for (AgentLink* link : going) link->drop();
}

void LinkKeeper::cut() {
  stopping_ = true;
  backoff_timer_.cancel();
  std::vector<AgentLink*> going;
  for (auto& link : links_) going.push_back(link.get());
  for (AgentLink* link : going) link->cut();
}

}  // namespace ftpsgate::agent
