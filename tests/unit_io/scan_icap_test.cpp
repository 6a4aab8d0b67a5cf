// The ICAP scanner against scripted ICAP servers on loopback TCP: previews, early answers,
// encapsulated bodies, the keep-alive pool and its queue.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>

#include "inspection/icap_message.h"
#include "scan/scan_pool.h"
#include "scan_fake_server.h"

using namespace ftpsgate;
using namespace ftpsgate::inspection;
using namespace scan_test;

namespace {

ScannerConfig icap_config(const FakeServer& server, std::size_t preview = 0) {
  ScannerConfig config;
  config.name = "icap";
  config.engine = ScanEngine::kIcap;
  config.icap_url = "icap://127.0.0.1:" + std::to_string(server.port()) + "/avscan";
  config.icap_preview = preview;
  config.timeout = std::chrono::seconds(5);
  return config;
}

bool all_done(const std::vector<Outcome>& outcomes) {
  return std::all_of(outcomes.begin(), outcomes.end(), [](const Outcome& o) { return o.done(); });
}

// Answers every request on the connection with `reply` once its body has arrived whole and
// matches `expected`; keeps the connection until the client closes it.
FakeServer::Script serve_all(std::string expected, std::string reply) {
  return [expected = std::move(expected), reply = std::move(reply)](Peer& peer, int) {
    for (;;) {
      const auto body = read_icap_request(peer);
      if (!body) return;
      peer.write(*body == expected ? reply : "ICAP/1.0 500 test saw other bytes\r\n\r\n");
    }
  };
}

}  // namespace

TEST_CASE("ICAP: RESPMOD without preview carries the whole file and who sent it; 204 is clean") {
  const std::string content = pattern(300000, 1);
  IcapSeen seen;
  std::string received;
  FakeServer server(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    received = read_icap_request(peer, &seen).value_or("(broken)");
    peer.write(kIcap204);
    peer.wait_eof();
  });
  Loop loop;
  auto scanner = make_scanner(loop.base.get(), icap_config(server));
  CHECK(scanner->engine() == "icap");
  Upload upload(content, 4096);
  const ScanResult result = scan_once(loop, *scanner, upload);
  CHECK(result.verdict == Verdict::kClean);
  CHECK(received == content);
  CHECK(seen.head.starts_with("RESPMOD icap://127.0.0.1:" + std::to_string(server.port()) + "/avscan ICAP/1.0\r\n"));
  CHECK(seen.has("Allow: 204\r\n"));
  CHECK_FALSE(seen.has("Preview:"));
  CHECK(seen.has("X-Client-IP: 192.0.2.7\r\n"));
  CHECK(seen.has("X-Authenticated-User: TG9jYWw6Ly9hbGljZQ==\r\n"));
  CHECK(seen.http_headers.starts_with("GET /in/report%201.csv HTTP/1.1\r\n"));
  CHECK(seen.http_headers.find("Content-Length: 300000\r\n") != std::string::npos);
}

TEST_CASE("ICAP: REQMOD sends the file as a PUT body; the request coming back whole is clean") {
  const std::string content = pattern(5000, 2);
  IcapSeen seen;
  FakeServer server(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    const auto body = read_icap_request(peer, &seen);
    const std::string http = "PUT /a HTTP/1.1\r\nHost: ftpsgate\r\n\r\n";
    peer.write("ICAP/1.0 200 OK\r\nEncapsulated: req-hdr=0, req-body=" + std::to_string(http.size()) + "\r\n\r\n" +
               http + "1388\r\n" + body.value_or("") + "\r\n0\r\n\r\n");
    peer.wait_eof();
  });
  Loop loop;
  ScannerConfig config = icap_config(server);
  config.icap_method = ftpsgate::IcapMethod::kReqmod;
  auto scanner = make_scanner(loop.base.get(), config);
  Upload upload(content);
  CHECK(scan_once(loop, *scanner, upload).verdict == Verdict::kClean);
  CHECK(seen.head.starts_with("REQMOD "));
  CHECK(seen.http_headers.starts_with("PUT /in/report%201.csv HTTP/1.1\r\n"));
}

