// One link after OK (docs/agent-design.md 1.3): the link's TLS bufferevent and the target's
// clear one, relayed both ways by two data::ByteRelays (bounded by their watermarks, no
// stall timeout: control pipes idle legitimately), with each end mapped one for one:
//
//   target FIN                              -> close_notify, then FIN on the link
//   target RST or error                     -> RST on the link
//   gateway close_notify                    -> FIN to the target, the other way goes on
//   gateway FIN without close_notify, RST   -> RST to the target
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "data/byte_relay.h"
#include "net/libevent_handles.h"

namespace ftpsgate::agent {

class AgentPipe {
 public:
  struct End {
    bool clean = false;  // both ways ended gracefully
    std::string how;     // target_closed+gateway_closed, target_reset, gateway_aborted, cut
    std::string error;   // the failing side's reason, for the debug log
    uint64_t to_target = 0;
    uint64_t to_gateway = 0;
  };
  // Once, from a relay or bufferevent callback; the pipe may be destroyed only afterwards
  // from the loop (net::DeferredDelete).
  using Done = std::function<void(const End& end)>;
  // Bytes that reached each sink since the last call: while the pipe runs (as its sinks
  // drain) and once more before `done`, so a long transfer shows in the metrics as it goes.
  using Progress = std::function<void(uint64_t to_target, uint64_t to_gateway)>;

  // `link`: the TLS bufferevent after OK; `target`: the connected target, whose socket has
  // SO_LINGER {1,0} (an abort sends RST). `bulk`: a data connection (batched clear reads).
  AgentPipe(event_base* base, net::BufferEventPtr link, net::BufferEventPtr target, bool bulk, Progress progress,
            Done done);
  AgentPipe(const AgentPipe&) = delete;
  AgentPipe& operator=(const AgentPipe&) = delete;

  void start();
  // The drain deadline: RST both ways now. `done` runs (with how = "cut").
  void cut();

 private:
  class Side : public data::ByteRelay::Observer {
   public:
    Side(AgentPipe& pipe, bool to_target) : pipe_(pipe), to_target_(to_target) {}
    void on_relay_end(bool ok, const std::string& error) override { pipe_.relay_ended(to_target_, ok, error); }

   private:
    AgentPipe& pipe_;
    bool to_target_;
  };

  static void on_link_write(bufferevent*, void* self);
  static void on_target_write(bufferevent*, void* self);
  static void on_link_event(bufferevent*, short what, void* self);
  static void on_target_event(bufferevent*, short what, void* self);
  void relay_ended(bool to_target, bool ok, const std::string& error);
  void abort(bool reset_link, bool reset_target, const std::string& how, const std::string& error);
  void finish(bool clean, const std::string& how, const std::string& error);
  void report_progress();

  Progress progress_;
  Done done_;
  uint64_t reported_to_target_ = 0;
  uint64_t reported_to_gateway_ = 0;
  bool ended_ = false;
  bool to_target_done_ = false;   // the gateway's close_notify reached the target as FIN
  bool to_gateway_done_ = false;  // the target's FIN reached the gateway as close_notify
  // Member order: the relays hold events on the bufferevents' sockets, so they go first.
  net::BufferEventPtr link_;
  net::BufferEventPtr target_;
  Side to_target_side_{*this, true};
  Side to_gateway_side_{*this, false};
  std::unique_ptr<data::ByteRelay> to_target_;
  std::unique_ptr<data::ByteRelay> to_gateway_;
};

}  // namespace ftpsgate::agent
