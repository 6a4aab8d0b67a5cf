#include "log/syslog_sink.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "ftpsgate/limits.h"

namespace ftpsgate::log {

int syslog_severity(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return 7;
    case LogLevel::kInfo: return 6;
    case LogLevel::kWarn: return 4;
    case LogLevel::kError: return 3;
  }
  return 6;
}

std::string syslog_datagram(uint8_t facility, LogLevel level, std::time_t when, long pid, std::string_view message) {
  tm local{};
  localtime_r(&when, &local);
  char stamp[32];
  const std::size_t n = std::strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &local);
  std::string out = "<" + std::to_string(facility * 8 + syslog_severity(level)) + ">";
  out.append(stamp, n);
  out += " ftpsgate[" + std::to_string(pid) + "]: ";
  out += message;
  if (out.size() > limits::kSyslogMaxDatagram) out.resize(limits::kSyslogMaxDatagram);
  return out;
}

std::unique_ptr<SyslogSink> SyslogSink::create(const LoggingConfig& config, std::string& error) {
  std::unique_ptr<SyslogSink> sink(new SyslogSink(config));
  std::lock_guard lock(sink->mutex_);
  if (!sink->connect_locked(error)) return nullptr;
  return sink;
}

SyslogSink::~SyslogSink() {
  if (fd_ >= 0) ::close(fd_);
}

bool SyslogSink::connect_locked(std::string& error) {
  last_connect_ = std::chrono::steady_clock::now();
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    error = std::string("cannot create a syslog socket: ") + std::strerror(errno);
    return false;
  }
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // Validated at load: the path fits.
  std::memcpy(address.sun_path, path_.data(), std::min(path_.size(), sizeof(address.sun_path) - 1));
  if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
    error = "cannot connect to syslog socket " + path_ + ": " + std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    return false;
  }
  return true;
}

void SyslogSink::send(LogLevel level, std::string_view message) {
  const std::string datagram = syslog_datagram(facility_, level, std::time(nullptr), static_cast<long>(::getpid()), message);
  std::lock_guard lock(mutex_);
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (fd_ >= 0 && ::send(fd_, datagram.data(), datagram.size(), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) return;
    const int why = fd_ >= 0 ? errno : ENOTCONN;
    // A full receiver queue (EAGAIN, ENOBUFS) or a datagram too long for it: drop. Never
    // wait, this runs on an event loop.
    if (why != ECONNREFUSED && why != ENOTCONN && why != ECONNRESET && why != EPIPE && why != ENOENT) break;
    // The receiver's socket went away (the daemon restarted): connect again, at most once
    // per interval, so a missing daemon costs no more than a failed send per record.
    std::string ignored;
    if (std::chrono::steady_clock::now() - last_connect_ < limits::kSyslogReconnectInterval ||
        !connect_locked(ignored)) {
      break;
    }
  }
  dropped_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace ftpsgate::log
