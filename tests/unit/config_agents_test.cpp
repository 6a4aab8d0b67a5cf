// Inside-out agents in the configuration (issue 17, docs/agent-design.md 2): the gateway's
// `agents` section and `agent:` servers with the cross-field rules of 2.4, and the agent's
// own file. One inline YAML document per rule, with the exact line:col and message.
#include <doctest/doctest.h>

#include <string>

#include "config/agent_reload.h"
#include "config/config_loader.h"
#include "config_test_support.h"

using namespace ftpsgate::config_test;  // doc, check_only_error, load_ok, describe

using ftpsgate::AgentConfig;
using ftpsgate::BackendDataMode;
namespace cfg = ftpsgate::config;
using namespace std::chrono_literals;

namespace {

// The gateway document most cases change one line of: a listener, a backend reached
// through agent site-a, and an agents section with that one peer. Fixed lines: 4 the
// backend, 6 agents.address, 7 agents.tls, 9 the peer; `more` starts on line 10.
struct Gateway {
  std::string backend = R"({name: b, servers: ["agent:site-a/127.0.0.1:21"]})";
  std::string address = R"("0.0.0.0:8990")";
  std::string tls = "{cert: /etc/g/agents.pem, key: /etc/g/agents.key, client_ca: /etc/g/agents-ca.pem}";
  std::string peer = "{name: site-a, certificate: {field: cn, equals: site-a}}";
  std::string more;  // whole lines, indentation included
};

std::string gateway(const Gateway& parts) {
  return "listeners:\n"
         "  - {name: l, address: \"127.0.0.1:2121\", backend: b}\n"
         "backends:\n"
         "  - " +
         parts.backend +
         "\n"
         "agents:\n"
         "  address: " +
         parts.address +
         "\n"
         "  tls: " +
         parts.tls +
         "\n"
         "  peers:\n"
         "    - " +
         parts.peer + "\n" + parts.more;
}

// The agent's file most cases change one line of: line 2 the gateways, 3 the tls, 4 the
// targets; `more` starts on line 5. An empty part leaves its line out.
struct AgentFile {
  std::string gateways = R"([{address: "gw.example.com:8990"}])";
  std::string tls = "{ca: /etc/a/ca.pem, cert: /etc/a/agent.pem, key: /etc/a/agent.key}";
  std::string targets = R"(["127.0.0.1:21"])";
  std::string more;  // whole lines, indentation included
};

std::string agent_file(const AgentFile& parts) {
  auto line = [](std::string_view key, const std::string& value) {
    return value.empty() ? std::string() : "  " + std::string(key) + ": " + value + "\n";
  };
  return "agent:\n" + line("gateways", parts.gateways) + line("tls", parts.tls) + line("targets", parts.targets) +
         parts.more;
}

const std::string kAgentFile = agent_file({});

cfg::AgentLoadResult load_agent(const std::string& yaml) { return cfg::load_agent_config_text(yaml, "agent.yaml"); }

void check_only_agent_error(int line, int column, const std::string& message, const std::string& yaml) {
  check_only_error_in(load_agent(yaml), "agent.yaml", line, column, message, yaml);
}

AgentConfig load_agent_ok(const std::string& yaml) {
  const auto result = load_agent(yaml);
  INFO("document:\n" << yaml << describe(result));
  REQUIRE(result.errors.empty());
  REQUIRE(result.config.has_value());
  CHECK(result.warnings.empty());
  return *result.config;
}

}  // namespace

// ---- The gateway: agents and agent servers -----------------------------------------------

