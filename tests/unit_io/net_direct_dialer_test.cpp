// net::DirectDialer: every outcome (connected, refused, timed out, not dialable) reaches
// `done` once and only from the loop; a dial destroyed first never reports and leaves no
// descriptor behind. Loopback listeners only.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "net/direct_dialer.h"
#include "net/unique_fd.h"
#include "scan_fake_server.h"

using namespace scan_test;
using namespace ftpsgate::net;

namespace {

// A loopback listener nobody accepts from; `backlog` 0 lets one connection complete.
struct Listener {
  UniqueFd fd;
  uint16_t port = 0;

  explicit Listener(int backlog = 16) : fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    socklen_t length = sizeof(address);
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
    REQUIRE(::listen(fd.get(), backlog) == 0);
  }
};

struct Dialing {
  Loop loop;
  DirectDialer dialer;
  std::unique_ptr<PendingDial> pending;
  int calls = 0;
  std::optional<std::string> error;
  UniqueFd fd;

  void dial(const DialTarget& target, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    pending = dialer.dial(loop.base.get(), target, timeout, [this](Dialed dialed, const std::string& why) {
      ++calls;
      error = why;
      fd = std::move(dialed.fd);
      CHECK_FALSE(dialed.pipe);
      pending.reset();  // as its owners do: the dial is freed from inside its own callback
    });
    REQUIRE(pending != nullptr);
    CHECK(calls == 0);  // never from inside dial()
  }
  bool finish() {
    return loop.run_until([&] { return calls > 0; });
  }
};

int open_descriptors() {
  int count = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (::readdir(dir) != nullptr) ++count;
    ::closedir(dir);
  }
  return count;
}

uint16_t peer_port(int fd) {
  sockaddr_in peer{};
  socklen_t length = sizeof(peer);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return 0;
  return ntohs(peer.sin_port);
}

}  // namespace

TEST_CASE("a loopback listener is dialed and the connected descriptor comes from the loop") {
  Listener listener;
  Dialing d;
  d.dial(loopback_target(listener.port).for_use(DialPurpose::kControl, 7));
  REQUIRE(d.finish());
  CHECK(d.error == "");
  REQUIRE(d.fd);
  CHECK(peer_port(d.fd.get()) == listener.port);
  // Really connected: the listener has it, and bytes pass.
  UniqueFd accepted(::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(accepted);
  CHECK(::send(d.fd.get(), "220\r\n", 5, MSG_NOSIGNAL) == 5);
  char buffer[8] = {};
  CHECK(::recv(accepted.get(), buffer, sizeof(buffer), 0) == 5);
  CHECK(std::string(buffer, 5) == "220\r\n");
  d.loop.run_for(std::chrono::milliseconds(30));
  CHECK(d.calls == 1);
}

TEST_CASE("a closed loopback port is a refusal reported from the loop, with no descriptor left") {
  Dialing d;
  d.loop.run_for(std::chrono::milliseconds(1));  // the loop's own descriptors exist already
  const int before = open_descriptors();
  d.dial(loopback_target(closed_port()));
  REQUIRE(d.finish());
  CHECK(d.error == "Connection refused");
  CHECK_FALSE(d.fd);
  d.loop.run_for(std::chrono::milliseconds(30));
  CHECK(d.calls == 1);
  CHECK(open_descriptors() == before);
}

TEST_CASE("a listener whose accept queue is full lets the dial run into its timeout") {
  // listen(…, 0): one connection completes and waits unaccepted; then the kernel drops SYNs
  // (the client retransmits after a second), so a shorter dial times out, on loopback.
  Listener full(0);
  std::vector<UniqueFd> queued;
  for (int i = 0; i < 2; ++i) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    const auto to = *SocketAddress::from_numeric("127.0.0.1", full.port);
    (void)::connect(fd.get(), to.get(), to.length());
    queued.push_back(std::move(fd));
  }
  ::usleep(50 * 1000);
  Dialing d;
  const auto started = std::chrono::steady_clock::now();
  d.dial(loopback_target(full.port), std::chrono::milliseconds(300));
  REQUIRE(d.finish());
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(d.error == std::string(kDialTimeout));
  CHECK_FALSE(d.fd);
  CHECK(took >= std::chrono::milliseconds(250));
  CHECK(took < std::chrono::seconds(3));
}

TEST_CASE("a dial destroyed before it completes never reports and closes its socket") {
  Listener full(0);
  UniqueFd first(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const auto to = *SocketAddress::from_numeric("127.0.0.1", full.port);
  (void)::connect(first.get(), to.get(), to.length());
  Dialing d;
  d.loop.run_for(std::chrono::milliseconds(1));  // the loop's own descriptors exist already
  const int before = open_descriptors();
  d.dial(loopback_target(full.port), std::chrono::milliseconds(100));
  CHECK(open_descriptors() == before + 1);  // the connecting socket
  d.pending.reset();
  CHECK(open_descriptors() == before);
  d.loop.run_for(std::chrono::milliseconds(250));  // past its timeout
  CHECK(d.calls == 0);
}

TEST_CASE("a dial that failed at once is cancelled too while its report waits for the loop") {
  Dialing d;
  DialTarget target = loopback_target(21);
  target.agent = "site-a";
  d.dial(target);
  d.pending.reset();
  d.loop.run_for(std::chrono::milliseconds(30));
  CHECK(d.calls == 0);
}

TEST_CASE("an agent target is refused from the loop: no agent is connected to a direct dialer") {
  Dialing d;
  DialTarget target = loopback_target(21);
  target.agent = "site-a";
  d.dial(target.for_use(DialPurpose::kHealth, 0));
  REQUIRE(d.finish());
  CHECK(d.error == "agent site-a is not connected");
  CHECK_FALSE(d.fd);
}

TEST_CASE("a direct target without a resolved address is an error from the loop") {
  Dialing d;
  DialTarget target;
  target.host = "ftp.example";
  target.port = 21;
  d.dial(target);
  REQUIRE(d.finish());
  CHECK(d.error == "no address to dial for ftp.example:21");
  CHECK_FALSE(d.fd);
}

TEST_CASE("a target reads as it is configured, and with_port keeps the host") {
  DialTarget target = loopback_target(21);
  CHECK(target.to_string() == "127.0.0.1:21");
  const DialTarget data = target.with_port(40001);
  CHECK(data.to_string() == "127.0.0.1:40001");
  CHECK(data.address->port() == 40001);
  CHECK(data.address->ip() == "127.0.0.1");
  DialTarget v6;
  v6.host = "::1";
  v6.port = 2121;
  CHECK(v6.to_string() == "[::1]:2121");
  v6.agent = "site-a";
  CHECK(v6.to_string() == "agent:site-a/[::1]:2121");
}
