// The inside-out agent's links (docs/agent-design.md 1.2-1.4), on real sockets: a fake
// gateway (a TLS 1.3 server with ALPN selection and client-certificate verification) and
// the agent's LinkKeeper share the test's event loop; targets are scripted loopback TCP
// servers (scan_fake_server.h) on their own threads. A throwaway PKI is made per run.
#include <doctest/doctest.h>
#include <prometheus/text_serializer.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/listener.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "agent/agent_process.h"
#include "agent/gateway_group.h"
#include "agent/link_keeper.h"
#include "scan_fake_server.h"
#include "test_pki.h"
#include "tls/tls_bufferevent.h"

using namespace ftpsgate;
using scan_test::FakeServer;
using scan_test::Loop;
using scan_test::pattern;
using scan_test::Peer;

namespace {

// --- a throwaway PKI -------------------------------------------------------------------

using test_pki::issue;
using test_pki::write_pem;
using Issued = test_pki::Identity;

struct Pki {
  std::string dir;
  std::string ca, gateway_cert, gateway_key, agent_cert, agent_key, rogue_cert, rogue_key;
};

// One per test run: a CA for both sides, and a rogue gateway certificate from another CA.
const Pki& pki() {
  static const Pki made = [] {
    Pki p;
    char tmpl[] = "/tmp/ftpsgate-agent-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    p.dir = tmpl;
    const Issued ca = issue("test agents CA", nullptr, "");
    const Issued other_ca = issue("some other CA", nullptr, "");
    const Issued gateway = issue("localhost", &ca, "DNS:localhost,IP:127.0.0.1");
    const Issued agent = issue("agent site-a", &ca, "URI:urn:ftpsgate:agent:site-a");
    const Issued rogue = issue("localhost", &other_ca, "DNS:localhost,IP:127.0.0.1");
    p.ca = p.dir + "/ca.pem";
    p.gateway_cert = p.dir + "/gateway.pem";
    p.gateway_key = p.dir + "/gateway.key";
    p.agent_cert = p.dir + "/agent.pem";
    p.agent_key = p.dir + "/agent.key";
    p.rogue_cert = p.dir + "/rogue.pem";
    p.rogue_key = p.dir + "/rogue.key";
    write_pem(p.ca, ca, false);
    write_pem(p.gateway_cert, gateway, false);
    write_pem(p.gateway_key, gateway, true);
    write_pem(p.agent_cert, agent, false);
    write_pem(p.agent_key, agent, true);
    write_pem(p.rogue_cert, rogue, false);
    write_pem(p.rogue_key, rogue, true);
    return p;
  }();
  return made;
}

// --- a fake gateway: the TLS server side of links --------------------------------------

struct GatewayConn {
  net::BufferEventPtr bev;
  std::string received;
  bool connected = false;
  bool eof = false;  // close_notify (libevent reports a bare FIN or RST as an error)
  bool error = false;

