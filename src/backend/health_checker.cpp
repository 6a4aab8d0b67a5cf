#include "backend/health_checker.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include <algorithm>
#include <cstring>

#include "backend/backend_pool.h"
#include "tls/tls_bufferevent.h"

namespace ftpsgate::backend {

namespace {
constexpr std::size_t kMaxGreeting = 4096;

std::chrono::milliseconds ms(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d); }
}  // namespace

HealthChecker::HealthChecker(event_base* base, BackendPool& pool) : base_(base), pool_(pool) {
  for (auto& server : pool_.servers_) {
    auto probe = std::make_unique<Probe>();
    Probe* raw = probe.get();
    probe->owner = this;
    probe->server = server.get();
    probe->next = std::make_unique<net::Timer>(base_, [this, raw] { start(*raw); });
    probe->deadline = std::make_unique<net::Timer>(base_, [this, raw] { finish(*raw, false, "greeting timeout"); });
    probe->next->arm(std::chrono::milliseconds(0));
    probes_.push_back(std::move(probe));
  }
}

HealthChecker::~HealthChecker() = default;

void HealthChecker::start(Probe& probe) {
  probe.greeting.clear();
  if (pool_.config().tls == BackendTls::kImplicit) {
    // The greeting comes inside TLS: the probe checks the handshake (and certificate) too.
    tls::SslPtr ssl = pool_.tls()->new_ssl(probe.server->host, nullptr);
    if (ssl) probe.connection = tls::make_tls_bufferevent(base_, -1, std::move(ssl), BUFFEREVENT_SSL_CONNECTING);
    if (!probe.connection) {
      finish(probe, false, "cannot create TLS state");
      return;
    }
  } else {
    probe.connection.reset(bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE));
  }
  bufferevent_setcb(probe.connection.get(), &HealthChecker::on_read, nullptr, &HealthChecker::on_event, &probe);
  probe.deadline->arm(ms(pool_.config().health_check.timeout));
  if (bufferevent_socket_connect(probe.connection.get(), probe.server->address.get(),
                                 static_cast<int>(probe.server->address.length())) != 0) {
    finish(probe, false, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    return;
  }
  bufferevent_enable(probe.connection.get(), EV_READ);
}

void HealthChecker::finish(Probe& probe, bool up, const std::string& why) {
  probe.deadline->cancel();
  probe.connection.reset();
  pool_.report(*probe.server, up, why);
  probe.next->arm(ms(pool_.config().health_check.interval));
}

void HealthChecker::on_read(bufferevent* bev, void* self) {
  auto& probe = *static_cast<Probe*>(self);
  evbuffer* in = bufferevent_get_input(bev);
  const std::size_t take = std::min(evbuffer_get_length(in), kMaxGreeting - probe.greeting.size());
  probe.greeting.resize(probe.greeting.size() + take);
  evbuffer_remove(in, probe.greeting.data() + probe.greeting.size() - take, take);
  // The first line decides: 220 is ready, anything else (120 "try later", 421) is not.
  if (probe.greeting.size() >= 4 || probe.greeting.find('\n') != std::string::npos) {
    const bool up = probe.greeting.rfind("220", 0) == 0;
    probe.owner->finish(probe, up, up ? "" : "unexpected greeting: " + probe.greeting.substr(0, probe.greeting.find('\r')));
  }
}

void HealthChecker::on_event(bufferevent*, short what, void* self) {
  auto& probe = *static_cast<Probe*>(self);
  if (what & BEV_EVENT_CONNECTED) return;
  SSL* ssl = bufferevent_openssl_get_ssl(probe.connection.get());
  std::string why = (what & BEV_EVENT_EOF) ? "closed before greeting"
                                           : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
  if (ssl != nullptr) why = tls::client_handshake_error(ssl, why);
  probe.owner->finish(probe, false, why);
}

}  // namespace ftpsgate::backend
