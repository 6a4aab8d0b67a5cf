// The gateway side of inside-out agent links (src/hub/): the agents listener, the hub's idle
// links and keepalive, and dials through GatewayDialer from a worker's loop. Real TLS 1.3 on
// loopback: a throwaway CA, the gateway's certificate and agent certificates made here, and a
// fake agent that is a blocking OpenSSL client on its own thread. The hub runs on the test's
// loop (the "main loop"), dials on a second loop thread (a "worker").
#include <doctest/doctest.h>
#include <event2/buffer.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "hub/agent_dialer.h"
#include "hub/agent_hub.h"
#include "hub/agent_listener.h"
#include "hub/gateway_dialer.h"
#include "log/logger.h"
#include "metrics/metrics.h"
#include "net/timer.h"
#include "test_pki.h"

using namespace ftpsgate;
using namespace std::chrono_literals;

namespace {

constexpr const char* kSiteAUri = "urn:ftpsgate:agent:site-a";

// Before any event base: the hub and the workers activate each other's events.
bool use_threads() {
  static const bool once = [] {
    std::signal(SIGPIPE, SIG_IGN);  // the fake agent writes to links the gateway closed
    return evthread_use_pthreads() == 0;
  }();
  return once;
}

// ---- a throwaway PKI -------------------------------------------------------------------

using test_pki::Identity;
using test_pki::write_pem;
using test_pki::issue;

struct Pki {
  std::string dir;
  Identity ca = issue("agents test CA", nullptr, "");
  Identity other_ca = issue("another CA", nullptr, "");
  Identity gateway = issue("gateway.test", &ca, "DNS:gateway.test");
  Identity site_a = issue("site-a", &ca, std::string("URI:") + kSiteAUri);
  Identity stranger = issue("stranger", &ca, "URI:urn:ftpsgate:agent:nobody");
  Identity forged = issue("site-a", &other_ca, std::string("URI:") + kSiteAUri);

  Pki() {
    char templ[] = "/tmp/ftpsgate-hub-test-XXXXXX";
    REQUIRE(mkdtemp(templ) != nullptr);
    dir = templ;
    write_pem(dir + "/ca.pem", ca, false);
    write_pem(dir + "/gateway.pem", gateway, false);
    write_pem(dir + "/gateway.key", gateway, true);
  }
  ~Pki() { std::filesystem::remove_all(dir); }
};

// ---- the fake agent: a blocking TLS client on its own thread --------------------------

class FakeAgent {
 public:
  FakeAgent(const Pki& pki, const Identity& identity, uint16_t port, bool alpn = true) {
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_3_VERSION);
    SSL_CTX_use_certificate(ctx_.get(), identity.cert.get());
    SSL_CTX_use_PrivateKey(ctx_.get(), identity.key.get());
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.get()), pki.ca.cert.get());
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    if (alpn) {
      static const unsigned char kAlpn[] =
          "\x10"
          "ftpsgate-agent/1";
      SSL_CTX_set_alpn_protos(ctx_.get(), kAlpn, sizeof(kAlpn) - 1);
    }
    port_ = port;
  }
  ~FakeAgent() {
    ssl_.reset();
    if (fd_ >= 0) ::close(fd_);
  }

  // TCP and the TLS handshake (the client's part of it; in TLS 1.3 the gateway may still
  // refuse the certificate afterwards).
  bool connect() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const timeval limit{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port_);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return false;
    ssl_.reset(SSL_new(ctx_.get()));
    SSL_set_fd(ssl_.get(), fd_);
    return SSL_connect(ssl_.get()) == 1;
  }
  // One CRLF line, or nullopt on close, error or 5 s of silence.
  std::optional<std::string> read_line() {
    for (;;) {
      const auto at = pending_.find("\r\n");
      if (at != std::string::npos) {
        std::string line = pending_.substr(0, at + 2);
        pending_.erase(0, at + 2);
        return line;
      }
      if (pending_.size() > 1024 || !fill()) return std::nullopt;
    }
  }
  std::optional<std::string> read_exact(std::size_t n) {
    while (pending_.size() < n) {
      if (!fill()) return std::nullopt;
    }
    std::string out = pending_.substr(0, n);
    pending_.erase(0, n);
    return out;
  }
  // As a killed agent: FIN, no close_notify.
  void vanish() {
    ssl_.reset();
    ::close(fd_);
    fd_ = -1;
  }
  bool write(std::string_view data) {
    return SSL_write(ssl_.get(), data.data(), static_cast<int>(data.size())) == static_cast<int>(data.size());
  }
  // The gateway closed the link (close_notify, FIN, RST or an alert) within 5 s.
  bool closed() {
    while (fill()) pending_.clear();
    return !timed_out_;
  }

 private:
  bool fill() {
    char buffer[4096];
    ERR_clear_error();
    const int n = SSL_read(ssl_.get(), buffer, sizeof(buffer));
    if (n > 0) {
      pending_.append(buffer, static_cast<std::size_t>(n));
      return true;
    }
    // SO_RCVTIMEO expired: OpenSSL reports the socket's EAGAIN as "want read".
    const int error = SSL_get_error(ssl_.get(), n);
    timed_out_ =
        error == SSL_ERROR_WANT_READ || (error == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK));
    ERR_clear_error();
    return false;
  }

  tls::SslCtxPtr ctx_;
  tls::SslPtr ssl_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::string pending_;
  bool timed_out_ = false;
};

