// The client's control connection: its transport (clear, TLS after AUTH or from the
// start, clear again after CCC), reading command lines with back-pressure, and writing
// replies. It knows nothing about backends or commands beyond line framing.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "ftp/line_reader.h"
#include "net/libevent_handles.h"
#include "net/timer.h"
#include "net/unique_fd.h"
#include "session/runtime.h"
#include "session/session_log.h"
#include "tls/openssl_handles.h"
#include "tls/session_binding.h"

namespace ftpsgate::session {

class DownstreamChannel {
 public:
  enum class Transport {
    kClear,             // plaintext: before AUTH, or after CCC once the client's close_notify is past
    kClearAfterCcc,     // plaintext after CCC; the client's own close_notify may come first
    kTlsSwitchPending,  // our 234 is queued; the TLS handshake starts once it is out
    kHandshaking,       // TLS handshake running
    kTls,               // TLS established
    kClearPending,      // our 200 to CCC is queued; close_notify follows once it is out
  };

  class Observer {
   public:
    virtual ~Observer() = default;
    virtual void on_downstream_input() = 0;    // command lines may be waiting
    virtual void on_downstream_drained() = 0;  // the client read every reply
    virtual void on_downstream_tls(SSL* ssl) = 0;  // handshake done (logged and counted)
    // The connection is over: closed by the client, a failed handshake, or our own
    // close_after_flush finished.
    virtual void on_downstream_closed() = 0;
  };

  DownstreamChannel(const Services& services, const Runtime& runtime, SessionLog& log, net::UniqueFd fd,
                    Observer& observer);
  DownstreamChannel(const DownstreamChannel&) = delete;
  DownstreamChannel& operator=(const DownstreamChannel&) = delete;

  void start_clear();
  void start_tls();  // implicit FTPS

  Transport transport() const { return transport_; }
  // TLS protects the control channel now (also while our 200 to CCC is still queued).
  bool protected_now() const { return transport_ == Transport::kTls || transport_ == Transport::kClearPending; }
  // AUTH or CCC is switching the transport: no command may be taken meanwhile.
  bool switching() const {
    return transport_ == Transport::kTlsSwitchPending || transport_ == Transport::kHandshaking ||
           transport_ == Transport::kClearPending;
  }
  bool tls_switch_in_progress() const {
    return transport_ == Transport::kTlsSwitchPending || transport_ == Transport::kHandshaking;
  }

  // Input: lines parsed up to the pending-line bound, while the client reads its replies.
  void pull();
  // The next line: one held back earlier first, then a newly parsed one.
  std::optional<ftp::LineEvent> next_line();
  // A newly parsed line only (held lines keep their turn).
  std::optional<ftp::LineEvent> next_new_line() { return lines_.next(); }
  // Holds a line that arrived during a transfer; bounded by pull().
  void hold(ftp::LineEvent line) { held_.push_back(std::move(line)); }
  // Anything received and not yet executed: parsed, held, partial or unread bytes.
  bool has_unread_input() const;
  bool backlogged() const;

  // Output.
  void send(const std::string& wire);
  void reply(int code, std::string_view text);

  // AUTH: `wire` (the 234) goes out in clear, then the TLS handshake starts.
  void begin_tls(const std::string& wire);
  // CCC: `wire` (the 200) goes out over TLS, then close_notify, then clear.
  void begin_clear(const std::string& wire);
  // A fresh TLS 1.3 ticket, so clients that use each ticket once never run dry.
  void issue_session_ticket();
  tls::ControlBinding& binding() { return binding_; }

  // Our last reply goes out, then close_notify, then on_downstream_closed (or the cut
  // after kCloseFlushTimeout). Reading stops at once.
  void close_after_flush();
  // No more events; the connection closes with this object.
  void stop();

 private:
  static void on_read(bufferevent*, void* self);
  static void on_write(bufferevent*, void* self);
  static void on_event(bufferevent*, short what, void* self);

  void attach();  // callbacks, watermark and events on bev_
  void attach_plain();
  void switch_to_tls();
  void handshake_done();
  void handshake_failed(bufferevent* bev);
  void clear_transport();
  bool skip_peer_close_notify(evbuffer* in);
  void finish_close();

  const Services& services_;
  const Runtime& runtime_;
  SessionLog& log_;
  Observer& observer_;
  Transport transport_ = Transport::kClear;
  bool closing_ = false;
  tls::ControlBinding binding_;
  ftp::LineReader lines_;
  std::deque<ftp::LineEvent> held_;  // lines that arrived during a transfer, in order (bounded)
  net::Timer handshake_timer_;
  net::Timer close_timer_;
  // Destruction order: the bufferevent, then the SSL it used, then the descriptor.
  net::UniqueFd fd_;  // outlives bev_ and ssl_ (AUTH TLS and CCC swap them on it)
  tls::SslPtr ssl_;   // the control channel's TLS state; outlives bev_
  net::BufferEventPtr bev_;
};

}  // namespace ftpsgate::session
