// Validated, immutable configuration (SPEC §2). Defaults live here, in one place.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/ldap_directory.h"
#include "ftpsgate/tls_required.h"
#include "identity/backend_login.h"
#include "identity/certificate_rules.h"
#include "identity/users_file.h"
#include "inspection/inspection_policy.h"
#include "rules/rule_set.h"

namespace ftpsgate {

using Duration = std::chrono::milliseconds;

enum class ListenerMode { kExplicit, kImplicit };
enum class VerifyClient { kOff, kOptional, kOn };
// session_reuse_required: false, true, or audit (accept a data connection that does not
// resume, but log and count it, so an admin sees who would break under `true`).
enum class SessionReuse { kOff, kRequired, kAudit };
enum class BalancePolicy { kRoundRobin, kLeastConn, kSourceHash, kPerUser };
enum class BackendDataMode { kPassive, kActive };
enum class BackendTls { kOff, kExplicit, kImplicit };
enum class LogFormat { kJson, kText };
enum class LogLevel { kDebug, kInfo, kWarn, kError };

// "host:port" or "[v6]:port", kept as text plus its parts.
struct HostPort {
  std::string host;  // without brackets
  uint16_t port = 0;
  std::string to_string() const;  // re-adds brackets for IPv6
};

struct ListenerConfig {
  std::string name;
  HostPort address;
  ListenerMode mode = ListenerMode::kExplicit;
  std::string backend;
  bool proxy_protocol = false;
  // CIDRs of the load balancers whose PROXY headers are believed; required with
  // proxy_protocol (a header from anyone else is refused).
  std::vector<std::string> proxy_protocol_from;
  // Backends a HOST command may pick; empty = only `backend`.
  std::vector<std::string> host_backends;
  std::string banner = "FTPS gateway ready";
  // Gateway-side authentication: provider names, tried in order; empty = passthrough.
  std::vector<std::string> auth;

