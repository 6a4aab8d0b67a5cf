// Active health checks of one pool: every health_check.interval each server must answer a
// TCP connect with a 220 greeting within health_check.timeout (SPEC §2).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "net/libevent_handles.h"
#include "net/timer.h"

namespace ftpsgate::backend {

class BackendPool;
struct Server;

class HealthChecker {
 public:
  HealthChecker(event_base* base, BackendPool& pool);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

 private:
  struct Probe {
    HealthChecker* owner = nullptr;
    Server* server = nullptr;
    net::BufferEventPtr connection;
    std::string greeting;
    std::unique_ptr<net::Timer> next;
    std::unique_ptr<net::Timer> deadline;
  };

  void start(Probe& probe);
  void finish(Probe& probe, bool up, const std::string& why);
  static void on_read(bufferevent* bev, void* self);
  static void on_event(bufferevent* bev, short what, void* self);

  event_base* base_;
  BackendPool& pool_;
  std::vector<std::unique_ptr<Probe>> probes_;
};

}  // namespace ftpsgate::backend