// ---- loops -------------------------------------------------------------------------------

// The gateway's main loop, run from the test's thread until something happened.
struct Loop {
  net::EventBasePtr base{event_base_new()};

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    net::Timer tick(base.get(), [] {});
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      tick.arm(5ms);
      event_base_loop(base.get(), EVLOOP_ONCE);
    }
    return true;
  }
  // Runs `script` (the fake agent's side) on its own thread while this loop runs.
  template <typename F>
  auto while_running(F script) {
    auto result = std::async(std::launch::async, std::move(script));
    run_until([&] { return result.wait_for(0s) == std::future_status::ready; }, 20s);
    return result.get();
  }
};

// A worker: an event loop on its own thread; run() executes a job there and waits for it.
class LoopThread {
 public:
  LoopThread() : base_(event_base_new()) {
    thread_ = std::thread([this] { event_base_loop(base_.get(), EVLOOP_NO_EXIT_ON_EMPTY); });
  }
  ~LoopThread() {
    run([this] { event_base_loopbreak(base_.get()); });
    thread_.join();
  }
  event_base* base() const { return base_.get(); }
  void run(std::function<void()> job) {
    struct Call {
      std::function<void()> job;
      std::promise<void> done;
    };
    auto* call = new Call{std::move(job), {}};
    auto finished = call->done.get_future();
    const timeval now{0, 0};
    event_base_once(
        base_.get(), -1, EV_TIMEOUT,
        [](evutil_socket_t, short, void* arg) {
          auto* c = static_cast<Call*>(arg);
          c->job();
          c->done.set_value();
          delete c;
        },
        call, &now);
    finished.wait();
  }

 private:
  net::EventBasePtr base_;
  std::thread thread_;
};

// ---- the gateway -------------------------------------------------------------------------

AgentsConfig agents_config(const Pki& pki, std::chrono::milliseconds keepalive_interval = 20s,
                           std::chrono::milliseconds keepalive_timeout = 10s) {
  AgentsConfig config;
  config.keepalive_interval = keepalive_interval;
  config.keepalive_timeout = keepalive_timeout;
  config.address = {"127.0.0.1", 0};
  config.certificate.cert = pki.dir + "/gateway.pem";
  config.certificate.key = pki.dir + "/gateway.key";
  config.client_ca = pki.dir + "/ca.pem";
  config.handshake_timeout = 5s;
  AgentPeerConfig peer;
  peer.name = "site-a";
  peer.certificate.field = "san_uri";
  peer.certificate.equals = kSiteAUri;
  config.peers.push_back(peer);
  return config;
}

