// The agent's composition root (docs/agent-design.md 2.3, 2.5, 5): log, TLS, allowlist,
// one GatewayGroup per gateways[] entry on one event loop, the metrics endpoint, signals.
#include "agent/agent_process.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include <csignal>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <vector>

#include "agent/agent_context.h"
#include "agent/gateway_group.h"
#include "config/agent_reload.h"
#include "config/config_loader.h"
#include "log/syslog_sink.h"
#include "metrics/http_endpoint.h"
#include "net/privileges.h"
#include "net/timer.h"
#include "tls/certificate_files.h"

namespace ftpsgate::agent {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
// How often a drain checks whether the pipes are done.
constexpr std::chrono::milliseconds kDrainPoll{100};

struct EvdnsDeleter {
  // Pending requests fail (their callbacks run with EVUTIL_EAI_CANCEL): free it last.
  void operator()(evdns_base* dns) const { evdns_base_free(dns, 1); }
};

// The loop-level state the signals act on.
class Daemon {
 public:
  Daemon(event_base* base, log::Logger& logger, std::vector<std::unique_ptr<GatewayGroup>>& groups,
         const AgentSection& live, std::function<void()> reload)
      : base_(base),
        logger_(logger),
        groups_(groups),
        live_(live),
        reload_(std::move(reload)),
        drain_timer_(base, [this] { check_drained(); }) {}

  void start() {
    sigterm_.reset(evsignal_new(base_, SIGTERM, &Daemon::on_signal, this));
    sigint_.reset(evsignal_new(base_, SIGINT, &Daemon::on_signal, this));
    sighup_.reset(evsignal_new(base_, SIGHUP, &Daemon::on_signal, this));
    for (const auto& ev : {sigterm_.get(), sigint_.get(), sighup_.get()}) evsignal_add(ev, nullptr);
    for (auto& group : groups_) group->start();
  }

  // /readyz: every gateway address has an idle link, and no drain runs.
  bool ready() const {
    if (draining_) return false;
    for (const auto& group : groups_) {
      if (!group->ready()) return false;
    }
    return true;
  }

 private:
  static void on_signal(evutil_socket_t signal, short, void* self) {
    auto* daemon = static_cast<Daemon*>(self);
    if (signal == SIGHUP) {
      if (!daemon->draining_) daemon->reload_();
      return;
    }
    daemon->begin_drain();
  }

  void begin_drain() {
    if (draining_) {
      deadline_ = std::chrono::steady_clock::now();  // a second signal: stop now
    } else {
      draining_ = true;
      deadline_ = std::chrono::steady_clock::now() + live_.drain_timeout;
      std::size_t pipes = 0;
      for (auto& group : groups_) {
        group->stop();
        pipes += group->piped();
      }
      logger_.write(LogLevel::kInfo, "shutdown", {{"pipes", pipes}});
    }
    check_drained();
  }

  void check_drained() {
    std::size_t left = 0;
    for (const auto& group : groups_) left += group->total();
    if (left == 0) {
      event_base_loopexit(base_, nullptr);
      return;
    }
    if (std::chrono::steady_clock::now() >= deadline_) {
      logger_.write(LogLevel::kWarn, "drain_timeout", {{"pipes_cut", left}});
      for (auto& group : groups_) group->cut();
      // One more turn of the loop sends the resets, then out.
      const timeval soon{0, 50000};
      event_base_loopexit(base_, &soon);
      return;
    }
    drain_timer_.arm(kDrainPoll);
  }

  event_base* base_;
  log::Logger& logger_;
  std::vector<std::unique_ptr<GatewayGroup>>& groups_;
  const AgentSection& live_;
  std::function<void()> reload_;
  net::Timer drain_timer_;
  net::EventPtr sigterm_, sigint_, sighup_;
  bool draining_ = false;
  std::chrono::steady_clock::time_point deadline_;
};

// What a SIGHUP swaps in a running agent: the reloadable settings (config/agent_reload.h,
// the allowlist among them) and the link TLS context. SECURITY: a file that does not load,
// check or build whole changes nothing; links and pipes made before go on as they are.
class Reloader {
 public:
  Reloader(const AgentConfig& running, AgentSection& live, AgentContext& context,
           std::unique_ptr<LinkClientTls>& tls, std::vector<std::unique_ptr<GatewayGroup>>& groups)
      : running_(running), live_(live), context_(context), tls_(tls), groups_(groups) {}

  void operator()() {
    const AgentFile loaded = load_agent_file(running_.source);
    if (!loaded.config) return failed(loaded.errors);
    const AgentConfig& fresh = *loaded.config;
    if (auto conflict = config::agent_reload_conflict(running_, fresh)) {
      return failed({*conflict + ": it changes only with a restart; nothing reloaded"});
    }
    std::string error;
    auto tls = LinkClientTls::create(fresh.agent, error);
    if (!tls) return failed({error});
    config::apply_agent_reload(live_, fresh.agent);
    tls_ = std::move(tls);
    context_.tls = tls_.get();
    for (auto& group : groups_) group->reconfigured();
    context_.logger.write(LogLevel::kInfo, "reload",
                          {{"result", "success"}, {"targets", live_.target_texts}, {"pool_idle", live_.pool.idle}});
    context_.metrics.config_reloads("success").Increment();
  }

