#include "data/byte_relay.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "ftpsgate/limits.h"
#include "tls/tls_errors.h"

namespace ftpsgate::data {

namespace {
// The least a throttled relay reads at once (the smallest burst, TokenBucket::default_burst).
constexpr uint64_t kThrottleMinRead = 16 * 1024;
}  // namespace

ByteRelay::ByteRelay(event_base* base, Direction direction, bufferevent* source, bufferevent* sink,
                     std::chrono::milliseconds stall_timeout, Observer& observer)
    : ByteRelay(base, direction, source, sink, Options{.stall_timeout = stall_timeout}, observer) {}

ByteRelay::ByteRelay(event_base* base, Direction direction, bufferevent* source, bufferevent* sink, Options options,
                     Observer& observer)
    : base_(base),
      direction_(direction),
      source_(source),
      sink_(sink),
      options_(options),
      observer_(observer),
      stall_timer_(base, [this] { check_stall(); }),
      throttle_timer_(base, [this] { throttle_resume(); }) {}

void ByteRelay::start() {
  bufferevent_set_max_single_read(source_, limits::kRelayMaxSingleRead);
  bufferevent_set_max_single_write(sink_, limits::kRelayMaxSingleWrite);
  bufferevent_setwatermark(sink_, EV_WRITE, limits::kRelayLowWater, 0);
  bufferevent_enable(sink_, EV_WRITE);
  bufferevent_disable(sink_, EV_READ);
  // Bytes that arrived before the relay (TLS may already hold decrypted ones).
  if (evbuffer_get_length(bufferevent_get_input(source_)) > 0) pump();
  if (ended_) return;  // over the size limit already
  start_direct_read();
  last_progress_ = std::chrono::steady_clock::now();
  if (options_.stall_timeout) stall_timer_.arm(std::max(*options_.stall_timeout / 4, std::chrono::milliseconds(50)));
}

void ByteRelay::stop() {
  ended_ = true;
  direct_read_.reset();
  stall_timer_.cancel();
  if (throttled_now_) throttle_resume();
}

std::chrono::nanoseconds ByteRelay::throttled() const {
  if (!throttled_now_) return throttled_total_;
  return throttled_total_ + (std::chrono::steady_clock::now() - throttled_since_);
}

void ByteRelay::throttle_pause(std::chrono::steady_clock::time_point now) {
  event_del(direct_read_.get());
  throttled_now_ = true;
  throttled_since_ = now;
  // Wait for a whole read's worth (capped at the burst), not a trickle: fewer wakeups.
  const auto wait = throttle_.wait_for(limits::kRelayMaxSingleRead, now);
  const auto millis = std::chrono::ceil<std::chrono::milliseconds>(wait);
  throttle_timer_.arm(std::max(millis, std::chrono::milliseconds(1)));
}

void ByteRelay::throttle_resume() {
  throttle_timer_.cancel();
  throttled_total_ += std::chrono::steady_clock::now() - throttled_since_;
  throttled_now_ = false;
  if (ended_ || !direct_read_) return;
  // A full sink resumes us when it drains.
  if (evbuffer_get_length(bufferevent_get_output(sink_)) >= limits::kRelayHighWater) return;
  resume_direct_read();
}

void ByteRelay::end(bool ok, const std::string& error) {
  if (ended_) return;
  stop();
  observer_.on_relay_end(ok, error);
}

uint64_t ByteRelay::allowance() const {
  if (!max_bytes_) return UINT64_MAX;
  return *max_bytes_ > bytes_ ? *max_bytes_ - bytes_ : 0;
}

void ByteRelay::over_limit() {
  exceeded_ = true;
  end(false, "upload exceeds the size limit of " + std::to_string(*max_bytes_) + " bytes");
}

void ByteRelay::check_stall() {
  if (ended_) return;
  // SECURITY: a peer that stops reading (or sending) must not hold a session, its
  // buffers and its backend connection forever.
  const uint64_t delivered = bytes_ - evbuffer_get_length(bufferevent_get_output(sink_));
  const auto now = std::chrono::steady_clock::now();
  // Waiting for bandwidth tokens is our doing, not the peer's: it never counts as a stall.
  if (delivered != last_delivered_ || throttled_now_) {
    last_delivered_ = delivered;
    last_progress_ = now;
  } else if (now - last_progress_ >= *options_.stall_timeout) {
    end(false, "transfer stalled: no data moved for data.stall_timeout");
    return;
  }
  stall_timer_.arm(std::max(*options_.stall_timeout / 4, std::chrono::milliseconds(50)));
}

void ByteRelay::start_direct_read() {
  // libevent 2.1's bufferevents read at most 4 KiB (clear) or one TLS record per wakeup,
  // so the source is read here instead, straight into the sink's output buffer, up to
  // kRelayMaxSingleRead per wakeup: one readv for clear data; for TLS, SSL_read with
  // read-ahead (several records per read syscall) until OpenSSL wants more.
  const evutil_socket_t fd = bufferevent_getfd(source_);
  bufferevent_disable(source_, EV_READ);
  direct_ssl_ = bufferevent_openssl_get_ssl(source_);
  if (direct_ssl_ == nullptr ? options_.batch_clear_reads : options_.batch_tls_reads) {
    // Batch the wakeups; EOF still wakes us, and clear data always ends with EOF. (TLS only
    // when close_notify is always followed by FIN: Options::batch_tls_reads.) Without it a
    // TLS source sending records one by one wakes us once per 16 KiB record.
    const int low_water = limits::kRelayReadLowWater;
    setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &low_water, sizeof(low_water));
  }
  direct_read_.reset(event_new(base_, fd, EV_READ | EV_PERSIST, &ByteRelay::on_source_readable, this));
  resume_direct_read();
}