  void send(std::string_view data) { bufferevent_write(bev.get(), data.data(), data.size()); }
  SSL* ssl() const { return bufferevent_openssl_get_ssl(bev.get()); }
  int fd() const { return static_cast<int>(bufferevent_getfd(bev.get())); }
  bool ended() const { return eof || error; }
};

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void*) {
  static const unsigned char ours[] =
      "\x10"
      "ftpsgate-agent/1";
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, ours, sizeof(ours) - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

class FakeGateway {
 public:
  FakeGateway(event_base* base, const std::string& cert, const std::string& key, bool alpn = true) : base_(base) {
    ctx_.reset(SSL_CTX_new(TLS_server_method()));
    SSL_CTX* ctx = ctx_.get();
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    REQUIRE(SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) == 1);
    REQUIRE(SSL_CTX_load_verify_locations(ctx, pki().ca.c_str(), nullptr) == 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_num_tickets(ctx, 0);
    if (alpn) SSL_CTX_set_alpn_select_cb(ctx, &select_alpn, nullptr);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listener_.reset(evconnlistener_new_bind(base, &FakeGateway::on_accept, this,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 64,
                                            reinterpret_cast<sockaddr*>(&address), sizeof(address)));
    REQUIRE(listener_);
    socklen_t length = sizeof(address);
    getsockname(evconnlistener_get_fd(listener_.get()), reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }

  uint16_t port() const { return port_; }
  std::size_t accepted() const { return conns_.size(); }
  std::size_t connected() const {
    std::size_t n = 0;
    for (const auto& c : conns_) n += c->connected && !c->ended() ? 1 : 0;
    return n;
  }
  // The next handshaken link no test step has used yet.
  GatewayConn* take() {
    for (auto& c : conns_) {
      if (c->connected && !c->ended() && !taken_.contains(c.get())) {
        taken_.insert(c.get());
        return c.get();
      }
    }
    return nullptr;
  }

 private:
  static void on_accept(evconnlistener*, evutil_socket_t fd, sockaddr*, int, void* self) {
    auto* gateway = static_cast<FakeGateway*>(self);
    auto conn = std::make_unique<GatewayConn>();
    conn->bev = tls::make_tls_bufferevent(gateway->base_, fd, tls::SslPtr(SSL_new(gateway->ctx_.get())),
                                          BUFFEREVENT_SSL_ACCEPTING);
    REQUIRE(conn->bev);
    bufferevent_setcb(conn->bev.get(), &FakeGateway::on_read, nullptr, &FakeGateway::on_event, conn.get());
    bufferevent_enable(conn->bev.get(), EV_READ | EV_WRITE);
    gateway->conns_.push_back(std::move(conn));
  }
  static void on_read(bufferevent* bev, void* self) {
    auto* conn = static_cast<GatewayConn*>(self);
    evbuffer* in = bufferevent_get_input(bev);
    const std::size_t n = evbuffer_get_length(in);
    std::string chunk(n, '\0');
    evbuffer_remove(in, chunk.data(), n);
    conn->received += chunk;
  }
  static void on_event(bufferevent* bev, short what, void* self) {
    auto* conn = static_cast<GatewayConn*>(self);
    if (what & BEV_EVENT_CONNECTED) conn->connected = true;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
      on_read(bev, self);
      if (what & BEV_EVENT_EOF) conn->eof = true;
      if (what & BEV_EVENT_ERROR) conn->error = true;
      bufferevent_disable(bev, EV_READ | EV_WRITE);
    }
  }

  event_base* base_;
  tls::SslCtxPtr ctx_;
  net::ListenerPtr listener_;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<GatewayConn>> conns_;
  std::set<GatewayConn*> taken_;
};

// --- the agent under test --------------------------------------------------------------

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

AgentConfig agent_config(uint16_t gateway_port, const std::vector<std::string>& allowed, const std::string& log_path) {
  AgentConfig config;
  config.agent.gateways.push_back({.address = {"127.0.0.1", gateway_port}, .server_name = "localhost"});
  config.agent.tls_ca = pki().ca;
  config.agent.tls_cert = pki().agent_cert;
  config.agent.tls_key = pki().agent_key;
  config.agent.pool.idle = 2;
  config.agent.pool.max_links = 8;
  config.agent.pool.max_dialing = 2;
  config.agent.pool.connect_timeout = std::chrono::seconds(5);
  config.agent.pool.keepalive_timeout = std::chrono::seconds(60);
  config.agent.pool.backoff = {std::chrono::milliseconds(20), std::chrono::milliseconds(100)};
  config.agent.target_texts = allowed;
  config.agent.connect_timeout = std::chrono::seconds(5);
  config.logging.file = log_path;
  config.logging.level = LogLevel::kDebug;
  return config;
}

struct Agent {
  AgentConfig config;
  std::string log_path;
  std::unique_ptr<log::Logger> logger;
  std::unique_ptr<agent::LinkClientTls> tls;
  std::unique_ptr<agent::AgentMetrics> metrics;
  std::unique_ptr<log::RateLimitedLog> refusals;
  std::unique_ptr<agent::AgentContext> context;
  std::unique_ptr<evdns_base, void (*)(evdns_base*)> dns{nullptr, [](evdns_base* d) { evdns_base_free(d, 1); }};
  std::unique_ptr<agent::LinkKeeper> keeper;

  using Tweak = std::function<void(AgentConfig&)>;
  Agent(event_base* base, uint16_t gateway_port, const std::vector<std::string>& allowed, const Tweak& tweak) {
    static int serial = 0;
    log_path = pki().dir + "/agent-" + std::to_string(serial++) + ".log";
    config = agent_config(gateway_port, allowed, log_path);
    if (tweak) tweak(config);
    std::string error;
    logger = log::Logger::create(config.logging, error);
    REQUIRE(logger);
    tls = agent::LinkClientTls::create(config.agent, error);
    REQUIRE_MESSAGE(tls, error);
    auto targets = tunnel::TargetAllowlist::parse(allowed, error);
    REQUIRE_MESSAGE(targets, error);
    config.agent.targets = std::move(*targets);
    metrics = std::make_unique<agent::AgentMetrics>(std::vector<std::string>{label()});
    refusals = std::make_unique<log::RateLimitedLog>(base, *logger, "agent_refusals_suppressed");
    // The resolver only where a test asks for names (IP literals never reach it).
    if (dns_wanted)
      dns.reset(evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE));
    context.reset(
        new agent::AgentContext{base, dns.get(), config.agent, tls.get(), *logger, *metrics, *refusals});
    if (!keeper_wanted) return;
    keeper = std::make_unique<agent::LinkKeeper>(*context, config.agent.gateways[0]);
    keeper->start();
  }
  ~Agent() { keeper.reset(); }
  static inline bool dns_wanted = false;
  static inline bool keeper_wanted = true;

  std::string label() const { return config.agent.gateways[0].address.to_string(); }
  std::string log() const { return read_file(log_path); }
  double requests(std::string_view purpose, std::string_view result) {
    return metrics->requests(purpose, result).Value();
  }
};

