// The config loader: limits, metrics and logging.
#include "config/loader.h"
#include "ftpsgate/limits.h"

namespace ftpsgate::config::detail {

void Loader::read_limits(MapReader& top) {
  MapReader map = section(top, "limits",
                          {"max_sessions", "max_sessions_per_ip", "handshake_timeout", "login_timeout", "idle_timeout",
                           "data_connect_timeout", "max_line", "drain_timeout", "login_failure_delay",
                           "max_login_failures", "max_user_login_failures", "login_ban_time"});
  LimitsConfig& limits = config_.limits;
  constexpr uint32_t kMaxCount = std::numeric_limits<uint32_t>::max();
  map.read_int<uint32_t>("max_sessions", 1, kMaxCount, limits.max_sessions);
  map.read_int<uint32_t>("max_sessions_per_ip", 1, kMaxCount, limits.max_sessions_per_ip);
  map.read_duration("handshake_timeout", limits.handshake_timeout);
  map.read_duration("login_timeout", limits.login_timeout);
  map.read_duration("idle_timeout", limits.idle_timeout);
  map.read_duration("data_connect_timeout", limits.data_connect_timeout);
  std::size_t max_line = limits.max_line;
  if (const Field* field = map.read_size("max_line", max_line)) {
    if (max_line < kMinMaxLine) {
      diag_.error(field->value_mark(), "'max_line' must be at least 512 bytes");
    } else if (max_line > kMaxMaxLine) {
      diag_.error(field->value_mark(), "'max_line' must be at most 1MiB");
    } else {
      limits.max_line = max_line;
    }
  }
  // 0 = stop at once without waiting for transfers.
  map.read_duration("drain_timeout", limits.drain_timeout, /*allow_zero=*/true);
  // Login throttling per client address; 0 turns the delay or the ban off.
  map.read_duration("login_failure_delay", limits.login_failure_delay, /*allow_zero=*/true);
  map.read_int<uint32_t>("max_login_failures", 0, kMaxCount, limits.max_login_failures);
  map.read_int<uint32_t>("max_user_login_failures", 0, kMaxCount, limits.max_user_login_failures);
  map.read_duration("login_ban_time", limits.login_ban_time);
}

void Loader::read_metrics(MapReader& top, bool gateway) {
  MapReader map = gateway ? section(top, "metrics", {"address", "user_labels"}) : section(top, "metrics", {"address"});
  map.read("user_labels", config_.metrics.user_labels);
  const Field* field = map.read("address", config_.metrics.address);
  if (field == nullptr) {
    metrics_ok_ = map.get("address") == nullptr;
    if (metrics_ok_) metrics_address_ = *parse_host_port(config_.metrics.address);
    metrics_mark_ = map.mark();
    return;
  }
  metrics_mark_ = field->value_mark();
  if (config_.metrics.address.empty()) return;  // metrics off
  metrics_ok_ = read_bind_address(config_.metrics.address, metrics_mark_, "metrics", metrics_address_);
}

void Loader::read_logging(MapReader& top, bool gateway) {
  // The agent moves no files: it has no transfer records.
  MapReader map = gateway ? section(top, "logging",
                                    {"format", "level", "file", "transfer_sha256", "xferlog", "syslog",
                                     "syslog_facility", "syslog_socket"})
                          : section(top, "logging", {"format", "level", "file", "syslog", "syslog_facility",
                                                     "syslog_socket"});
  LoggingConfig& logging = config_.logging;
  map.read_choice("format", logging.format, {{"json", LogFormat::kJson}, {"text", LogFormat::kText}});
  map.read_choice(
      "level", logging.level,
      {{"debug", LogLevel::kDebug}, {"info", LogLevel::kInfo}, {"warn", LogLevel::kWarn}, {"error", LogLevel::kError}});
  map.read("file", logging.file);
  map.read("transfer_sha256", logging.transfer_sha256);
  if (const Field* field = map.read("xferlog", logging.xferlog)) {
    // Two formats in one file would corrupt both (and the JSON reader's view of it).
    if (!logging.xferlog.empty() && logging.xferlog.back() == '/') {
      diag_.error(field->value_mark(), "'xferlog' names a directory, not a file");
    } else if (!logging.xferlog.empty() && logging.xferlog == logging.file) {
      diag_.error(field->value_mark(), "'xferlog' must not be the same file as 'logging.file'");
    }
  }
  map.read("syslog", logging.syslog);
  // RFC 5424 facility codes; kern (0) is reserved for the kernel.
  map.read_choice("syslog_facility", logging.syslog_facility,
                  {{"user", uint8_t{1}},    {"mail", uint8_t{2}},    {"daemon", uint8_t{3}},  {"auth", uint8_t{4}},
                   {"syslog", uint8_t{5}},  {"lpr", uint8_t{6}},     {"news", uint8_t{7}},    {"uucp", uint8_t{8}},
                   {"cron", uint8_t{9}},    {"authpriv", uint8_t{10}}, {"ftp", uint8_t{11}},  {"local0", uint8_t{16}},
                   {"local1", uint8_t{17}}, {"local2", uint8_t{18}}, {"local3", uint8_t{19}}, {"local4", uint8_t{20}},
                   {"local5", uint8_t{21}}, {"local6", uint8_t{22}}, {"local7", uint8_t{23}}});
  if (const Field* field = map.read("syslog_socket", logging.syslog_socket)) {
    if (logging.syslog_socket.empty() || logging.syslog_socket.front() != '/') {
      diag_.error(field->value_mark(), "'syslog_socket' must be an absolute path (e.g. /dev/log)");
    } else if (logging.syslog_socket.size() > limits::kSyslogMaxSocketPath) {
      diag_.error(field->value_mark(), "'syslog_socket' is longer than a unix socket path may be (107 bytes)");
    }
  }
}

}  // namespace ftpsgate::config::detail
