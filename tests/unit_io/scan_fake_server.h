// Scripted stand-ins for clamd and ICAP servers: each accepted connection runs a script on
// its own thread with blocking reads (bounded by a deadline), while the scanner under test
// runs on the test's event loop.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "inspection/icap_body.h"
#include "net/dialer.h"
#include "net/libevent_handles.h"
#include "net/timer.h"
#include "scan/scanner.h"
#include "scan/spool.h"

namespace scan_test {

using namespace std::chrono_literals;
using ftpsgate::inspection::ScanResult;
using ftpsgate::inspection::Verdict;

// One accepted connection as a script sees it.
class Peer {
 public:
  explicit Peer(int fd) : fd_(fd) {}
  int fd() const { return fd_; }

  // Exactly `n` bytes; false on EOF, an error, or 5 s without them.
  bool read_exact(std::size_t n, std::string& out) {
    while (pending_.size() < n) {
      if (!fill()) return false;
    }
    out = pending_.substr(0, n);
    pending_.erase(0, n);
    return true;
  }
  // Up to and including `delimiter`.
  bool read_until(std::string_view delimiter, std::string& out, std::size_t limit = 1 << 20) {
    for (;;) {
      const std::size_t at = pending_.find(delimiter);
      if (at != std::string::npos) {
        out = pending_.substr(0, at + delimiter.size());
        pending_.erase(0, at + delimiter.size());
        return true;
      }
      if (pending_.size() > limit || !fill()) return false;
    }
  }
  bool write(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }
  // True when the client closed (reading whatever it still sends) within `within`.
  bool wait_eof(std::chrono::milliseconds within = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    char buffer[65536];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) return true;
    }
    return false;
  }

 private:
  bool fill() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return false;
    char buffer[65536];
    const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
    if (n <= 0) return false;
    pending_.append(buffer, static_cast<std::size_t>(n));
    return true;
  }

  int fd_;
  std::string pending_;
};

class FakeServer {
 public:
  using Script = std::function<void(Peer& peer, int index)>;  // index: the connection's accept order
  enum class Transport { kUnix, kTcp };

  FakeServer(Transport transport, Script script) : script_(std::move(script)) {
    std::signal(SIGPIPE, SIG_IGN);
    if (transport == Transport::kUnix) {
      static std::atomic<int> serial{0};
      path_ = "/tmp/ftpsgate-scan-test-" + std::to_string(::getpid()) + "-" + std::to_string(serial++) + ".sock";
      ::unlink(path_.c_str());
      listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un address{};
      address.sun_family = AF_UNIX;
      std::strncpy(address.sun_path, path_.c_str(), sizeof(address.sun_path) - 1);
      if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) std::abort();
    } else {
      listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in address{};
      address.sin_family = AF_INET;
      address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) std::abort();
      socklen_t length = sizeof(address);
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
      port_ = ntohs(address.sin_port);
    }
    ::listen(listener_, 2048);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~FakeServer() {
    stopping_ = true;
    acceptor_.join();
    {
      std::lock_guard lock(mutex_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);  // wakes scripts blocked in a read
    }
    for (auto& thread : threads_) thread.join();
    ::close(listener_);
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  const std::string& path() const { return path_; }
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }
  // The most connections the client held open at once, as seen at each accept.
  int max_open() const { return max_open_.load(); }

 private:
  void accept_loop() {
    while (!stopping_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      const int index = accepted_++;
      std::lock_guard lock(mutex_);
      // Connections the client still holds open, this one included; one it closed (before
      // opening this one) reads as EOF already.
      int live = 1;
      for (int other : open_fds_) {
        char byte;
        if (::recv(other, &byte, 1, MSG_PEEK | MSG_DONTWAIT) != 0) ++live;
      }
      if (live > max_open_) max_open_ = live;
      open_fds_.insert(fd);
      threads_.emplace_back([this, fd, index] {
        Peer peer(fd);
        script_(peer, index);
        {
          std::lock_guard inner(mutex_);
          open_fds_.erase(fd);
        }
        ::close(fd);
      });
    }
  }

  Script script_;
  std::string path_;
  uint16_t port_ = 0;
  int listener_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::atomic<int> max_open_{0};
  std::mutex mutex_;
  std::set<int> open_fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// The scanner's side: an event loop run until something happened.
struct Loop {
  ftpsgate::net::EventBasePtr base{event_base_new()};

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    ftpsgate::net::Timer tick(base.get(), [] {});
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      tick.arm(5ms);
      event_base_loop(base.get(), EVLOOP_ONCE);
    }
    return true;
  }
  void run_for(std::chrono::milliseconds duration) {
    run_until([] { return false; }, duration);
  }
};

struct Outcome {
  int calls = 0;
  ScanResult result;
  ftpsgate::inspection::Scanner::Done record() {
    return [this](ScanResult result_) {
      ++calls;
      result = std::move(result_);
    };
  }
  bool done() const { return calls > 0; }
};

// Runs one health check: up, and why not (delivered once, and not from inside probe()).
inline std::pair<bool, std::string> probe_once(Loop& loop, ftpsgate::inspection::Scanner& scanner) {
  std::optional<std::pair<bool, std::string>> answer;
  auto handle = scanner.probe([&](bool up, std::string error) { answer.emplace(up, std::move(error)); });
  if (answer || !loop.run_until([&] { return answer.has_value(); })) return {false, "(test: no single answer)"};
  return *answer;
}