struct Setup {
  Loop loop;
  FakeGateway gateway;
  std::unique_ptr<Agent> agent;

  explicit Setup(const std::vector<std::string>& allowed, bool rogue = false, const Agent::Tweak& tweak = {},
                 bool alpn = true)
      : gateway(loop.base.get(), rogue ? pki().rogue_cert : pki().gateway_cert,
                rogue ? pki().rogue_key : pki().gateway_key, alpn) {
    agent = std::make_unique<Agent>(loop.base.get(), gateway.port(), allowed, tweak);
  }
  ~Setup() { agent.reset(); }

  // A link the agent holds idle, with the gateway's side of it.
  GatewayConn& idle_link() {
    GatewayConn* conn = nullptr;
    REQUIRE(loop.run_until([&] { return agent->keeper->idle() > 0 && (conn = gateway.take()) != nullptr; }));
    return *conn;
  }
  bool answered(GatewayConn& conn, std::size_t bytes) {
    return loop.run_until([&] { return conn.received.size() >= bytes || conn.ended(); });
  }
};

std::string target(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }
std::string connect_line(uint16_t port, std::string_view purpose = "control", int session = 42) {
  return "CONNECT 127.0.0.1:" + std::to_string(port) + " " + std::to_string(session) + " " + std::string(purpose) +
         "\r\n";
}

// A target script's view of how its client's stream ended.
struct Ending {
  std::atomic<bool> done{false};
  std::atomic<bool> fin{false};  // recv returned 0
  std::atomic<int> error{0};     // recv's errno
  std::mutex mutex;
  std::string received;

  void read_to_end(Peer& peer) {
    char buffer[65536];
    for (;;) {
      pollfd p{peer.fd(), POLLIN, 0};
      if (::poll(&p, 1, 10000) <= 0) break;
      const ssize_t n = ::recv(peer.fd(), buffer, sizeof(buffer), 0);
      if (n > 0) {
        std::lock_guard lock(mutex);
        received.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) fin = true;
      if (n < 0) error = errno;
      break;
    }
    done = true;
  }
  std::string data() {
    std::lock_guard lock(mutex);
    return received;
  }
};

}  // namespace

TEST_CASE("the agent fills its pool to pool.idle links and answers PING with PONG") {
  Setup s({"127.0.0.1:1"});
  REQUIRE(s.loop.run_until([&] { return s.agent->keeper->idle() == 2 && s.gateway.connected() == 2; }));
  CHECK(s.agent->keeper->total() == 2);
  CHECK(s.agent->metrics->gateway_up(s.agent->label()).Value() == 1);
  CHECK(s.agent->metrics->links(s.agent->label(), "idle").Value() == 2);
  CHECK(s.agent->log().find("gateway_connected") != std::string::npos);
  GatewayConn& link = s.idle_link();
  link.send("PING\r\n");
  REQUIRE(s.answered(link, 6));
  CHECK(link.received == "PONG\r\n");
  link.send("PING\r\n");
  REQUIRE(s.answered(link, 12));
  CHECK(link.received == "PONG\r\nPONG\r\n");
  CHECK_FALSE(link.ended());
  CHECK(s.agent->keeper->total() == 2);  // never more than pool.idle while nothing is used
}

TEST_CASE("CONNECT to an allowed target answers OK, bytes go both ways, and both ends close cleanly") {
  FakeServer echo(FakeServer::Transport::kTcp, [](Peer& peer, int) {
    char buffer[65536];
    for (;;) {
      pollfd p{peer.fd(), POLLIN, 0};
      if (::poll(&p, 1, 10000) <= 0) return;
      const ssize_t n = ::recv(peer.fd(), buffer, sizeof(buffer), 0);
      if (n <= 0) return;  // the gateway's close_notify arrives as FIN; we close with FIN
      if (!peer.write(std::string_view(buffer, static_cast<std::size_t>(n)))) return;
    }
  });
  Setup s({target(echo.port())});
  GatewayConn& link = s.idle_link();
  link.send(connect_line(echo.port()));
  REQUIRE(s.answered(link, 4));
  REQUIRE(link.received == "OK\r\n");
  const std::string payload = pattern(300 * 1024 + 7, 9);
  link.send(payload);
  REQUIRE(s.loop.run_until([&] { return link.received.size() >= 4 + payload.size() || link.ended(); }));
  CHECK(link.received.substr(4) == payload);
  // The leased link is replaced.
  CHECK(s.loop.run_until([&] { return s.agent->keeper->idle() == 2 && s.agent->keeper->piped() == 1; }));
  // close_notify from the gateway: FIN to the target, which closes; its FIN comes back as close_notify.
  SSL_shutdown(link.ssl());
  REQUIRE(s.loop.run_until([&] { return link.ended(); }));
  CHECK(link.eof);
  CHECK_FALSE(link.error);
  CHECK(s.loop.run_until([&] { return s.agent->keeper->piped() == 0; }));
  CHECK(s.agent->requests("control", "ok") == 1);
  CHECK(s.agent->metrics->pipe_bytes("to_target").Value() == static_cast<double>(payload.size()));
  CHECK(s.agent->metrics->pipe_bytes("to_gateway").Value() == static_cast<double>(payload.size()));
}