  bool host_may_route_to(const std::string& name) const {
    if (host_backends.empty()) return name == backend;
    for (const auto& allowed : host_backends) {
      if (allowed == name) return true;
    }
    return false;
  }
};

// Where a value was written (1-based), for errors found after loading (e.g. certificate files).
struct SourcePosition {
  int line = 1;
  int column = 1;
  std::string prefix() const { return std::to_string(line) + ":" + std::to_string(column) + ": "; }
};

struct CertificateConfig {
  std::string cert;    // PEM leaf + chain
  std::string key;     // PEM key
  std::string pkcs12;  // alternative to cert+key
  SourcePosition position;
};

struct TlsConfig {
  std::vector<CertificateConfig> certificates;  // empty = generate a self-signed ECDSA cert in memory
  std::string passphrase_command;
  std::vector<std::string> protocols = {"TLSv1.2", "TLSv1.3"};
  std::string ciphers;
  std::string ciphersuites;
  std::string groups;
  std::string client_ca;
  std::string client_ca_dir;
  std::string crl;
  VerifyClient verify_client = VerifyClient::kOff;
  bool cert_request = true;
  SessionReuse session_reuse_required = SessionReuse::kRequired;
  Duration session_timeout = std::chrono::seconds(1800);
  std::string ticket_key_file;
  SourcePosition ticket_key_file_position;
  bool client_renegotiation = false;
  std::string log;
};

struct UserOverride {
  std::optional<TlsRequired> tls_required;
};

// Bandwidth limits in bytes per second (issue 15); unset = unlimited.
struct BandwidthLimit {
  std::optional<uint64_t> download;
  std::optional<uint64_t> upload;
};
struct BandwidthConfig {
  BandwidthLimit session;  // each session of the class on its own
  BandwidthLimit user;     // all sessions of one user in the class together
  BandwidthLimit all;      // all sessions of the class together (YAML: `class`)
};

// Upload inspection of one class (issue 16); rules may set it per user or group.
using ClassInspection = inspection::InspectionPolicy;

struct ClassConfig {
  std::string name;
  std::vector<std::string> from;  // CIDRs; empty = matches every address
  TlsRequired tls_required = TlsRequired::kOn;
  std::string masquerade_address;
  std::optional<SessionReuse> session_reuse_required;  // unset = tls.session_reuse_required
  std::optional<VerifyClient> verify_client;   // unset = tls.verify_client
  bool allow_per_user = false;
  std::map<std::string, UserOverride> users;
  std::optional<std::vector<std::string>> auth;  // unset = the listener's chain
  BandwidthConfig bandwidth;
  ClassInspection inspection;
};

// One backends[].servers entry: "host:port", or "agent:NAME/host:port" reached only through
// the links agent NAME keeps open to the gateway (issue 17).
struct ServerConfig {
  HostPort address;
  std::string agent;  // "" = direct
  SourcePosition position;
  // The written form, used as the `server` metric label and in logs.
  std::string to_string() const { return agent.empty() ? address.to_string() : "agent:" + agent + "/" + address.to_string(); }
};

struct HealthCheckConfig {
  Duration interval = std::chrono::seconds(10);
  Duration timeout = std::chrono::seconds(3);
};

struct BackendConfig {
  std::string name;
  SourcePosition position;
  std::vector<ServerConfig> servers;
  BalancePolicy balance = BalancePolicy::kRoundRobin;
  Duration connect_timeout = std::chrono::seconds(5);
  HealthCheckConfig health_check;
  BackendDataMode data_mode = BackendDataMode::kPassive;
  BackendTls tls = BackendTls::kOff;
  std::string tls_ca;      // CA file for the backend's certificate; "" = the system's trust store
  bool tls_verify = true;  // false: accept any backend certificate (an explicit relaxation)
  std::vector<std::string> hosts;  // lower-case HOST names routed here (RFC 7151)
};

enum class ScanEngine { kClamd, kIcap };
enum class IcapMethod { kRespmod, kReqmod };

// One scanning service (inspection.scanners[]).
struct ScannerConfig {
  std::string name;
  SourcePosition position;
  ScanEngine engine = ScanEngine::kClamd;
  // clamd: a unix socket path, or host:port.
  std::string clamd_socket;
  std::optional<HostPort> clamd_address;
  // icap: icap://host[:port]/service
  std::string icap_url;
  IcapMethod icap_method = IcapMethod::kRespmod;
  std::size_t icap_preview = 0;  // bytes sent before the server's 100 Continue; 0 = no preview
  // Connections per worker: idle ones are kept for the next scan (ICAP keep-alive); scans
  // beyond this wait in a bounded queue.
  uint32_t max_connections = 8;
  Duration connect_timeout = std::chrono::seconds(5);
  Duration timeout = std::chrono::seconds(60);  // a scan that makes no progress for this long fails
  HealthCheckConfig health_check;
  bool readyz = false;  // /readyz is false while this scanner is down
};

// inspection: the spool and the scanners (issue 16).
struct InspectionConfig {
  std::string spool_dir = "/var/tmp";  // files are created unnamed (O_TMPFILE) or unlinked at once
  std::size_t memory_threshold = std::size_t{1} << 20;  // per upload; more goes to a file
  uint64_t max_spool_bytes = uint64_t{1} << 30;         // all uploads in the spool together
  std::vector<ScannerConfig> scanners;
  const ScannerConfig* find_scanner(const std::string& name) const {
    for (const auto& scanner : scanners) {
      if (scanner.name == name) return &scanner;
    }
    return nullptr;
  }
};

struct PassiveConfig {
  uint16_t port_min = 30000;  // from passive.ports "30000-30999" or "30000"
  uint16_t port_max = 30999;
  std::string masquerade_address;
  bool shared_port = false;
};

struct ActiveConfig {
  bool enabled = true;
  bool allow_foreign_address = false;
  uint16_t min_port = 1024;
};

struct DataConfig {
  bool allow_foreign_address = false;
  // A transfer that moves no byte for this long fails (426): ProFTPD's TimeoutStalled,
  // vsftpd's data_connection_timeout.
  Duration stall_timeout = std::chrono::seconds(300);
};

struct LimitsConfig {
  uint32_t max_sessions = 10000;
  uint32_t max_sessions_per_ip = 64;
  Duration handshake_timeout = std::chrono::seconds(10);
  Duration login_timeout = std::chrono::seconds(60);
  Duration idle_timeout = std::chrono::seconds(300);
  Duration data_connect_timeout = std::chrono::seconds(30);
  std::size_t max_line = 4096;
  Duration drain_timeout = std::chrono::seconds(60);
  Duration login_failure_delay = std::chrono::seconds(1);  // before a failed login's reply
  uint32_t max_login_failures = 10;                        // per client address; 0 = no ban
  uint32_t max_user_login_failures = 30;                   // per user name, any address; 0 = no lock
  Duration login_ban_time = std::chrono::seconds(300);     // refusal time after that many
};

struct MetricsConfig {
  std::string address = "127.0.0.1:9121";  // "" = off
  // Per-user byte counters (ftpsgate_user_transfer_bytes_total{user}): off by default, and
  // at most kMaxUserLabels users get their own label (the rest count as "other").
  bool user_labels = false;
};

struct LoggingConfig {
  LogFormat format = LogFormat::kJson;
  LogLevel level = LogLevel::kInfo;
  std::string file;  // "" = stderr
  // Audit-grade transfer records (issue 15): SHA-256 of each transfer's bytes in its
  // `transfer` record, computed while relaying.
  bool transfer_sha256 = false;
  std::string xferlog;  // wu-ftpd/ProFTPD xferlog(5) file; "" = none
  // Every record also to syslog, as an RFC 3164 datagram on a local socket.
  bool syslog = false;
  uint8_t syslog_facility = 3;  // RFC 5424 facility code; 3 = daemon
  std::string syslog_socket = "/dev/log";
};

// auth.providers (issue 14).
enum class AuthProviderType { kFile, kLdap, kCertificate, kPassthrough };
// certificate: the certificate alone logs in, or it names the user whose password the next
// providers of the chain then verify.
enum class CertificateRequire { kCertificate, kCertificateAndPassword };

// A users file as loaded: entries by name, backend passwords read, tls_required parsed.
struct UsersTable {
  std::map<std::string, identity::UserEntry> users;
  std::map<std::string, TlsRequired> tls_required;  // users with a per-user override
};

struct AuthProviderConfig {
  std::string name;
  AuthProviderType type = AuthProviderType::kFile;
  // file
  std::string path;
  std::shared_ptr<const UsersTable> users;
  // ldap
  auth::LdapSettings ldap;
  std::string service_password_file;
  // certificate
  CertificateRequire require = CertificateRequire::kCertificate;
  std::vector<identity::CertificateRule> rules;
};

struct AuthConfig {
  uint32_t workers = 4;          // threads that hash passwords and talk to directories
  std::size_t max_pending = 256;  // queued verifications; more = 421 (fail closed)
  Duration timeout = std::chrono::seconds(10);  // a decision not made by then = 421
  std::vector<AuthProviderConfig> providers;
  std::vector<identity::BackendLoginRule> backend_logins;

