// loadgen.cpp — FTP/FTPS load driver in C++ (libevent + OpenSSL): one process, one thread,
// many concurrent sessions. Same command line and JSON output as loadgen.py (see there),
// built by bench/run.sh:  g++ -O2 -std=c++17 loadgen.cpp -levent -levent_openssl -lssl -lcrypto
//
//   loadgen rate    --port P [--tls] --concurrency 32 --duration 15 [--no-list]
//   loadgen idle    --port P [--tls] --sessions N --sources K --connect-concurrency 64 --hold-max S
//   loadgen latency --port P [--tls] --count 1000 --warmup 100 --command NOOP
//   common: --host 127.0.0.1 --user U --password P --timeout 30
//
// Data connections resume the control connection's TLS session (SSL_set_session with the
// session current when the PASV reply arrived, i.e. after the server's tickets), as
// vsftpd's require_ssl_reuse, ProFTPD mod_tls and ftpsgate's session_reuse_required demand.
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <string>
#include <vector>

namespace {

struct Opts {
  std::string mode, host = "127.0.0.1", user = "ftpuser", pass = "ftppass", command = "NOOP";
  int port = 0;
  bool tls = false, list = true;
  double timeout = 30, duration = 15, hold_max = 300;
  int sources = 1, concurrency = 32, sessions = 1000, connect_concurrency = 64, count = 1000,
      warmup = 100;
} O;

event_base* base;
SSL_CTX* ctx;

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

double cpu_seconds() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

std::string jstr(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) o += ' ';
    else o += c;
  }
  return o + "\"";
}

enum class St { Greet, Auth, Handshake, User, Pass, Pbsz, Prot, Pasv, List, Quit, Idle, IdleNoop, Lat, Done };

struct Session;
using Done = void (*)(Session*, bool ok, const std::string& err);

std::map<std::string, int> g_errors;
std::string g_tls_version, g_cipher;

struct Session {
  int id = 0;
  std::string src;
  int fd = -1;
  bufferevent* ctl = nullptr;   // plain socket bev, or the TLS filter on top of it
  SSL* ssl = nullptr;           // owned by ctl once the filter exists
  bufferevent* data = nullptr;
  St st = St::Greet;
  int ml_code = 0;              // inside a multi-line reply
  std::string ml_first;
  bool got_final_list = false, list_ok = false, data_done = false, data_connected = false;
  SSL_SESSION* resume = nullptr;
  double t0 = 0;
  Done done = nullptr;
  bool finished = false;
  // latency
  int lat_i = 0;
  double lat_t = 0;
  std::vector<double> lat;

  void send(const std::string& line) {
    std::string l = line + "\r\n";
    bufferevent_write(ctl, l.data(), l.size());
  }
  void fail(const std::string& why);
  void finish(bool ok, const std::string& err = "");
  void on_reply(int code, const std::string& line);
  void after_login();
  void start_data(int port);
  void data_finished();
};

void set_timeouts(bufferevent* bev, double secs) {
  if (secs <= 0) {
    bufferevent_set_timeouts(bev, nullptr, nullptr);
    return;
  }
  timeval tv{static_cast<time_t>(secs), static_cast<suseconds_t>((secs - static_cast<long>(secs)) * 1e6)};
  bufferevent_set_timeouts(bev, &tv, &tv);
}

int make_socket(const std::string& src) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!src.empty()) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, src.c_str(), &a.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(fd);
      return -1;
    }
  }
  return fd;
}

sockaddr_in target(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, O.host.c_str(), &a.sin_addr);
  return a;
}

void ctl_read(bufferevent* bev, void* arg) {
  auto* s = static_cast<Session*>(arg);
  evbuffer* in = bufferevent_get_input(bev);
  size_t n;
  while (!s->finished && s->ctl == bev) {
    char* line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
    if (!line) break;
    std::string l(line, n);
    free(line);
    if (l.size() < 3) continue;
    int code = std::atoi(l.substr(0, 3).c_str());
    if (s->ml_code) {
      if (code == s->ml_code && l.size() >= 4 && l[3] == ' ') {
        s->ml_code = 0;
        s->on_reply(code, s->ml_first);
      }
      continue;
    }
    if (l.size() >= 4 && l[3] == '-') {
      s->ml_code = code;
      s->ml_first = l;
      continue;
    }
    s->on_reply(code, l);
  }
}

