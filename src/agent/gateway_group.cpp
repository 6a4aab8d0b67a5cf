#include "agent/gateway_group.h"

#include <event2/dns.h>
#include <event2/util.h>

#include <algorithm>
#include <set>

#include "agent/tcp_connector.h"
#include "net/socket_address.h"

namespace ftpsgate::agent {

std::vector<std::string> gateway_answers(const std::vector<std::string>& resolved) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& address : resolved) {
    if (out.size() == kMaxGatewayAnswers) break;
    if (seen.insert(address).second) out.push_back(address);
  }
  return out;
}

GatewayGroup::GatewayGroup(AgentContext& context, const AgentGatewayConfig& gateway,
                           std::chrono::milliseconds reresolve)
    : context_(context),
      gateway_(gateway),
      by_name_(!net::SocketAddress::from_numeric(gateway.address.host, gateway.address.port)),
      reresolve_(reresolve),
      backoff_(context.config.pool.backoff.initial, reresolve, tunnel::seeded_uniform()),
      timer_(context.base, [this] { resolve(); }) {}

GatewayGroup::~GatewayGroup() {
  stopping_ = true;
  if (resolving_ != nullptr) evdns_getaddrinfo_cancel(resolving_);  // its callback sees CANCEL
  members_.clear();
  leaving_.clear();
}

void GatewayGroup::start() {
  // SECURITY: an IP literal is never resolved; its keeper dials it as written.
  if (!by_name_) return add_member(gateway_.address.host);
  resolve();
}

void GatewayGroup::reconfigured() {
  for (auto& [ip, member] : members_) member->keeper->reconfigured();
}

void GatewayGroup::stop() {
  stopping_ = true;
  timer_.cancel();
  for (auto& [ip, member] : members_) member->keeper->stop();
}

void GatewayGroup::cut() {
  stop();
  for (auto& [ip, member] : members_) member->keeper->cut();
  for (auto& member : leaving_) member->keeper->cut();
}

bool GatewayGroup::ready() const {
  if (members_.empty()) return false;
  return std::all_of(members_.begin(), members_.end(), [](const auto& m) { return m.second->keeper->idle() > 0; });
}

std::size_t GatewayGroup::piped() const {
  std::size_t n = 0;
  for (const auto& [ip, member] : members_) n += member->keeper->piped();
  for (const auto& member : leaving_) n += member->keeper->piped();
  return n;
}

std::size_t GatewayGroup::total() const {
  std::size_t n = 0;
  for (const auto& [ip, member] : members_) n += member->keeper->total();
  for (const auto& member : leaving_) n += member->keeper->total();
  return n;
}

std::vector<std::string> GatewayGroup::labels() const {
  std::vector<std::string> out;
  for (const auto& [ip, member] : members_) out.push_back(member->keeper->label());
  return out;
}

void GatewayGroup::resolve() {
  if (stopping_ || resolving_ != nullptr) return;
  prune_leaving();
  if (context_.dns == nullptr) {
    resolve_failed("no resolver");
    return;
  }
  resolving_ = lookup_stream_addresses(context_.dns, gateway_.address.host, &GatewayGroup::on_resolved, this);
}

void GatewayGroup::on_resolved(int result, evutil_addrinfo* answers, void* self) {
  const auto found = take_answers(answers);
  if (result == EVUTIL_EAI_CANCEL) return;  // from the destructor: nothing of ours may be touched
  auto* group = static_cast<GatewayGroup*>(self);
  group->resolving_ = nullptr;
  std::vector<std::string> resolved;
  for (const auto& address : found) resolved.push_back(address.ip());
  if (group->stopping_) return;
  if (resolved.empty()) {
    group->resolve_failed(result == 0 ? std::string("no address") : evutil_gai_strerror(result));
    return;
  }
  group->apply(gateway_answers(resolved));
}

void GatewayGroup::resolve_failed(const std::string& error) {
  // The keepers it has go on with the addresses they know; with none, ask again soon.
  const auto delay = members_.empty() ? backoff_.next() : reresolve_;
  context_.logger.write(members_.empty() ? LogLevel::kWarn : LogLevel::kDebug, "gateway_unreachable",
                        {{"gateway", gateway_.address.to_string()},
                         {"result", "resolve_failed"},
                         {"error", "cannot resolve " + gateway_.address.host + ": " + error},
                         {"next_attempt_ms", delay.count()}});
  timer_.arm(delay);
}

void GatewayGroup::apply(const std::vector<std::string>& answers) {
  backoff_.reset();
  bool changed = false;
  for (auto it = members_.begin(); it != members_.end();) {
    if (std::find(answers.begin(), answers.end(), it->first) != answers.end()) {
      ++it;
      continue;
    }
    // Gone from the answers: no more dials there; its pipes finish.
    it->second->keeper->stop();
    leaving_.push_back(std::move(it->second));
    it = members_.erase(it);
    changed = true;
  }
  for (const auto& ip : answers) {
    if (members_.count(ip) != 0) continue;
    changed = true;
    // Back before its pipes ended: the same keeper (and series) dials again.
    const auto back = std::find_if(leaving_.begin(), leaving_.end(),
                                   [&](const auto& m) { return m->gateway.address.host == ip; });
    if (back != leaving_.end()) {
      LinkKeeper& keeper = *(*back)->keeper;
      members_.emplace(ip, std::move(*back));
      leaving_.erase(back);
      keeper.resume();
      continue;
    }
    add_member(ip);
  }
  if (changed) {
    context_.logger.write(LogLevel::kInfo, "gateway_resolved",
                          {{"gateway", gateway_.address.to_string()}, {"addresses", labels()}});
  }
  prune_leaving();
  timer_.arm(reresolve_);
}

void GatewayGroup::add_member(const std::string& ip) {
  auto member = std::make_unique<Member>(Member{gateway_, nullptr});
  member->gateway.address.host = ip;
  // Every answer shows the certificate of the name (a literal: of its own host, as always).
  if (member->gateway.server_name.empty()) member->gateway.server_name = gateway_.address.host;
  member->keeper = std::make_unique<LinkKeeper>(context_, member->gateway);
  context_.metrics.add_gateway(member->keeper->label());
  LinkKeeper& keeper = *member->keeper;
  members_.emplace(ip, std::move(member));
  keeper.start();
}

void GatewayGroup::prune_leaving() {
  for (auto it = leaving_.begin(); it != leaving_.end();) {
    if ((*it)->keeper->total() != 0) {
      ++it;
      continue;
    }
    // An address comes back to its leaving keeper (apply), so no active keeper has this label.
    context_.metrics.forget_gateway((*it)->keeper->label());
    it = leaving_.erase(it);
  }
}

}  // namespace ftpsgate::agent
