// The clamd scanner against scripted clamd stand-ins on unix sockets and loopback TCP.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>

#include "scan/scan_pool.h"
#include "scan_fake_server.h"

using namespace ftpsgate;
using namespace ftpsgate::inspection;
using namespace scan_test;

namespace {

ScannerConfig clamd_config(const FakeServer& server) {
  ScannerConfig config;
  config.name = "av";
  config.engine = ScanEngine::kClamd;
  if (!server.path().empty()) {
    config.clamd_socket = server.path();
  } else {
    config.clamd_address = HostPort{"127.0.0.1", server.port()};
  }
  config.timeout = std::chrono::seconds(5);
  return config;
}

// A clamd that checks the stream is the upload's bytes, in order, and answers `reply`.
FakeServer::Script answers(std::string expected, std::string reply) {
  return [expected = std::move(expected), reply = std::move(reply)](Peer& peer, int) {
    const auto file = read_instream(peer);
    peer.write(file && *file == expected ? reply : std::string("stream: test saw other bytes ERROR\0", 35));
  };
}

}  // namespace

TEST_CASE("clamd: a clean file streams whole over a unix socket, from a spool on disk") {
  const std::string content = pattern(3 * 1024 * 1024 + 17, 1);
  FakeServer server(FakeServer::Transport::kUnix, answers(content, std::string("stream: OK\0", 11)));
  Loop loop;
  auto scanner = make_scanner(loop.base.get(), clamd_config(server));
  CHECK(scanner->engine() == "clamd");
  Upload upload(content, 4096);
  REQUIRE(upload.spool.on_disk());
  const ScanResult result = scan_once(loop, *scanner, upload);
  CHECK(result.verdict == Verdict::kClean);
  CHECK(result.error == "");
}

TEST_CASE("clamd: FOUND is infected with the signature, ERROR an error, over TCP too") {
  const std::string content = pattern(70000, 2);
  Loop loop;
  Upload upload(content);
  {
    FakeServer server(FakeServer::Transport::kTcp,
                      answers(content, std::string("stream: Eicar-Signature FOUND\0", 30)));
    auto scanner = make_scanner(loop.base.get(), clamd_config(server));
    const ScanResult result = scan_once(loop, *scanner, upload);
    CHECK(result.verdict == Verdict::kInfected);
    CHECK(result.signature == "Eicar-Signature");
  }
  {
    FakeServer server(FakeServer::Transport::kUnix,
                      answers(content, std::string("stream: Can't allocate memory ERROR\0", 36)));
    auto scanner = make_scanner(loop.base.get(), clamd_config(server));
    const ScanResult result = scan_once(loop, *scanner, upload);
    CHECK(result.verdict == Verdict::kError);
    CHECK(result.error == "clamd: stream: Can't allocate memory ERROR");
  }
  {
    Upload empty("");
    FakeServer server(FakeServer::Transport::kUnix, answers("", std::string("stream: OK\0", 11)));
    auto scanner = make_scanner(loop.base.get(), clamd_config(server));
    CHECK(scan_once(loop, *scanner, empty).verdict == Verdict::kClean);
  }
}

TEST_CASE("clamd: an early refusal stops the upload and is the error reported") {
  std::atomic<bool> closed_early{false};
  FakeServer server(FakeServer::Transport::kUnix, [&](Peer& peer, int) {
    std::string start;
    closed_early = peer.read_exact(10 + 4 + 64 * 1024, start);  // the command and the first chunk only
    peer.write(std::string_view("INSTREAM size limit exceeded. ERROR\0", 36));
  });
  Loop loop;
  auto scanner = make_scanner(loop.base.get(), clamd_config(server));
  Upload upload(pattern(16 * 1024 * 1024, 3), 4096);
  const ScanResult result = scan_once(loop, *scanner, upload);
  CHECK(closed_early);
  CHECK(result.verdict == Verdict::kError);
  CHECK(result.error == "clamd: INSTREAM size limit exceeded. ERROR");
}

TEST_CASE("clamd: no reply, an endless reply, or OK before the end of the stream are errors") {
  Loop loop;
  Upload upload(pattern(200000, 4));
  {
    FakeServer server(FakeServer::Transport::kUnix, [](Peer& peer, int) { read_instream(peer); });
    auto scanner = make_scanner(loop.base.get(), clamd_config(server));
    const ScanResult result = scan_once(loop, *scanner, upload);
    CHECK(result.verdict == Verdict::kError);
    CHECK(result.error == "clamd: connection closed by the server before the reply");
  }
  {
    FakeServer server(FakeServer::Transport::kUnix, [](Peer& peer, int) {
      read_instream(peer);
      peer.write(std::string(5000, 'x'));
      peer.wait_eof();
    });
    auto scanner = make_scanner(loop.base.get(), clamd_config(server));
    const ScanResult result = scan_once(loop, *scanner, upload);
    CHECK(result.error == "clamd: reply too long");
  }
  {
    // SECURITY: a clean verdict about a stream clamd has not seen to its end.
    FakeServer server(FakeServer::Transport::kUnix, [](Peer& peer, int) {
      std::string start;
      peer.read_exact(10 + 4 + 100, start);
      peer.write(std::string_view("stream: OK\0", 11));
      std::this_thread::sleep_for(300ms);  // reading no more: the stream cannot have ended
    });
    auto scanner = make_scanner(loop.base.get(), clamd_config(server));
    Upload big(pattern(4 * 1024 * 1024, 4));
    const ScanResult result = scan_once(loop, *scanner, big);
    CHECK(result.verdict == Verdict::kError);
    CHECK(result.error == "clamd: answered OK before the end of the stream");
  }
}