TEST_CASE("a data pipe carries a download whole and ends it with close_notify") {
  const std::string file = pattern(3 * 1024 * 1024 + 11, 4);
  FakeServer backend(FakeServer::Transport::kTcp, [&](Peer& peer, int) { peer.write(file); });
  Setup s({target(backend.port())});
  GatewayConn& link = s.idle_link();
  link.send(connect_line(backend.port(), "data", 8812));
  REQUIRE(s.loop.run_until([&] { return link.ended(); }));
  CHECK(link.eof);  // the target's FIN became close_notify: the download is complete
  CHECK_FALSE(link.error);
  REQUIRE(link.received.size() == 4 + file.size());
  CHECK(link.received.substr(0, 4) == "OK\r\n");
  CHECK(link.received.substr(4) == file);
}

namespace {
// As the gateway ends a data pipe's upload (DataChannel, SpoolSender): everything with the
// kernel, then close_notify, then FIN. The agent's reads of a data pipe wait for 64 KiB or
// the FIN (ByteRelay::Options::batch_tls_reads), so the tail must come through whole.
void upload_through_data_pipe(const std::string& file) {
  Ending ending;
  FakeServer backend(FakeServer::Transport::kTcp, [&](Peer& peer, int) { ending.read_to_end(peer); });
  Setup s({target(backend.port())});
  GatewayConn& link = s.idle_link();
  link.send(connect_line(backend.port(), "data", 8813));
  REQUIRE(s.answered(link, 4));
  REQUIRE(link.received == "OK\r\n");
  link.send(file);
  REQUIRE(s.loop.run_until([&] { return evbuffer_get_length(bufferevent_get_output(link.bev.get())) == 0; }));
  SSL_shutdown(link.ssl());
  ::shutdown(link.fd(), SHUT_WR);
  REQUIRE(s.loop.run_until([&] { return ending.done.load(); }));
  CHECK(ending.fin);
  CHECK(ending.error == 0);
  CHECK(ending.data() == file);
  // The target closed after our FIN: the gateway gets close_notify for the other way too.
  REQUIRE(s.loop.run_until([&] { return link.ended(); }));
  CHECK(link.eof);
}
}  // namespace

TEST_CASE("a data pipe carries an upload whole and the gateway's close_notify reaches the target as FIN") {
  upload_through_data_pipe(pattern(3 * 1024 * 1024 + 5, 6));
}

TEST_CASE("a data pipe's upload shorter than one batched read reaches the target whole at close_notify + FIN") {
  upload_through_data_pipe(pattern(1000, 7));
}

TEST_CASE("pipe bytes are counted while the pipe runs, not only at its end") {
  const std::string file = pattern(3 * 1024 * 1024, 9);
  FakeServer backend(FakeServer::Transport::kTcp, [&](Peer& peer, int) {
    peer.write(file);
    std::string go;
    peer.read_exact(1, go);  // holds the pipe open until the gateway says so
  });
  Setup s({target(backend.port())});
  GatewayConn& link = s.idle_link();
  link.send(connect_line(backend.port()));
  REQUIRE(s.loop.run_until([&] { return link.received.size() == 4 + file.size(); }));
  auto to_gateway = [&] { return s.agent->metrics->pipe_bytes("to_gateway").Value(); };
  REQUIRE(s.loop.run_until([&] { return to_gateway() == static_cast<double>(file.size()); }));
  CHECK_FALSE(link.ended());  // the target has not closed: counted while running
  link.send("x");
  REQUIRE(s.loop.run_until([&] { return link.ended(); }));
  CHECK(to_gateway() == static_cast<double>(file.size()));
  CHECK(s.agent->metrics->pipe_bytes("to_target").Value() == 1);
}