TEST_CASE("without an agents section nothing is bound for agents") {
  const auto config = load_ok(kBase);
  CHECK_FALSE(config.agents.has_value());
  REQUIRE(config.backends[0].servers.size() == 1);
  CHECK(config.backends[0].servers[0].agent.empty());
}
TEST_CASE("an agents section and an agent server are read with every value") {
  const auto config = load_ok(doc(R"(
    listeners:
      - {name: l, address: "127.0.0.1:2121", backend: b}
    backends:
      - name: b
        servers: ["agent:site-a/ftp.corp.example:21", "agent:site-a/[fd00::1]:2121", "10.0.0.5:21"]
    agents:
      address: "[::]:8990"
      from: ["198.51.100.7/32"]
      tls:
        cert: /etc/g/agents.pem
        key: /etc/g/agents.key
        client_ca: /etc/g/agents-ca.pem
        crl: /etc/g/agents.crl
      handshake_timeout: 5s
      max_handshakes: 16
      keepalive_interval: 30s
      keepalive_timeout: 15s
      peers:
        - name: site-a
          certificate: {field: san_uri, equals: "urn:ftpsgate:agent:site-a"}
          from: ["198.51.100.7/32"]
          max_idle: 4
          max_links: 100
          max_waiting: 0
  )"));
  const auto& servers = config.backends[0].servers;
  REQUIRE(servers.size() == 3);
  CHECK(servers[0].agent == "site-a");
  CHECK(servers[0].address.host == "ftp.corp.example");
  CHECK(servers[0].address.port == 21);
  CHECK(servers[0].to_string() == "agent:site-a/ftp.corp.example:21");
  CHECK(servers[0].position.line == 5);
  CHECK(servers[1].address.host == "fd00::1");
  CHECK(servers[1].to_string() == "agent:site-a/[fd00::1]:2121");
  CHECK(servers[2].agent.empty());
  CHECK(servers[2].to_string() == "10.0.0.5:21");

  REQUIRE(config.agents.has_value());
  const auto& agents = *config.agents;
  CHECK(agents.address.to_string() == "[::]:8990");
  CHECK(agents.from == std::vector<std::string>{"198.51.100.7/32"});
  CHECK(agents.certificate.cert == "/etc/g/agents.pem");
  CHECK(agents.certificate.key == "/etc/g/agents.key");
  CHECK(agents.certificate.position.line == 11);  // the key: where a mismatch is reported
  CHECK(agents.client_ca == "/etc/g/agents-ca.pem");
  CHECK(agents.client_ca_position.line == 12);
  CHECK(agents.crl == "/etc/g/agents.crl");
  CHECK(agents.handshake_timeout == 5s);
  CHECK(agents.max_handshakes == 16);
  CHECK(agents.keepalive_interval == 30s);
  CHECK(agents.keepalive_timeout == 15s);
  REQUIRE(agents.peers.size() == 1);
  const auto& peer = agents.peers[0];
  CHECK(peer.name == "site-a");
  CHECK(peer.certificate.field == "san_uri");
  CHECK(peer.certificate.equals == "urn:ftpsgate:agent:site-a");
  CHECK(peer.certificate.user == "site-a");
  CHECK(peer.certificate.prefix.empty());
  CHECK(peer.certificate.suffix.empty());
  CHECK(peer.from == std::vector<std::string>{"198.51.100.7/32"});
  CHECK(peer.max_idle == 4);
  CHECK(peer.max_links == 100);
  CHECK(peer.max_waiting == 0);
  CHECK(agents.find("site-a") == &peer);
}

TEST_CASE("agents defaults") {
  const auto config = load_ok(gateway({}));
  REQUIRE(config.agents.has_value());
  CHECK(config.agents->from.empty());
  CHECK(config.agents->crl.empty());
  CHECK(config.agents->handshake_timeout == 10s);
  CHECK(config.agents->max_handshakes == 64);
  CHECK(config.agents->keepalive_interval == 20s);
  CHECK(config.agents->keepalive_timeout == 10s);
  CHECK(config.agents->peers[0].max_idle == 32);
  CHECK(config.agents->peers[0].max_links == 1024);
  CHECK(config.agents->peers[0].max_waiting == 256);
}

TEST_CASE("an unknown key in agents is an error at the key") {
  check_only_error(10, 3, "unknown key 'port' in 'agents'", gateway({.more = "  port: 8990\n"}));
}

TEST_CASE("a peer's certificate takes field and equals only (no prefix or suffix templates)") {
  check_only_error(
      9, 65, "unknown key 'suffix' in 'agents.peers[0].certificate'",
      gateway({.peer = R"({name: site-a, certificate: {field: san_uri, equals: "x", suffix: "@example.org"}})"}));
}

TEST_CASE("a peer's certificate field must be a certificate field") {
  check_only_error(9, 43,
                   "field must be one of: dn, cn, subject.<ATTRIBUTE> (e.g. subject.UID), san_email, san_dns, san_uri",
                   gateway({.peer = R"({name: site-a, certificate: {field: serial, equals: "01"}})"}));
}

TEST_CASE("a peer's certificate needs a non-empty equals") {
  check_only_error(9, 55, "'equals' must not be empty (it names exactly one agent's certificate)",
                   gateway({.peer = R"({name: site-a, certificate: {field: cn, equals: ""}})"}));
}

TEST_CASE("agents needs at least one peer") {
  check_only_error(8, 10, "agents needs at least one peer ('peers')", doc(R"(
    listeners:
      - {name: l, address: "127.0.0.1:2121", backend: b}
    backends:
      - {name: b, servers: ["127.0.0.1:21"]}
    agents:
      address: "0.0.0.0:8990"
      tls: {cert: /etc/g/agents.pem, key: /etc/g/agents.key, client_ca: /etc/g/agents-ca.pem}
      peers: []
  )"));
}

TEST_CASE("agents.address is required and an IP address") {
  check_only_error(6, 3, "missing required key 'address' in 'agents'", doc(R"(
    listeners:
      - {name: l, address: "127.0.0.1:2121", backend: b}
    backends:
      - {name: b, servers: ["agent:site-a/127.0.0.1:21"]}
    agents:
      tls: {cert: /etc/g/agents.pem, key: /etc/g/agents.key, client_ca: /etc/g/agents-ca.pem}
      peers:
        - {name: site-a, certificate: {field: cn, equals: site-a}}
  )"));
  check_only_error(6, 12, "agents address must be an IP address, not a host name (e.g. 0.0.0.0:21 or [::]:21)",
                   gateway({.address = R"("dmz-gw:8990")"}));
}

TEST_CASE("agents.tls needs cert, key and client_ca") {
  check_only_error(7, 8, "missing required key 'key' in 'agents.tls'",
                   gateway({.tls = "{cert: /etc/g/agents.pem, client_ca: /etc/g/agents-ca.pem}"}));
  check_only_error(7, 69, "'client_ca' must not be empty",
                   gateway({.tls = R"({cert: /etc/g/agents.pem, key: /etc/g/agents.key, client_ca: ""})"}));
  check_only_error(6, 3, "missing required key 'tls' in 'agents'", doc(R"(
    listeners:
      - {name: l, address: "127.0.0.1:2121", backend: b}
    backends:
      - {name: b, servers: ["agent:site-a/127.0.0.1:21"]}
    agents:
      peers:
        - {name: site-a, certificate: {field: cn, equals: site-a}}
      address: "0.0.0.0:8990"
  )"));
}

TEST_CASE("agents.tls.client_ca must not be the FTPS clients' CA") {
  const std::string yaml =
      "tls: {client_ca: /etc/g/clients-ca.pem}\n" + gateway({.tls = "{cert: /etc/g/agents.pem, key: /etc/g/agents.key, "
                                                                    "client_ca: /etc/g/clients-ca.pem}"});
  check_only_error(
      8, 69, "agents.tls.client_ca must not be the FTPS clients' CA (a user's certificate would be an agent)", yaml);
}

TEST_CASE("agent names are unique") {
  check_only_error(10, 14, "duplicate agent name 'site-a' (first used on line 9)",
                   gateway({.more = "    - {name: site-a, certificate: {field: cn, equals: other}}\n"}));
}

TEST_CASE("two agents cannot share a certificate mapping") {
  check_only_error(
      10, 35, "duplicate agent certificate mapping (peer 'site-a' on line 9)",
      gateway({.backend = R"({name: b, servers: ["agent:site-a/127.0.0.1:21", "agent:site-b/127.0.0.1:21"]})",
               .more = "    - {name: site-b, certificate: {field: cn, equals: site-a}}\n"}));
}

TEST_CASE("max_idle of a peer is at most its max_links") {
  check_only_error(
      9, 89, "'max_idle' (64) must not be larger than 'max_links' (10)",
      gateway({.peer = "{name: site-a, certificate: {field: cn, equals: site-a}, max_links: 10, max_idle: 64}"}));
}

TEST_CASE("an agent server names an agents.peers entry") {
  check_only_error(
      4, 25, "unknown agent 'site-b' (agents.peers)",
      gateway({.backend = R"({name: b, servers: ["agent:site-b/127.0.0.1:21", "agent:site-a/127.0.0.1:21"]})"}));
}

TEST_CASE("an agent server needs an agents section") {
  check_only_error(4, 25, "server 'agent:site-a/127.0.0.1:21' needs an 'agents' section", doc(R"(
    listeners:
      - {name: l, address: "127.0.0.1:2121", backend: b}
    backends:
      - {name: b, servers: ["agent:site-a/127.0.0.1:21"]}
  )"));
}

TEST_CASE("an agent server is written agent:NAME/host:port") {
  const std::string usage = " (use agent:NAME/host:port)";
  auto server = [](std::string_view entry) {
    return kBase.substr(0, kBase.rfind('\n', kBase.size() - 2) + 1) + "  - {name: b, servers: [\"127.0.0.1:21\", \"" +
           std::string(entry) + "\"]}\n";
  };
  check_only_error(4, 41, "invalid agent server 'agent:site-a'" + usage, server("agent:site-a"));
  check_only_error(4, 41, "invalid agent server 'agent:site-a/127.0.0.1'" + usage, server("agent:site-a/127.0.0.1"));
  check_only_error(4, 41,
                   "invalid agent server 'agent:/127.0.0.1:21'" + usage +
                       ": the agent name must be letters, digits, '-', '_' or '.'",
                   server("agent:/127.0.0.1:21"));
  check_only_error(4, 41, "invalid agent server 'agent:site-a/127.1:21'" + usage, server("agent:site-a/127.1:21"));
  // The agent reads the host from a CONNECT line: only what that line may carry.
  check_only_error(4, 41,
                   "invalid agent server 'agent:site-a/[::ffff:127.0.0.1]:21'" + usage + ": IPv4-mapped IPv6 address",
                   server("agent:site-a/[::ffff:127.0.0.1]:21"));
  check_only_error(4, 41,
                   "invalid agent server 'agent:site-a/0.0.0.0:21'" + usage + ": unspecified IPv4 address (0.0.0.0/8)",
                   server("agent:site-a/0.0.0.0:21"));
}

TEST_CASE("data_mode: active cannot work through an agent") {
  check_only_error(4, 81,
                   "backend 'b': data_mode: active cannot work through agent 'site-a' (the backend would have to "
                   "connect into the DMZ); use data_mode: passive",
                   gateway({.backend = R"({name: b, servers: ["10.0.0.5:21", "agent:site-a/127.0.0.1:21"], )"
                                       R"(data_mode: active})"}));
}

TEST_CASE("an FTPS backend is not supported through an agent") {
  check_only_error(4, 60,
                   "backend 'b': tls: explicit is not supported through agent 'site-a' (the agent link is TLS "
                   "already); use tls: off",
                   gateway({.backend = R"({name: b, servers: ["agent:site-a/127.0.0.1:21"], tls: explicit})"}));
  // Written but off, or passive: allowed.
  const auto config = load_ok(
      gateway({.backend = R"({name: b, servers: ["agent:site-a/127.0.0.1:21"], tls: off, data_mode: passive})"}));
  CHECK(config.backends[0].data_mode == BackendDataMode::kPassive);
}

TEST_CASE("agents.address clashes with a listener, the metrics address or the passive range") {
  check_only_error(6, 12, "agents address 0.0.0.0:2121 clashes with listener 'l' (127.0.0.1:2121)",
                   gateway({.address = R"("0.0.0.0:2121")"}));
  check_only_error(6, 12, "agents address 127.0.0.1:9121 clashes with the metrics address 127.0.0.1:9121",
                   gateway({.address = R"("127.0.0.1:9121")"}));
  check_only_error(6, 12, "agents address 0.0.0.0:30010 is inside the passive port range 30000-30999",
                   gateway({.address = R"("0.0.0.0:30010")"}));
  // Another address or port: no clash.
  load_ok(gateway({.address = R"("127.0.0.2:2121")"}));
  load_ok(gateway({.address = R"("0.0.0.0:9121")", .more = "metrics: {address: \"\"}\n"}));
}

TEST_CASE("an agent no backend uses is a warning") {
  const auto result = load(gateway({.more = "    - {name: site-b, certificate: {field: cn, equals: site-b}}\n"}));
  INFO(describe(result));
  REQUIRE(result.errors.empty());
  REQUIRE(result.warnings.size() == 1);
  CHECK(result.warnings[0] == "test.yaml:10:7: agent 'site-b' is not used by any backend");
}

// ---- The agent's own file ------------------------------------------------------------------

TEST_CASE("the agent's file is read with every value") {
  const auto config = load_agent_ok(doc(R"(
    agent:
      gateways:
        - address: "dmz-gw.example.com:8990"
          server_name: "gw.example.com"
        - {address: "192.0.2.10:8990"}
        - {address: "[2001:db8::1]:8990"}
      tls:
        ca: /etc/a/gateway-ca.pem
        cert: /etc/a/agent.pem
        key: /etc/a/agent.key
      pool: {idle: 2, max_links: 64, max_dialing: 2, connect_timeout: 3s, keepalive_timeout: 30s,
             backoff: {initial: 100ms, max: 10s}}
      targets: ["127.0.0.1:21", "127.0.0.1:40000-40049", "10.20.0.0/24:21", "ftp.corp.example:21"]
      connect_timeout: 2s
      drain_timeout: 0s
    metrics: {address: "127.0.0.1:9300"}
    logging: {format: text, level: debug, file: /var/log/agent.log}
    user: nobody
  )"));
  CHECK(config.source == "agent.yaml");
  const auto& agent = config.agent;
  REQUIRE(agent.gateways.size() == 3);
  CHECK(agent.gateways[0].address.to_string() == "dmz-gw.example.com:8990");
  CHECK(agent.gateways[0].server_name == "gw.example.com");
  CHECK(agent.gateways[0].position.line == 3);
  CHECK(agent.gateways[1].server_name == "192.0.2.10");
  CHECK(agent.gateways[2].address.host == "2001:db8::1");
  CHECK(agent.gateways[2].server_name == "2001:db8::1");
  CHECK(agent.tls_ca == "/etc/a/gateway-ca.pem");
  CHECK(agent.tls_ca_position.line == 8);
  CHECK(agent.tls_cert == "/etc/a/agent.pem");
  CHECK(agent.tls_key == "/etc/a/agent.key");
  CHECK(agent.tls_position.line == 10);
  CHECK(agent.pool.idle == 2);
  CHECK(agent.pool.max_links == 64);
  CHECK(agent.pool.max_dialing == 2);
  CHECK(agent.pool.connect_timeout == 3s);
  CHECK(agent.pool.keepalive_timeout == 30s);
  CHECK(agent.pool.backoff.initial == 100ms);
  CHECK(agent.pool.backoff.max == 10s);
  REQUIRE(agent.targets.size() == 4);
  CHECK(agent.target_texts ==
        std::vector<std::string>{"127.0.0.1:21", "127.0.0.1:40000-40049", "10.20.0.0/24:21", "ftp.corp.example:21"});
  CHECK(agent.targets.entries()[1].port_low == 40000);
  CHECK(agent.targets.entries()[1].port_high == 40049);
  CHECK(agent.targets.entries()[3].name == "ftp.corp.example");
  CHECK(agent.connect_timeout == 2s);
  CHECK(agent.drain_timeout == 0s);
  CHECK(config.metrics.address == "127.0.0.1:9300");
  CHECK(config.logging.format == ftpsgate::LogFormat::kText);
  CHECK(config.logging.level == ftpsgate::LogLevel::kDebug);
  CHECK(config.logging.file == "/var/log/agent.log");
  CHECK(config.user == "nobody");
}

TEST_CASE("the agent's defaults") {
  const auto config = load_agent_ok(kAgentFile);
  CHECK(config.agent.gateways[0].server_name == "gw.example.com");
  CHECK(config.agent.pool.idle == 8);
  CHECK(config.agent.pool.max_links == 1024);
  CHECK(config.agent.pool.max_dialing == 4);
  CHECK(config.agent.pool.connect_timeout == 10s);
  CHECK(config.agent.pool.keepalive_timeout == 60s);
  CHECK(config.agent.pool.backoff.initial == 250ms);
  CHECK(config.agent.pool.backoff.max == 30s);
  CHECK(config.agent.connect_timeout == 5s);
  CHECK(config.agent.drain_timeout == 60s);
  CHECK(config.metrics.address == "127.0.0.1:9122");
  CHECK(config.logging.format == ftpsgate::LogFormat::kJson);
  CHECK(config.user.empty());
}

TEST_CASE("the agent's file needs its agent section") {
  check_only_agent_error(1, 1, "missing required key 'agent' at top level", "metrics: {address: \"\"}\n");
  check_only_agent_error(1, 1, "missing required key 'agent' at top level", "");
}

TEST_CASE("the agent's file refuses unknown keys, the gateway's keys too") {
  check_only_agent_error(5, 1, "unknown key 'listeners' at top level", kAgentFile + doc(R"(
    listeners: []
  )"));
  check_only_agent_error(6, 3, "unknown key 'xferlog' in 'logging'", kAgentFile + doc(R"(
    logging:
      xferlog: /var/log/xferlog
  )"));
  check_only_agent_error(5, 11, "unknown key 'user_labels' in 'metrics'", kAgentFile + doc(R"(
    metrics: {user_labels: true}
  )"));
  check_only_agent_error(5, 3, "unknown key 'target' in 'agent' (did you mean 'targets'?)",
                         agent_file({.more = "  target: [\"127.0.0.1:22\"]\n"}));
}

TEST_CASE("the agent needs at least one gateway") {
  check_only_agent_error(2, 13, "agent needs at least one gateway ('gateways')", agent_file({.gateways = "[]"}));
  check_only_agent_error(2, 3, "agent needs at least one gateway ('gateways')", agent_file({.gateways = ""}));
}

TEST_CASE("a gateway address is host:port and each gateway is listed once") {
  check_only_agent_error(2, 24, "invalid gateway address 'gw.example.com' (use host:port or [IPv6]:port)",
                         agent_file({.gateways = R"([{address: "gw.example.com"}])"}));
  check_only_agent_error(
      2, 58, "duplicate gateway address 'GW.example.com:8990' (first used on line 2)",
      agent_file({.gateways = R"([{address: "gw.example.com:8990"}, {address: "GW.example.com:8990"}])"}));
  check_only_agent_error(2, 28,
                         "invalid server_name 'gw example': host is not an IPv4 address, [IPv6] address or DNS name",
                         agent_file({.gateways = R"([{server_name: "gw example", address: "gw.example.com:8990"}])"}));
}

TEST_CASE("the agent's tls needs ca, cert and key") {
  check_only_agent_error(3, 8, "missing required key 'ca' in 'agent.tls'",
                         agent_file({.tls = "{cert: /etc/a/agent.pem, key: /etc/a/agent.key}"}));
  check_only_agent_error(2, 3, "missing required key 'tls' in 'agent'", agent_file({.tls = ""}));
  check_only_agent_error(3, 34, "'cert' must not be empty",
                         agent_file({.tls = R"({ca: /etc/a/ca.pem, cert: "", key: /etc/a/agent.key})"}));
}

TEST_CASE("the agent needs at least one valid target") {
  check_only_agent_error(4, 29,
                         "invalid target '127.1:21' (use host:port, host:lo-hi or CIDR:port): host is neither a "
                         "canonical IPv4 address nor a DNS name",
                         agent_file({.targets = R"(["127.0.0.1:21", "127.1:21"])"}));
  check_only_agent_error(4, 12, "agent needs at least one target ('targets'): the host:port it may connect to",
                         agent_file({.targets = "[]"}));
}

TEST_CASE("the agent's pool: idle at most max_links, keepalive_timeout at least 2s, backoff initial at most max") {
  auto with_pool = [](std::string_view pool) { return agent_file({.more = "  pool: " + std::string(pool) + "\n"}); };
  check_only_agent_error(5, 16, "'pool.idle' (16) must not be larger than 'pool.max_links' (8)",
                         with_pool("{idle: 16, max_links: 8}"));
  check_only_agent_error(5, 37, "'pool.idle' (8) must not be larger than 'pool.max_links' (4)",
                         with_pool("{max_dialing: 1, max_links: 4}"));
  check_only_agent_error(5, 29, "'pool.keepalive_timeout' must be at least 2s",
                         with_pool("{keepalive_timeout: 1500ms}"));
  check_only_agent_error(5, 29, "'pool.backoff.initial' must not be longer than 'pool.backoff.max'",
                         with_pool("{backoff: {initial: 1m, max: 30s}}"));
  check_only_agent_error(5, 16, "'idle' must be between 1 and 65536", with_pool("{idle: 0}"));
  const auto config = load_agent_ok(with_pool("{idle: 4, max_links: 4, keepalive_timeout: 2s}"));
  CHECK(config.agent.pool.keepalive_timeout == 2s);
}

TEST_CASE("an unreadable agent file is an error without a position") {
  const auto result = cfg::load_agent_config_file("/nonexistent/agent.yaml");
  REQUIRE(result.errors.size() == 1);
  CHECK_FALSE(result.config.has_value());
  CHECK(result.errors[0].format() ==
        "/nonexistent/agent.yaml: cannot read the configuration: No such file or directory");
}

#ifdef FTPSGATE_SOURCE_DIR
TEST_CASE("config/agent.yaml loads without errors or warnings") {
  const auto result = cfg::load_agent_config_file(std::string(FTPSGATE_SOURCE_DIR) + "/config/agent.yaml");
  INFO(describe(result));
  REQUIRE(result.errors.empty());
  REQUIRE(result.config.has_value());
  CHECK(result.warnings.empty());
  CHECK(result.config->agent.targets.size() == 4);
}
#endif

// ---- The agent's SIGHUP (config/agent_reload.h) ------------------------------------------

TEST_CASE("a reload may change the targets, the tls files, the pool's sizes and the timeouts") {
  const AgentConfig running = load_agent_ok(kAgentFile);
  const AgentConfig fresh = load_agent_ok(agent_file(
      {.tls = "{ca: /etc/a/ca2.pem, cert: /etc/a/agent2.pem, key: /etc/a/agent2.key}",
       .targets = R"(["127.0.0.1:21", "10.0.0.0/8:21"])",
       .more = "  pool: {idle: 3, max_links: 9, max_dialing: 2, connect_timeout: 4s, keepalive_timeout: 7s}\n"
               "  connect_timeout: 2s\n"
               "  drain_timeout: 9s\n"}));
  CHECK_FALSE(cfg::agent_reload_conflict(running, fresh).has_value());
  ftpsgate::AgentSection live = running.agent;
  const auto* gateways = live.gateways.data();
  cfg::apply_agent_reload(live, fresh.agent);
  CHECK(live.tls_ca == "/etc/a/ca2.pem");
  CHECK(live.tls_cert == "/etc/a/agent2.pem");
  CHECK(live.tls_key == "/etc/a/agent2.key");
  CHECK(live.target_texts == std::vector<std::string>{"127.0.0.1:21", "10.0.0.0/8:21"});
  CHECK(live.targets.size() == 2);
  CHECK(live.pool.idle == 3);
  CHECK(live.pool.max_links == 9);
  CHECK(live.pool.max_dialing == 2);
  CHECK(live.pool.connect_timeout == 4s);
  CHECK(live.pool.keepalive_timeout == 7s);
  CHECK(live.connect_timeout == 2s);
  CHECK(live.drain_timeout == 9s);
  // The keepers point into the gateways: never reallocated by a reload.
  CHECK(live.gateways.data() == gateways);
}

TEST_CASE("a reload that changes what is bound, opened or dialled at start needs a restart") {
  const AgentConfig running = load_agent_ok(kAgentFile);
  auto conflict = [&](const AgentFile& parts) {
    const auto c = cfg::agent_reload_conflict(running, load_agent_ok(agent_file(parts)));
    return c.value_or("");
  };
  CHECK(conflict({.gateways = R"([{address: "gw2.example.com:8990"}])"}) == "agent.gateways changed");
  CHECK(conflict({.gateways = R"([{address: "gw.example.com:8990", server_name: other.example.com}])"}) ==
        "agent.gateways changed");
  CHECK(conflict({.gateways = R"([{address: "gw.example.com:8990"}, {address: "gw.example.com:8991"}])"}) ==
        "agent.gateways changed");
  CHECK(conflict({.more = "  pool: {backoff: {initial: 1s}}\n"}) == "agent.pool.backoff changed");
  CHECK(conflict({.more = "metrics: {address: \"127.0.0.1:9999\"}\n"}) == "metrics.address changed");
  CHECK(conflict({.more = "logging: {level: debug}\n"}) == "logging changed");
  CHECK(conflict({.more = "user: nobody\n"}) == "user changed");
  CHECK(conflict({}).empty());
}
