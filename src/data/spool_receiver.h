// Download inspection: reads a RETR's data from the backend's passive port into a spool,
// the way the relay would read it (clear, or TLS resuming the upstream session; a TLS
// stream that ends without close_notify is truncated, not complete; a stall ends it),
// so that the file can be scanned before the client gets a byte.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "data/backend_data_side.h"
#include "data/byte_relay.h"
#include "data/spool_pair.h"
#include "net/dialer.h"
#include "net/libevent_handles.h"
#include "net/socket_address.h"
#include "net/timer.h"
#include "scan/spool.h"

namespace ftpsgate::data {

class SpoolReceiver final : private ByteRelay::Observer {
 public:
  using Settings = BackendDataSettings;
  struct Outcome {
    bool ok = false;          // the backend's stream ended cleanly and every byte is spooled
    std::string error;        // when !ok
    bool spool_full = false;  // the spool refused bytes (max_spool_bytes, or a write error)
  };
  // Runs once, never from inside start().
  using Done = std::function<void(const Outcome& outcome)>;

  SpoolReceiver(Settings settings, inspection::Spool& spool, Done done);
  // Destroyed before the end: the backend's connection is reset.
  ~SpoolReceiver();
  SpoolReceiver(const SpoolReceiver&) = delete;
  SpoolReceiver& operator=(const SpoolReceiver&) = delete;

  // Dials `endpoint` (the backend's data port) with settings.dialer.
  void start(const net::DialTarget& endpoint);

 private:
  static void on_upstream_event(bufferevent* bev, short what, void* self);
  static void on_upstream_read(bufferevent* bev, void* self);
  static void on_sink_write(bufferevent* bev, void* self);
  static void on_spool_readable(bufferevent* bev, void* self);
  void dialed(DialedDataSide side, const std::string& error);
  void on_relay_end(bool ok, const std::string& error) override;
  void report(Outcome outcome);
  // Reports from the loop (start() must not call back).
  void report_later(Outcome outcome);

  Settings settings_;
  inspection::Spool& spool_;
  Done done_;
  bool connected_ = false;
  bool agent_pipe_ = false;  // the upstream is an agent link's pipe (ByteRelay::Options::batch_tls_reads)
  bool reported_ = false;
  Outcome pending_;
  std::chrono::steady_clock::time_point connect_started_;
  net::Timer connect_timer_;  // a TLS handshake after the dial: what is left of connect_timeout
  net::Timer report_timer_;
  std::unique_ptr<net::PendingDial> dial_;
  std::shared_ptr<void> lease_;  // what an agent's pipe needs; outlives upstream_
  net::BufferEventPtr upstream_;
  SpoolPair pair_;
  std::unique_ptr<ByteRelay> relay_;  // after what it reads and writes: it goes first
};

}  // namespace ftpsgate::data
