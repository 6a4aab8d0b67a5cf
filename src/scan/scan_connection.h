// One connection to a scanning service (clamd or ICAP): a non-blocking connect to a unix
// socket or a TCP address, then a bufferevent whose events go to the exchange using it, or,
// while it waits in a pool, mark it dead (the server closed it, or spoke out of turn).
#pragma once

#include <event2/buffer.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "net/libevent_handles.h"
#include "net/socket_address.h"
#include "scan/spool.h"

namespace ftpsgate::inspection {

// Where a scanner listens: a unix socket path, or a numeric address.
struct ScanEndpoint {
  std::string unix_path;
  net::SocketAddress address;  // when unix_path is empty
  std::string text() const { return unix_path.empty() ? address.to_string() : unix_path; }
};

// The output buffer's fill below which the next chunk of the file is added: with chunks
// of at most kClamdMaxChunk, a scan holds at most about twice this however large the file.
inline constexpr std::size_t kScanLowWater = 64 * 1024;

class ScanConnection {
 public:
  // Who the events go to. The callbacks run from the connection's own libevent callbacks,
  // which touch nothing of the connection after calling them: a user may destroy it there.
  class User {
   public:
    virtual void on_connected() = 0;
    virtual void on_input() = 0;       // bytes arrived in input()
    virtual void on_output_low() = 0;  // output() drained to kScanLowWater
    // Writing failed (the server closed, reset); reading goes on: an answer may be waiting.
    virtual void on_write_failed(const std::string& why) = 0;
    // The connection ended: closed by the server, a read error, or the connect failed.
    virtual void on_end(const std::string& why) = 0;

   protected:
    ~User() = default;
  };

  // Starts connecting; nullptr with `error` (strerror's text) when that fails at once.
  static std::unique_ptr<ScanConnection> open(event_base* base, const ScanEndpoint& endpoint, std::string& error);
  ScanConnection(net::BufferEventPtr connection, bool connected);
  ScanConnection(const ScanConnection&) = delete;
  ScanConnection& operator=(const ScanConnection&) = delete;

  // nullptr: idle in a pool, where any byte or the end makes it dead().
  void attach(User* user);
  bool connected() const { return connected_; }
  bool dead() const { return !connection_; }
  // Idle and fit for another exchange: open, nothing unread, nothing unsent.
  bool reusable() const;
  bool received() const { return received_; }  // a byte came since attach()
  std::chrono::steady_clock::time_point last_progress() const { return last_progress_; }
  evbuffer* input() const { return bufferevent_get_input(connection_.get()); }
  evbuffer* output() const { return bufferevent_get_output(connection_.get()); }

 private:
  static void on_read(bufferevent* bev, void* self);
  static void on_write(bufferevent* bev, void* self);
  static void on_event(bufferevent* bev, short what, void* self);
  static void on_output_change(evbuffer* buffer, const evbuffer_cb_info* info, void* self);
  void progress() { last_progress_ = std::chrono::steady_clock::now(); }

  net::BufferEventPtr connection_;  // null once dead
  User* user_ = nullptr;            // non-owning: the exchange using it, which owns it
  bool connected_ = false;
  bool received_ = false;
  std::chrono::steady_clock::time_point last_progress_ = std::chrono::steady_clock::now();
};

enum class ChunkFraming { kClamd, kIcap };  // <4-byte length><data>, or <hex>\r\n<data>\r\n

// Adds chunks of `spool` from `offset` towards `end` (moving `offset`) while `out` holds
// less than kScanLowWater. False with `error` when the spool cannot be read.
bool add_chunks(evbuffer* out, const Spool& spool, ChunkFraming framing, uint64_t& offset, uint64_t end,
                std::string& error);

// Control bytes replaced, at most 200 bytes: a server's words fit for a log line.
std::string printable_excerpt(std::string_view text);

}  // namespace ftpsgate::inspection