struct Gateway {
  Pki& pki;
  bool threads = use_threads();  // before the loop's base
  Loop loop;
  metrics::Metrics metrics;
  std::string log_path;
  std::unique_ptr<log::Logger> logger;
  std::unique_ptr<hub::AgentHub> hub;
  std::unique_ptr<hub::AgentListener> listener;
  std::vector<std::pair<std::string, bool>> transitions;

  Gateway(Pki& p, const AgentsConfig& config) : pki(p), log_path(p.dir + "/gateway.log") {
    REQUIRE(threads);
    LoggingConfig logging;
    logging.level = LogLevel::kDebug;
    logging.file = log_path;
    std::string error;
    logger = log::Logger::create(logging, error);
    REQUIRE(logger);
    hub = std::make_unique<hub::AgentHub>(loop.base.get(), *logger, metrics);
    hub->configure(config);
    hub->on_transition([this](const std::string& agent, bool up) { transitions.emplace_back(agent, up); });
    listener = hub::AgentListener::create(loop.base.get(), config, *hub, *logger, metrics, error);
    REQUIRE_MESSAGE(listener, error);
  }
  ~Gateway() {
    listener.reset();
    hub.reset();
    loop.run_until([] { return false; }, 20ms);  // lets libevent finalize what was freed
  }
  uint16_t port() const { return listener->local().port(); }
  double idle() { return metrics.agent_connections("site-a", "idle").Value(); }
  double in_use() { return metrics.agent_connections("site-a", "in_use").Value(); }
  double up() { return metrics.agent_up("site-a").Value(); }
  double handshakes(std::string_view result) { return metrics.agent_handshakes(result).Value(); }
  double requests(std::string_view result, std::string_view purpose = "data") {
    return metrics.agent_requests("site-a", purpose, result).Value();
  }
  std::string log_text() const {
    std::ifstream in(log_path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  // A site-a agent whose link is idle at the gateway.
  std::unique_ptr<FakeAgent> idle_agent() {
    const double before = idle();
    auto agent = std::make_unique<FakeAgent>(pki, pki.site_a, port());
    REQUIRE(loop.while_running([&] { return agent->connect(); }));
    REQUIRE(loop.run_until([&] { return idle() == before + 1; }));
    return agent;
  }
};

// No direct dials in these tests: a direct target is recorded and fails.
class RecordingDirect : public net::Dialer {
 public:
  std::unique_ptr<net::PendingDial> dial(event_base* base, const net::DialTarget& target, std::chrono::milliseconds,
                                         Done done) override {
    dialed.push_back(target.host);
    return hub::fail_dial_later(base, "direct dial recorded", std::move(done));
  }
  std::vector<std::string> dialed;
};

// What a dial's `done` delivered, on the worker; the rest of the test reads it under the lock.
struct DialResult {
  std::mutex mutex;
  int calls = 0;
  std::string error;
  std::string first_input;  // what the pipe's input held when done ran
  std::string received;     // everything read from the pipe since
  // The lease is declared before the pipe: destroyed after it.
  std::shared_ptr<void> lease;
  net::BufferEventPtr pipe;

  int call_count() {
    std::lock_guard lock(mutex);
    return calls;
  }
  std::string read() {
    std::lock_guard lock(mutex);
    return first_input + received;
  }
  net::Dialer::Done callback(std::string greeting) {
    return [this, greeting](net::Dialed dialed, const std::string& dial_error) {
      std::lock_guard lock(mutex);
      ++calls;
      error = dial_error;
      if (!dialed.pipe) return;
      evbuffer* input = bufferevent_get_input(dialed.pipe.get());
      first_input.resize(evbuffer_get_length(input));
      evbuffer_remove(input, first_input.data(), first_input.size());
      lease = std::move(dialed.lease);
      pipe = std::move(dialed.pipe);
      bufferevent_setcb(
          pipe.get(),
          [](bufferevent* bev, void* self) {
            auto* result = static_cast<DialResult*>(self);
            evbuffer* in = bufferevent_get_input(bev);
            std::string chunk(evbuffer_get_length(in), '\0');
            evbuffer_remove(in, chunk.data(), chunk.size());
            std::lock_guard inner(result->mutex);
            result->received += chunk;
          },
          nullptr, nullptr, this);
      bufferevent_enable(pipe.get(), EV_READ);
      bufferevent_write(pipe.get(), greeting.data(), greeting.size());
    };
  }
};

net::DialTarget site_a_target(net::DialPurpose purpose = net::DialPurpose::kData) {
  net::DialTarget target;
  target.agent = "site-a";
  target.host = "127.0.0.1";
  target.port = 2121;
  target.purpose = purpose;
  target.session = 42;
  return target;
}

// A worker loop dialing through a GatewayDialer over the gateway's hub (no direct dials).
struct DialingWorker {
  LoopThread thread;  // first: stops last, after the cleanup below ran on it
  RecordingDirect direct;
  hub::AgentDialer agents;
  hub::GatewayDialer dialer;
  DialResult result;
  std::unique_ptr<net::PendingDial> pending;

  explicit DialingWorker(Gateway& gateway)
      : agents(*gateway.hub, *gateway.logger, gateway.metrics), dialer(direct, &agents) {}
  ~DialingWorker() {
    thread.run([this] {
      result.pipe.reset();
      result.lease.reset();
      pending.reset();
    });
  }
  void dial(const std::string& greeting = "", std::chrono::milliseconds timeout = 10s,
            net::DialPurpose purpose = net::DialPurpose::kData) {
    thread.run(
        [&] { pending = dialer.dial(thread.base(), site_a_target(purpose), timeout, result.callback(greeting)); });
  }
  // Destroying the PendingDial, on its loop.
  void cancel() {
    thread.run([this] { pending.reset(); });
  }
};

// Polls `condition` while the gateway's loop runs (the worker runs on its own).
bool eventually(Gateway& gateway, const std::function<bool()>& condition) { return gateway.loop.run_until(condition); }

}  // namespace

TEST_CASE("a mapped agent's link becomes idle, gets PINGs, stays with PONGs and is closed without one") {
  Pki pki;
  Gateway gateway(pki, agents_config(pki, 50ms, 300ms));
  CHECK(gateway.idle() == 0);
  CHECK(gateway.up() == 0);
  auto agent = gateway.idle_agent();
  CHECK(gateway.idle() == 1);
  CHECK(gateway.up() == 1);
  CHECK(gateway.handshakes("success") == 1);
  CHECK(gateway.hub->connected("site-a"));
  REQUIRE(gateway.transitions.size() == 1);
  CHECK(gateway.transitions[0] == std::make_pair(std::string("site-a"), true));
  CHECK(gateway.log_text().find("\"agent_connected\"") != std::string::npos);

  // Two rounds of PING and PONG: the second PING proves the first PONG kept the link.
  for (int round = 0; round < 2; ++round) {
    CHECK(gateway.loop.while_running([&] { return agent->read_line(); }) == std::optional<std::string>("PING\r\n"));
    REQUIRE(agent->write("PONG\r\n"));
  }
  CHECK(gateway.loop.while_running([&] { return agent->read_line(); }) == std::optional<std::string>("PING\r\n"));
  CHECK(gateway.idle() == 1);

  // No PONG this time: the gateway closes the link, and the agent is down.
  CHECK(gateway.loop.while_running([&] { return agent->closed(); }));
  CHECK(eventually(gateway, [&] { return gateway.idle() == 0 && gateway.up() == 0; }));
  REQUIRE(gateway.transitions.size() == 2);
  CHECK(gateway.transitions[1] == std::make_pair(std::string("site-a"), false));
  CHECK(gateway.log_text().find("\"agent_disconnected\"") != std::string::npos);
}

TEST_CASE("an unsolicited line on an idle link closes it") {
  Pki pki;
  Gateway gateway(pki, agents_config(pki));
  auto agent = gateway.idle_agent();
  REQUIRE(agent->write("OK\r\n"));
  CHECK(gateway.loop.while_running([&] { return agent->closed(); }));
  CHECK(eventually(gateway, [&] { return gateway.idle() == 0; }));
}

TEST_CASE("an agent certificate from another CA fails the handshake") {
  Pki pki;
  Gateway gateway(pki, agents_config(pki));
  FakeAgent agent(pki, pki.forged, gateway.port());
  const auto line = gateway.loop.while_running([&]() -> std::optional<std::string> {
    if (!agent.connect()) return std::nullopt;
    return agent.read_line();
  });
  CHECK_FALSE(line.has_value());
  CHECK(eventually(gateway, [&] { return gateway.handshakes("failure") == 1; }));
  CHECK(gateway.idle() == 0);
  CHECK(gateway.handshakes("success") == 0);
  CHECK(gateway.log_text().find("\"agent_refused\"") != std::string::npos);
}

TEST_CASE("a client without the agents' ALPN fails the handshake") {
  Pki pki;
  Gateway gateway(pki, agents_config(pki));
  FakeAgent agent(pki, pki.site_a, gateway.port(), /*alpn=*/false);
  const auto line = gateway.loop.while_running([&]() -> std::optional<std::string> {
    if (!agent.connect()) return std::nullopt;
    return agent.read_line();
  });
  CHECK_FALSE(line.has_value());
  CHECK(eventually(gateway, [&] { return gateway.handshakes("failure") == 1; }));
  CHECK(gateway.idle() == 0);
}

TEST_CASE("a verified certificate that maps no agent gets ERR unknown_agent and a close") {
  Pki pki;
  Gateway gateway(pki, agents_config(pki));
  FakeAgent agent(pki, pki.stranger, gateway.port());
  REQUIRE(gateway.loop.while_running([&] { return agent.connect(); }));
  CHECK(gateway.loop.while_running([&] { return agent.read_line(); }) ==
        std::optional<std::string>("ERR unknown_agent\r\n"));
  CHECK(gateway.loop.while_running([&] { return agent.closed(); }));
  CHECK(gateway.handshakes("unknown_agent") == 1);
  CHECK(gateway.idle() == 0);
  const std::string log = gateway.log_text();
  CHECK(log.find("\"agent_refused\"") != std::string::npos);
  CHECK(log.find("CN=stranger") != std::string::npos);
}

TEST_CASE("a source outside agents.from is closed before the handshake") {
  Pki pki;
  auto config = agents_config(pki);
  config.from = {"192.0.2.0/24"};
  Gateway gateway(pki, config);
  FakeAgent agent(pki, pki.site_a, gateway.port());
  CHECK_FALSE(gateway.loop.while_running([&] { return agent.connect(); }));
  CHECK(gateway.handshakes("source_not_allowed") == 1);
}

TEST_CASE("a connection that never starts its handshake is closed at handshake_timeout") {
  Pki pki;
  auto config = agents_config(pki);
  config.handshake_timeout = 100ms;
  Gateway gateway(pki, config);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(gateway.port());
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  CHECK(eventually(gateway, [&] { return gateway.handshakes("timeout") == 1; }));
  char byte;
  CHECK(::recv(fd, &byte, 1, MSG_DONTWAIT) == 0);  // closed, not a byte written
  ::close(fd);
}

TEST_CASE("a link beyond max_idle, or beyond max_links idle plus in use, gets ERR too_many_links") {
  for (const bool bound_by_links : {false, true}) {
    CAPTURE(bound_by_links);
    Pki pki;
    auto config = agents_config(pki);
    (bound_by_links ? config.peers[0].max_links : config.peers[0].max_idle) = 1;
    Gateway gateway(pki, config);
    auto first = gateway.idle_agent();
    FakeAgent second(pki, pki.site_a, gateway.port());
    REQUIRE(gateway.loop.while_running([&] { return second.connect(); }));
    CHECK(gateway.loop.while_running([&] { return second.read_line(); }) ==
          std::optional<std::string>("ERR too_many_links\r\n"));
    CHECK(gateway.handshakes("too_many_links") == 1);
    CHECK(gateway.idle() == 1);
  }
}

TEST_CASE("an agent connecting from outside its peer's own from gets ERR unknown_agent") {
  Pki pki;
  auto config = agents_config(pki);
  config.peers[0].from = {"192.0.2.0/24"};
  Gateway gateway(pki, config);
  FakeAgent agent(pki, pki.site_a, gateway.port());
  REQUIRE(gateway.loop.while_running([&] { return agent.connect(); }));
  CHECK(gateway.loop.while_running([&] { return agent.read_line(); }) ==
        std::optional<std::string>("ERR unknown_agent\r\n"));
  CHECK(gateway.handshakes("source_not_allowed") == 1);
  CHECK(gateway.idle() == 0);
}

TEST_CASE("a dial through GatewayDialer from a worker sends CONNECT and gets the pipe after OK") {
  Pki pki;
  Gateway gateway(pki, agents_config(pki));
  auto agent = gateway.idle_agent();
  DialingWorker worker(gateway);
  DialResult& result = worker.result;
  worker.dial("RETR x\r\n");

  const bool agent_side = gateway.loop.while_running([&] {
    if (agent->read_line() != std::optional<std::string>("CONNECT 127.0.0.1:2121 42 data\r\n")) return false;
    // OK and the backend's first bytes in one TLS record.
    if (!agent->write("OK\r\n150 Opening\r\n")) return false;
    if (agent->read_exact(8) != std::optional<std::string>("RETR x\r\n")) return false;
    return agent->write("226 Done\r\n");
  });
  CHECK(agent_side);
  CHECK(eventually(gateway, [&] { return result.read() == "150 Opening\r\n226 Done\r\n"; }));
  {
    std::lock_guard lock(result.mutex);
    CHECK(result.calls == 1);
    CHECK(result.error.empty());
    CHECK(result.first_input == "150 Opening\r\n");  // already there when done ran
  }
  CHECK(gateway.in_use() == 1);
  CHECK(gateway.idle() == 0);
  CHECK(gateway.up() == 1);  // a link in use counts
  CHECK(gateway.requests("ok") == 1);
  CHECK(worker.direct.dialed.empty());

  // The consumer lets go: the lease ends on the worker, the gauge follows, the agent is down.
  worker.thread.run([&] {
    result.pipe.reset();
    result.lease.reset();
    worker.pending.reset();
  });
  CHECK(eventually(gateway, [&] { return gateway.in_use() == 0 && gateway.up() == 0; }));
  CHECK(gateway.loop.while_running([&] { return agent->closed(); }));
}

TEST_CASE("ERR not_allowed from the agent fails the dial with an error naming the target") {
  Pki pki;
  Gateway gateway(pki, agents_config(pki));
  auto agent = gateway.idle_agent();
  DialingWorker worker(gateway);
  DialResult& result = worker.result;
  worker.dial();
  CHECK(gateway.loop.while_running([&] {
    return agent->read_line() == std::optional<std::string>("CONNECT 127.0.0.1:2121 42 data\r\n") &&
           agent->write("ERR not_allowed\r\n");
  }));
  CHECK(eventually(gateway, [&] { return result.call_count() == 1; }));
  {
    std::lock_guard lock(result.mutex);
    CHECK(result.error == "agent site-a refused 127.0.0.1:2121: not_allowed");
    CHECK_FALSE(result.pipe);
  }
  CHECK(gateway.requests("refused") == 1);
  CHECK(eventually(gateway, [&] { return gateway.in_use() == 0; }));
  const std::string log = gateway.log_text();
  CHECK(log.find("\"agent_request_refused\"") != std::string::npos);
  CHECK(log.find("\"not_allowed\"") != std::string::npos);
  worker.cancel();
}

TEST_CASE("a link the agent closes before answering: a control dial asks once more, a data dial fails") {
  Pki pki;
  Gateway gateway(pki, agents_config(pki));
  // The hub leases its oldest idle link first.
  auto first = gateway.idle_agent();
  auto second = gateway.idle_agent();
  DialingWorker worker(gateway);
  DialResult& result = worker.result;

  SUBCASE("control: the second link carries it") {
    worker.dial("", 10s, net::DialPurpose::kControl);
    CHECK(gateway.loop.while_running([&] {
      if (first->read_line() != std::optional<std::string>("CONNECT 127.0.0.1:2121 42 control\r\n")) return false;
      first->vanish();
      return second->read_line() == std::optional<std::string>("CONNECT 127.0.0.1:2121 42 control\r\n") &&
             second->write("OK\r\n220 Ready\r\n");
    }));
    CHECK(eventually(gateway, [&] { return result.call_count() == 1; }));
    {
      std::lock_guard lock(result.mutex);
      CHECK(result.error.empty());
      CHECK(result.first_input == "220 Ready\r\n");
    }
    CHECK(gateway.requests("ok", "control") == 1);  // one dial, counted once
    CHECK(gateway.requests("failed", "control") == 0);
    const std::string log = gateway.log_text();
    CHECK(log.find("\"agent_link_lost\"") != std::string::npos);
    CHECK(log.find("\"retry\":true") != std::string::npos);
  }
  SUBCASE("data: no second CONNECT, the dial fails") {
    worker.dial();
    CHECK(gateway.loop.while_running([&] {
      if (first->read_line() != std::optional<std::string>("CONNECT 127.0.0.1:2121 42 data\r\n")) return false;
      first->vanish();
      return true;
    }));
    CHECK(eventually(gateway, [&] { return result.call_count() == 1; }));
    {
      std::lock_guard lock(result.mutex);
      CHECK(result.error.find("agent site-a closed the link before answering for 127.0.0.1:2121") == 0);
      CHECK_FALSE(result.pipe);
    }
    CHECK(gateway.requests("failed") == 1);
    CHECK(gateway.idle() == 1);  // the second link was never leased
    CHECK(gateway.log_text().find("\"agent_link_lost\"") == std::string::npos);
  }
  worker.cancel();
}

TEST_CASE("a dial to an agent with no link fails at once: agent NAME is not connected") {
  Pki pki;
  Gateway gateway(pki, agents_config(pki));
  DialingWorker worker(gateway);
  DialResult& result = worker.result;
  // A timeout far beyond the test's own limits: the answer cannot be the timeout.
  worker.dial("", 1h);
  CHECK(eventually(gateway, [&] { return result.call_count() == 1; }));
  {
    std::lock_guard lock(result.mutex);
    CHECK(result.error == "agent site-a is not connected");
  }
  CHECK(gateway.requests("not_connected") == 1);
  worker.cancel();
}

TEST_CASE("without an agents section an agent target fails, and a direct target goes to the direct dialer") {
  REQUIRE(use_threads());
  LoopThread worker;
  RecordingDirect direct;
  hub::GatewayDialer dialer(direct, nullptr);
  DialResult through_agent;
  DialResult direct_result;
  std::unique_ptr<net::PendingDial> first;
  std::unique_ptr<net::PendingDial> second;
  worker.run([&] {
    first = dialer.dial(worker.base(), site_a_target(), 1h, through_agent.callback(""));
    net::DialTarget plain;
    plain.host = "192.0.2.1";
    plain.port = 21;
    second = dialer.dial(worker.base(), plain, 1h, direct_result.callback(""));
    CHECK(through_agent.calls == 0);  // never from inside dial()
  });
  for (int i = 0; i < 1000 && (through_agent.call_count() == 0 || direct_result.call_count() == 0); ++i) {
    std::this_thread::sleep_for(5ms);
  }
  CHECK(through_agent.call_count() == 1);
  worker.run([&] {
    CHECK(through_agent.error == "agent site-a is not connected");
    CHECK(direct.dialed == std::vector<std::string>{"192.0.2.1"});
    first.reset();
    second.reset();
  });
}

TEST_CASE("cancelling a dial before the agent answers closes the link, done never runs, in_use returns to 0") {
  Pki pki;
  Gateway gateway(pki, agents_config(pki));
  auto agent = gateway.idle_agent();
  DialingWorker worker(gateway);
  DialResult& result = worker.result;
  worker.dial();
  CHECK(gateway.loop.while_running([&] { return agent->read_line(); }) ==
        std::optional<std::string>("CONNECT 127.0.0.1:2121 42 data\r\n"));
  CHECK(gateway.in_use() == 1);
  worker.cancel();
  // The agent answers too late: the link is gone.
  agent->write("OK\r\n");
  CHECK(gateway.loop.while_running([&] { return agent->closed(); }));
  CHECK(eventually(gateway, [&] { return gateway.in_use() == 0; }));
  worker.thread.run([] {});  // anything the worker still had queued has run
  CHECK(result.call_count() == 0);
  CHECK(gateway.requests("cancelled") == 1);
}

TEST_CASE("a link with a PING outstanding is not leased: the request waits for the PONG") {
  Pki pki;
  Gateway gateway(pki, agents_config(pki, 50ms, 10s));
  auto agent = gateway.idle_agent();
  CHECK(gateway.loop.while_running([&] { return agent->read_line(); }) == std::optional<std::string>("PING\r\n"));
  DialingWorker worker(gateway);
  worker.dial();
  REQUIRE(eventually(gateway, [&] { return gateway.hub->waiting_requests("site-a") == 1; }));
  CHECK(gateway.in_use() == 0);
  CHECK(gateway.idle() == 1);
  // The PONG makes the link leasable, and the waiting request takes it at once.
  REQUIRE(agent->write("PONG\r\n"));
  CHECK(gateway.loop.while_running([&] { return agent->read_line(); }) ==
        std::optional<std::string>("CONNECT 127.0.0.1:2121 42 data\r\n"));
  CHECK(gateway.in_use() == 1);
  CHECK(gateway.hub->waiting_requests("site-a") == 0);
  worker.cancel();
  CHECK(eventually(gateway, [&] { return gateway.in_use() == 0; }));
}

TEST_CASE("a reload that removes an agent sends its idle links ERR unknown_agent") {
  Pki pki;
  auto config = agents_config(pki);
  Gateway gateway(pki, config);
  auto agent = gateway.idle_agent();
  auto reloaded = config;
  reloaded.peers[0].name = "site-b";
  reloaded.peers[0].certificate.equals = "urn:ftpsgate:agent:site-b";
  std::vector<std::string> errors;
  REQUIRE(gateway.listener->reload(reloaded, errors));
  CHECK_FALSE(gateway.listener->reload_conflict(reloaded).has_value());
  gateway.hub->configure(reloaded);
  CHECK(gateway.loop.while_running([&] { return agent->read_line(); }) ==
        std::optional<std::string>("ERR unknown_agent\r\n"));
  CHECK(gateway.idle() == 0);
  CHECK(gateway.up() == 0);
  CHECK(gateway.metrics.agent_connections("site-b", "idle").Value() == 0);  // declared
  // The same certificate now maps nobody.
  FakeAgent again(pki, pki.site_a, gateway.port());
  REQUIRE(gateway.loop.while_running([&] { return again.connect(); }));
  CHECK(gateway.loop.while_running([&] { return again.read_line(); }) ==
        std::optional<std::string>("ERR unknown_agent\r\n"));
  CHECK(gateway.handshakes("unknown_agent") == 1);
}

TEST_CASE("at shutdown idle links get ERR shutting_down") {
  Pki pki;
  Gateway gateway(pki, agents_config(pki));
  auto agent = gateway.idle_agent();
  gateway.hub->shutdown();
  CHECK(gateway.loop.while_running([&] { return agent->read_line(); }) ==
        std::optional<std::string>("ERR shutting_down\r\n"));
  CHECK(gateway.idle() == 0);
}