void ctl_event(bufferevent*, short what, void* arg) {
  auto* s = static_cast<Session*>(arg);
  if (what & BEV_EVENT_CONNECTED) {
    if (s->st == St::Handshake) {
      if (g_tls_version.empty()) {
        g_tls_version = SSL_get_version(s->ssl);
        g_cipher = SSL_CIPHER_get_name(SSL_get_current_cipher(s->ssl));
      }
      s->st = St::User;
      s->send("USER " + O.user);
    }
    return;
  }
  if (what & BEV_EVENT_TIMEOUT) return s->fail("timeout");
  if (what & BEV_EVENT_EOF) return s->fail(s->st == St::Quit ? "" : "connection closed by server");
  if (what & BEV_EVENT_ERROR) {
    unsigned long e = bufferevent_get_openssl_error(s->ctl);
    char buf[160] = "socket error";
    if (e) ERR_error_string_n(e, buf, sizeof buf);
    else if (errno) snprintf(buf, sizeof buf, "%s", strerror(errno));
    return s->fail(buf);
  }
}

void data_read(bufferevent* bev, void*) { evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev))); }

void data_event(bufferevent*, short what, void* arg) {
  auto* s = static_cast<Session*>(arg);
  if (what & BEV_EVENT_CONNECTED) {
    if (!s->data_connected) {
      s->data_connected = true;
      s->send("LIST");
      if (O.tls) {  // TLS on top, resuming the control session
        SSL* d = SSL_new(ctx);
        if (s->resume) SSL_set_session(d, s->resume);
        set_timeouts(s->data, 0);
        bufferevent* f = bufferevent_openssl_filter_new(base, s->data, d, BUFFEREVENT_SSL_CONNECTING,
                                                        BEV_OPT_CLOSE_ON_FREE);
        bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
        s->data = f;
        bufferevent_setcb(f, data_read, nullptr, data_event, s);
        set_timeouts(f, O.timeout);
        bufferevent_enable(f, EV_READ | EV_WRITE);
      }
    }
    return;
  }
  // EOF, error or timeout: the transfer is over; the control reply says whether it worked.
  s->data_finished();
}

void Session::data_finished() {
  if (data) {
    bufferevent_free(data);
    data = nullptr;
  }
  data_done = true;
  if (got_final_list) {
    if (list_ok) {
      st = St::Quit;
      send("QUIT");
    } else {
      fail("LIST failed");
    }
  }
}

