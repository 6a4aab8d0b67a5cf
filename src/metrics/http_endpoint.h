// The operations HTTP endpoint on the event loop (libevent's evhttp): GET /metrics
// (Prometheus text format), /healthz (the process answers) and /readyz (accepting
// sessions; 503 while draining).
#pragma once

#include <event2/http.h>

#include <functional>
#include <memory>
#include <string>

#include "ftpsgate/config.h"
#include <prometheus/registry.h>

#include "metrics/metrics.h"

namespace ftpsgate::metrics {

class HttpEndpoint {
 public:
  // `address` comes validated from the config; `ready` is asked on every /readyz.
  static std::unique_ptr<HttpEndpoint> create(event_base* base, const HostPort& address, Metrics& metrics,
                                              std::function<bool()> ready, std::string& error);
  // Any registry (the agent's own, agent/agent_metrics.h).
  static std::unique_ptr<HttpEndpoint> create(event_base* base, const HostPort& address,
                                              std::shared_ptr<prometheus::Registry> registry,
                                              std::function<bool()> ready, std::string& error);
  ~HttpEndpoint();
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

 private:
  HttpEndpoint(std::shared_ptr<prometheus::Registry> registry, std::function<bool()> ready)
      : registry_(std::move(registry)), ready_(std::move(ready)) {}
  static void on_request(evhttp_request* request, void* self);

  std::shared_ptr<prometheus::Registry> registry_;
  std::function<bool()> ready_;
  evhttp* http_ = nullptr;
};

}  // namespace ftpsgate::metrics