void ByteRelay::resume_direct_read() {
  event_add(direct_read_.get(), nullptr);
  // Records OpenSSL already holds do not make the socket readable again.
  if (direct_ssl_ != nullptr && SSL_has_pending(direct_ssl_)) event_active(direct_read_.get(), EV_READ, 0);
}

ByteRelay::ReadResult ByteRelay::read_clear(evutil_socket_t fd, iovec* vec, int n, std::size_t& got) {
  const ssize_t r = readv(fd, vec, n);
  if (r > 0) {
    got = static_cast<std::size_t>(r);
    return ReadResult::kData;
  }
  if (r == 0) return ReadResult::kEof;
  return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? ReadResult::kAgain : ReadResult::kError;
}

ByteRelay::ReadResult ByteRelay::bare_fin(std::size_t got) {
  // SECURITY: truncation. Upstream, only close_notify ends a TLS stream: a bare FIN from an
  // FTPS backend (or an attacker on that path) mid-file is a failure. Downstream, many
  // clients end uploads so; the backend's final reply then says whether it got everything.
  // An agent's link is strict both ways (options_.strict_tls_end).
  if (direction_ == Direction::kDownload || options_.strict_tls_end) {
    truncated_ = true;
    return ReadResult::kError;
  }
  direct_eof_ = true;
  return got > 0 ? ReadResult::kData : ReadResult::kEof;
}

ByteRelay::ReadResult ByteRelay::read_tls(iovec* vec, int n, std::size_t& got) {
  got = 0;
  for (int i = 0; i < n; ++i) {
    std::size_t filled = 0;
    while (filled < vec[i].iov_len) {
      const int chunk = static_cast<int>(std::min<std::size_t>(vec[i].iov_len - filled, 1 << 30));
      ERR_clear_error();
      errno = 0;
      const int r = SSL_read(direct_ssl_, static_cast<char*>(vec[i].iov_base) + filled, chunk);
      if (r > 0) {
        filled += static_cast<std::size_t>(r);
        continue;
      }
      got += filled;
      switch (SSL_get_error(direct_ssl_, r)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
          return got > 0 ? ReadResult::kData : ReadResult::kAgain;
        case SSL_ERROR_ZERO_RETURN:
          // close_notify: the peer may now wait for ours without closing, so the socket
          // never becomes readable again; remember the end with the data.
          direct_eof_ = true;
          return got > 0 ? ReadResult::kData : ReadResult::kEof;
        case SSL_ERROR_SYSCALL:
          if (ERR_peek_error() == 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            return got > 0 ? ReadResult::kData : ReadResult::kAgain;  // not an end of anything
          }
          if (ERR_peek_error() == 0 && errno == 0) return bare_fin(got);
          return ReadResult::kError;
        case SSL_ERROR_SSL:
          if (ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) return bare_fin(got);
          return ReadResult::kError;
        default:
          return ReadResult::kError;
      }
    }
    got += filled;
  }
  return ReadResult::kData;
}