TEST_CASE("ICAP: an infection header is infected; an ICAP error status is an error with its status line") {
  Loop loop;
  Upload upload(pattern(4000, 3));
  {
    const std::string page = "HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\n";
    FakeServer server(FakeServer::Transport::kTcp,
                      serve_all(pattern(4000, 3),
                                "ICAP/1.0 200 OK\r\nX-Infection-Found: Type=0; Resolution=2; "
                                "Threat=Eicar-Test-Signature;\r\nEncapsulated: res-hdr=0, res-body=" +
                                    std::to_string(page.size()) + "\r\n\r\n" + page + "5\r\nnope!\r\n0\r\n\r\n"));
    auto scanner = make_scanner(loop.base.get(), icap_config(server));
    const ScanResult result = scan_once(loop, *scanner, upload);
    CHECK(result.verdict == Verdict::kInfected);
    CHECK(result.signature == "Eicar-Test-Signature");
  }
  {
    FakeServer server(FakeServer::Transport::kTcp, serve_all(pattern(4000, 3), "ICAP/1.0 500 Server Error\r\n\r\n"));
    auto scanner = make_scanner(loop.base.get(), icap_config(server));
    const ScanResult result = scan_once(loop, *scanner, upload);
    CHECK(result.verdict == Verdict::kError);
    CHECK(result.error == "ICAP: ICAP/1.0 500 Server Error");
  }
  {
    FakeServer server(FakeServer::Transport::kTcp, [](Peer& peer, int) {
      read_icap_request(peer);
      peer.write("ICAP/1.0 200 OK\r\n" + std::string(kIcapMaxHead + 10, 'a'));
      peer.wait_eof();
    });
    auto scanner = make_scanner(loop.base.get(), icap_config(server));
    CHECK(scan_once(loop, *scanner, upload).error == "ICAP: response head too long");
  }
}

TEST_CASE("ICAP: a preview, then 100 Continue, then the rest of the file") {
  const std::string content = pattern(5000, 4);
  std::string preview;
  std::string rest;
  bool ieof = true;
  IcapSeen seen;
  FakeServer server(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    seen = read_icap_head(peer);
    read_icap_chunks(peer, preview, &ieof);
    peer.write("ICAP/1.0 100 Continue\r\n\r\n");
    read_icap_chunks(peer, rest);
    peer.write(kIcap204);
    peer.wait_eof();
  });
  Loop loop;
  auto scanner = make_scanner(loop.base.get(), icap_config(server, 1024));
  Upload upload(content);
  CHECK(scan_once(loop, *scanner, upload).verdict == Verdict::kClean);
  CHECK(seen.has("Preview: 1024\r\n"));
  CHECK_FALSE(ieof);
  CHECK(preview == content.substr(0, 1024));
  CHECK(preview + rest == content);
}

TEST_CASE("ICAP: 204 right after the preview is clean and the connection serves the next scan") {
  const std::string big = pattern(400000, 5);
  const std::string small = pattern(100, 6);
  std::string second;
  bool second_ieof = false;
  FakeServer server(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    std::string preview;
    if (!read_icap_head(peer).ok || !read_icap_chunks(peer, preview) || preview != big.substr(0, 1024)) return;
    peer.write(kIcap204);  // no 100 Continue: the rest is not wanted
    IcapSeen seen = read_icap_head(peer);
    read_icap_chunks(peer, second, &second_ieof);  // the preview holds the whole small file
    if (seen.has("Preview: 100\r\n")) peer.write(kIcap204);
    peer.wait_eof();
  });
  Loop loop;
  auto scanner = make_scanner(loop.base.get(), icap_config(server, 1024));
  Upload first(big);
  Upload next(small);
  CHECK(scan_once(loop, *scanner, first).verdict == Verdict::kClean);
  CHECK(scan_once(loop, *scanner, next).verdict == Verdict::kClean);
  CHECK(second == small);
  CHECK(second_ieof);
  CHECK(server.accepted() == 1);
}

TEST_CASE("ICAP: a 100 Continue after a preview that held the whole file is an error") {
  FakeServer server(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    read_icap_request(peer);
    peer.write("ICAP/1.0 100 Continue\r\n\r\n");
    peer.wait_eof();
  });
  Loop loop;
  auto scanner = make_scanner(loop.base.get(), icap_config(server, 1024));
  Upload upload("tiny");
  CHECK(scan_once(loop, *scanner, upload).error == "ICAP: unexpected ICAP/1.0 100 Continue");
}

