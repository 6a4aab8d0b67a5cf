// logging.syslog: every log record also goes to the local syslog socket (/dev/log, where
// syslog(3) and journald listen) as an RFC 3164 datagram. Sending never blocks the event
// loop: the socket is non-blocking, a datagram the receiver has no room for is dropped and
// counted, and a socket that went away (the daemon restarted) is connected again.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "ftpsgate/config.h"

namespace ftpsgate::log {

// RFC 5424 severity of a level: debug 7, info 6, warn 4, error 3.
int syslog_severity(LogLevel level);

// `<PRI>Mmm dd hh:mm:ss ftpsgate[pid]: message` (local time, day padded with a space), PRI
// = facility * 8 + severity. Cut at limits::kSyslogMaxDatagram bytes.
std::string syslog_datagram(uint8_t facility, LogLevel level, std::time_t when, long pid, std::string_view message);

class SyslogSink {
 public:
  // Connects to config.syslog_socket; nullptr and `error` when that fails at start.
  static std::unique_ptr<SyslogSink> create(const LoggingConfig& config, std::string& error);
  ~SyslogSink();
  SyslogSink(const SyslogSink&) = delete;
  SyslogSink& operator=(const SyslogSink&) = delete;

  // Thread-safe; never blocks.
  void send(LogLevel level, std::string_view message);
  // Datagrams dropped: the receiver's queue was full, or its socket was gone.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  SyslogSink(const LoggingConfig& config) : path_(config.syslog_socket), facility_(config.syslog_facility) {}
  bool connect_locked(std::string& error);

  const std::string path_;
  const uint8_t facility_;
  std::mutex mutex_;  // the descriptor and its reconnection
  int fd_ = -1;
  std::chrono::steady_clock::time_point last_connect_;
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace ftpsgate::log
