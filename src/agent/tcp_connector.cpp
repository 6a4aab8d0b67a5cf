#include "agent/tcp_connector.h"

#include <event2/dns.h>
#include <event2/util.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "net/reset_on_close.h"

namespace ftpsgate::agent {

namespace {
// A name's answers tried at most (docs/agent-design.md 1.4: 16 addresses per name).
constexpr std::size_t kMaxAnswers = 16;
}  // namespace

std::string_view failure_name(TcpConnector::Failure failure) {
  switch (failure) {
    case TcpConnector::Failure::kNone:
      return "ok";
    case TcpConnector::Failure::kResolveFailed:
      return "resolve_failed";
    case TcpConnector::Failure::kConnectFailed:
      return "connect_failed";
    case TcpConnector::Failure::kConnectTimeout:
      return "connect_timeout";
  }
  return "connect_failed";
}

TcpConnector::TcpConnector(event_base* base, evdns_base* dns, std::string host, uint16_t port,
                           std::chrono::milliseconds timeout, bool abortive, Done done)
    : base_(base),
      dns_(dns),
      host_(std::move(host)),
      port_(port),
      timeout_(timeout),
      abortive_(abortive),
      done_(std::move(done)),
      start_timer_(base, [this] { begin(); }),
      report_timer_(base, [this] { done_(std::move(result_fd_), result_, result_detail_); }),
      timeout_timer_(base, [this] {
        finish(net::UniqueFd(), Failure::kConnectTimeout, "no connection to " + host_ + " within the timeout");
      }) {}

TcpConnector::~TcpConnector() {
  finished_ = true;
  // Runs on_resolved with EVUTIL_EAI_CANCEL, which then touches nothing.
  if (resolving_ != nullptr) evdns_getaddrinfo_cancel(std::exchange(resolving_, nullptr));
}

void TcpConnector::start() {
  timeout_timer_.arm(timeout_);
  start_timer_.arm(std::chrono::milliseconds(0));
}

evdns_getaddrinfo_request* lookup_stream_addresses(evdns_base* dns, const std::string& host,
                                                   void (*done)(int, evutil_addrinfo*, void*), void* arg) {
  evutil_addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
  return evdns_getaddrinfo(dns, host.c_str(), nullptr, &hints, done, arg);
}

std::vector<net::SocketAddress> take_answers(evutil_addrinfo* answers) {
  std::vector<net::SocketAddress> out;
  for (evutil_addrinfo* a = answers; a != nullptr; a = a->ai_next) {
    auto address = net::SocketAddress::from_sockaddr(a->ai_addr, static_cast<socklen_t>(a->ai_addrlen));
    if (address) out.push_back(*address);
  }
  if (answers != nullptr) evutil_freeaddrinfo(answers);
  return out;
}

void TcpConnector::begin() {
  if (finished_) return;
  // SECURITY: an IP literal is never resolved, so a name server cannot change it.
  if (auto literal = net::SocketAddress::from_numeric(host_, port_)) {
    addresses_.push_back(*literal);
    try_next();
    return;
  }
  if (dns_ == nullptr) {
    finish(net::UniqueFd(), Failure::kResolveFailed, "no resolver for " + host_);
    return;
  }
  resolving_ = lookup_stream_addresses(dns_, host_, &TcpConnector::on_resolved, this);
}

void TcpConnector::on_resolved(int result, evutil_addrinfo* answers, void* self) {
  auto* connector = static_cast<TcpConnector*>(self);
  auto found = take_answers(answers);
  if (result == EVUTIL_EAI_CANCEL) return;  // from the destructor: nothing of ours may be touched
  connector->resolving_ = nullptr;
  for (auto& address : found) {
    if (connector->addresses_.size() == kMaxAnswers) break;
    address.set_port(connector->port_);
    connector->addresses_.push_back(address);
  }
  if (connector->finished_) return;
  if (connector->addresses_.empty()) {
    connector->finish(net::UniqueFd(), Failure::kResolveFailed,
                      "cannot resolve " + connector->host_ + ": " +
                          (result == 0 ? std::string("no address") : evutil_gai_strerror(result)));
    return;
  }
  connector->try_next();
}

void TcpConnector::try_next() {
  while (next_ < addresses_.size()) {
    const net::SocketAddress& address = addresses_[next_++];
    net::UniqueFd fd(::socket(address.get()->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
    if (!fd) {
      last_error_ = std::strerror(errno);
      continue;
    }
    const int on = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    // The agent relays what arrives as it arrives; with Nagle a reply (or a close_notify) waits
    // for the peer's delayed ACK of the one before: 50 ms more per FTP session, measured.
    setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    // SECURITY: a target socket closes with RST until a graceful end is chosen, so a killed
    // agent makes the backend fail a half-received upload instead of keeping it.
    if (abortive_) net::reset_on_close(fd.get());
    if (::connect(fd.get(), address.get(), address.length()) == 0) {
      finish(std::move(fd), Failure::kNone, "");
      return;
    }
    if (errno != EINPROGRESS) {
      last_error_ = address.to_string() + ": " + std::strerror(errno);
      continue;
    }
    fd_ = std::move(fd);
    writable_.reset(event_new(base_, fd_.get(), EV_WRITE, &TcpConnector::on_writable, this));
    event_add(writable_.get(), nullptr);
    return;
  }
  finish(net::UniqueFd(), Failure::kConnectFailed,
         "cannot connect to " + host_ + (last_error_.empty() ? "" : " (" + last_error_ + ")"));
}

void TcpConnector::on_writable(evutil_socket_t fd, short, void* self) {
  auto* connector = static_cast<TcpConnector*>(self);
  int error = 0;
  socklen_t length = sizeof(error);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) error = errno;
  connector->writable_.reset();
  if (error == 0) {
    connector->finish(std::move(connector->fd_), Failure::kNone, "");
    return;
  }
  connector->last_error_ = std::strerror(error);
  connector->fd_.reset();
  connector->try_next();
}

void TcpConnector::finish(net::UniqueFd fd, Failure failure, const std::string& detail) {
  if (finished_) return;
  finished_ = true;
  start_timer_.cancel();
  timeout_timer_.cancel();
  writable_.reset();
  fd_.reset();
  if (resolving_ != nullptr) evdns_getaddrinfo_cancel(std::exchange(resolving_, nullptr));
  // Reported from the loop: evdns may answer from inside begin() (a hosts file entry).
  result_fd_ = std::move(fd);
  result_ = failure;
  result_detail_ = detail;
  report_timer_.arm(std::chrono::milliseconds(0));
}

}  // namespace ftpsgate::agent
