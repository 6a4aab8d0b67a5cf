// Active health checks of one pool: every health_check.interval each server must answer a
// TCP connect with a 220 greeting within health_check.timeout (SPEC §2). A server that is
// up is then asked FEAT, so a client's FEAT before login can announce what the pool offers.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ftp/reply.h"
#include "net/dialer.h"
#include "net/libevent_handles.h"
#include "net/timer.h"

namespace ftpsgate::backend {

class BackendPool;
struct Server;

class HealthChecker {
 public:
  // `dialer` outlives the checker.
  HealthChecker(event_base* base, net::Dialer& dialer, BackendPool& pool);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

 private:
  // A greeting or FEAT reply, bounded.
  static constexpr ftp::ReplyLimits kReplyLimits{256, 16 * 1024};

  struct Probe {
    HealthChecker* owner = nullptr;
    Server* server = nullptr;
    std::unique_ptr<net::PendingDial> dialing;
    std::shared_ptr<void> lease;  // what an agent's pipe needs; outlives `connection`
    net::BufferEventPtr connection;
    bool asked_feat = false;  // the greeting was 220 (up); FEAT's answer is awaited
    ftp::ReplyAssembler replies{kReplyLimits};
    std::unique_ptr<net::Timer> next;
    std::unique_ptr<net::Timer> deadline;
  };

  void start(Probe& probe);
  void dialed(Probe& probe, net::Dialed dialed, const std::string& error);
  void finish(Probe& probe, bool up, const std::string& why);
  void on_reply(Probe& probe, const ftp::Reply& reply);
  static void on_read(bufferevent* bev, void* self);
  static void on_event(bufferevent* bev, short what, void* self);

  event_base* base_;
  net::Dialer& dialer_;
  BackendPool& pool_;
  std::vector<std::unique_ptr<Probe>> probes_;
};

}  // namespace ftpsgate::backend