TEST_CASE("ICAP: a 200 echoing the file is read to its end, then the connection is reused") {
  const std::string content = pattern(100000, 7);
  FakeServer server(FakeServer::Transport::kTcp, serve_all(content, icap_200_echo(content)));
  Loop loop;
  auto scanner = make_scanner(loop.base.get(), icap_config(server));
  auto& pool = dynamic_cast<PooledScanner&>(*scanner);
  Upload upload(content);
  CHECK(scan_once(loop, *scanner, upload).verdict == Verdict::kClean);
  CHECK(pool.idle_connections() == 1);
  CHECK(scan_once(loop, *scanner, upload).verdict == Verdict::kClean);
  CHECK(server.accepted() == 1);
}

TEST_CASE("ICAP: a 200 saying Connection: close is not pooled; a body cut short (closed, or ended early) is an error") {
  const std::string content = pattern(20000, 8);
  Loop loop;
  Upload upload(content);
  {
    FakeServer server(FakeServer::Transport::kTcp, serve_all(content, icap_200_echo(content, "Connection: close\r\n")));
    auto scanner = make_scanner(loop.base.get(), icap_config(server));
    CHECK(scan_once(loop, *scanner, upload).verdict == Verdict::kClean);
    CHECK(dynamic_cast<PooledScanner&>(*scanner).idle_connections() == 0);
  }
  {
    // SECURITY: a server streaming the file back cuts the body when the end is infected:
    // by closing the connection, or (c-icap) with a proper last chunk after a part.
    FakeServer server(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
      read_icap_request(peer);
      const std::string reply = icap_200_echo(content);
      peer.write(reply.substr(0, reply.size() - 5000));
    });
    auto scanner = make_scanner(loop.base.get(), icap_config(server));
    const ScanResult result = scan_once(loop, *scanner, upload);
    CHECK(result.verdict == Verdict::kError);
    CHECK(result.error == "ICAP: connection closed by the server before the verdict");
  }
  {
    FakeServer server(FakeServer::Transport::kTcp, serve_all(content, icap_200_echo(content.substr(0, 1000))));
    auto scanner = make_scanner(loop.base.get(), icap_config(server));
    const ScanResult result = scan_once(loop, *scanner, upload);
    CHECK(result.verdict == Verdict::kError);
    CHECK(result.error ==
          "ICAP: the server sent back 1000 of the file's 20000 bytes (c-icap cuts a file short "
          "when it finds a threat after sending part of it)");
  }
  {
    const std::string http = "HTTP/1.1 200 OK\r\n\r\n";
    FakeServer server(FakeServer::Transport::kTcp,
                      serve_all(content, "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, null-body=" +
                                             std::to_string(http.size()) + "\r\n\r\n" + http));
    auto scanner = make_scanner(loop.base.get(), icap_config(server));
    CHECK(
        scan_once(loop, *scanner, upload).error.starts_with("ICAP: the server sent back 0 of the file's 20000 bytes"));
  }
}

TEST_CASE("ICAP: an answer before the whole file was sent: infected counts, clean does not") {
  Loop loop;
  Upload upload(pattern(8 * 1024 * 1024, 9), 4096);
  const std::string page = "HTTP/1.1 403 Forbidden\r\n\r\n";
  {
    FakeServer server(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
      read_icap_head(peer);
      peer.write("ICAP/1.0 200 OK\r\nX-Virus-ID: Early.Bird\r\nEncapsulated: res-hdr=0, null-body=" +
                 std::to_string(page.size()) + "\r\n\r\n" + page);
      std::this_thread::sleep_for(300ms);
    });
    auto scanner = make_scanner(loop.base.get(), icap_config(server));
    const ScanResult result = scan_once(loop, *scanner, upload);
    CHECK(result.verdict == Verdict::kInfected);
    CHECK(result.signature == "Early.Bird");
  }
  {
    FakeServer server(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
      read_icap_head(peer);
      peer.write(icap_200_echo("only this"));
      std::this_thread::sleep_for(300ms);
    });
    auto scanner = make_scanner(loop.base.get(), icap_config(server));
    const ScanResult result = scan_once(loop, *scanner, upload);
    CHECK(result.verdict == Verdict::kError);
    CHECK(result.error == "ICAP: the server answered before the whole file was sent");
  }
}

