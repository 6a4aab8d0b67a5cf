// The inside-out agent's own configuration (`ftpsgate agent --config agent.yaml`, issue 17;
// docs/agent-design.md 2.3). Validated and immutable, defaults here, as in config.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "ftpsgate/config.h"
#include "tunnel/target_allowlist.h"

namespace ftpsgate {

// agent.gateways[]: a gateway's `agents` listener to dial out to.
struct AgentGatewayConfig {
  HostPort address;
  std::string server_name;  // checked against the gateway's certificate; default: address host
  SourcePosition position;
};

struct AgentBackoffConfig {
  Duration initial = std::chrono::milliseconds(250);
  Duration max = std::chrono::seconds(30);
};

struct AgentPoolConfig {
  uint32_t idle = 8;          // idle, ready links per gateway address
  uint32_t max_links = 1024;  // idle, dialing and piped, per gateway address
  uint32_t max_dialing = 4;   // handshakes in flight per gateway address
  Duration connect_timeout = std::chrono::seconds(10);    // TCP + TLS to the gateway
  Duration keepalive_timeout = std::chrono::seconds(60);  // an idle link with no byte for this long is dropped
  AgentBackoffConfig backoff;
};

struct AgentSection {
  std::vector<AgentGatewayConfig> gateways;
  std::string tls_ca;    // pinned: the only trust anchor for gateways
  std::string tls_cert;  // the agent's client certificate (PEM, chain allowed)
  std::string tls_key;
  SourcePosition tls_position;     // the key (where "does not match the certificate" points)
  SourcePosition tls_ca_position;  // the ca
  AgentPoolConfig pool;
  tunnel::TargetAllowlist targets;        // required, at least one entry
  std::vector<std::string> target_texts;  // as written, for logs
  Duration connect_timeout = std::chrono::seconds(5);  // to a target
  Duration drain_timeout = std::chrono::seconds(60);   // SIGTERM: pipes may finish this long
};

struct AgentConfig {
  std::string source;  // file name
  AgentSection agent;
  MetricsConfig metrics{.address = "127.0.0.1:9122"};  // /metrics, /healthz, /readyz; "" = off
  LoggingConfig logging;
  std::string user;
};

}  // namespace ftpsgate