void Session::start_data(int port) {
  int dfd = make_socket(src);
  if (dfd < 0) return fail("data socket");
  data = bufferevent_socket_new(base, dfd, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(data, data_read, nullptr, data_event, this);
  set_timeouts(data, O.timeout);
  bufferevent_enable(data, EV_READ | EV_WRITE);
  sockaddr_in a = target(port);
  if (bufferevent_socket_connect(data, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("data connect");
}

void Session::after_login() {
  if (O.mode == "idle") {
    st = St::Idle;
    set_timeouts(ctl, 0);
    return finish(true);
  }
  if (O.mode == "latency") {
    st = St::Lat;
    lat_t = now();
    return send(O.command);
  }
  if (O.list) {
    if (O.tls) {
      st = St::Pbsz;
      return send("PBSZ 0");
    }
    st = St::Pasv;
    return send("PASV");
  }
  st = St::Quit;
  send("QUIT");
}

void Session::on_reply(int code, const std::string& line) {
  auto expect = [&](bool ok) {
    if (!ok) fail(line);
    return ok;
  };
  switch (st) {
    case St::Greet:
      if (!expect(code == 220)) return;
      if (O.tls) {
        st = St::Auth;
        send("AUTH TLS");
      } else {
        st = St::User;
        send("USER " + O.user);
      }
      return;
    case St::Auth: {
      if (!expect(code == 234)) return;
      ssl = SSL_new(ctx);
      set_timeouts(ctl, 0);  // the filter on top carries the timeouts from now on
      bufferevent* f = bufferevent_openssl_filter_new(base, ctl, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                      BEV_OPT_CLOSE_ON_FREE);
      bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
      ctl = f;
      st = St::Handshake;
      bufferevent_setcb(f, ctl_read, nullptr, ctl_event, this);
      set_timeouts(f, O.timeout);
      bufferevent_enable(f, EV_READ | EV_WRITE);
      return;
    }
    case St::User:
      if (code == 230) return after_login();
      if (!expect(code == 331)) return;
      st = St::Pass;
      send("PASS " + O.pass);
      return;
    case St::Pass:
      if (!expect(code == 230)) return;
      return after_login();
    case St::Pbsz:
      if (!expect(code == 200)) return;
      st = St::Prot;
      send("PROT P");
      return;
    case St::Prot:
      if (!expect(code == 200)) return;
      st = St::Pasv;
      send("PASV");
      return;
    case St::Pasv: {
      if (!expect(code == 227)) return;
      size_t p = line.find('(');
      int h1, h2, h3, h4, p1, p2;
      if (p == std::string::npos ||
          sscanf(line.c_str() + p, "(%d,%d,%d,%d,%d,%d)", &h1, &h2, &h3, &h4, &p1, &p2) != 6)
        return fail("PASV: " + line);
      if (O.tls) {
        if (resume) SSL_SESSION_free(resume);
        resume = SSL_get1_session(ssl);
      }
      st = St::List;
      return start_data(p1 * 256 + p2);  // the address in the reply is ignored (loopback)
    }
    case St::List:
      if (code == 150 || code == 125) return;
      got_final_list = true;
      list_ok = code == 226 || code == 250;
      if (!list_ok) return fail("LIST: " + line);
      if (data_done) {
        st = St::Quit;
        send("QUIT");
      }
      return;
    case St::Quit:
      return finish(true);
    case St::Idle:
      return;
    case St::IdleNoop:
      st = St::Idle;
      return finish(code == 200, code == 200 ? "" : line);
    case St::Lat: {
      double t = now();
      if (lat_i >= O.warmup) lat.push_back((t - lat_t) * 1e6);
      if (++lat_i >= O.warmup + O.count) {
        st = St::Quit;
        return send("QUIT");
      }
      lat_t = now();
      return send(O.command);
    }
    default:
      return;
  }
}

void Session::fail(const std::string& why) {
  if (why.empty()) return finish(true);
  finish(false, why);
}

void Session::finish(bool ok, const std::string& err) {
  if (finished) return;
  bool keep = ok && (st == St::Idle);
  if (!keep) {
    finished = true;
    if (data) bufferevent_free(data), data = nullptr;
    if (ctl) bufferevent_free(ctl), ctl = nullptr;
    if (resume) SSL_SESSION_free(resume), resume = nullptr;
  }
  if (done) done(this, ok, err);
}

bool start_session(Session* s) {
  s->finished = false;
  s->st = St::Greet;
  s->ml_code = 0;
  s->got_final_list = s->list_ok = s->data_done = s->data_connected = false;
  s->t0 = now();
  s->fd = make_socket(s->src);
  if (s->fd < 0) return false;
  s->ctl = bufferevent_socket_new(base, s->fd, BEV_OPT_CLOSE_ON_FREE);
  bufferevent_setcb(s->ctl, ctl_read, nullptr, ctl_event, s);
  set_timeouts(s->ctl, O.timeout);
  bufferevent_enable(s->ctl, EV_READ | EV_WRITE);
  sockaddr_in a = target(O.port);
  if (bufferevent_socket_connect(s->ctl, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    bufferevent_free(s->ctl);
    s->ctl = nullptr;
    return false;
  }
  return true;
}

std::string src_for(int i) {
  return O.sources > 1 ? "127.0.0." + std::to_string(1 + i % O.sources) : std::string();
}

void count_error(const std::string& e) { g_errors[e.substr(0, 80)]++; }

std::string errors_json() {
  std::string o = "{";
  bool first = true;
  for (auto& [k, v] : g_errors) {
    if (!first) o += ", ";
    first = false;
    o += jstr(k) + ": " + std::to_string(v);
  }
  return o + "}";
}

int total_errors() {
  int n = 0;
  for (auto& kv : g_errors) n += kv.second;
  return n;
}

double pct(std::vector<double>& v, double q) { return v.empty() ? 0 : v[static_cast<size_t>(q * (v.size() - 1))]; }
double median(std::vector<double>& v) {
  if (v.empty()) return 0;
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---------------------------------------------------------------- rate
struct Rate {
  double t0, deadline, cpu0;
  int done = 0, active = 0;
  std::vector<double> lat;
} R;
std::vector<Session*> slots;

void rate_next(Session* s);
void rate_done(Session* s, bool ok, const std::string& err) {
  double t = now();
  if (ok) {
    if (t <= R.deadline) {
      R.done++;
      R.lat.push_back(t - s->t0);
    }
  } else {
    count_error(err);
  }
  // start the next one from a fresh callback (the old bevs are being torn down)
  timeval tv{0, ok ? 0 : 10000};
  event_base_once(base, -1, EV_TIMEOUT, [](evutil_socket_t, short, void* a) { rate_next(static_cast<Session*>(a)); }, s, &tv);
}
void rate_next(Session* s) {
  if (now() >= R.deadline) {
    if (--R.active == 0) event_base_loopbreak(base);
    return;
  }
  if (!start_session(s)) {
    count_error("cannot open socket");
    timeval tv{0, 10000};
    event_base_once(base, -1, EV_TIMEOUT, [](evutil_socket_t, short, void* a) { rate_next(static_cast<Session*>(a)); }, s, &tv);
  }
}

int run_rate() {
  R.t0 = now();
  R.deadline = R.t0 + O.duration;
  R.cpu0 = cpu_seconds();
  for (int i = 0; i < O.concurrency; i++) {
    auto* s = new Session;
    s->id = i;
    s->src = src_for(i);
    s->done = rate_done;
    slots.push_back(s);
    R.active++;
    rate_next(s);
  }
  event_base_dispatch(base);
  std::sort(R.lat.begin(), R.lat.end());
  double wall = now() - R.t0;
  printf("{\"mode\": \"rate\", \"driver\": \"c++\", \"port\": %d, \"tls\": %s, \"concurrency\": %d, \"duration\": %g, "
         "\"sessions\": %d, \"sessions_per_s\": %.3f, \"errors\": %d, \"error_kinds\": %s, "
         "\"latency_ms_median\": %.3f, \"latency_ms_p99\": %.3f, \"driver_cpu_s\": %.3f, \"wall_s\": %.3f",
         O.port, O.tls ? "true" : "false", O.concurrency, O.duration, R.done, R.done / O.duration,
         total_errors(), errors_json().c_str(), 1000 * median(R.lat), 1000 * pct(R.lat, 0.99),
         cpu_seconds() - R.cpu0, wall);
  if (O.tls && !g_tls_version.empty())
    printf(", \"tls_version\": %s, \"cipher\": %s", jstr(g_tls_version).c_str(), jstr(g_cipher).c_str());
  printf("}\n");
  return 0;
}

// ---------------------------------------------------------------- idle
struct Idle {
  int next = 0, pending = 0, established = 0, noop_pending = 0, noop_ok = 0, noop_n = 0, quit_pending = 0;
  double t0;
  std::vector<Session*> open;
  event* stdin_ev = nullptr;
  event* hold_ev = nullptr;
  bool timed_out = false, releasing = false;
  std::string ready;
} I;

void idle_launch();
void idle_release();

void idle_quit_done(Session*, bool, const std::string&) {
  if (--I.quit_pending == 0) event_base_loopbreak(base);
}

void idle_noop_done(Session* s, bool ok, const std::string&) {
  if (ok) I.noop_ok++;
  s->done = idle_quit_done;
  if (--I.noop_pending == 0) idle_release();
}

int g_lost = 0;
std::map<std::string, int> g_lost_kinds;
void idle_lost(Session*, bool, const std::string& err) {
  g_lost++;
  g_lost_kinds[err.substr(0, 80)]++;
}

void idle_done(Session* s, bool ok, const std::string& err) {
  I.pending--;
  if (ok) {
    I.established++;
    I.open.push_back(s);
    s->done = idle_lost;  // a held session that the server closes
  } else {
    count_error(err);
    delete s;  // its bevs are freed; libevent finalizes them later without touching s
  }
  idle_launch();
}

void idle_launch() {
  while (I.pending < O.connect_concurrency && I.next < O.sessions) {
    auto* s = new Session;
    s->id = I.next;
    s->src = src_for(I.next++);
    s->done = idle_done;
    if (start_session(s)) I.pending++;
    else {
      count_error("cannot open socket");
      delete s;
    }
  }
  if (I.pending == 0 && I.next >= O.sessions && I.ready.empty()) {
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"mode\": \"idle\", \"driver\": \"c++\", \"requested\": %d, \"established\": %d, \"errors\": %d, "
             "\"error_kinds\": %s, \"setup_s\": %.3f",
             O.sessions, I.established, total_errors(), "%s", now() - I.t0);
    std::string r = buf;
    size_t p = r.find("%s");
    r.replace(p, 2, errors_json());
    I.ready = r;
    printf("READY %s}\n", r.c_str());
    fflush(stdout);
    I.stdin_ev = event_new(base, 0, EV_READ, [](evutil_socket_t, short, void*) {
      event_del(I.hold_ev);
      idle_release();
    }, nullptr);
    event_add(I.stdin_ev, nullptr);
    I.hold_ev = evtimer_new(base, [](evutil_socket_t, short, void*) {
      I.timed_out = true;
      event_del(I.stdin_ev);
      idle_release();
    }, nullptr);
    timeval tv{static_cast<time_t>(O.hold_max), 0};
    evtimer_add(I.hold_ev, &tv);
  }
}

// first call: NOOP on a sample of ~100 sessions; second call (all answered): QUIT all.
void idle_release() {
  if (!I.releasing) {
    I.releasing = true;
    size_t step = std::max<size_t>(1, I.open.size() / 100);
    for (size_t i = 0; i < I.open.size(); i += step) {
      Session* s = I.open[i];
      if (s->finished) continue;
      s->st = St::IdleNoop;
      s->done = idle_noop_done;
      set_timeouts(s->ctl, 10);
      s->send("NOOP");
      I.noop_pending++;
      I.noop_n++;
    }
    if (I.noop_pending > 0) return;
  }
  I.quit_pending = 0;
  for (Session* s : I.open) {
    if (s->finished) continue;
    s->st = St::Quit;
    s->done = idle_quit_done;
    set_timeouts(s->ctl, 10);
    s->send("QUIT");
    I.quit_pending++;
  }
  if (I.quit_pending == 0) event_base_loopbreak(base);
}

int run_idle() {
  I.t0 = now();
  idle_launch();
  event_base_dispatch(base);
  g_errors = g_lost_kinds;
  printf("%s, \"lost_while_held\": %d, \"lost_kinds\": %s, \"alive_sample\": \"%d/%d\"%s}\n", I.ready.c_str(), g_lost,
         errors_json().c_str(), I.noop_ok, I.noop_n,
         I.timed_out ? ", \"hold_timed_out\": true" : "");
  return 0;
}

// ---------------------------------------------------------------- latency
int run_latency() {
  static std::string error;
  static bool good = false;
  auto* s = new Session;
  s->done = [](Session*, bool ok, const std::string& err) {
    good = ok;
    error = err;
    event_base_loopbreak(base);
  };
  if (!start_session(s)) {
    fprintf(stderr, "cannot connect\n");
    return 1;
  }
  event_base_dispatch(base);
  if (!good || s->lat.size() < static_cast<size_t>(O.count)) {
    fprintf(stderr, "latency run failed: %s\n", error.c_str());
    return 1;
  }
  std::sort(s->lat.begin(), s->lat.end());
  printf("{\"mode\": \"latency\", \"driver\": \"c++\", \"port\": %d, \"tls\": %s, \"command\": %s, \"count\": %d, "
         "\"us_median\": %.1f, \"us_p90\": %.1f, \"us_p99\": %.1f, \"us_min\": %.1f, \"us_max\": %.1f}\n",
         O.port, O.tls ? "true" : "false", jstr(O.command).c_str(), O.count, median(s->lat), pct(s->lat, 0.9),
         pct(s->lat, 0.99), s->lat.front(), s->lat.back());
  return 0;
}

void usage() {
  fprintf(stderr, "usage: loadgen rate|idle|latency --port P [--tls] [options]; see bench/loadgen.py\n");
  exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage();
  O.mode = argv[1];
  if (O.mode != "rate" && O.mode != "idle" && O.mode != "latency") usage();
  for (int i = 2; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--host") O.host = val();
    else if (a == "--port") O.port = std::stoi(val());
    else if (a == "--tls") O.tls = true;
    else if (a == "--user") O.user = val();
    else if (a == "--password") O.pass = val();
    else if (a == "--timeout") O.timeout = std::stod(val());
    else if (a == "--sources") O.sources = std::stoi(val());
    else if (a == "--concurrency") O.concurrency = std::stoi(val());
    else if (a == "--duration") O.duration = std::stod(val());
    else if (a == "--no-list") O.list = false;
    else if (a == "--sessions") O.sessions = std::stoi(val());
    else if (a == "--connect-concurrency") O.connect_concurrency = std::stoi(val());
    else if (a == "--hold-max") O.hold_max = std::stod(val());
    else if (a == "--count") O.count = std::stoi(val());
    else if (a == "--warmup") O.warmup = std::stoi(val());
    else if (a == "--command") O.command = val();
    else usage();
  }
  if (!O.port) usage();
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  base = event_base_new();
  int rc = O.mode == "rate" ? run_rate() : O.mode == "idle" ? run_idle() : run_latency();
  fflush(stdout);
  _exit(rc);  // sessions still held are closed by the kernel
}