void ByteRelay::on_source_readable(evutil_socket_t fd, short, void* self) {
  auto* relay = static_cast<ByteRelay*>(self);
  evbuffer* out = bufferevent_get_output(relay->sink_);
  const auto now = std::chrono::steady_clock::now();
  uint64_t tokens = UINT64_MAX;
  if (relay->throttle_.limited()) {
    tokens = relay->throttle_.available(now);
    // SECURITY (CPU): below a minimum read, wait on the timer; reading the trickle that
    // refilled since the last wakeup would spin the loop on a readable socket.
    if (tokens < kThrottleMinRead) {
      relay->throttle_pause(now);
      return;
    }
  }
  evbuffer_iovec space[2];
  const int n = evbuffer_reserve_space(out, limits::kRelayMaxSingleRead, space, 2);
  if (n <= 0) {
    relay->end(false, "out of buffer space");
    return;
  }
  iovec vec[2];
  // With a size limit, read at most one byte past it: that byte proves the excess and is
  // never committed, so the sink gets exactly the limit.
  uint64_t room = std::min(tokens, relay->allowance() == UINT64_MAX ? UINT64_MAX : relay->allowance() + 1);
  for (int i = 0; i < n; ++i) {
    const std::size_t len = static_cast<std::size_t>(std::min<uint64_t>(space[i].iov_len, room));
    vec[i] = {space[i].iov_base, len};
    if (room != UINT64_MAX) room -= len;
  }
  std::size_t got = 0;
  const ReadResult result = relay->direct_ssl_ != nullptr ? relay->read_tls(vec, n, got) : read_clear(fd, vec, n, got);
  const bool over = got > relay->allowance();
  const std::size_t kept = over ? static_cast<std::size_t>(relay->allowance()) : got;
  std::size_t left = kept;
  int used = 0;
  for (; used < n && left > 0; ++used) {
    space[used].iov_len = std::min(space[used].iov_len, left);
    left -= space[used].iov_len;
    if (relay->digest_) relay->digest_->update(space[used].iov_base, space[used].iov_len);
  }
  evbuffer_commit_space(out, space, used);
  relay->bytes_ += kept;
  if (relay->throttle_.limited()) relay->throttle_.consume(kept, now);
  if (over) {
    relay->over_limit();
    return;
  }
  switch (result) {
    case ReadResult::kData:
      if (relay->direct_eof_) {
        relay->direct_read_.reset();
        relay->source_ended();
      } else if (evbuffer_get_length(out) >= limits::kRelayHighWater) {
        event_del(relay->direct_read_.get());
      } else if (relay->direct_ssl_ != nullptr && SSL_has_pending(relay->direct_ssl_)) {
        event_active(relay->direct_read_.get(), EV_READ, 0);  // the buffer filled first
      }
      return;
    case ReadResult::kAgain:
      return;
    case ReadResult::kEof:
      relay->direct_read_.reset();
      relay->source_ended();
      return;
    case ReadResult::kError: {
      std::string why = relay->direction_ == Direction::kDownload ? "backend data connection closed early"
                                                                  : "client data connection closed early";
      if (relay->truncated_) {
        tls::drain_errors();
        why = "backend data connection ended without TLS close_notify (truncated)";
      } else if (relay->direct_ssl_ != nullptr) {
        why += ": " + tls::drain_errors_or("TLS error");
      }
      relay->end(false, why);
      return;
    }
  }
}

void ByteRelay::source_readable() {
  if (!ended_) pump();
}

void ByteRelay::pump() {
  evbuffer* in = bufferevent_get_input(source_);
  evbuffer* out = bufferevent_get_output(sink_);
  const std::size_t length = evbuffer_get_length(in);
  const std::size_t kept = length > allowance() ? static_cast<std::size_t>(allowance()) : length;
  if (digest_ && kept > 0) {
    // The input buffer is bounded (its read high watermark), so is this peek.
    const auto wanted = static_cast<ev_ssize_t>(kept);
    std::vector<evbuffer_iovec> chunks(static_cast<std::size_t>(std::max(0, evbuffer_peek(in, wanted, nullptr, nullptr, 0))));
    const int n = evbuffer_peek(in, wanted, nullptr, chunks.data(), static_cast<int>(chunks.size()));
    std::size_t left = kept;
    for (int i = 0; i < n && i < static_cast<int>(chunks.size()) && left > 0; ++i) {
      const std::size_t take = std::min(chunks[i].iov_len, left);
      digest_->update(chunks[i].iov_base, take);
      left -= take;
    }
  }
  if (length > kept) {
    evbuffer_remove_buffer(in, out, kept);
    evbuffer_drain(in, evbuffer_get_length(in));
    bytes_ += kept;
    over_limit();
    return;
  }
  bytes_ += length;
  if (throttle_.limited()) throttle_.consume(length, std::chrono::steady_clock::now());  // a debt, paid later
  evbuffer_add_buffer(out, in);
  if (evbuffer_get_length(out) >= limits::kRelayHighWater) bufferevent_disable(source_, EV_READ);
}

void ByteRelay::sink_drained() {
  if (ended_) return;
  if (source_eof_) {
    if (evbuffer_get_length(bufferevent_get_output(sink_)) == 0) end(true, "");
    return;
  }
  if (throttled_now_) return;  // the throttle's timer resumes
  if (direct_read_) {
    resume_direct_read();
  } else {
    bufferevent_enable(source_, EV_READ);
  }
}

void ByteRelay::source_ended() {
  if (ended_) return;
  // Take what the source still holds, then wait until the sink has written everything.
  pump();
  if (ended_) return;
  source_eof_ = true;
  bufferevent_disable(source_, EV_READ);
  bufferevent_setwatermark(sink_, EV_WRITE, 0, 0);
  if (evbuffer_get_length(bufferevent_get_output(sink_)) == 0) end(true, "");
}

}  // namespace ftpsgate::data
