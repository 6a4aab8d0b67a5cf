#include "scan/scan_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "inspection/clamd_protocol.h"
#include "inspection/icap_message.h"
#include "net/unique_fd.h"

namespace ftpsgate::inspection {

namespace {

// The bytes of one chunk; clamd takes larger ones, but this is what one read_at moves.
constexpr std::size_t kScanChunk = 64 * 1024;
static_assert(kScanChunk <= kClamdMaxChunk);

}  // namespace

std::unique_ptr<ScanConnection> ScanConnection::open(event_base* base, const ScanEndpoint& endpoint,
                                                     std::string& error) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (!endpoint.unix_path.empty()) {
    sockaddr_un local{};
    local.sun_family = AF_UNIX;
    if (endpoint.unix_path.size() >= sizeof(local.sun_path)) {
      error = "socket path too long";
      return nullptr;
    }
    std::memcpy(local.sun_path, endpoint.unix_path.data(), endpoint.unix_path.size());
    length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + endpoint.unix_path.size() + 1);
    std::memcpy(&storage, &local, sizeof(local));
  } else {
    length = endpoint.address.length();
    std::memcpy(&storage, endpoint.address.get(), length);
  }
  net::UniqueFd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) {
    error = std::strerror(errno);
    return nullptr;
  }
  if (storage.ss_family != AF_UNIX) {
    // A request/response protocol: the last short chunk must not wait for an ACK (Nagle).
    const int on = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  }
  bool connected = true;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&storage), length) != 0) {
    // A unix socket answers at once (EAGAIN there is a full backlog, a failure); TCP goes on.
    if (errno != EINPROGRESS && errno != EINTR) {
      error = std::strerror(errno);
      return nullptr;
    }
    connected = false;
  }
  net::BufferEventPtr connection(bufferevent_socket_new(base, fd.get(), BEV_OPT_CLOSE_ON_FREE));
  if (!connection) {
    error = "cannot create a bufferevent";
    return nullptr;
  }
  (void)fd.release();  // the bufferevent closes it
  // No address: libevent takes the socket as connecting and reports BEV_EVENT_CONNECTED.
  if (!connected && bufferevent_socket_connect(connection.get(), nullptr, 0) != 0) {
    error = "cannot wait for the connection";
    return nullptr;
  }
  return std::make_unique<ScanConnection>(std::move(connection), connected);
}

ScanConnection::ScanConnection(net::BufferEventPtr connection, bool connected)
    : connection_(std::move(connection)), connected_(connected) {
  bufferevent_setcb(connection_.get(), &ScanConnection::on_read, &ScanConnection::on_write, &ScanConnection::on_event,
                    this);
  bufferevent_setwatermark(connection_.get(), EV_WRITE, kScanLowWater, 0);
  evbuffer_add_cb(output(), &ScanConnection::on_output_change, this);
  bufferevent_enable(connection_.get(), EV_READ | EV_WRITE);
}

void ScanConnection::attach(User* user) {
  user_ = user;
  received_ = false;
  progress();
}

bool ScanConnection::reusable() const {
  return connection_ && connected_ && evbuffer_get_length(input()) == 0 && evbuffer_get_length(output()) == 0;
}

void ScanConnection::on_read(bufferevent*, void* self) {
  auto& connection = *static_cast<ScanConnection*>(self);
  if (connection.user_ == nullptr) {
    connection.connection_.reset();  // an idle connection has nothing to say: drop it
    return;
  }
  connection.received_ = true;
  connection.progress();
  connection.user_->on_input();
}

void ScanConnection::on_write(bufferevent*, void* self) {
  auto& connection = *static_cast<ScanConnection*>(self);
  if (connection.user_ != nullptr) connection.user_->on_output_low();
}

void ScanConnection::on_event(bufferevent*, short what, void* self) {
  const int error = EVUTIL_SOCKET_ERROR();  // before anything can change it
  auto& connection = *static_cast<ScanConnection*>(self);
  if (what & BEV_EVENT_CONNECTED) {
    connection.connected_ = true;
    connection.progress();
    if (connection.user_ != nullptr) connection.user_->on_connected();
    return;
  }
  if (connection.user_ == nullptr) {
    connection.connection_.reset();  // closed by the server while idle
    return;
  }
  const std::string why = (what & BEV_EVENT_EOF) ? "connection closed by the server" : std::strerror(error);
  if (connection.connected_ && (what & BEV_EVENT_WRITING) && !(what & BEV_EVENT_EOF)) {
    connection.user_->on_write_failed(why);
  } else {
    connection.user_->on_end(why);
  }
}

void ScanConnection::on_output_change(evbuffer*, const evbuffer_cb_info* info, void* self) {
  if (info->n_deleted > 0) static_cast<ScanConnection*>(self)->progress();  // bytes went out
}

bool add_chunks(evbuffer* out, const Spool& spool, ChunkFraming framing, uint64_t& offset, uint64_t end,
                std::string& error) {
  while (offset < end && evbuffer_get_length(out) < kScanLowWater) {
    const std::size_t length = static_cast<std::size_t>(std::min<uint64_t>(kScanChunk, end - offset));
    if (framing == ChunkFraming::kClamd) {
      const auto prefix = clamd_chunk_prefix(static_cast<uint32_t>(length));
      evbuffer_add(out, prefix.data(), prefix.size());
    } else {
      const std::string head = icap_chunk_head(length);
      evbuffer_add(out, head.data(), head.size());
    }
    // Read straight into the buffer's own memory: no copy of the chunk in between.
    evbuffer_iovec space{};
    if (evbuffer_reserve_space(out, static_cast<ev_ssize_t>(length), &space, 1) != 1) {
      error = "out of memory";
      return false;
    }
    std::size_t done = 0;
    while (done < length) {
      const ssize_t n = spool.read_at(offset + done, static_cast<char*>(space.iov_base) + done, length - done);
      if (n <= 0) {
        error = std::string("cannot read the spooled file: ") +
                (n < 0 ? std::strerror(errno) : "it is shorter than its size");
        return false;
      }
      done += static_cast<std::size_t>(n);
    }
    space.iov_len = length;
    evbuffer_commit_space(out, &space, 1);
    if (framing == ChunkFraming::kIcap) evbuffer_add(out, "\r\n", 2);
    offset += length;
  }
  return true;
}

std::string printable_excerpt(std::string_view text) {
  std::string out(text.substr(0, 200));
  for (char& c : out) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f) c = '?';
  }
  return out;
}

}  // namespace ftpsgate::inspection