TEST_CASE("CONNECT to a target outside the allowlist is refused and never connected") {
  FakeServer allowed(FakeServer::Transport::kTcp, [](Peer&, int) {});
  FakeServer forbidden(FakeServer::Transport::kTcp, [](Peer&, int) {});
  Setup s({target(allowed.port())});
  GatewayConn& link = s.idle_link();
  link.send(connect_line(forbidden.port(), "data", 77));
  REQUIRE(s.loop.run_until([&] { return link.ended(); }));
  CHECK(link.received == "ERR not_allowed\r\n");
  CHECK(link.eof);
  s.loop.run_for(std::chrono::milliseconds(50));
  CHECK(forbidden.accepted() == 0);
  CHECK(s.agent->requests("data", "not_allowed") == 1);
  const std::string log = s.agent->log();
  CHECK(log.find("request_refused") != std::string::npos);
  CHECK(log.find(target(forbidden.port())) != std::string::npos);
  CHECK(log.find("\"session\":77") != std::string::npos);
}

TEST_CASE("bad lines on an idle link get ERR bad_request and a close, and reach no target") {
  FakeServer backend(FakeServer::Transport::kTcp, [](Peer&, int) {});
  Setup s({target(backend.port())});
  SUBCASE("an unknown line") {
    GatewayConn& link = s.idle_link();
    link.send("HELLO\r\n");
    REQUIRE(s.loop.run_until([&] { return link.ended(); }));
    CHECK(link.received == "ERR bad_request\r\n");
  }
  SUBCASE("a bare LF") {
    GatewayConn& link = s.idle_link();
    link.send("PING\n");
    REQUIRE(s.loop.run_until([&] { return link.ended(); }));
    CHECK(link.received == "ERR bad_request\r\n");
  }
  SUBCASE("a line over the limit") {
    GatewayConn& link = s.idle_link();
    link.send(std::string(400, 'A'));
    REQUIRE(s.loop.run_until([&] { return link.ended(); }));
    CHECK(link.received == "ERR bad_request\r\n");
  }
  SUBCASE("a second line right behind a CONNECT") {
    GatewayConn& link = s.idle_link();
    link.send(connect_line(backend.port()) + "PING\r\n");
    REQUIRE(s.loop.run_until([&] { return link.ended(); }));
    CHECK(link.received == "ERR bad_request\r\n");
  }
  SUBCASE("a v4-mapped target") {
    GatewayConn& link = s.idle_link();
    link.send("CONNECT [::ffff:127.0.0.1]:" + std::to_string(backend.port()) + " 1 data\r\n");
    REQUIRE(s.loop.run_until([&] { return link.ended(); }));
    CHECK(link.received == "ERR bad_request\r\n");
  }
  s.loop.run_for(std::chrono::milliseconds(50));
  CHECK(backend.accepted() == 0);
}

TEST_CASE("a dead allowed target answers ERR connect_failed") {
  const uint16_t dead = scan_test::closed_port();
  Setup s({target(dead)});
  GatewayConn& link = s.idle_link();
  link.send(connect_line(dead));
  REQUIRE(s.loop.run_until([&] { return link.ended(); }));
  CHECK(link.received == "ERR connect_failed\r\n");
  CHECK(s.agent->requests("control", "connect_failed") == 1);
}

TEST_CASE("a target's FIN reaches the gateway as close_notify") {
  FakeServer backend(FakeServer::Transport::kTcp, [](Peer& peer, int) { peer.write("220 ready\r\n"); });
  Setup s({target(backend.port())});
  GatewayConn& link = s.idle_link();
  link.send(connect_line(backend.port()));
  REQUIRE(s.loop.run_until([&] { return link.ended(); }));
  CHECK(link.received == "OK\r\n220 ready\r\n");
  CHECK(link.eof);
  CHECK_FALSE(link.error);
}