TEST_CASE("clamd: a missing socket, a refused connection or a host name fail with the reason, later on the loop") {
  Loop loop;
  Upload upload("abc");
  ScannerConfig config;
  config.engine = ScanEngine::kClamd;
  config.clamd_socket = "/tmp/ftpsgate-scan-test-nothing-here.sock";
  auto scanner = make_scanner(loop.base.get(), config);
  Outcome outcome;
  auto handle = scanner->scan(upload.subject(), outcome.record());
  CHECK(outcome.calls == 0);  // never from inside scan()
  REQUIRE(loop.run_until([&] { return outcome.done(); }));
  CHECK(outcome.result.error ==
        "clamd: cannot connect to /tmp/ftpsgate-scan-test-nothing-here.sock: No such file or directory");
  loop.run_for(20ms);
  CHECK(outcome.calls == 1);
  handle.reset();  // before its scanner

  // A TCP port nobody listens on: the refusal comes from the loop.
  const uint16_t port = closed_port();
  config.clamd_socket.clear();
  config.clamd_address = HostPort{"localhost", port};
  scanner = make_scanner(loop.base.get(), config);
  CHECK(scan_once(loop, *scanner, upload).error ==
        "clamd: cannot connect to 127.0.0.1:" + std::to_string(port) + ": Connection refused");

  config.clamd_address = HostPort{"clamd.example", 3310};
  scanner = make_scanner(loop.base.get(), config);
  CHECK(scan_once(loop, *scanner, upload).error ==
        "clamd: cannot connect to clamd.example:3310: not an IP address (names other than localhost are not resolved)");
}

TEST_CASE("clamd: a scan that makes no progress for `timeout` fails as timed out") {
  FakeServer server(FakeServer::Transport::kUnix, [](Peer& peer, int) {
    read_instream(peer);
    peer.wait_eof();
  });
  Loop loop;
  ScannerConfig config = clamd_config(server);
  config.timeout = std::chrono::milliseconds(300);
  auto scanner = make_scanner(loop.base.get(), config);
  Upload upload(pattern(1000, 5));
  const auto start = std::chrono::steady_clock::now();
  const ScanResult result = scan_once(loop, *scanner, upload);
  CHECK(std::chrono::steady_clock::now() - start >= 300ms);
  CHECK(result.error == "clamd: scanner timed out (no progress for 300 ms)");
}

TEST_CASE("clamd: destroying the handle cancels: no callback, the connection closed") {
  std::atomic<bool> got_stream{false};
  std::atomic<bool> saw_close{false};
  FakeServer server(FakeServer::Transport::kUnix, [&](Peer& peer, int) {
    got_stream = read_instream(peer).has_value();
    saw_close = peer.wait_eof();
  });
  Loop loop;
  auto scanner = make_scanner(loop.base.get(), clamd_config(server));
  Upload upload(pattern(100000, 6));
  Outcome outcome;
  auto handle = scanner->scan(upload.subject(), outcome.record());
  REQUIRE(loop.run_until([&] { return got_stream.load(); }));
  handle.reset();
  CHECK(loop.run_until([&] { return saw_close.load(); }));
  loop.run_for(50ms);
  CHECK(outcome.calls == 0);
}

TEST_CASE("clamd: one connection per scan, at most max_connections at once, the rest queued in order") {
  const std::string content = pattern(10000, 7);
  FakeServer server(FakeServer::Transport::kUnix, [&](Peer& peer, int) {
    const auto file = read_instream(peer);
    std::this_thread::sleep_for(20ms);
    peer.write(file == content ? std::string_view("stream: OK\0", 11) : std::string_view("stream: bad ERROR\0", 18));
  });
  Loop loop;
  ScannerConfig config = clamd_config(server);
  config.max_connections = 2;
  auto scanner = make_scanner(loop.base.get(), config);
  Upload upload(content);
  std::vector<Outcome> outcomes(5);
  std::vector<std::unique_ptr<ScanHandle>> handles;
  for (auto& outcome : outcomes) handles.push_back(scanner->scan(upload.subject(), outcome.record()));
  REQUIRE(loop.run_until(
      [&] { return std::all_of(outcomes.begin(), outcomes.end(), [](const Outcome& o) { return o.done(); }); }));
  for (const auto& outcome : outcomes) CHECK(outcome.result.verdict == Verdict::kClean);
  CHECK(server.accepted() == 5);
  CHECK(server.max_open() == 2);
}

TEST_CASE("clamd: the health check is PING answered PONG") {
  Loop loop;
  auto ping_then = [](std::string_view answer) {
    return [answer = std::string(answer)](Peer& peer, int) {
      std::string ping;
      if (peer.read_exact(6, ping) && ping == std::string("zPING\0", 6)) peer.write(answer);
    };
  };
  FakeServer up(FakeServer::Transport::kUnix, ping_then(std::string("PONG\0", 5)));
  auto scanner = make_scanner(loop.base.get(), clamd_config(up));
  CHECK(probe_once(loop, *scanner) == std::pair<bool, std::string>(true, ""));
  FakeServer odd(FakeServer::Transport::kUnix, ping_then(std::string("UNKNOWN COMMAND\0", 16)));
  scanner = make_scanner(loop.base.get(), clamd_config(odd));
  CHECK(probe_once(loop, *scanner) ==
        std::pair<bool, std::string>(false, "clamd: unexpected answer to PING: UNKNOWN COMMAND"));
  FakeServer mute(FakeServer::Transport::kUnix, ping_then(""));
  scanner = make_scanner(loop.base.get(), clamd_config(mute));
  CHECK(probe_once(loop, *scanner) ==
        std::pair<bool, std::string>(false, "clamd: connection closed by the server before answering PING"));
}
