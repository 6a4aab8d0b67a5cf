// Inspection: sends a spooled, scanned upload to the backend's data port, the way the
// relay would have: clear or TLS resuming the upstream session, bounded buffering (the
// spool is read as the socket drains), and a clean end (close_notify, then FIN) that
// tells the backend the file is complete. A scanned download takes the same way into the
// client's relay.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "data/backend_data_side.h"
#include "net/dialer.h"
#include "net/libevent_handles.h"
#include "net/socket_address.h"
#include "net/timer.h"
#include "scan/spool.h"
#include "tls/client_context.h"

namespace ftpsgate::data {

class SpoolSender {
 public:
  using Settings = BackendDataSettings;
  // Runs once: every byte handed to the kernel and the end sent (ok), or a failure.
  using Done = std::function<void(bool ok, const std::string& error)>;

  SpoolSender(Settings settings, const inspection::Spool& spool, Done done);
  // Destroyed before its end was sent: the backend gets a reset, never a clean end.
  ~SpoolSender();
  SpoolSender(const SpoolSender&) = delete;
  SpoolSender& operator=(const SpoolSender&) = delete;

  // Dials `endpoint` (the backend's data port) with settings.dialer.
  void start(const net::DialTarget& endpoint);
  // A connected clear socket instead (download inspection: the spool feeds the client's
  // relay through a socketpair). Owns `fd`.
  void start_on(evutil_socket_t fd);
  uint64_t sent() const { return offset_; }

 private:
  static void on_read(bufferevent* bev, void* self);
  static void on_write(bufferevent* bev, void* self);
  static void on_event(bufferevent* bev, short what, void* self);
  void dialed(DialedDataSide side, const std::string& error);
  // Callbacks on upstream_; `open`: connected now, else a TLS handshake comes first.
  void attach(bool open);
  void fill();
  void fail(const std::string& error);
  void abort_connection();

  Settings settings_;
  const inspection::Spool& spool_;
  Done done_;
  uint64_t offset_ = 0;  // spool bytes moved to the socket's buffer
  bool connected_ = false;
  bool ended_ = false;  // close_notify and FIN sent
  bool reported_ = false;
  std::chrono::steady_clock::time_point last_progress_;
  std::chrono::steady_clock::time_point connect_started_;
  net::Timer connect_timer_;  // a TLS handshake after the dial: what is left of connect_timeout
  net::Timer stall_timer_;
  std::unique_ptr<net::PendingDial> dial_;
  std::shared_ptr<void> lease_;  // what an agent's pipe needs; outlives upstream_
  net::BufferEventPtr upstream_;
};

}  // namespace ftpsgate::data