TEST_CASE("a target's RST reaches the gateway as an error, never a clean close") {
  FakeServer backend(FakeServer::Transport::kTcp, [](Peer& peer, int) {
    std::string go;
    if (!peer.read_exact(3, go)) return;  // the pipe is up (never a reset during the connect)
    peer.write("220 ready\r\n");
    const linger reset{1, 0};
    ::setsockopt(peer.fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
  });
  Setup s({target(backend.port())});
  GatewayConn& link = s.idle_link();
  link.send(connect_line(backend.port()));
  REQUIRE(s.answered(link, 4));
  REQUIRE(link.received == "OK\r\n");
  link.send("go\n");
  REQUIRE(s.loop.run_until([&] { return link.ended(); }));
  CHECK(link.error);
  CHECK_FALSE(link.eof);
}

TEST_CASE("a gateway that ends without close_notify makes the target see RST") {
  Ending ending;
  FakeServer backend(FakeServer::Transport::kTcp, [&](Peer& peer, int) { ending.read_to_end(peer); });
  Setup s({target(backend.port())});
  GatewayConn& link = s.idle_link();
  link.send(connect_line(backend.port(), "data"));
  REQUIRE(s.answered(link, 4));
  REQUIRE(link.received == "OK\r\n");
  // A data pipe's reads wait for 64 KiB (ByteRelay::Options::batch_tls_reads): more than
  // that, so the pipe is visibly under way before the link is cut (a record cut by the
  // batch may wait for the next one).
  link.send(std::string(200000, 'u'));
  REQUIRE(s.loop.run_until([&] { return ending.data().size() >= 64 * 1024; }));
  ::shutdown(link.fd(), SHUT_WR);  // a bare FIN: the gateway died, or someone cut the link
  REQUIRE(s.loop.run_until([&] { return ending.done.load(); }));
  CHECK_FALSE(ending.fin);
  CHECK(ending.error == ECONNRESET);
}

TEST_CASE("a gateway certificate from another CA is refused: no link reaches idle") {
  Setup s({"127.0.0.1:1"}, true);
  REQUIRE(s.loop.run_until([&] { return s.agent->log().find("gateway_refused") != std::string::npos; }));
  CHECK(s.agent->keeper->idle() == 0);
  CHECK(s.agent->metrics->gateway_up(s.agent->label()).Value() == 0);
  CHECK(s.agent->metrics->dials(s.agent->label(), "refused").Value() >= 1);
  CHECK(s.agent->log().find("certificate verification failed") != std::string::npos);
  CHECK(s.agent->log().find("gateway_unreachable") != std::string::npos);
}

TEST_CASE("a DNS name target is resolved with evdns and its answers are tried in order") {
  FakeServer backend(FakeServer::Transport::kTcp, [](Peer& peer, int) { peer.write("220 by name\r\n"); });
  Agent::dns_wanted = true;
  Setup s({"localhost:" + std::to_string(backend.port())});
  Agent::dns_wanted = false;
  GatewayConn& link = s.idle_link();
  link.send("CONNECT localhost:" + std::to_string(backend.port()) + " 5 control\r\n");
  REQUIRE(s.loop.run_until([&] { return link.ended(); }));
  CHECK(link.received == "OK\r\n220 by name\r\n");
  CHECK(link.eof);
  // SECURITY: the name entry does not admit the address it resolves to.
  GatewayConn& other = s.idle_link();
  other.send(connect_line(backend.port()));
  REQUIRE(s.loop.run_until([&] { return other.ended(); }));
  CHECK(other.received == "ERR not_allowed\r\n");
}

TEST_CASE("gateway_answers: each address once, in order, at most kMaxGatewayAnswers") {
  CHECK(agent::gateway_answers({"10.0.0.2", "10.0.0.1", "10.0.0.2", "::1"}) ==
        std::vector<std::string>{"10.0.0.2", "10.0.0.1", "::1"});
  std::vector<std::string> many;
  for (int i = 0; i < 40; ++i) many.push_back("10.0.1." + std::to_string(i));
  const auto kept = agent::gateway_answers(many);
  REQUIRE(kept.size() == agent::kMaxGatewayAnswers);
  CHECK(kept.front() == "10.0.1.0");
  CHECK(kept.back() == "10.0.1.15");
}

TEST_CASE("a gateway name: a keeper per answer; one that leaves keeps its pipes, then its series go") {
  Loop loop;
  FakeGateway gateway(loop.base.get(), pki().gateway_cert, pki().gateway_key);
  FakeServer held(FakeServer::Transport::kTcp, [](Peer& peer, int) { peer.wait_eof(std::chrono::seconds(10)); });
  Agent::dns_wanted = true;
  Agent::keeper_wanted = false;
  Agent agent(loop.base.get(), gateway.port(), {target(held.port())}, {});
  Agent::dns_wanted = false;
  Agent::keeper_wanted = true;
  REQUIRE(agent.dns);
  const std::string hosts = pki().dir + "/hosts";
  const auto answer = [&](const std::string& text) {
    std::ofstream(hosts) << text;
    evdns_base_clear_host_addresses(agent.dns.get());
    REQUIRE(evdns_base_load_hosts(agent.dns.get(), hosts.c_str()) == 0);
  };
  const std::string port = std::to_string(gateway.port());
  const std::string first = "127.0.0.1:" + port;
  const auto has_series = [&](const std::string& label) {
    const std::string text = prometheus::TextSerializer().Serialize(agent.metrics->registry()->Collect());
    return text.find("gateway=\"" + label + "\"") != std::string::npos;
  };
  answer("127.0.0.1 gw.test\n127.0.0.2 gw.test\n");
  AgentGatewayConfig by_name{.address = {"gw.test", gateway.port()}, .server_name = "localhost"};
  agent::GatewayGroup group(*agent.context, by_name, std::chrono::milliseconds(100));
  group.start();

  // Only 127.0.0.1 listens: its keeper fills its pool, 127.0.0.2's keeps trying.
  REQUIRE(loop.run_until([&] { return gateway.connected() == 2; }));
  CHECK(group.labels() == std::vector<std::string>{first, "127.0.0.2:" + port});
  CHECK_FALSE(group.ready());  // one address without an idle link
  CHECK(agent.metrics->gateway_up(first).Value() == 1);
  CHECK(has_series("127.0.0.2:" + port));
  CHECK(agent.log().find("\"gateway_resolved\"") != std::string::npos);

  // One of its links carries a pipe; the pool refills around it.
  GatewayConn* piped = nullptr;
  REQUIRE(loop.run_until([&] { return (piped = gateway.take()) != nullptr; }));
  piped->send(connect_line(held.port()));
  REQUIRE(loop.run_until([&] { return piped->received.size() >= 4 || piped->ended(); }));
  REQUIRE(piped->received == "OK\r\n");
  REQUIRE(loop.run_until([&] { return gateway.connected() == 3; }));

  // 127.0.0.1 leaves the answers: its idle links go; the pipe and the series stay.
  answer("127.0.0.2 gw.test\n");
  REQUIRE(loop.run_until([&] { return gateway.connected() == 1 && group.labels().size() == 1; }));
  CHECK(group.labels() == std::vector<std::string>{"127.0.0.2:" + port});
  CHECK(group.piped() == 1);
  CHECK(has_series(first));

  // Back while the pipe runs: the same keeper fills its pool again.
  answer("127.0.0.2 gw.test\n127.0.0.1 gw.test\n");
  REQUIRE(loop.run_until([&] { return gateway.connected() == 3 && group.labels().size() == 2; }));
  CHECK(agent.metrics->links(first, "piped").Value() == 1);
  CHECK(loop.run_until([&] { return agent.metrics->links(first, "idle").Value() == 2; }));

  // Gone again, and the pipe ends: then its series go.
  answer("127.0.0.2 gw.test\n");
  REQUIRE(loop.run_until([&] { return gateway.connected() == 1 && group.labels().size() == 1; }));
  SSL_shutdown(piped->ssl());
  REQUIRE(loop.run_until([&] { return piped->ended(); }));
  REQUIRE(loop.run_until([&] { return !has_series(first); }));

  // Back after that: a keeper of its own again, with a full pool.
  answer("127.0.0.2 gw.test\n127.0.0.1 gw.test\n");
  REQUIRE(loop.run_until([&] { return gateway.connected() == 2; }));
  CHECK(group.labels().size() == 2);
  CHECK(has_series(first));
  group.stop();
  CHECK(loop.run_until([&] { return group.total() == 0; }));
}

TEST_CASE("draining drops the idle links at once while a pipe goes on") {
  FakeServer echo(FakeServer::Transport::kTcp, [](Peer& peer, int) {
    std::string line;
    while (peer.read_until("\n", line)) {
      if (!peer.write(line)) return;
    }
  });
  Setup s({target(echo.port())});
  GatewayConn& link = s.idle_link();
  link.send(connect_line(echo.port()));
  REQUIRE(s.answered(link, 4));
  REQUIRE(s.loop.run_until([&] { return s.agent->keeper->idle() == 2; }));
  s.agent->keeper->stop();
  CHECK(s.agent->keeper->idle() == 0);
  CHECK(s.agent->keeper->dialing() == 0);
  CHECK(s.agent->keeper->piped() == 1);
  REQUIRE(s.loop.run_until([&] { return s.gateway.connected() == 1; }));  // only the pipe's link is left
  link.send("still here\n");
  REQUIRE(s.answered(link, 4 + 11));
  CHECK(link.received == "OK\r\nstill here\n");
  const std::size_t accepted = s.gateway.accepted();
  SSL_shutdown(link.ssl());
  REQUIRE(s.loop.run_until([&] { return s.agent->keeper->total() == 0; }));
  CHECK(s.gateway.accepted() == accepted);  // nothing dialed while draining
}

TEST_CASE("an idle link that hears nothing for pool.keepalive_timeout is dropped and replaced") {
  Setup s({"127.0.0.1:1"}, false, [](AgentConfig& c) {
    c.agent.pool.idle = 1;
    c.agent.pool.keepalive_timeout = std::chrono::milliseconds(200);
  });
  GatewayConn& first = s.idle_link();
  REQUIRE(s.loop.run_until([&] { return first.ended(); }));
  CHECK(first.eof);  // dropped with close_notify
  CHECK(s.loop.run_until([&] { return s.gateway.accepted() >= 2 && s.agent->keeper->idle() == 1; }));
}

TEST_CASE("ERR shutting_down from the gateway closes the link; the pool is refilled after the backoff") {
  Setup s({"127.0.0.1:1"});
  REQUIRE(s.loop.run_until([&] { return s.agent->keeper->idle() == 2; }));
  GatewayConn& link = s.idle_link();
  link.send("ERR shutting_down\r\n");
  REQUIRE(s.loop.run_until([&] { return link.ended(); }));
  CHECK(s.loop.run_until([&] { return s.gateway.accepted() == 3 && s.agent->keeper->idle() == 2; }));
  CHECK(s.agent->keeper->up());
}

namespace {
// One request to the agent's HTTP endpoint, blocking (the agent answers from its own thread).
std::string http_get(uint16_t port, const std::string& path) {
  net::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) return "";
  const std::string request = "GET " + path + " HTTP/1.0\r\nHost: x\r\n\r\n";
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return "";
  std::string reply;
  char buffer[8192];
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    const ssize_t n = ::recv(fd.get(), buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    reply.append(buffer, static_cast<std::size_t>(n));
  }
  return reply;
}
}  // namespace

