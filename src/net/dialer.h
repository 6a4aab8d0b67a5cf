// One way to open every connection the gateway makes to a backend (control, passive data,
// spool senders/receivers, health checks): directly, or through an inside-out agent's link
// (issue 17; docs/agent-design.md 3). An I/O shell with no session knowledge.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "net/libevent_handles.h"
#include "net/socket_address.h"
#include "net/unique_fd.h"

struct event_base;

namespace ftpsgate::net {

enum class DialPurpose { kControl, kData, kHealth };

// What to reach.
struct DialTarget {
  std::string agent;  // "" = direct
  std::string host;   // as configured (agent targets: the agent resolves it)
  uint16_t port = 0;
  std::optional<SocketAddress> address;  // direct only: resolved at load
  DialPurpose purpose = DialPurpose::kControl;
  uint64_t session = 0;  // the gateway session (0: health checks)

  bool via_agent() const { return !agent.empty(); }
  // PASV/EPSV: the same host at the backend's data port. SECURITY: the host of a PASV reply
  // is never used, only its port.
  DialTarget with_port(uint16_t new_port) const {
    DialTarget copy = *this;
    copy.port = new_port;
    if (copy.address) copy.address->set_port(new_port);
    return copy;
  }
  DialTarget for_use(DialPurpose new_purpose, uint64_t new_session) const {
    DialTarget copy = *this;
    copy.purpose = new_purpose;
    copy.session = new_session;
    return copy;
  }
  // "127.0.0.1:21" or "agent:site-a/127.0.0.1:21", for logs.
  std::string to_string() const;
};

// A connected backend: `fd` for a direct dial (the caller wraps it, with TLS if the backend
// wants it), `pipe` for an agent link (an open TLS bufferevent after the agent's OK; its
// input may already hold the backend's first bytes). `lease` keeps what the pipe needs
// alive (declare it before the bufferevent so it is destroyed after it).
struct Dialed {
  UniqueFd fd;
  BufferEventPtr pipe;
  std::shared_ptr<void> lease;
};

// Destroying it cancels the dial: `done` never runs afterwards.
class PendingDial {
 public:
  virtual ~PendingDial() = default;
};

// The error every Dialer reports when `timeout` passed before the connection was made; the
// consumers that always said something else on a timeout (a health check's "greeting
// timeout") recognise it.
inline constexpr std::string_view kDialTimeout = "connect timeout";

class Dialer {
 public:
  // Called once, on `base`, never from inside dial(); `error` is empty on success.
  using Done = std::function<void(Dialed dialed, const std::string& error)>;
  virtual ~Dialer() = default;
  virtual std::unique_ptr<PendingDial> dial(event_base* base, const DialTarget& target,
                                            std::chrono::milliseconds timeout, Done done) = 0;
};

}  // namespace ftpsgate::net