 private:
  void failed(const std::vector<std::string>& errors) {
    context_.logger.write(LogLevel::kError, "reload", {{"result", "failure"}, {"errors", errors}});
    context_.metrics.config_reloads("failure").Increment();
  }

  const AgentConfig& running_;
  AgentSection& live_;
  AgentContext& context_;
  std::unique_ptr<LinkClientTls>& tls_;
  std::vector<std::unique_ptr<GatewayGroup>>& groups_;
};

int fail(log::Logger* logger, const std::string& error) {
  std::cerr << "ftpsgate agent: " << error << "\n";
  if (logger != nullptr) logger->write(LogLevel::kError, "start_failed", {{"error", error}});
  return kExitRuntime;
}

}  // namespace

AgentFile load_agent_file(const std::string& source) {
  auto loaded = config::load_agent_config_file(source);
  AgentFile out{.warnings = std::move(loaded.warnings)};
  for (const auto& e : loaded.errors) out.errors.push_back(e.format());
  if (!loaded.config) return out;
  // The files the agent's TLS names, once the structure is valid; each error starts with the
  // LINE:COL of the value it concerns.
  std::vector<std::string> file_errors;
  tls::check_agent_tls(loaded.config->agent, file_errors);
  for (const auto& e : file_errors) out.errors.push_back(source + ":" + e);
  if (out.errors.empty()) out.config = std::move(loaded.config);
  return out;
}

int run_agent_process(const AgentConfig& config) {
  std::signal(SIGPIPE, SIG_IGN);
  std::string error;
  // Before the logger that sends to it: it outlives it.
  std::unique_ptr<log::SyslogSink> syslog;
  if (config.logging.syslog) {
    syslog = log::SyslogSink::create(config.logging, error);
    if (!syslog) return fail(nullptr, error);
  }
  auto logger = log::Logger::create(config.logging, error);
  if (!logger) return fail(nullptr, error);
  logger->also_to_syslog(syslog.get());
  // The settings SIGHUP may change live here; the gateways stay those of `config`.
  AgentSection live = config.agent;
  std::unique_ptr<LinkClientTls> tls = LinkClientTls::create(live, error);
  if (!tls) return fail(logger.get(), error);

  net::EventBasePtr base(event_base_new());
  if (!base) return fail(logger.get(), "cannot create an event loop");
  // Names (gateways, targets) resolve on the loop; /etc/resolv.conf and /etc/hosts are read
  // now, before privileges are dropped.
  std::unique_ptr<evdns_base, EvdnsDeleter> dns(
      evdns_base_new(base.get(), EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE));
  if (!dns) return fail(logger.get(), "cannot start the DNS resolver");

  // Each address's series come with its keeper (GatewayGroup), a name's with its answers.
  AgentMetrics metrics;
  log::RateLimitedLog refusals(base.get(), *logger, "agent_refusals_suppressed");
  AgentContext context{base.get(), dns.get(), live, tls.get(), *logger, metrics, refusals};
  std::vector<std::unique_ptr<GatewayGroup>> groups;
  for (const auto& gateway : config.agent.gateways) groups.push_back(std::make_unique<GatewayGroup>(context, gateway));
  Daemon daemon(base.get(), *logger, groups, live, Reloader(config, live, context, tls, groups));

  std::unique_ptr<metrics::HttpEndpoint> http;
  if (!config.metrics.address.empty()) {
    const auto address = config::parse_host_port(config.metrics.address);
    if (!address) return fail(logger.get(), "invalid metrics address " + config.metrics.address);
    http = metrics::HttpEndpoint::create(
        base.get(), *address, metrics.registry(), [&daemon] { return daemon.ready(); }, error);
    if (!http) return fail(logger.get(), error);
  }
  if (!net::drop_privileges(config.user, error)) return fail(logger.get(), error);

  nlohmann::json gateways = nlohmann::json::array();
  for (const auto& gateway : config.agent.gateways) {
    gateways.push_back({{"address", gateway.address.to_string()},
                        {"server_name", gateway.server_name.empty() ? gateway.address.host : gateway.server_name}});
  }
  logger->write(LogLevel::kInfo, "start",
                {{"version", FTPSGATE_VERSION},
                 {"mode", "agent"},
                 {"config", config.source},
                 {"gateways", gateways},
                 {"targets", config.agent.target_texts},
                 {"pool_idle", config.agent.pool.idle},
                 {"metrics", config.metrics.address},
                 {"openssl", OpenSSL_version(OPENSSL_VERSION)}});
  daemon.start();
  event_base_dispatch(base.get());
  groups.clear();
  http.reset();
  logger->write(LogLevel::kInfo, "stopped");
  return kExitOk;
}

}  // namespace ftpsgate::agent