  const AuthProviderConfig* find(const std::string& name) const {
    for (const auto& provider : providers) {
      if (provider.name == name) return &provider;
    }
    return nullptr;
  }
};

// agents.peers[] (issue 17): one inside-out agent, named by its verified client certificate.
struct AgentPeerConfig {
  std::string name;  // in agent:NAME/host:port and in metric labels
  SourcePosition position;
  // field + equals only (user = name): which certificate is this agent.
  identity::CertificateRule certificate;
  std::vector<std::string> from;  // narrower source CIDRs for this agent; empty = agents.from
  uint32_t max_idle = 32;         // idle links kept; more are closed with ERR too_many_links
  uint32_t max_links = 1024;      // idle plus in use
  uint32_t max_waiting = 256;     // dial requests waiting for an idle link
};

// agents (issue 17): the listener inside-out agents dial out to. Absent = nothing bound.
struct AgentsConfig {
  HostPort address;
  SourcePosition position;
  std::vector<std::string> from;  // source CIDRs allowed to connect; empty = any
  CertificateConfig certificate;  // agents.tls.cert/key: what the agents verify
  std::string client_ca;          // agents.tls.client_ca: the agents' CA only
  std::string crl;                // agents.tls.crl; "" = none
  SourcePosition client_ca_position;
  SourcePosition crl_position;
  Duration handshake_timeout = std::chrono::seconds(10);
  uint32_t max_handshakes = 64;   // unauthenticated connections in all
  Duration keepalive_interval = std::chrono::seconds(20);  // PING on idle links
  Duration keepalive_timeout = std::chrono::seconds(10);   // PONG deadline
  std::vector<AgentPeerConfig> peers;

  const AgentPeerConfig* find(const std::string& name) const {
    for (const auto& peer : peers) {
      if (peer.name == name) return &peer;
    }
    return nullptr;
  }
};

struct Config {
  std::string source;  // file name, or "<embedded default>"
  std::vector<ListenerConfig> listeners;
  TlsConfig tls;
  std::vector<ClassConfig> classes;
  std::vector<BackendConfig> backends;
  PassiveConfig passive;
  ActiveConfig active;
  DataConfig data;
  LimitsConfig limits;
  MetricsConfig metrics;
  std::string user;
  LoggingConfig logging;
  AuthConfig auth;
  std::vector<rules::Rule> rules;  // command, path and upload rules (issue 15)
  InspectionConfig inspection;
  std::optional<AgentsConfig> agents;  // inside-out agents (issue 17)
  uint32_t workers = 0;  // event-loop threads running sessions; 0 = one per core

  const BackendConfig* find_backend(const std::string& name) const;
  const ListenerConfig* find_listener(const std::string& name) const;
};

}  // namespace ftpsgate
