#include "log/logger.h"

#include "log/record_format.h"

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
  FILE* f = fopen(config.file.c_str(), "a");
  if (f == nullptr) {
    error = "cannot open log file " + config.file;
    return nullptr;
  }
  return std::unique_ptr<Logger>(new Logger(config, f, true));
}

Logger::Logger(LoggingConfig config, FILE* out, bool owns)
    : format_(config.format), level_(config.level), out_(out), owns_(owns) {}

Logger::~Logger() {
  if (owns_) fclose(out_);
}

void Logger::write(LogLevel level, std::string_view event, const nlohmann::json& fields) {
  if (!enabled(level)) return;
  const std::string ts = timestamp();
  std::string line = format_ == LogFormat::kJson ? format_json(ts, level, event, fields)
                                                 : format_text(ts, level, event, fields);
  line += '\n';
  std::lock_guard lock(mutex_);
  fwrite(line.data(), 1, line.size(), out_);
  fflush(out_);
}

}  // namespace ftpsgate::log