TEST_CASE("run_agent_process keeps its pool, serves /metrics and /readyz, and exits 0 after SIGTERM") {
  Loop loop;
  FakeGateway gateway(loop.base.get(), pki().gateway_cert, pki().gateway_key);
  const uint16_t metrics_port = scan_test::closed_port();
  AgentConfig config = agent_config(gateway.port(), {"127.0.0.1:1"}, pki().dir + "/process.log");
  config.metrics.address = "127.0.0.1:" + std::to_string(metrics_port);
  std::atomic<int> exit_code{-1};
  struct Runner {
    std::thread thread;
    std::atomic<int>& code;
    ~Runner() {
      if (!thread.joinable()) return;
      if (code == -1) ::kill(::getpid(), SIGTERM);
      thread.join();
    }
  } runner{std::thread([&] { exit_code = agent::run_agent_process(config); }), exit_code};
  REQUIRE(loop.run_until([&] { return gateway.connected() == 2; }));
  std::string ready;
  REQUIRE(loop.run_until([&] {
    ready = http_get(metrics_port, "/readyz");
    return ready.find(" 200 ") != std::string::npos;
  }));
  CHECK(http_get(metrics_port, "/healthz").find(" 200 ") != std::string::npos);
  const std::string metrics = http_get(metrics_port, "/metrics");
  const std::string label = "gateway=\"127.0.0.1:" + std::to_string(gateway.port()) + "\"";
  CHECK(metrics.find("ftpsgate_agent_links{" + label + ",state=\"idle\"} 2") != std::string::npos);
  CHECK(metrics.find("ftpsgate_agent_gateway_up{" + label + "} 1") != std::string::npos);
  CHECK(metrics.find("ftpsgate_agent_connect_requests_total{purpose=\"data\",result=\"not_allowed\"} 0") != std::string::npos);
  ::kill(::getpid(), SIGTERM);
  REQUIRE(loop.run_until([&] { return exit_code != -1; }));
  runner.thread.join();
  CHECK(exit_code == 0);
  CHECK(loop.run_until([&] { return gateway.connected() == 0; }));  // idle links closed at the drain
  const std::string log = read_file(pki().dir + "/process.log");
  CHECK(log.find("\"event\":\"start\"") != std::string::npos);
  CHECK(log.find("\"event\":\"shutdown\"") != std::string::npos);
  CHECK(log.find("\"event\":\"stopped\"") != std::string::npos);
}

