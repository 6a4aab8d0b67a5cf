// Composition root: command line, configuration, signals, event loop.
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "agent/agent_main.h"
#include "config/command_line.h"
#include "config/config_loader.h"
#include "data/passive_port_pool.h"
#include "data/relay_heap.h"
#include "log/append_file.h"
#include "log/logger.h"
#include "log/syslog_sink.h"
#include "metrics/http_endpoint.h"
#include "metrics/metrics.h"
#include "hub/agent_service.h"
#include "net/privileges.h"
#include "net/timer.h"
#include "session/acceptor.h"

namespace {

using namespace ftpsgate;

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitConfig = 2;

using Options = config::CommandLine;

void print_usage() {
  std::cout << "usage: ftpsgate [--config FILE] [--check] [--version]\n"
               "       ftpsgate agent --config FILE [--check]   (the inside-out agent; see ftpsgate agent --help)\n"
               "  --config FILE  run with FILE (default: the embedded default configuration)\n"
               "  --check        validate the configuration, certificates and keys, then exit\n"
               "  --version      print versions and exit\n";
}

config::LoadResult load(const Options& options) {
  if (options.config_path.empty()) {
    return config::load_config_text(config::embedded_default_yaml(), "<embedded default>");
  }
  return config::load_config_file(options.config_path);
}

// Config errors and certificate/key errors, printed as FILE:LINE:COL: message.
bool report_errors(const std::string& source, const config::LoadResult& loaded,
                   const std::vector<std::string>& runtime_errors) {
  for (const auto& e : loaded.errors) std::cerr << e.format() << "\n";
  // Runtime errors start with the LINE:COL of the entry they concern.
  for (const auto& e : runtime_errors) std::cerr << source << ":" << e << "\n";
  return loaded.errors.empty() && runtime_errors.empty();
}

// Owns the loop-level state the signal handlers act on.
class Daemon {
 public:
  Daemon(Options options, event_base* base, net::Dialer& dialer, log::Logger& logger, log::Logger* tls_logger,
         log::AppendFile* xferlog, metrics::Metrics& metrics, data::PassivePortPool& ports)
      : options_(std::move(options)),
        base_(base),
        dialer_(dialer),
        logger_(logger),
        tls_logger_(tls_logger),
        xferlog_(xferlog),
        metrics_(metrics),
        ports_(ports),
        drain_timer_(base, [this] { check_drained(); }) {}

  bool start(std::shared_ptr<session::Runtime> runtime, std::string& error) {
    session::Services services{base_, 0, &logger_, tls_logger_, xferlog_, &metrics_, &ports_};
    services.dialer = &dialer_;  // workers' copies carry it too
    const unsigned workers = runtime->config.workers != 0 ? runtime->config.workers
                                                          : std::max(1u, std::thread::hardware_concurrency());
    acceptor_ = session::Acceptor::create(services, std::move(runtime), workers, error);
    if (!acceptor_) return false;
    // Both series exist from the start, so increase() sees the first failed reload.
    metrics_.config_reloads("success");
    metrics_.config_reloads("failure");
    sigterm_.reset(evsignal_new(base_, SIGTERM, &Daemon::on_signal, this));
    sigint_.reset(evsignal_new(base_, SIGINT, &Daemon::on_signal, this));
    sighup_.reset(evsignal_new(base_, SIGHUP, &Daemon::on_signal, this));
    evsignal_add(sigterm_.get(), nullptr);
    evsignal_add(sigint_.get(), nullptr);
    evsignal_add(sighup_.get(), nullptr);
    return true;
  }

  void attach_agents(hub::AgentService& agents) {
    agents_ = &agents;
    agents.on_transition([this](const std::string& agent, bool up) { agent_transition(agent, up); });
  }

  // An agent's servers follow its links: down at once when the last one goes (new sessions
  // get 421 without waiting for a health check), probed at once when one is back.
  void agent_transition(const std::string& agent, bool up) {
    if (acceptor_ == nullptr) return;
    for (const auto& [name, pool] : acceptor_->runtime().backends) {
      const auto servers = pool->servers_of_agent(agent);
      if (servers.empty()) continue;
      if (up) {
        pool->check_now();
      } else {
        for (auto* server : servers) pool->report(*server, false, "agent " + agent + " disconnected");
      }
    }
  }