TEST_CASE("ICAP: at most max_connections connections, kept alive; further scans wait in order") {
  const std::string content = pattern(30000, 10);
  FakeServer server(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    while (const auto body = read_icap_request(peer)) {
      std::this_thread::sleep_for(10ms);
      peer.write(*body == content ? kIcap204 : "ICAP/1.0 500 bad\r\n\r\n");
    }
  });
  Loop loop;
  ScannerConfig config = icap_config(server);
  config.max_connections = 2;
  auto scanner = make_scanner(loop.base.get(), config);
  Upload upload(content);
  std::vector<Outcome> outcomes(7);
  std::vector<std::unique_ptr<ScanHandle>> handles;
  for (auto& outcome : outcomes) handles.push_back(scanner->scan(upload.subject(), outcome.record()));
  REQUIRE(loop.run_until([&] { return all_done(outcomes); }));
  for (const auto& outcome : outcomes) CHECK(outcome.result.verdict == Verdict::kClean);
  CHECK(server.accepted() == 2);
  CHECK(dynamic_cast<PooledScanner&>(*scanner).idle_connections() == 2);

  // One connection: the queue is served first in, first out.
  ScannerConfig one = icap_config(server);
  one.max_connections = 1;
  auto serial = make_scanner(loop.base.get(), one);
  std::vector<int> order;
  handles.clear();
  for (int i = 0; i < 5; ++i) {
    handles.push_back(serial->scan(upload.subject(), [&order, i](ScanResult) { order.push_back(i); }));
  }
  REQUIRE(loop.run_until([&] { return order.size() == 5; }));
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
  CHECK(server.accepted() == 3);
  handles.clear();  // before their scanner
}

TEST_CASE("ICAP: beyond the queue's bound a scan fails as busy; cancelled ones never call back") {
  std::atomic<bool> holding{false};
  std::atomic<bool> saw_close{false};
  FakeServer server(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    holding = read_icap_request(peer).has_value();
    saw_close = peer.wait_eof();
  });
  Loop loop;
  ScannerConfig config = icap_config(server);
  config.max_connections = 1;
  auto scanner = make_scanner(loop.base.get(), config);
  Upload upload("data");
  std::vector<Outcome> outcomes(1 + kMaxQueuedScans + 1);
  std::vector<std::unique_ptr<ScanHandle>> handles;
  for (auto& outcome : outcomes) handles.push_back(scanner->scan(upload.subject(), outcome.record()));
  REQUIRE(loop.run_until([&] { return holding && outcomes.back().done(); }));
  CHECK(outcomes.back().result.error == "ICAP: scanner busy (1024 scans waiting)");
  handles.clear();
  CHECK(loop.run_until([&] { return saw_close.load(); }));
  loop.run_for(50ms);
  for (std::size_t i = 0; i + 1 < outcomes.size(); ++i) CHECK(outcomes[i].calls == 0);
  CHECK(server.accepted() == 1);
}

TEST_CASE("ICAP: an idle connection the server closed is dropped; the next scan opens another") {
  FakeServer server(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    if (read_icap_request(peer)) peer.write(kIcap204);  // then closes: a short keep-alive timeout
  });
  Loop loop;
  auto scanner = make_scanner(loop.base.get(), icap_config(server));
  auto& pool = dynamic_cast<PooledScanner&>(*scanner);
  Upload upload(pattern(1000, 11));
  CHECK(scan_once(loop, *scanner, upload).verdict == Verdict::kClean);
  CHECK(loop.run_until([&] { return pool.idle_connections() == 0; }));
  CHECK(scan_once(loop, *scanner, upload).verdict == Verdict::kClean);
  CHECK(server.accepted() == 2);
}

