#include "net/proxy_header_reader.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace ftpsgate::net {

ProxyHeaderReader::ProxyHeaderReader(event_base* base, UniqueFd fd, SocketAddress peer, SocketAddress local,
                                     std::chrono::milliseconds timeout, Done done)
    : fd_(std::move(fd)),
      peer_(std::move(peer)),
      local_(std::move(local)),
      done_(std::move(done)),
      timeout_(base, [this] { fail("no PROXY protocol header in time"); }) {
  evutil_make_socket_nonblocking(fd_.get());
  // Edge-triggered: we only peek, so a level-triggered event would fire again at once
  // while an incomplete header sits in the socket.
  event_.reset(event_new(base, fd_.get(), EV_READ | EV_PERSIST | EV_ET, &ProxyHeaderReader::on_readable, this));
  event_add(event_.get(), nullptr);
  timeout_.arm(timeout);
}

ProxyHeaderReader::~ProxyHeaderReader() {
  event_.reset();  // before the descriptor it watches closes
  fd_.reset();
}

void ProxyHeaderReader::on_readable(evutil_socket_t fd, short, void* self) {
  auto* reader = static_cast<ProxyHeaderReader*>(self);
  std::vector<char> buffer(proxy::kMaxV2Length);
  const ssize_t n = recv(fd, buffer.data(), buffer.size(), MSG_PEEK);
  if (n == 0) return reader->fail("connection closed before the PROXY protocol header");
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    return reader->fail(std::string("reading the PROXY protocol header: ") + std::strerror(errno));
  }
  const auto parsed = proxy::parse_proxy_header(std::string_view(buffer.data(), static_cast<size_t>(n)));
  switch (parsed.status) {
    case proxy::ParseStatus::kNeedMore:
      // A full buffer that still parses as "need more" cannot happen (the caps are below
      // its size), so waiting for the next edge is safe.
      return;
    case proxy::ParseStatus::kInvalid:
      return reader->fail(parsed.error);
    case proxy::ParseStatus::kDone:
      // Consume exactly the header; it is already in the socket buffer.
      if (recv(fd, buffer.data(), parsed.header.length, 0) != static_cast<ssize_t>(parsed.header.length)) {
        return reader->fail("short read of the PROXY protocol header");
      }
      return reader->complete(parsed.header);
  }
}

void ProxyHeaderReader::fail(std::string error) {
  event_.reset();
  timeout_.cancel();
  fd_.reset();
  Result result;
  result.error = std::move(error);
  Done done = std::move(done_);
  done(UniqueFd(), result);  // may destroy *this
}

void ProxyHeaderReader::complete(const proxy::ProxyHeader& header) {
  Result result;
  result.client = peer_;
  result.destination = local_;
  if (header.has_addresses) {
    auto client = SocketAddress::from_numeric(header.source_ip, header.source_port);
    auto local = SocketAddress::from_numeric(header.destination_ip, header.destination_port);
    if (!client || !local) return fail("PROXY protocol header with unusable addresses");
    result.client = *client;
    result.destination = *local;
  }
  result.ok = true;
  event_.reset();
  timeout_.cancel();
  Done done = std::move(done_);
  done(std::move(fd_), result);  // may destroy *this
}

}  // namespace ftpsgate::net