  // /readyz: listeners bound, not draining, some backend server passed its check, and so
  // did every scanner marked readyz: true.
  bool ready() const {
    return acceptor_ != nullptr && !draining_ && acceptor_->runtime().any_backend_up() &&
           acceptor_->runtime().agent_backends_up() && acceptor_->runtime().scanners_ready();
  }

  void export_certificates(const session::Runtime& runtime) {
    for (const auto& cert : runtime.tls->certificates()) {
      metrics_.certificate_expiry(cert.name).Set(static_cast<double>(cert.not_after));
    }
  }

 private:
  static void on_signal(evutil_socket_t signal, short, void* self) {
    auto* daemon = static_cast<Daemon*>(self);
    if (signal == SIGHUP) {
      daemon->reload();
    } else {
      daemon->begin_drain();
    }
  }

  void reload() {
    // logrotate renamed the xferlog and sent SIGHUP: new lines go to a new file by that name.
    std::string error;
    if (xferlog_ != nullptr && !xferlog_->reopen(error)) {
      logger_.write(LogLevel::kError, "xferlog", {{"error", error}});
    }
    if (options_.config_path.empty()) {
      logger_.write(LogLevel::kWarn, "reload", {{"result", "failure"}, {"error", "no --config file to re-read"}});
      metrics_.config_reloads("failure").Increment();
      return;
    }
    auto loaded = config::load_config_file(options_.config_path);
    std::vector<std::string> errors;
    std::vector<std::string> warnings;
    for (const auto& e : loaded.errors) errors.push_back(e.format());
    std::shared_ptr<session::Runtime> runtime;
    if (loaded.config) runtime = session::build_runtime(*loaded.config, errors, warnings);
    if (!runtime || !errors.empty()) {
      // SECURITY: a broken new config never replaces a working one.
      logger_.write(LogLevel::kError, "reload", {{"result", "failure"}, {"errors", errors}});
      metrics_.config_reloads("failure").Increment();
      return;
    }
    auto conflict = acceptor_->reload_conflict(runtime->config);
    if (!conflict && agents_ != nullptr) conflict = agents_->reload_conflict(runtime->config);
    if (conflict) {
      // SECURITY: never half-applied (settings of one listener on another's socket).
      logger_.write(LogLevel::kError, "reload",
                    {{"result", "failure"},
                     {"errors", std::vector<std::string>{*conflict + ": listener sockets and passive ports "
                                                                      "change only with a restart; nothing reloaded"}}});
      metrics_.config_reloads("failure").Increment();
      return;
    }
    if (agents_ != nullptr && !agents_->reload(runtime->config, errors)) {
      logger_.write(LogLevel::kError, "reload", {{"result", "failure"}, {"errors", errors}});
      metrics_.config_reloads("failure").Increment();
      return;
    }
    export_certificates(*runtime);
    acceptor_->replace_runtime(std::move(runtime));
    logger_.write(LogLevel::kInfo, "reload", {{"result", "success"}});
    metrics_.config_reloads("success").Increment();
  }

  void begin_drain() {
    if (!draining_) {
      draining_ = true;
      drain_deadline_ = std::chrono::steady_clock::now() + acceptor_->runtime().config.limits.drain_timeout;
      acceptor_->stop_accepting();
      logger_.write(LogLevel::kInfo, "shutdown", {{"sessions", acceptor_->session_count()}});
    } else {
      drain_deadline_ = std::chrono::steady_clock::now();  // a second signal: stop now
    }
    check_drained();
  }

  void check_drained() {
    const auto now = std::chrono::steady_clock::now();
    if (acceptor_->session_count() == 0 || (goodbye_sent_ && now >= goodbye_deadline_)) {
      event_base_loopexit(base_, nullptr);
      return;
    }
    if (!goodbye_sent_ && now >= drain_deadline_) {
      // Sessions still open get 421 and a clean TLS close; the rest are cut at stop.
      goodbye_sent_ = true;
      goodbye_deadline_ = now + kGoodbyeTime;
      acceptor_->say_goodbye();
    }
    drain_timer_.arm(std::chrono::milliseconds(goodbye_sent_ ? 20 : 100));
  }