// A loopback TCP port nobody listens on (bound, then closed).
inline uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) std::abort();
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// A direct dial target on loopback, as BackendPool would build it.
inline ftpsgate::net::DialTarget loopback_target(uint16_t port) {
  ftpsgate::net::DialTarget target;
  target.host = "127.0.0.1";
  target.port = port;
  target.address = ftpsgate::net::SocketAddress::from_numeric("127.0.0.1", port);
  return target;
}

inline std::string pattern(std::size_t size, unsigned seed) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>((seed + i * 131 + (i >> 9)) % 251);
  return out;
}

// An upload in its spool (on disk beyond `memory_threshold`).
struct Upload {
  ftpsgate::inspection::SpoolBudget budget{uint64_t{1} << 32};
  ftpsgate::inspection::Spool spool;
  explicit Upload(const std::string& content, std::size_t memory_threshold = 1 << 20)
      : spool({"/tmp", memory_threshold, &budget}) {
    for (std::size_t at = 0; at < content.size(); at += 100000) {
      if (!spool.append(content.data() + at, std::min<std::size_t>(100000, content.size() - at))) std::abort();
    }
  }
  ftpsgate::inspection::ScanSubject subject(std::string name = "/in/report 1.csv") const {
    return {&spool, std::move(name), "192.0.2.7", "alice"};
  }
};

// Runs one scan of `upload` to its verdict (delivered once, and not from inside scan()).
inline ScanResult scan_once(Loop& loop, ftpsgate::inspection::Scanner& scanner, const Upload& upload) {
  Outcome outcome;
  auto handle = scanner.scan(upload.subject(), outcome.record());
  if (outcome.done() || !loop.run_until([&] { return outcome.done(); }))
    return ScanResult::failed("(test: no single verdict)");
  return outcome.result;
}

// clamd's side of INSTREAM: the command, chunks, the zero-length one. The file, or nullopt.
inline std::optional<std::string> read_instream(Peer& peer) {
  std::string command;
  if (!peer.read_exact(10, command) || command != std::string("zINSTREAM\0", 10)) return std::nullopt;
  std::string file;
  for (;;) {
    std::string prefix;
    if (!peer.read_exact(4, prefix)) return std::nullopt;
    const auto* p = reinterpret_cast<const unsigned char*>(prefix.data());
    const uint32_t length = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
    if (length == 0) return file;
    if (length > 64 * 1024) return std::nullopt;  // we promised chunks of at most 64 KiB
    std::string data;
    if (!peer.read_exact(length, data)) return std::nullopt;
    file += data;
  }
}

// An ICAP request as the server saw it.
struct IcapSeen {
  std::string head;          // ICAP head, up to its blank line
  std::string http_headers;  // the encapsulated HTTP headers
  bool ok = false;
  bool has(std::string_view text) const { return head.find(text) != std::string::npos; }
};

inline IcapSeen read_icap_head(Peer& peer) {
  IcapSeen seen;
  if (!peer.read_until("\r\n\r\n", seen.head)) return seen;
  const std::size_t at = seen.head.find("Encapsulated: ");
  if (at == std::string::npos) return seen;
  const std::size_t end = seen.head.find("\r\n", at);
  const auto encapsulated = ftpsgate::inspection::parse_icap_encapsulated(seen.head.substr(at + 14, end - at - 14));
  if (!encapsulated) return seen;
  seen.ok = peer.read_exact(encapsulated->headers_length, seen.http_headers);
  return seen;
}

// Chunks up to the last one, appended to `body`; `ieof` when the last one said so.
inline bool read_icap_chunks(Peer& peer, std::string& body, bool* ieof = nullptr) {
  for (;;) {
    std::string line;
    if (!peer.read_until("\r\n", line, 1024)) return false;
    const std::size_t length = std::strtoul(line.c_str(), nullptr, 16);
    if (length == 0) {
      if (ieof != nullptr) *ieof = line.find("ieof") != std::string::npos;
      std::string blank;
      return peer.read_exact(2, blank) && blank == "\r\n";
    }
    std::string data;
    std::string crlf;
    if (!peer.read_exact(length, data) || !peer.read_exact(2, crlf) || crlf != "\r\n") return false;
    body += data;
  }
}

// A whole request without preview (or with one that held the whole file): its body.
inline std::optional<std::string> read_icap_request(Peer& peer, IcapSeen* seen_out = nullptr) {
  IcapSeen seen = read_icap_head(peer);
  if (!seen.ok) return std::nullopt;
  std::string body;
  if (!read_icap_chunks(peer, body)) return std::nullopt;
  if (seen_out != nullptr) *seen_out = seen;
  return body;
}

inline constexpr std::string_view kIcap204 =
    "ICAP/1.0 204 No Content\r\nISTag: \"t1\"\r\nEncapsulated: null-body=0\r\n\r\n";

// A 200 echoing `body` as the encapsulated HTTP response, in chunks of `chunk` bytes.
inline std::string icap_200_echo(const std::string& body, std::string_view extra_headers = "",
                                 std::size_t chunk = 7000) {
  const std::string http = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  std::string out = "ICAP/1.0 200 OK\r\nISTag: \"t1\"\r\n" + std::string(extra_headers) +
                    "Encapsulated: res-hdr=0, res-body=" + std::to_string(http.size()) + "\r\n\r\n" + http;
  char head[32];
  for (std::size_t at = 0; at < body.size(); at += chunk) {
    const std::size_t n = std::min(chunk, body.size() - at);
    std::snprintf(head, sizeof(head), "%zx; x=1\r\n", n);
    out += head + body.substr(at, n) + "\r\n";
  }
  return out + "0\r\nX-Trailer: done\r\n\r\n";
}

}  // namespace scan_test
