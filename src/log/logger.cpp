#include "log/logger.h"

#include "log/append_file.h"
#include "log/record_format.h"

#include <fcntl.h>
#include <limits.h>
#include <unistd.h>

#include <chrono>
#include <ctime>

namespace ftpsgate::log {

namespace {
std::string timestamp() {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  const time_t secs = system_clock::to_time_t(now);
  tm utc{};
  gmtime_r(&secs, &utc);
  char buf[64];
  const size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &utc);
  snprintf(buf + n, sizeof(buf) - n, ".%03dZ", static_cast<int>(ms));
  return buf;
}
}  // namespace

std::unique_ptr<Logger> Logger::create(const LoggingConfig& config, std::string& error) {
  if (config.file.empty()) return std::unique_ptr<Logger>(new Logger(config, stderr, false));
  // "e": O_CLOEXEC, so a passphrase command (popen) does not inherit the log file.
  FILE* f = fopen(config.file.c_str(), "ae");
  if (f == nullptr) {
    error = "cannot open log file " + config.file;
    return nullptr;
  }
  return std::unique_ptr<Logger>(new Logger(config, f, true));
}

Logger::Logger(LoggingConfig config, FILE* out, bool owns)
    : format_(config.format),
      level_(config.level),
      out_(out),
      owns_(owns),
      append_only_((fcntl(fileno(out), F_GETFL) & O_APPEND) != 0) {}

Logger::~Logger() {
  if (owns_) fclose(out_);
}

void Logger::write(LogLevel level, std::string_view event, const nlohmann::json& fields) {
  if (!enabled(level)) return;
  const std::string ts = timestamp();
  std::string line = format_ == LogFormat::kJson ? format_json(ts, level, event, fields)
                                                 : format_text(ts, level, event, fields);
  if (syslog_ != nullptr) syslog_->send(level, line);
  line += '\n';
  // One write(2) per record, no stdio buffer to flush: appends to an O_APPEND file and
  // writes of up to PIPE_BUF bytes to a pipe or terminal are atomic, so workers do not
  // queue behind each other's I/O. Longer records to a pipe take the lock so that lines
  // never interleave.
  std::unique_lock lock(mutex_, std::defer_lock);
  if (!append_only_ && line.size() > PIPE_BUF) lock.lock();
  write_all(fileno(out_), line);
}

}  // namespace ftpsgate::log