  // How long the 421s and close_notify alerts of the drain deadline may take.
  static constexpr std::chrono::milliseconds kGoodbyeTime{1000};

  Options options_;
  event_base* base_;
  net::Dialer& dialer_;
  hub::AgentService* agents_ = nullptr;
  log::Logger& logger_;
  log::Logger* tls_logger_;
  log::AppendFile* xferlog_;  // logging.xferlog, else nullptr
  metrics::Metrics& metrics_;
  data::PassivePortPool& ports_;
  net::Timer drain_timer_;
  net::EventPtr sigterm_, sigint_, sighup_;
  bool draining_ = false;
  bool goodbye_sent_ = false;
  std::chrono::steady_clock::time_point goodbye_deadline_;
  std::chrono::steady_clock::time_point drain_deadline_;

 public:
  std::unique_ptr<session::Acceptor> acceptor_;
};

}  // namespace

int main(int argc, char** argv) {
  data::tune_heap_for_relays();
  // `ftpsgate agent ...`: the inside-out agent (issue 17), its own options and file.
  if (argc > 1 && std::string_view(argv[1]) == "agent") return agent::run_agent(argc - 1, argv + 1);
  Options options = config::parse_command_line(argc, argv);
  if (!options.error.empty()) {
    std::cerr << "ftpsgate: " << options.error << "\n";
    print_usage();
    return kExitConfig;
  }
  if (options.help) {
    print_usage();
    return kExitOk;
  }
  if (options.version) {
    std::cout << "ftpsgate " << FTPSGATE_VERSION << "\n"
              << OpenSSL_version(OPENSSL_VERSION) << "\n"
              << "libevent " << event_get_version() << "\n";
    return kExitOk;
  }

  const std::string source = options.config_path.empty() ? "<embedded default>" : options.config_path;
  auto loaded = load(options);
  std::vector<std::string> runtime_errors;
  std::vector<std::string> warnings = loaded.warnings;
  std::shared_ptr<session::Runtime> runtime;
  if (loaded.config) runtime = session::build_runtime(*loaded.config, runtime_errors, warnings);
  if (!report_errors(source, loaded, runtime_errors)) return kExitConfig;
  if (options.check) {
    for (const auto& w : warnings) std::cerr << source << ": warning: " << w << "\n";
    std::cout << source << ": configuration OK\n";
    return kExitOk;
  }

  std::signal(SIGPIPE, SIG_IGN);
  const Config& config = runtime->config;
  std::string error;
  // Before the loggers that send to it: it outlives them.
  std::unique_ptr<log::SyslogSink> syslog;
  if (config.logging.syslog) {
    syslog = log::SyslogSink::create(config.logging, error);
    if (!syslog) {
      std::cerr << "ftpsgate: " << error << "\n";
      return kExitRuntime;
    }
  }
  auto logger = log::Logger::create(config.logging, error);
  if (!logger) {
    std::cerr << "ftpsgate: " << error << "\n";
    return kExitRuntime;
  }
  logger->also_to_syslog(syslog.get());
  std::unique_ptr<log::AppendFile> xferlog;
  if (!config.logging.xferlog.empty()) {
    xferlog = log::AppendFile::create(config.logging.xferlog, error);
    if (!xferlog) {
      std::cerr << "ftpsgate: xferlog: " << error << "\n";
      return kExitRuntime;
    }
  }
  for (const auto& w : warnings) logger->write(LogLevel::kWarn, "config_warning", {{"warning", w}});
  for (const auto& cls : config.classes) {
    if (!cls.allow_per_user) continue;
    // SECURITY: the policy is decided at USER, so USER (and, for users allowed clear
    // control, PASS) may cross the network unencrypted for this class.
    logger->write(LogLevel::kWarn, "config_warning",
                  {{"class", cls.name},
                   {"warning", "allow_per_user: USER and PASS may travel in clear for this class before the "
                               "per-user tls_required is known"}});
  }

  // Before any event base: workers hand connections to each other's loops.
  if (evthread_use_pthreads() != 0) {
    std::cerr << "ftpsgate: libevent has no pthreads support\n";
    return kExitRuntime;
  }
  metrics::Metrics metrics;
  net::EventBasePtr base(event_base_new());
  data::PassivePortPool ports(config.passive.port_min, config.passive.port_max);
  std::unique_ptr<log::Logger> tls_logger;
  if (!config.tls.log.empty()) {
    LoggingConfig tls_log = config.logging;
    tls_log.file = config.tls.log;
    tls_logger = log::Logger::create(tls_log, error);
    if (!tls_logger) {
      std::cerr << "ftpsgate: " << error << "\n";
      return kExitRuntime;
    }
    tls_logger->also_to_syslog(syslog.get());
  }
  // Every backend connection of the process goes through its dialer (directly, or through
  // an inside-out agent's link); declared before the Daemon, it outlives every loop and session.
  auto agents = hub::AgentService::create(base.get(), config, *logger, metrics, error);
  if (!agents) {
    std::cerr << "ftpsgate: agents: " << error << "\n";
    return kExitRuntime;
  }
  Daemon daemon(options, base.get(), agents->dialer(), *logger, tls_logger.get(), xferlog.get(), metrics, ports);
  daemon.attach_agents(*agents);
  daemon.export_certificates(*runtime);
  nlohmann::json listeners = nlohmann::json::array();
  for (const auto& l : config.listeners) {
    listeners.push_back({{"name", l.name},
                         {"address", l.address.to_string()},
                         {"mode", l.mode == ListenerMode::kImplicit ? "implicit" : "explicit"},
                         {"backend", l.backend}});
  }
  nlohmann::json backends = nlohmann::json::array();
  for (const auto& b : config.backends) {
    nlohmann::json servers = nlohmann::json::array();
    for (const auto& s : b.servers) servers.push_back(s.to_string());
    backends.push_back({{"name", b.name}, {"servers", servers}});
  }
  nlohmann::json classes = nlohmann::json::array();
  for (const auto& c : config.classes) classes.push_back({{"name", c.name}, {"tls_required", to_string(c.tls_required)}});
  nlohmann::json certificates = nlohmann::json::array();
  for (const auto& c : runtime->tls->certificates()) certificates.push_back({{"name", c.name}, {"subject", c.subject}});
  if (!daemon.start(runtime, error)) {
    std::cerr << "ftpsgate: " << error << "\n";
    return kExitRuntime;
  }
  std::unique_ptr<metrics::HttpEndpoint> http;
  if (!config.metrics.address.empty()) {
    // Validated at load: a metrics.address that does not parse never gets here.
    const auto address = config::parse_host_port(config.metrics.address);
    if (address) {
      http = metrics::HttpEndpoint::create(base.get(), *address, metrics, [&daemon] { return daemon.ready(); }, error);
    } else {
      error = "invalid metrics address " + config.metrics.address;
    }
    if (!http) {
      std::cerr << "ftpsgate: " << error << "\n";
      return kExitRuntime;
    }
  }
  if (!net::drop_privileges(config.user, error)) {
    std::cerr << "ftpsgate: " << error << "\n";
    return kExitRuntime;
  }
  logger->write(LogLevel::kInfo, "start",
                {{"version", FTPSGATE_VERSION},
                 {"config", source},
                 {"listeners", listeners},
                 {"backends", backends},
                 {"classes", classes},
                 {"certificates", certificates},
                 {"passive_ports", std::to_string(config.passive.port_min) + "-" + std::to_string(config.passive.port_max)},
                 {"masquerade_address", config.passive.masquerade_address},
                 {"metrics", config.metrics.address},
                 {"workers", daemon.acceptor_->worker_count()}});
  event_base_dispatch(base.get());
  http.reset();
  daemon.acceptor_.reset();
  agents->shutdown();
  logger->write(LogLevel::kInfo, "stopped");
  return kExitOk;
}
