// Everything a session needs from the gateway, as one snapshot: a reload builds a new
// Runtime for new sessions while running sessions keep theirs (shared ownership).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <event2/event.h>

#include "backend/backend_pool.h"
#include "data/passive_port_pool.h"
#include "data/shared_passive_port.h"
#include "ftpsgate/config.h"
#include "log/append_file.h"
#include "log/logger.h"
#include "metrics/metrics.h"
#include "data/bandwidth.h"
#include "net/dialer.h"
#include "policy/login_throttle.h"
#include "scan/scanner_health.h"
#include "scan/scanner_set.h"
#include "scan/spool.h"
#include "tls/server_context.h"

namespace ftpsgate::auth {
class AuthPool;
}

namespace ftpsgate::session {

class ControlSession;

struct Runtime {
  Config config;
  std::unique_ptr<tls::ServerContext> tls;
  std::map<std::string, std::unique_ptr<backend::BackendPool>> backends;

  // One per inspection.scanners entry; probed only on the current runtime.
  std::map<std::string, std::unique_ptr<inspection::ScannerHealth>> scanners;

  backend::BackendPool* backend(const std::string& name) const {
    auto it = backends.find(name);
    return it == backends.end() ? nullptr : it->second.get();
  }
  // /readyz: at least one backend server passed its last check.
  bool any_backend_up() const {
    for (const auto& [name, pool] : backends) {
      if (pool->any_up()) return true;
    }
    return false;
  }
  // /readyz: every backend that has servers behind an inside-out agent has one up (an
  // agent's servers are down the moment it has no link).
  bool agent_backends_up() const {
    for (const auto& [name, pool] : backends) {
      bool through_agent = false;
      for (const auto& server : pool->config().servers) through_agent = through_agent || !server.agent.empty();
      if (through_agent && !pool->any_up()) return false;
    }
    return true;
  }
  // /readyz: every scanner with readyz: true passed its last check.
  bool scanners_ready() const {
    for (const auto& [name, health] : scanners) {
      if (health->config().readyz && !health->up()) return false;
    }
    return true;
  }
};

// Process-wide services shared by all sessions.
struct Services {
  event_base* base = nullptr;  // the loop this session runs on (its worker's)
  unsigned worker = 0;
  log::Logger* logger = nullptr;
  log::Logger* tls_logger = nullptr;  // tls.log (TLSLog); nullptr = the main log
  log::AppendFile* xferlog = nullptr;  // logging.xferlog, else nullptr
  metrics::Metrics* metrics = nullptr;
  data::PassivePortPool* ports = nullptr;
  data::SharedPassivePort* shared_port = nullptr;  // passive.shared_port, else nullptr
  policy::LoginThrottle* login_throttle = nullptr;
  data::BandwidthRegistry* bandwidth = nullptr;  // shared bandwidth buckets (users, classes)
  auth::AuthPool* auth_pool = nullptr;  // gateway-side logins run here, off the loops
  inspection::ScannerSet* scanners = nullptr;   // this worker's scanners (issue 16)
  inspection::SpoolBudget* spool_budget = nullptr;  // inspection.max_spool_bytes, process-wide
  // Every connection to a backend (control, data, health checks) goes through it; one per
  // process, thread-safe, and it outlives every loop.
  net::Dialer* dialer = nullptr;
  // Thread-safe: runs `job` on the session's loop if session `id` is still there (set by
  // the worker that runs the session).
  std::function<void(uint64_t id, std::function<void(ControlSession&)> job)> in_session;
};

}  // namespace ftpsgate::session
