// Fixed limits of the control path, in one place (the configurable ones are in
// config.limits). Each bounds something a peer could otherwise grow.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace ftpsgate::limits {

// SECURITY: unbounded buffering (a client pipelining NOOP or FEAT without reading its
// replies, a backend flooding replies, pipelining behind a slow backend): the control
// channel is a bounded pipe both ways, as in nginx/HAProxy. At most kMaxPendingLines parsed
// command lines wait for their turn, no command is taken while kMaxDownstreamBacklog reply
// bytes wait for the client (nor a backend reply read), and libevent stops reading a control
// connection at kControlReadHighWater unread bytes; the rest waits in the peer's socket.
inline constexpr std::size_t kMaxPendingLines = 16;
inline constexpr std::size_t kMaxDownstreamBacklog = 32 * 1024;
inline constexpr std::size_t kControlReadHighWater = 16 * 1024;
// One backend reply line (a multi-line reply is capped by ftp::ReplyAssembler).
inline constexpr std::size_t kMaxBackendLine = 8192;
// Pending connections per control listener (and per shared passive port listener).
inline constexpr int kListenBacklog = 512;

// Pending connections on one passive data port (one connection is expected).
inline constexpr int kPassiveListenBacklog = 8;

// The data relay: per-direction buffering bound (the sink's backlog doubles as flow
// control), and per-wakeup read/write sizes (libevent's 16 KiB default costs a loop
// iteration per TLS record).
inline constexpr std::size_t kRelayHighWater = 1024 * 1024;
inline constexpr std::size_t kRelayLowWater = 256 * 1024;
inline constexpr long kRelayMaxSingleRead = 256 * 1024;
inline constexpr long kRelayMaxSingleWrite = 256 * 1024;
inline constexpr int kRelayReadLowWater = 64 * 1024;
// syslog (logging.syslog): the longest datagram sent (a longer record is cut), and the
// longest socket path (sockaddr_un.sun_path less its NUL). A socket that went away is
// reconnected at most once per kSyslogReconnectInterval.
inline constexpr std::size_t kSyslogMaxDatagram = 8192;
inline constexpr std::size_t kSyslogMaxSocketPath = 107;
inline constexpr std::chrono::milliseconds kSyslogReconnectInterval{1000};
// The longest file name written to an xferlog line (a longer one is cut).
inline constexpr std::size_t kXferlogMaxFilename = 4096;
// A data connection's graceful close waits this long for the peer's own close.
inline constexpr std::chrono::milliseconds kDataLinger{2000};
// Data channels a session keeps open after it is done with them, waiting out that close
// (e.g. a refused upload's client still sending); beyond this the oldest is cut.
// Inspection: while an upload spools and is scanned, the backend's control connection
// sits idle (vsftpd's idle_session_timeout is 300 s): a NOOP this often keeps it.
inline constexpr std::chrono::seconds kInspectionBackendKeepalive{60};
inline constexpr std::size_t kLingeringDataChannelsPerSession = 2;
// What is kept of a CLNT command's text for the audit records.
inline constexpr std::size_t kClientNameLength = 128;
// Pending connections on the port an active-mode backend connects to.
inline constexpr int kUpstreamDataListenBacklog = 4;

// Inside-out agent links (docs/agent-design.md 1.2): the longest CONNECT request line and
// the longest reply or idle line (OK, ERR, PING, PONG), CRLF included. A longer line is a
// protocol error and closes the link, never a buffer to grow.
inline constexpr std::size_t kAgentMaxRequestLine = 320;
inline constexpr std::size_t kAgentMaxReplyLine = 64;
// Unauthenticated connections (TCP accepted, TLS handshake or mapping not done) on the
// `agents` listener from one source address; agents.max_handshakes bounds them in all.
inline constexpr uint32_t kAgentHandshakesPerSource = 8;
// agent_refused records: at most this many a second, this many saved up; the rest are
// counted and summed up in one agent_refusals_suppressed record per interval.
inline constexpr uint64_t kAgentRefusalLogRate = 10;
inline constexpr uint64_t kAgentRefusalLogBurst = 50;
inline constexpr std::chrono::seconds kAgentRefusalSummaryInterval{60};

// How long our last reply may take to reach a client before the connection is cut.
inline constexpr std::chrono::milliseconds kCloseFlushTimeout{5000};

}  // namespace ftpsgate::limits
