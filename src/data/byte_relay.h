// The one-directional byte relay of a data connection: reads the source (clear with
// readv, TLS with SSL_read and read-ahead) straight into the sink's output buffer, with
// one bounded buffer that doubles as flow control, a stall check, and the rules for how
// a source may end (truncation). It owns neither connection.
#pragma once

#include <event2/bufferevent.h>
#include <openssl/ssl.h>
#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "data/bandwidth.h"
#include "data/transfer_digest.h"
#include "net/libevent_handles.h"
#include "net/timer.h"

namespace ftpsgate::data {

enum class Direction { kDownload, kUpload };

class ByteRelay {
 public:
  class Observer {
   public:
    // Every byte reached the sink's buffer and the source ended cleanly (ok), or the
    // relay failed. Called once.
    virtual void on_relay_end(bool ok, const std::string& error) = 0;

   protected:
    ~Observer() = default;
  };

  // What differs between the gateway's data connections (the defaults) and other pipes.
  struct Options {
    // No data moved for this long ends the relay; nullopt: never (an idle control pipe
    // through an agent link is legitimate).
    std::optional<std::chrono::milliseconds> stall_timeout;
    // A TLS source must end with close_notify whatever the direction (by default only
    // downloads are strict; a bare FIN on an upload's source is its end).
    bool strict_tls_end = false;
    // SO_RCVLOWAT on a clear source, fewer wakeups for bulk data. Off for a source that
    // may send a short message and wait for the answer (an FTP control connection).
    bool batch_clear_reads = true;
    // The same for a TLS source: only for a peer that ends every stream with close_notify
    // followed by FIN (an agent link's data pipe, both ends ours). Elsewhere a peer may send
    // close_notify and wait for ours, and those few bytes would never wake us.
    bool batch_tls_reads = false;
  };

  // Download: upstream -> downstream; upload: downstream -> upstream.
  ByteRelay(event_base* base, Direction direction, bufferevent* source, bufferevent* sink,
            std::chrono::milliseconds stall_timeout, Observer& observer);
  ByteRelay(event_base* base, Direction direction, bufferevent* source, bufferevent* sink, Options options,
            Observer& observer);
  ByteRelay(const ByteRelay&) = delete;
  ByteRelay& operator=(const ByteRelay&) = delete;

  // logging.transfer_sha256: hash every byte relayed (before start()).
  void enable_sha256() { digest_ = TransferDigest::create(); }
  // The hex SHA-256 of the bytes relayed so far; "" when not enabled.
  std::string sha256() const { return digest_ ? digest_->hex() : ""; }
  void start();
  // At most `max_bytes` reach the sink; one byte more from the source ends the relay as a
  // failure with exceeded() set (rules: uploads.max_size). Before start().
  void limit(uint64_t max_bytes) { max_bytes_ = max_bytes; }
  bool exceeded() const { return exceeded_; }
  // Bandwidth: reads wait (on a timer, never spinning) until the buckets have tokens.
  // Before start().
  void throttle(Throttle throttle) { throttle_ = std::move(throttle); }
  // Time spent waiting for tokens so far.
  std::chrono::nanoseconds throttled() const;
  // No more reads or checks (the outcome is decided elsewhere).
  void stop();
  uint64_t bytes() const { return bytes_; }
  Direction direction() const { return direction_; }
  bufferevent* source() const { return source_; }
  bufferevent* sink() const { return sink_; }

  // Events of the two bufferevents, forwarded by their owner.
  void source_readable();  // bytes in the source's input buffer
  void sink_drained();     // the sink's output went below its low watermark
  void source_ended();     // the source's EOF (its TLS close_notify or TCP FIN)

 private:
  enum class ReadResult { kData, kAgain, kEof, kError };
  static void on_source_readable(evutil_socket_t fd, short what, void* self);
  void start_direct_read();
  void resume_direct_read();
  static ReadResult read_clear(evutil_socket_t fd, iovec* vec, int n, std::size_t& got);
  ReadResult read_tls(iovec* vec, int n, std::size_t& got);
  ReadResult bare_fin(std::size_t got);
  void pump();
  // The bytes the limit still lets through (the maximum when there is none).
  uint64_t allowance() const;
  void over_limit();
  void throttle_pause(std::chrono::steady_clock::time_point now);
  void throttle_resume();
  void check_stall();
  void end(bool ok, const std::string& error);

  event_base* base_;
  Direction direction_;
  bufferevent* source_;
  bufferevent* sink_;
  Options options_;
  Observer& observer_;
  uint64_t bytes_ = 0;
  std::optional<uint64_t> max_bytes_;
  bool exceeded_ = false;
  bool source_eof_ = false;
  bool ended_ = false;
  uint64_t last_delivered_ = 0;
  std::chrono::steady_clock::time_point last_progress_;
  net::Timer stall_timer_;
  Throttle throttle_;
  net::Timer throttle_timer_;
  bool throttled_now_ = false;
  std::chrono::steady_clock::time_point throttled_since_;
  std::chrono::nanoseconds throttled_total_{0};
  net::EventPtr direct_read_;  // the source, read by us rather than by its bufferevent
  SSL* direct_ssl_ = nullptr;  // the source's TLS (owned by its bufferevent), if any
  bool direct_eof_ = false;    // the TLS source ended while data came with it
  bool truncated_ = false;     // the upstream TLS stream ended without close_notify
  std::unique_ptr<TransferDigest> digest_;  // exactly the bytes moved to the sink, if enabled
};

}  // namespace ftpsgate::data
