#include "net/direct_dialer.h"

#include <event2/event.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <utility>

#include "net/timer.h"

namespace ftpsgate::net {

namespace {

class DirectDial final : public PendingDial {
 public:
  explicit DirectDial(Dialer::Done done) : done_(std::move(done)) {}
  DirectDial(const DirectDial&) = delete;
  DirectDial& operator=(const DirectDial&) = delete;

  void start(event_base* base, const DialTarget& target, std::chrono::milliseconds timeout) {
    if (target.via_agent()) {
      fail_later(base, "agent " + target.agent + " is not connected");
      return;
    }
    if (!target.address) {
      fail_later(base, "no address to dial for " + target.to_string());
      return;
    }
    const SocketAddress& to = *target.address;
    fd_.reset(::socket(to.get()->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd_ || (::connect(fd_.get(), to.get(), to.length()) != 0 && errno != EINPROGRESS)) {
      const int error = errno;  // before close() may change it
      fd_.reset();
      fail_later(base, evutil_socket_error_to_string(error));
      return;
    }
    // Connected at once or still connecting: the socket turns writable when it is decided.
    watch(base, fd_.get(), EV_WRITE);
    const timeval tv = to_timeval(timeout);
    event_add(event_.get(), &tv);
  }

 private:
  void watch(event_base* base, evutil_socket_t fd, short what) {
    event_.reset(event_new(base, fd, what, &DirectDial::on_event, this));
    // Only allocation fails here; as for any other allocation, that ends the process.
    if (!event_) throw std::bad_alloc();
  }

  // Never from inside dial(): the caller may still be setting up what `done` uses. An
  // active event, not a call: destroying the dial before the loop runs it cancels it too.
  void fail_later(event_base* base, std::string error) {
    error_ = std::move(error);
    watch(base, -1, 0);
    event_active(event_.get(), EV_TIMEOUT, 0);
  }

  static void on_event(evutil_socket_t fd, short what, void* self) {
    auto* dial = static_cast<DirectDial*>(self);
    std::string error = std::move(dial->error_);
    if (error.empty() && (what & EV_TIMEOUT)) {
      error = kDialTimeout;
    } else if (error.empty()) {
      int so_error = 0;
      socklen_t length = sizeof(so_error);
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &length) != 0) so_error = errno;
      if (so_error != 0) error = evutil_socket_error_to_string(so_error);
    }
    Dialed dialed;
    if (error.empty()) {
      dialed.fd = std::move(dial->fd_);
    } else {
      dial->fd_.reset();  // a failed attempt is closed before anyone hears of it
    }
    // `done` may free this dial (its owner drops the PendingDial): nothing of it is used after.
    const Dialer::Done done = std::move(dial->done_);
    done(std::move(dialed), error);
  }

  Dialer::Done done_;
  std::string error_;  // a failure found inside dial(), reported from the loop
  UniqueFd fd_;
  EventPtr event_;  // after fd_: cancelled (freed) before the descriptor it watches closes
};

}  // namespace

std::unique_ptr<PendingDial> DirectDialer::dial(event_base* base, const DialTarget& target,
                                                std::chrono::milliseconds timeout, Done done) {
  auto pending = std::make_unique<DirectDial>(std::move(done));
  pending->start(base, target, timeout);
  return pending;
}

}  // namespace ftpsgate::net
