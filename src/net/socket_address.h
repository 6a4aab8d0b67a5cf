// An IPv4/IPv6 socket address with the conversions the gateway needs.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ftpsgate::net {

class SocketAddress {
 public:
  SocketAddress() = default;
  static std::optional<SocketAddress> from_sockaddr(const sockaddr* sa, socklen_t len);
  // Numeric host only (no DNS on the event loop); IPv6 without brackets.
  static std::optional<SocketAddress> from_numeric(std::string_view host, uint16_t port);
  // Resolves a host name (blocking; only at start-up / reload).
  static std::optional<SocketAddress> resolve(const std::string& host, uint16_t port);
  static std::optional<SocketAddress> local_of(int fd);
  static std::optional<SocketAddress> peer_of(int fd);

  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t length() const { return length_; }
  bool is_v6() const { return storage_.ss_family == AF_INET6; }
  uint16_t port() const;
  void set_port(uint16_t port);
  std::string ip() const;          // "127.0.0.1" / "::1" (IPv4-mapped shown as IPv4)
  std::string to_string() const;   // "127.0.0.1:21" / "[::1]:21"
  bool same_host(const SocketAddress& other) const;  // compares IPs, mapped-aware

 private:
  sockaddr_storage storage_{};
  socklen_t length_ = 0;
};

}  // namespace ftpsgate::net
