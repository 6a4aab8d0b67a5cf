// Download inspection's backend side (data/spool_receiver): a backend's data stream lands
// in the spool only when it ends cleanly; a reset, a full spool, a dead port or a receiver
// given up are failures, and a cut towards the backend is a reset, never a clean end.
// Scripted backends on loopback TCP (scan_fake_server.h), the receiver on the test's loop.
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "data/spool_receiver.h"
#include "net/direct_dialer.h"
#include "scan_fake_server.h"

using namespace scan_test;
using ftpsgate::data::SpoolReceiver;
using ftpsgate::inspection::Spool;
using ftpsgate::inspection::SpoolBudget;

namespace {

struct Receiving {
  Loop loop;
  ftpsgate::net::DirectDialer dialer;
  SpoolBudget budget;
  Spool spool;
  std::optional<SpoolReceiver::Outcome> outcome;
  int calls = 0;
  std::unique_ptr<SpoolReceiver> receiver;

  explicit Receiving(uint64_t max_spool = uint64_t{1} << 32)
      : budget(max_spool), spool({"/tmp", 256 * 1024, &budget}) {}

  void start(uint16_t port) {
    SpoolReceiver::Settings settings;
    settings.base = loop.base.get();
    settings.dialer = &dialer;
    settings.connect_timeout = std::chrono::seconds(5);
    settings.stall_timeout = std::chrono::seconds(5);
    receiver = std::make_unique<SpoolReceiver>(settings, spool, [this](const SpoolReceiver::Outcome& result) {
      ++calls;
      outcome = result;
    });
    receiver->start(loopback_target(port));
    CHECK_FALSE(outcome.has_value());  // never from inside start()
  }
  bool finish() { return loop.run_until([&] { return outcome.has_value(); }); }
  std::string spooled() const {
    std::string out(spool.size(), '\0');
    uint64_t at = 0;
    while (at < spool.size()) {
      const ssize_t n = spool.read_at(at, out.data() + at, out.size() - at);
      if (n <= 0) break;
      at += static_cast<uint64_t>(n);
    }
    return out;
  }
};

}  // namespace

TEST_CASE("a backend's stream that ends with FIN is spooled whole, past the memory threshold") {
  const std::string file = pattern(3 * 1024 * 1024 + 17, 5);
  FakeServer backend(FakeServer::Transport::kTcp, [&](Peer& peer, int) { peer.write(file); });
  Receiving r;
  r.start(backend.port());
  REQUIRE(r.finish());
  CHECK(r.outcome->ok);
  CHECK(r.spool.on_disk());
  CHECK(r.spooled() == file);
  r.loop.run_for(std::chrono::milliseconds(50));
  CHECK(r.calls == 1);
}

TEST_CASE("a backend's stream cut by a reset is a failure, not a shorter file") {
  FakeServer backend(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    peer.write(pattern(512 * 1024, 1));
    const linger reset{1, 0};
    ::setsockopt(peer.fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
    ::shutdown(peer.fd(), SHUT_RD);  // the script's close() then sends RST
  });
  Receiving r;
  r.start(backend.port());
  REQUIRE(r.finish());
  CHECK_FALSE(r.outcome->ok);
  CHECK_FALSE(r.outcome->spool_full);
}

TEST_CASE("a file larger than the spool budget fails as spool_full, and the backend sees a reset") {
  std::atomic<bool> reset_seen{false};
  FakeServer backend(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    const std::string chunk = pattern(64 * 1024, 2);
    for (int i = 0; i < 256; ++i) {  // 16 MiB at most
      if (!peer.write(chunk)) {
        reset_seen = errno == ECONNRESET || errno == EPIPE;
        return;
      }
    }
  });
  Receiving r(1024 * 1024);
  r.start(backend.port());
  REQUIRE(r.finish());
  CHECK_FALSE(r.outcome->ok);
  CHECK(r.outcome->spool_full);
  CHECK(r.budget.used() <= 1024 * 1024);
  CHECK(r.loop.run_until([&] { return reset_seen.load(); }));
}

TEST_CASE("a dead data port is a failure reported from the loop") {
  Receiving r;
  r.start(closed_port());
  REQUIRE(r.finish());
  CHECK_FALSE(r.outcome->ok);
  CHECK(r.outcome->error == "cannot connect to the backend data port");
}

TEST_CASE("a receiver given up mid-stream resets the backend's connection and never reports") {
  std::atomic<bool> reset_seen{false};
  std::atomic<bool> started{false};
  FakeServer backend(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    const std::string chunk = pattern(64 * 1024, 3);
    for (int i = 0; i < 2048; ++i) {
      if (!peer.write(chunk)) {
        reset_seen = errno == ECONNRESET || errno == EPIPE;
        return;
      }
      started = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  Receiving r;
  r.start(backend.port());
  REQUIRE(r.loop.run_until([&] { return started.load() && r.spool.size() > 0; }));
  r.receiver.reset();
  r.loop.run_for(std::chrono::milliseconds(20));
  CHECK(r.calls == 0);
  CHECK(r.loop.run_until([&] { return reset_seen.load(); }));
}
