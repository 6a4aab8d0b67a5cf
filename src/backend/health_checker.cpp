#include "backend/health_checker.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>

#include <algorithm>
#include <cstring>

#include "backend/backend_pool.h"
#include "ftp/feat.h"
#include "tls/tls_bufferevent.h"

namespace ftpsgate::backend {

namespace {
constexpr std::size_t kMaxLine = 4096;

std::chrono::milliseconds ms(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d); }
}  // namespace

HealthChecker::HealthChecker(event_base* base, net::Dialer& dialer, BackendPool& pool)
    : base_(base), dialer_(dialer), pool_(pool) {
  for (auto& server : pool_.servers_) {
    auto probe = std::make_unique<Probe>();
    Probe* raw = probe.get();
    probe->owner = this;
    probe->server = server.get();
    probe->next = std::make_unique<net::Timer>(base_, [this, raw] { start(*raw); });
    probe->deadline = std::make_unique<net::Timer>(base_, [this, raw] {
      if (raw->asked_feat) {
        finish(*raw, true, "");  // it greeted; FEAT is optional
      } else {
        finish(*raw, false, "greeting timeout");
      }
    });
    probe->next->arm(std::chrono::milliseconds(0));
    probes_.push_back(std::move(probe));
  }
}

HealthChecker::~HealthChecker() = default;

void HealthChecker::start(Probe& probe) {
  probe.asked_feat = false;
  probe.replies = ftp::ReplyAssembler(kReplyLimits);
  // One deadline for the connect, the greeting and FEAT.
  const auto timeout = ms(pool_.config().health_check.timeout);
  probe.deadline->arm(timeout);
  Probe* raw = &probe;
  probe.dialing = dialer_.dial(base_, probe.server->target.for_use(net::DialPurpose::kHealth, 0), timeout,
                               [this, raw](net::Dialed dialed, const std::string& error) {
                                 this->dialed(*raw, std::move(dialed), error);
                               });
}

void HealthChecker::dialed(Probe& probe, net::Dialed dialed, const std::string& error) {
  probe.dialing.reset();
  if (!error.empty()) {
    // Out of time before the connection stood: reported as it always was, whichever of the
    // dial's timeout and the probe's deadline (the same length) fired first.
    finish(probe, false, error == net::kDialTimeout ? "greeting timeout" : error);
    return;
  }
  const bool pipe = dialed.pipe != nullptr;
  if (pipe) {
    probe.lease = std::move(dialed.lease);
    probe.connection = std::move(dialed.pipe);
  } else if (pool_.config().tls == BackendTls::kImplicit) {
    // The greeting comes inside TLS: the probe checks the handshake (and certificate) too.
    tls::SslPtr ssl = pool_.tls()->new_ssl(probe.server->host, nullptr);
    if (ssl) {
      probe.connection =
          tls::make_tls_bufferevent(base_, dialed.fd.release(), std::move(ssl), BUFFEREVENT_SSL_CONNECTING);
    }
    if (!probe.connection) {
      finish(probe, false, "cannot create TLS state");
      return;
    }
  } else {
    probe.connection.reset(bufferevent_socket_new(base_, dialed.fd.get(), BEV_OPT_CLOSE_ON_FREE));
    if (!probe.connection) {
      finish(probe, false, "cannot create the probe connection");
      return;
    }
    (void)dialed.fd.release();  // the bufferevent's now
  }
  bufferevent_setcb(probe.connection.get(), &HealthChecker::on_read, nullptr, &HealthChecker::on_event, &probe);
  bufferevent_enable(probe.connection.get(), EV_READ);
  // An agent's pipe may hold the greeting already: no read event would announce it.
  if (pipe) on_read(probe.connection.get(), &probe);
}

void HealthChecker::finish(Probe& probe, bool up, const std::string& why) {
  // The probe's socket is closed before the verdict is reported (and logged).
  probe.deadline->cancel();
  probe.dialing.reset();
  tls::send_close_notify(probe.connection.get());
  probe.connection.reset();
  probe.lease.reset();
  pool_.report(*probe.server, up, why);
  probe.next->arm(ms(pool_.config().health_check.interval));
}

void HealthChecker::on_read(bufferevent* bev, void* self) {
  auto& probe = *static_cast<Probe*>(self);
  HealthChecker& checker = *probe.owner;
  evbuffer* in = bufferevent_get_input(bev);
  while (probe.connection) {
    std::size_t length = 0;
    char* line = evbuffer_readln(in, &length, EVBUFFER_EOL_CRLF);
    if (line == nullptr) {
      if (evbuffer_get_length(in) > kMaxLine) {
        checker.finish(probe, probe.asked_feat, probe.asked_feat ? "" : "greeting line too long");
      }
      return;
    }
    const std::string text(line, length);
    free(line);
    const auto status = probe.replies.feed_line(text);
    if (status == ftp::ReplyAssembler::Status::kComplete) {
      checker.on_reply(probe, probe.replies.take());
    } else if (status != ftp::ReplyAssembler::Status::kNeedMore) {
      checker.finish(probe, probe.asked_feat, probe.asked_feat ? "" : "unexpected greeting: " + text.substr(0, 200));
    }
  }
}

void HealthChecker::on_reply(Probe& probe, const ftp::Reply& reply) {
  if (!probe.asked_feat) {
    // The greeting decides: 220 is ready, anything else (120 "try later", 421) is not.
    if (reply.code != 220) {
      finish(probe, false, "unexpected greeting: " + std::string(reply.lines.front().substr(0, 200)));
      return;
    }
    // Up — reported once FEAT is answered (or not: FEAT is optional), when the probe's
    // socket is closed.
    probe.asked_feat = true;
    bufferevent_write(probe.connection.get(), "FEAT\r\n", 6);
    return;
  }
  if (reply.code == 211) {
    pool_.learn_features(*probe.server, ftp::relayable_backend_features(ftp::parse_feat_reply(reply)));
  }
  finish(probe, true, "");
}

void HealthChecker::on_event(bufferevent*, short what, void* self) {
  auto& probe = *static_cast<Probe*>(self);
  if (what & BEV_EVENT_CONNECTED) return;
  if (probe.asked_feat) {
    probe.owner->finish(probe, true, "");  // it greeted; a server may close on FEAT
    return;
  }
  SSL* ssl = bufferevent_openssl_get_ssl(probe.connection.get());
  std::string why = (what & BEV_EVENT_EOF) ? "closed before greeting"
                                           : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
  if (ssl != nullptr) why = tls::client_handshake_error(ssl, why);
  probe.owner->finish(probe, false, why);
}

}  // namespace ftpsgate::backend