TEST_CASE("a gateway that does not select ALPN ftpsgate-agent/1 is refused") {
  Setup s({"127.0.0.1:1"}, false, {}, false);
  REQUIRE(s.loop.run_until([&] { return s.agent->log().find("gateway_refused") != std::string::npos; }));
  CHECK(s.agent->keeper->idle() == 0);
  CHECK(s.agent->log().find("did not select ALPN") != std::string::npos);
}

TEST_CASE("pool.max_links bounds idle and piped links together") {
  FakeServer echo(FakeServer::Transport::kTcp, [](Peer& peer, int) { peer.wait_eof(std::chrono::seconds(10)); });
  Setup s({target(echo.port())}, false, [](AgentConfig& c) { c.agent.pool.max_links = 3; });
  GatewayConn& first = s.idle_link();
  first.send(connect_line(echo.port()));
  REQUIRE(s.answered(first, 4));
  GatewayConn& second = s.idle_link();
  second.send(connect_line(echo.port()));
  REQUIRE(s.answered(second, 4));
  CHECK(first.received == "OK\r\n");
  CHECK(second.received == "OK\r\n");
  REQUIRE(s.loop.run_until([&] { return s.agent->keeper->piped() == 2 && s.agent->keeper->idle() == 1; }));
  s.loop.run_for(std::chrono::milliseconds(100));
  CHECK(s.agent->keeper->total() == 3);
  CHECK(s.gateway.accepted() == 3);
  // A pipe ends: its place goes to a new idle link.
  SSL_shutdown(first.ssl());
  CHECK(s.loop.run_until([&] { return s.agent->keeper->idle() == 2 && s.agent->keeper->piped() == 1; }));
  CHECK(s.agent->keeper->total() == 3);
}
