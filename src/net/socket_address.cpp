#include "net/socket_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>

namespace ftpsgate::net {

std::optional<SocketAddress> SocketAddress::from_sockaddr(const sockaddr* sa, socklen_t len) {
  if (sa == nullptr || len > static_cast<socklen_t>(sizeof(sockaddr_storage))) return std::nullopt;
  if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) return std::nullopt;
  SocketAddress out;
  std::memcpy(&out.storage_, sa, len);
  out.length_ = len;
  return out;
}

std::optional<SocketAddress> SocketAddress::from_numeric(std::string_view host, uint16_t port) {
  std::string text(host);
  SocketAddress out;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage_);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage_);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out.length_ = sizeof(sockaddr_in);
    return out;
  }
  if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out.length_ = sizeof(sockaddr_in6);
    return out;
  }
  return std::nullopt;
}

std::optional<SocketAddress> SocketAddress::resolve(const std::string& host, uint16_t port) {
  if (auto numeric = from_numeric(host, port)) return numeric;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &result) != 0 || result == nullptr) return std::nullopt;
  auto out = from_sockaddr(result->ai_addr, result->ai_addrlen);
  freeaddrinfo(result);
  if (out) out->set_port(port);
  return out;
}

std::optional<SocketAddress> SocketAddress::local_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  return from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

std::optional<SocketAddress> SocketAddress::peer_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  return from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

uint16_t SocketAddress::port() const {
  if (storage_.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (storage_.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

void SocketAddress::set_port(uint16_t port) {
  if (storage_.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&storage_)->sin_port = htons(port);
  if (storage_.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&storage_)->sin6_port = htons(port);
}

std::string SocketAddress::ip() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (storage_.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof(buf));
  } else if (storage_.ss_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      inet_ntop(AF_INET, &a6.s6_addr[12], buf, sizeof(buf));
    } else {
      inet_ntop(AF_INET6, &a6, buf, sizeof(buf));
    }
  }
  return buf;
}

std::string SocketAddress::to_string() const {
  const std::string host = ip();
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port());
  return host + ":" + std::to_string(port());
}

bool SocketAddress::same_host(const SocketAddress& other) const { return ip() == other.ip(); }

}  // namespace ftpsgate::net
