// Structured event log (SPEC §5): one JSON object (or text line) per event.
#pragma once

#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ftpsgate/config.h"
#include "log/record_format.h"
#include "log/syslog_sink.h"

namespace ftpsgate::log {

class Logger {
 public:
  // file "" = stderr.
  static std::unique_ptr<Logger> create(const LoggingConfig& config, std::string& error);
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  bool enabled(LogLevel level) const { return level >= level_; }
  // `fields` must be a JSON object; it is merged after ts/level/event.
  void write(LogLevel level, std::string_view event, const nlohmann::json& fields = nlohmann::json::object());
  // logging.syslog: every record written also goes there. Set before the workers start;
  // the sink outlives the logger.
  void also_to_syslog(SyslogSink* sink) { syslog_ = sink; }

 private:
  Logger(LoggingConfig config, FILE* out, bool owns);
  std::mutex mutex_;  // only for records a single write(2) cannot keep whole
  LogFormat format_;
  LogLevel level_;
  FILE* out_;
  bool owns_;
  bool append_only_;  // O_APPEND: every write(2) lands whole at the end
  SyslogSink* syslog_ = nullptr;  // not owned
};

}  // namespace ftpsgate::log