TEST_CASE("ICAP: a reused connection that closes before answering is retried once on a fresh one") {
  FakeServer server(FakeServer::Transport::kTcp, [&](Peer& peer, int index) {
    if (!read_icap_request(peer)) return;
    peer.write(kIcap204);
    if (index == 0) {
      read_icap_head(peer);  // the next request arrives as the server gives up on the connection
      return;
    }
    while (read_icap_request(peer)) peer.write(kIcap204);
  });
  Loop loop;
  auto scanner = make_scanner(loop.base.get(), icap_config(server));
  Upload upload(pattern(1000, 12));
  CHECK(scan_once(loop, *scanner, upload).verdict == Verdict::kClean);
  const ScanResult second = scan_once(loop, *scanner, upload);
  CHECK(second.verdict == Verdict::kClean);
  CHECK(server.accepted() == 2);

  // A fresh connection closing early is not retried.
  FakeServer rude(FakeServer::Transport::kTcp, [](Peer& peer, int) { read_icap_head(peer); });
  auto other = make_scanner(loop.base.get(), icap_config(rude));
  CHECK(scan_once(loop, *other, upload).error == "ICAP: connection closed by the server before the verdict");
  CHECK(rude.accepted() == 1);
}

TEST_CASE("ICAP: no progress for `timeout` fails as timed out; a cancelled scan closes its connection") {
  std::atomic<int> requests{0};
  std::atomic<int> closes{0};
  FakeServer server(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    if (read_icap_request(peer)) ++requests;
    if (peer.wait_eof()) ++closes;
  });
  Loop loop;
  ScannerConfig config = icap_config(server);
  config.timeout = std::chrono::milliseconds(250);
  auto scanner = make_scanner(loop.base.get(), config);
  Upload upload(pattern(2000, 13));
  CHECK(scan_once(loop, *scanner, upload).error == "ICAP: scanner timed out (no progress for 250 ms)");
  CHECK(loop.run_until([&] { return closes == 1; }));

  Outcome outcome;
  auto handle = scanner->scan(upload.subject(), outcome.record());
  REQUIRE(loop.run_until([&] { return requests == 2; }));
  handle.reset();
  CHECK(loop.run_until([&] { return closes == 2; }));
  loop.run_for(300ms);  // past the timeout too
  CHECK(outcome.calls == 0);
  CHECK(dynamic_cast<PooledScanner&>(*scanner).idle_connections() == 0);
}

TEST_CASE("ICAP: a refused connection, a bad URL and a host name fail with the reason") {
  Loop loop;
  Upload upload("x");
  ScannerConfig config;
  config.engine = ScanEngine::kIcap;
  const std::string port = std::to_string(closed_port());
  config.icap_url = "icap://localhost:" + port + "/avscan";
  auto scanner = make_scanner(loop.base.get(), config);
  CHECK(scan_once(loop, *scanner, upload).error ==
        "ICAP: cannot connect to 127.0.0.1:" + port + ": Connection refused");
  config.icap_url = "http://x/y";
  scanner = make_scanner(loop.base.get(), config);
  CHECK(scan_once(loop, *scanner, upload).error == "ICAP: bad icap_url 'http://x/y'");
  config.icap_url = "icap://icap.example/avscan";
  scanner = make_scanner(loop.base.get(), config);
  CHECK(scan_once(loop, *scanner, upload).error ==
        "ICAP: cannot connect to icap.example: not an IP address (names other than localhost are not resolved)");
}

TEST_CASE("ICAP: the health check is OPTIONS answered 200") {
  Loop loop;
  std::string request;
  FakeServer up(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    peer.read_until("\r\n\r\n", request);
    peer.write("ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nPreview: 1024\r\nEncapsulated: null-body=0\r\n\r\n");
    peer.wait_eof();
  });
  auto scanner = make_scanner(loop.base.get(), icap_config(up));
  CHECK(probe_once(loop, *scanner) == std::pair<bool, std::string>(true, ""));
  CHECK(request.starts_with("OPTIONS icap://127.0.0.1:" + std::to_string(up.port()) + "/avscan ICAP/1.0\r\n"));
  FakeServer missing(FakeServer::Transport::kTcp, [](Peer& peer, int) {
    std::string ignored;
    peer.read_until("\r\n\r\n", ignored);
    peer.write("ICAP/1.0 404 ICAP Service not found\r\n\r\n");
  });
  scanner = make_scanner(loop.base.get(), icap_config(missing));
  CHECK(probe_once(loop, *scanner) ==
        std::pair<bool, std::string>(false, "ICAP: OPTIONS answered ICAP/1.0 404 ICAP Service not found"));
}
