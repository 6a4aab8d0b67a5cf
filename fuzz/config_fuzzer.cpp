// libFuzzer target: the config loader on YAML text (src/config/config_loader.h:
// load_config_text, and load_agent_config_text on the same bytes). It must never throw or crash; a config it accepts must satisfy the
// rules the rest of the gateway relies on without checking again.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <tuple>

#include "config/config_loader.h"
#include "config/value_parsers.h"
#include "ftp/address_codec.h"
#include "fuzz_check.h"
#include "policy/client_class.h"
#include "tunnel/agent_protocol.h"

namespace {

using namespace ftpsgate;

const std::string kFile = "fuzz.yaml";

// An IP literal as the socket layer will read it: no NUL that inet_pton would stop at.
bool strict_ip_literal(const std::string& host) {
  if (host.find('\0') != std::string::npos) return false;
  std::array<unsigned char, sizeof(in6_addr)> raw{};
  return inet_pton(AF_INET, host.c_str(), raw.data()) == 1 || inet_pton(AF_INET6, host.c_str(), raw.data()) == 1;
}

bool has_control(const std::string& text) {
  for (const char ch : text) {
    const auto byte = static_cast<unsigned char>(ch);
    if (byte < 0x20 || byte == 0x7f) return true;
  }
  return false;
}

void check_config(const Config& config) {
  FUZZ_CHECK(config.source == kFile);
  FUZZ_CHECK(!config.listeners.empty());
  FUZZ_CHECK(config.passive.port_min >= 1 && config.passive.port_min <= config.passive.port_max);
  for (const auto& listener : config.listeners) {
    FUZZ_CHECK(!listener.name.empty());
    FUZZ_CHECK(config.find_backend(listener.backend) != nullptr);
    FUZZ_CHECK(listener.address.port != 0);
    FUZZ_CHECK(strict_ip_literal(listener.address.host));
    // SECURITY: the banner goes into the 220 line as it is.
    FUZZ_CHECK(listener.banner.size() <= 256 && !has_control(listener.banner));
    FUZZ_CHECK(listener.address.port < config.passive.port_min || listener.address.port > config.passive.port_max);
  }
  for (const auto& backend : config.backends) {
    FUZZ_CHECK(!backend.name.empty());
    FUZZ_CHECK(!backend.servers.empty());
    for (const auto& server : backend.servers) {
      FUZZ_CHECK(server.address.port != 0);
      FUZZ_CHECK(server.address.host.find('\0') == std::string::npos);
      if (server.agent.empty()) continue;
      // Through an agent (issue 17): a known peer, passive data, no backend TLS, and a host
      // the CONNECT line can carry.
      FUZZ_CHECK(config.agents.has_value() && config.agents->find(server.agent) != nullptr);
      FUZZ_CHECK(backend.data_mode == BackendDataMode::kPassive && backend.tls == BackendTls::kOff);
      std::string error;
      const std::string& host = server.address.host;
      FUZZ_CHECK(tunnel::parse_host(config::is_ipv6_literal(host) ? "[" + host + "]" : host, error).has_value());
    }
  }
  if (config.agents) {
    const auto& agents = *config.agents;
    FUZZ_CHECK(strict_ip_literal(agents.address.host) && agents.address.port != 0);
    FUZZ_CHECK(!agents.certificate.cert.empty() && !agents.certificate.key.empty() && !agents.client_ca.empty());
    FUZZ_CHECK(!agents.peers.empty());
    for (const auto& peer : agents.peers) {
      // SECURITY: an empty `equals` would make every certificate of the agents' CA this agent.
      FUZZ_CHECK(!peer.name.empty() && !peer.certificate.equals.empty());
      FUZZ_CHECK(peer.certificate.user == peer.name && peer.certificate.prefix.empty() &&
                 peer.certificate.suffix.empty());
      FUZZ_CHECK(peer.max_idle >= 1 && peer.max_idle <= peer.max_links);
      FUZZ_CHECK(agents.find(peer.name) == &peer);
    }
  }
  FUZZ_CHECK(!config.classes.empty());
  for (std::size_t i = 0; i < config.classes.size(); ++i) {
    const auto& cls = config.classes[i];
    // Only the last class may match everyone.
    if (i + 1 < config.classes.size()) FUZZ_CHECK(!cls.from.empty());
    for (const auto& cidr : cls.from) {
      FUZZ_CHECK(!config::cidr_error(cidr).has_value());
      // select_class() skips an entry policy::Cidr cannot parse: it would match nobody.
      FUZZ_CHECK(policy::Cidr::parse(cidr).has_value());
    }
    // SECURITY: what goes into a 227 reply must be what the PASV builder accepts.
    if (!cls.masquerade_address.empty()) FUZZ_CHECK(ftp::is_ipv4_literal(cls.masquerade_address));
  }
  if (!config.passive.masquerade_address.empty()) {
    FUZZ_CHECK(ftp::is_ipv4_literal(config.passive.masquerade_address));
  }
  FUZZ_CHECK(config.limits.max_line >= 512 && config.limits.max_line <= (std::size_t{1} << 20));
  FUZZ_CHECK(config.tls.session_timeout <= std::chrono::hours(24 * 7));
  FUZZ_CHECK(config.workers <= 256);
}

// The agent's file (issue 17), loaded from the same bytes.
void check_agent_config(const AgentConfig& config) {
  FUZZ_CHECK(config.source == kFile);
  const auto& agent = config.agent;
  FUZZ_CHECK(!agent.gateways.empty());
  for (const auto& gateway : agent.gateways) FUZZ_CHECK(gateway.address.port != 0 && !gateway.server_name.empty());
  FUZZ_CHECK(!agent.tls_ca.empty() && !agent.tls_cert.empty() && !agent.tls_key.empty());
  FUZZ_CHECK(agent.targets.size() > 0 && agent.targets.size() == agent.target_texts.size());
  FUZZ_CHECK(agent.pool.idle >= 1 && agent.pool.idle <= agent.pool.max_links);
  FUZZ_CHECK(agent.pool.keepalive_timeout >= std::chrono::seconds(2));
  FUZZ_CHECK(agent.pool.backoff.initial <= agent.pool.backoff.max);
  if (!config.metrics.address.empty()) FUZZ_CHECK(config::parse_host_port(config.metrics.address).has_value());
}

template <typename Result>
void check_result(const Result& result) {
  FUZZ_CHECK(result.config.has_value() == result.errors.empty());
  for (std::size_t i = 0; i < result.errors.size(); ++i) {
    const auto& error = result.errors[i];
    FUZZ_CHECK(error.file == kFile && !error.message.empty());
    FUZZ_CHECK(error.line >= 1 && error.column >= 1);
    FUZZ_CHECK(error.format().rfind(kFile + ":" + std::to_string(error.line) + ":", 0) == 0);
    if (i > 0) {
      const auto& previous = result.errors[i - 1];
      FUZZ_CHECK(std::tie(previous.line, previous.column) <= std::tie(error.line, error.column));
    }
  }
  for (const auto& warning : result.warnings) FUZZ_CHECK(warning.rfind(kFile + ":", 0) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const auto embedded = config::load_config_text(config::embedded_default_yaml(), kFile);
  FUZZ_CHECK(embedded.errors.empty() && embedded.config.has_value());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  config::LoadResult result;
  config::AgentLoadResult agent_result;
  try {
    result = config::load_config_text(text, kFile);
    agent_result = config::load_agent_config_text(text, kFile);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "the config loader threw: %s\n", e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "the config loader threw a non-std exception\n");
    std::abort();
  }
  check_result(result);
  if (result.config) check_config(*result.config);
  check_result(agent_result);
  if (agent_result.config) check_agent_config(*agent_result.config);
  return 0;
}
