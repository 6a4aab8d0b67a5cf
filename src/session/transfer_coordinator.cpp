#include "session/transfer_coordinator.h"

#include <algorithm>
#include <ctime>

#include "ftp/address_codec.h"
#include "ftpsgate/limits.h"
#include "log/xferlog_format.h"
#include "policy/transfer_completion.h"
#include "session/refuse.h"
#include "tls/client_fingerprint.h"

namespace ftpsgate::session {

TransferCoordinator::TransferCoordinator(const Services& services, const Runtime& runtime,
                                         const ListenerConfig& listener, const ClassConfig& cls, uint64_t session_id,
                                         Endpoints endpoints, DownstreamChannel& downstream,
                                         UpstreamChannel& upstream, SessionLog& log, Session& session)
    : services_(services),
      runtime_(runtime),
      listener_(listener),
      class_(cls),
      session_id_(session_id),
      endpoints_(std::move(endpoints)),
      downstream_(downstream),
      upstream_(upstream),
      log_(log),
      session_(session),
      retired_data_(services.base),
      retired_uploads_(services.base),
      retired_downloads_(services.base) {}

TransferCoordinator::~TransferCoordinator() { data_.reset(); }

void TransferCoordinator::deny(policy::Refusal reason, std::string_view command, std::string_view text) {
  refuse(log_, downstream_, reason, command, 0, text);
}

// ---------------------------------------------------------------------------------------
// PASV / EPSV / PORT / EPRT

void TransferCoordinator::passive(const ftp::Command& cmd, bool epsv) {
  if (epsv) {
    const auto arg = ftp::parse_epsv_argument(cmd.argument);
    if (arg.kind == ftp::EpsvArgument::Kind::kAll) {
      epsv_all_ = true;
      downstream_.reply(200, "EPSV ALL accepted");
      return;
    }
    const bool v6 = endpoints_.advertised.is_v6() && !ftp::is_ipv4_literal(endpoints_.advertised.ip());
    if (arg.kind == ftp::EpsvArgument::Kind::kUnsupported ||
        (arg.kind == ftp::EpsvArgument::Kind::kIpv4 && v6) || (arg.kind == ftp::EpsvArgument::Kind::kIpv6 && !v6)) {
      downstream_.reply(522, v6 ? "Network protocol not supported, use (2)" : "Network protocol not supported, use (1)");
      return;
    }
  } else if (epsv_all_) {
    downstream_.reply(503, "PASV not allowed after EPSV ALL");
    return;
  }
  prepare_backend_side({cmd.verb, epsv, std::nullopt, false});
}

void TransferCoordinator::active(const ftp::Command& cmd, bool eprt) {
  const auto& active = runtime_.config.active;
  if (!active.enabled) {
    deny(policy::Refusal::kActiveDisabled, cmd.verb);
    return;
  }
  if (epsv_all_) {
    downstream_.reply(503, cmd.verb + " not allowed after EPSV ALL");
    return;
  }
  const auto target = eprt ? ftp::parse_eprt_argument(cmd.argument) : ftp::parse_port_argument(cmd.argument);
  auto address = target ? net::SocketAddress::from_numeric(target->host, target->port) : std::nullopt;
  if (!address) {
    downstream_.reply(501, "Syntax error in " + cmd.verb + " argument");
    return;
  }
  const net::SocketAddress& local = endpoints_.local;
  if (address->is_v6() != local.is_v6()) {
    downstream_.reply(522,
                      local.is_v6() ? "Network protocol not supported, use (2)" : "Network protocol not supported, use (1)");
    return;
  }
  // SECURITY: FTP bounce (RFC 2577 §3): the gateway connects only to the client's own host,
  // and never to a privileged port there.
  if (!active.allow_foreign_address && !address->same_host(endpoints_.client)) {
    deny(policy::Refusal::kBounceForeignAddress, cmd.verb, cmd.verb + " to another host than the client refused");
    return;
  }
  if (target->port < active.min_port) {
    deny(policy::Refusal::kBounceLowPort, cmd.verb, cmd.verb + " to a port below " + std::to_string(active.min_port) + " refused");
    return;
  }
  prepare_backend_side({cmd.verb, false, *address, false});
}

void TransferCoordinator::prepare_backend_side(DataRequest request) {
  retire_data_channel();
  data_refusal_.reset();
  backend_data_endpoint_.reset();
  backend_data_ready_ = false;
  auto on_reply = [this](const DataRequest& req) {
    return [this, req](const ftp::Reply& reply) {
      if (!reply.preliminary()) handle_backend_passive(req, reply);
    };
  };
  if (upstream_.pool()->config().data_mode != BackendDataMode::kActive) {
    upstream_.send(upstream_.server()->prefers_epsv() ? "EPSV" : "PASV", on_reply(request));
    return;
  }
  // data_mode: active — the backend connects to the gateway, which listens on the address
  // its upstream control connection uses.
  if (!open_client_side(request)) return;
  auto upstream_local = upstream_.local_address();
  // Only a direct server has an address here (--check refuses data_mode: active through an agent).
  const auto& backend_host = upstream_.server()->target.address;
  auto port = upstream_local && backend_host ? data_->listen_upstream(*upstream_local, *backend_host) : std::nullopt;
  if (!port) {
    retire_data_channel();
    downstream_.reply(425, "Unable to build data connection: cannot listen for the backend");
    return;
  }
  request.backend_active = true;
  upstream_.send(upstream_local->is_v6() ? "EPRT " + ftp::build_eprt_argument(upstream_local->ip(), *port)
                                         : "PORT " + ftp::build_port_argument(upstream_local->ip(), *port),
                 on_reply(request));
}

bool TransferCoordinator::open_client_side(const DataRequest& request) {
  if (request.active_target) {
    data_ = data::DataChannel::open_active(data_settings(), *request.active_target, endpoints_.local, *this);
    return true;
  }
  if (services_.shared_port != nullptr) {
    data_ = data::DataChannel::open_shared(data_settings(), *this);
    return true;
  }
  net::SocketAddress listen_on = endpoints_.local;
  listen_on.set_port(0);
  data_ = data::DataChannel::open_passive(data_settings(), listen_on, *services_.ports, *this);
  if (!data_) {
    log_.log(LogLevel::kWarn, "passive_error", {{"error", "no free passive port"}});
    downstream_.reply(425, "Unable to build data connection: no free passive port");
    return false;
  }
  return true;
}

void TransferCoordinator::answer_data_command(const DataRequest& request) {
  if (request.active_target) {
    downstream_.reply(200, request.verb + " command successful");
    return;
  }
  if (data_->port() == 0) {
    // Shared port, and this address's earlier clear transfer still waits for its
    // connection: answered once it arrives (on_data_port_ready) or gives up.
    deferred_answer_ = request;
    log_.log(LogLevel::kDebug, "passive_wait", {{"reason", "shared port busy for this address"}});
    return;
  }
  downstream_.issue_session_ticket();
  if (request.client_wants_epsv) {
    downstream_.send(ftp::build_epsv_reply(data_->port()) + "\r\n");
    return;
  }
  std::string address = class_.masquerade_address;
  if (address.empty()) address = runtime_.config.passive.masquerade_address;
  if (address.empty()) address = endpoints_.advertised.ip();
  if (!ftp::is_ipv4_literal(address)) {
    retire_data_channel();
    downstream_.reply(522, "Network protocol not supported, use EPSV");
    return;
  }
  downstream_.send(ftp::build_pasv_reply(address, data_->port()) + "\r\n");
}

data::DataChannel::Settings TransferCoordinator::data_settings() const {
  const auto& config = runtime_.config;
  data::DataChannel::Settings settings;
  settings.base = services_.base;
  settings.dialer = services_.dialer;
  settings.ssl_ctx = runtime_.tls->get();
  settings.protect = session_.data_protected();
  settings.binding = &downstream_.binding();
  settings.require_reuse = session_.session_reuse() == SessionReuse::kRequired;
  settings.audit_reuse = session_.session_reuse() == SessionReuse::kAudit;
  settings.client_address = endpoints_.client;
  settings.allow_foreign_address = config.data.allow_foreign_address;
  settings.proxy_protocol = listener_.proxy_protocol;
  settings.proxy_protocol_from = listener_.proxy_protocol_from;
  settings.shared = services_.shared_port;
  settings.owner = {services_.worker, session_id_};
  settings.handshake_timeout = config.limits.handshake_timeout;
  settings.connect_timeout = config.limits.data_connect_timeout;
  settings.stall_timeout = config.data.stall_timeout;
  settings.sha256 = config.logging.transfer_sha256;
  settings.upstream_tls = backend_data_tls();
  return settings;
}

net::DialTarget TransferCoordinator::backend_data_target() const {
  return upstream_.server()->target.for_use(net::DialPurpose::kData, session_id_);
}

data::BackendDataTls TransferCoordinator::backend_data_tls() const {
  data::BackendDataTls tls;
  if (SSL* upstream_ssl = upstream_.ssl()) {
    tls.context = upstream_.pool()->tls();
    tls.host = upstream_.server()->host;
    tls.session = std::shared_ptr<SSL_SESSION>(SSL_get1_session(upstream_ssl), SSL_SESSION_free);
  }
  return tls;
}

void TransferCoordinator::handle_backend_passive(const DataRequest& request, const ftp::Reply& reply) {
  if (request.backend_active) {
    if (reply.code / 100 != 2) {
      retire_data_channel();
      downstream_.send(reply.wire());  // the backend refused our PORT/EPRT
      return;
    }
    backend_data_ready_ = true;
    answer_data_command(request);
    return;
  }
  if (reply.code != 227 && reply.code != 229) {
    downstream_.send(reply.wire());  // the backend's own refusal, e.g. 421 or 5xx
    return;
  }
  const std::optional<uint16_t> port = ftp::parse_passive_reply_port(reply.code, reply.text());
  if (!port) {
    log_.log(LogLevel::kWarn, "backend_error", {{"error", "unparsable passive reply"}, {"reply", reply.text()}});
    downstream_.reply(425, "Unable to build data connection: backend passive reply not understood");
    return;
  }
  // SECURITY: connect to the backend host we already talk to, whatever address its reply
  // names (a hostile or NATed backend must not steer the gateway elsewhere): only the port
  // is taken (through an agent, its allowlist checks that host and port again).
  backend_data_endpoint_ = backend_data_target().with_port(*port);
  backend_data_ready_ = true;
  if (open_client_side(request)) answer_data_command(request);
}

// ---------------------------------------------------------------------------------------
// Transfers

void TransferCoordinator::transfer(const ftp::Command& cmd, data::Direction direction,
                                   const rules::UploadLimits& limits, data::Throttle throttle,
                                   const inspection::InspectionPolicy& inspection) {
  if (data_refusal_) {
    downstream_.reply(425, "Unable to build data connection: " + data_refusal_->reply_reason);
    data_refusal_.reset();
    return;
  }
  if (!data_ || !backend_data_ready_) {
    downstream_.reply(425, "Unable to build data connection: use PASV or EPSV first");
    return;
  }
  const bool protect = session_.data_protected();
  if (data_->protect() != protect) {
    retire_data_channel();
    downstream_.reply(425, "Unable to build data connection: protection level changed after PASV, send PASV again");
    return;
  }
  const ScannerConfig* scanner = nullptr;
  const bool inspect = direction == data::Direction::kUpload
                           ? inspection.inspects_uploads()
                           : cmd.verb == "RETR" && inspection.inspects_downloads();  // listings are not files
  if (inspect) scanner = runtime_.config.inspection.find_scanner(inspection.scanner);
  if (scanner != nullptr && services_.spool_budget->full()) {
    // Before any byte moves: the client may retry later and loses nothing.
    retire_data_channel();
    log_.log_bounded(LogLevel::kWarn, "spool_full",
                     {{"command", cmd.verb}, {"used", services_.spool_budget->used()},
                      {"max", services_.spool_budget->max()}});
    if (direction == data::Direction::kUpload) {
      downstream_.reply(452, "Requested action not taken: the gateway's upload spool is full, try again later");
    } else {
      downstream_.reply(451, "Requested action aborted: the gateway's download spool is full, try again later");
    }
    return;
  }
  transfer_ = Transfer{cmd, direction};
  transfer_->started = std::chrono::steady_clock::now();
  if (direction == data::Direction::kUpload) transfer_->limits = limits;
  transfer_->throttle = std::move(throttle);
  transfer_->scanner = scanner;
  transfer_->inspection = inspection;
  if (data_->state() == data::DataChannel::State::kReady && scanner == nullptr) {
    forward_transfer();
    return;
  }
  // The client verifies its data connection only after a preliminary reply (TLS clients
  // handshake after 150), and the backend must not see a transfer whose data connection
  // we may still refuse — so the gateway answers 150 itself and forwards later.
  transfer_->own_preliminary = true;
  downstream_.reply(150, "Opening " + std::string(protect ? "TLS-protected " : "") + "data connection for " + cmd.verb);
  if (data_->state() == data::DataChannel::State::kReady) {
    forward_transfer();  // inspection: the connection was ready before the command
    return;
  }
  if (data_->active()) data_->connect_downstream();
}

void TransferCoordinator::forward_transfer() {
  if (transfer_->scanner != nullptr) {
    if (transfer_->direction == data::Direction::kUpload) {
      spool_upload();
    } else {
      inspect_download();
    }
    return;
  }
  transfer_->forwarded = true;
  upstream_.send(transfer_->command.verb + (transfer_->command.argument.empty() ? "" : " " + transfer_->command.argument),
                 [this](const ftp::Reply& reply) { handle_transfer_reply(reply); });
  data_->start_relay(transfer_->direction, backend_data_endpoint_, transfer_->limits.relay_limit(),
                     transfer_->throttle);
}

void TransferCoordinator::on_data_ready() {
  if (transfer_ && !transfer_->forwarded) forward_transfer();
}

void TransferCoordinator::on_data_refused(const data::DataRefusal& refusal) {
  if (refusal.denial) services_.metrics->policy_denials(policy::reason_name(*refusal.denial)).Increment();
  log_.log_bounded(LogLevel::kWarn, refusal.denial ? "policy_denial" : "data_error",
                   {{"reason", refusal.denial ? policy::reason_name(*refusal.denial) : "data_connection_failed"},
                    {"message", refusal.log_message}});
  retire_data_channel();
  if (deferred_answer_) {
    deferred_answer_.reset();
    downstream_.reply(425, "Unable to build data connection: " + refusal.reply_reason);
    session_.resume_commands();
    return;
  }
  if (transfer_ && !transfer_->forwarded) {
    transfer_.reset();
    downstream_.reply(425, "Unable to build data connection: " + refusal.reply_reason);
    session_.resume_commands();
    return;
  }
  data_refusal_ = refusal;
}

void TransferCoordinator::on_data_handshake(SSL* ssl, bool ok, const std::string& error) {
  const char* version = ok ? SSL_get_version(ssl) : "unknown";
  services_.metrics->tls_handshakes("data", version, ok ? "success" : "failure").Increment();
  if (ok) {
    nlohmann::json fields = {{"channel", "data"},
                             {"version", version},
                             {"cipher", SSL_get_cipher_name(ssl)},
                             {"resumed", SSL_session_reused(ssl) == 1},
                             {"fingerprint", tls::client_fingerprint(ssl)}};
    if (data_ && data_->handshake_worker()) fields["handshake_worker"] = *data_->handshake_worker();
    log_.log(LogLevel::kInfo, "tls_handshake", fields);
  } else {
    nlohmann::json fields = {{"channel", "data"}, {"result", "failure"}, {"error", error}};
    if (const std::string fingerprint = tls::client_fingerprint(ssl); !fingerprint.empty()) {
      fields["fingerprint"] = fingerprint;
    }
    log_.log(LogLevel::kInfo, "tls_handshake", fields);
  }
}

void TransferCoordinator::on_data_unresumed(SSL* ssl) {
  // Audit mode: who would break if session_reuse_required were true.
  services_.metrics->data_unresumed(class_.name).Increment();
  const auto& identity = session_.client_identity();
  nlohmann::json fields = {{"reason", policy::reason_name(policy::Refusal::kSessionReuseRequired)},
                           {"fingerprint", tls::client_fingerprint(ssl)},
                           {"control_fingerprint", identity.control_fingerprint},
                           {"message", "data connection did not reuse the control connection's TLS session "
                                       "(accepted: session_reuse_required: audit)"}};
  if (!identity.client_name.empty()) fields["client_name"] = identity.client_name;
  log_.log(LogLevel::kInfo, "data_unresumed", fields);
}

void TransferCoordinator::on_data_port_ready() {
  if (!deferred_answer_) return;
  const DataRequest request = std::move(*deferred_answer_);
  deferred_answer_.reset();
  answer_data_command(request);
  session_.resume_commands();
}

void TransferCoordinator::shared_port_granted(uint64_t reservation, uint16_t port) {
  if (data_ && data_->reservation() == reservation) data_->port_granted(port);
}

void TransferCoordinator::adopt_shared_data(uint64_t reservation,
                                            std::unique_ptr<data::SharedDataConnection> connection) {
  // A connection for a channel given up meanwhile closes here (its destructor).
  if (data_ && data_->reservation() == reservation) data_->adopt_shared(std::move(connection));
}

void TransferCoordinator::on_data_finished(const data::TransferOutcome& outcome) {
  if (!transfer_ || transfer_->data_done) return;
  transfer_->data_done = true;
  transfer_->outcome = outcome;
  if (transfer_->spool) {
    spooled(outcome);
    return;
  }
  if (transfer_->download) {
    unspooled(outcome);
    return;
  }
  // A failure is final at once, unless the backend's verdict is still to come and may say
  // it refused the command (nothing moved, or an upload it never read); a success only
  // with the backend's 2xx.
  const bool verdict_decides =
      transfer_->forwarded && (outcome.bytes == 0 || transfer_->direction == data::Direction::kUpload);
  if (!outcome.ok && !verdict_decides) record_transfer(outcome);
  if (transfer_->held_final) complete_transfer();
}

void TransferCoordinator::record_transfer(const data::TransferOutcome& outcome, bool refused) {
  if (transfer_->recorded) return;  // one record per transfer
  transfer_->recorded = true;
  const char* direction = transfer_->direction == data::Direction::kDownload ? "download" : "upload";
  const char* protection = session_.data_protected() ? "private" : "clear";
  services_.metrics->data_connections(direction, protection).Increment();
  services_.metrics->transfer_bytes(direction).Increment(static_cast<double>(outcome.bytes));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - transfer_->started).count();
  nlohmann::json fields = {{"command", transfer_->command.verb}, {"path", transfer_->command.argument},
                           {"bytes", outcome.bytes},           {"seconds", seconds},
                           {"protection", protection},         {"direction", direction},
                           {"result", outcome.ok ? "ok" : refused ? "refused" : "failed"}};
  if (!outcome.ok) fields["error"] = outcome.error;
  if (!outcome.sha256.empty()) fields["sha256"] = outcome.sha256;
  if (transfer_->inspection_result) {
    fields["scanner"] = transfer_->inspection_result->scanner;
    fields["verdict"] = transfer_->inspection_result->verdict;
    if (!transfer_->inspection_result->signature.empty()) fields["signature"] = transfer_->inspection_result->signature;
    // Where an inspected upload's time went: the client's bytes into the spool, the scan,
    // and the forward to the backend.
    fields["spool_seconds"] = transfer_->spool_seconds;
    fields["scan_seconds"] = transfer_->inspection_result->scan_seconds;
    fields["forward_seconds"] = transfer_->inspection_result->forward_seconds;
  } else if (transfer_->scanner != nullptr) {
    fields["scanner"] = transfer_->scanner->name;  // ended before a verdict
  }
  services_.metrics->class_transfer_bytes(class_.name, direction).Increment(static_cast<double>(outcome.bytes));
  if (runtime_.config.metrics.user_labels && !session_.user().empty()) {
    services_.metrics->user_transfer_bytes(std::string(session_.user()), direction)
        .Increment(static_cast<double>(outcome.bytes));
  }
  if (transfer_->throttle.limited() && data_) {
    const double throttled = std::chrono::duration<double>(data_->throttled()).count();
    fields["throttled_seconds"] = throttled;
    services_.metrics->bandwidth_throttled(class_.name, direction).Increment(throttled);
  }
  const rules::UploadLimits& limits = transfer_->limits;
  if (limits.max_size && !limits.enforce && outcome.bytes > limits.remaining()) {
    log_.monitored_denial(limits.rule, transfer_->command.verb, rules::upload_excess_message(limits, outcome.bytes));
  }
  // A refusal is the backend doing its job (a missing file), not a fault of the gateway.
  log_.log(outcome.ok || refused ? LogLevel::kInfo : LogLevel::kWarn, "transfer", fields);
  write_xferlog(outcome, seconds);
}

void TransferCoordinator::write_xferlog(const data::TransferOutcome& outcome, double seconds) const {
  // xferlog(5) records files: listings (LIST, NLST, MLSD) have no file name or size.
  const std::string& verb = transfer_->command.verb;
  if (services_.xferlog == nullptr || (verb != "RETR" && verb != "STOR" && verb != "APPE" && verb != "STOU")) return;
  const std::string host = endpoints_.client.ip();
  log::XferlogEntry entry;
  entry.end = std::time(nullptr);
  entry.seconds = seconds;
  entry.remote_host = host;
  entry.bytes = outcome.bytes;
  entry.filename = transfer_->command.argument;
  entry.upload = transfer_->direction == data::Direction::kUpload;
  entry.user = log_.user();
  entry.complete = outcome.ok;
  services_.xferlog->write(log::format_xferlog_line(entry));
}

void TransferCoordinator::handle_transfer_reply(const ftp::Reply& reply) {
  if (reply.preliminary()) {
    if (transfer_) transfer_->backend_preliminary = true;
    if (!transfer_ || !transfer_->own_preliminary) downstream_.send(reply.wire());
    return;
  }
  if (!transfer_) {  // aborted: the data channel is gone already
    downstream_.send(reply.wire());
    return;
  }
  transfer_->held_final = reply;
  // The final reply waits until every byte reached its destination; an error ends the
  // transfer at once.
  if (transfer_->data_done || reply.code >= 400) complete_transfer();
}

void TransferCoordinator::complete_transfer() {
  if (transfer_->data_done && transfer_->outcome.size_exceeded) {
    refuse_oversized_upload();
    return;
  }
  const ftp::Reply final_reply = std::move(*transfer_->held_final);
  policy::TransferState state;
  state.data_done = transfer_->data_done;
  state.data_ok = transfer_->outcome.ok;
  state.data_error = transfer_->outcome.error;
  state.bytes = data_ ? data_->bytes() : 0;
  state.preliminary = transfer_->backend_preliminary;
  state.final_code = final_reply.code;
  state.final_line = final_reply.lines.empty() ? "" : final_reply.lines.front();
  const policy::TransferCompletion end = policy::complete_transfer(state);
  if (!transfer_->recorded) {
    record_transfer({end.ok, transfer_->data_done ? transfer_->outcome.bytes : state.bytes, end.error,
                     transfer_->data_done ? transfer_->outcome.sha256 : relayed_sha256()},
                    end.refused);
  }
  if (data_) {
    if (end.data_end == policy::TransferCompletion::DataEnd::kRefused) {
      data_->end_refused();
    } else {
      data_->end_download(end.data_end == policy::TransferCompletion::DataEnd::kConfirmed);
    }
  }
  transfer_.reset();
  retire_data_channel();
  if (end.replace_with_426) {
    downstream_.reply(426, "Connection closed; transfer aborted");
  } else {
    downstream_.send(final_reply.wire());
  }
  session_.resume_commands();
}

void TransferCoordinator::refuse_oversized_upload() {
  const rules::UploadLimits limits = transfer_->limits;
  const ftp::Command command = transfer_->command;
  const std::string message = rules::upload_excess_message(limits, transfer_->outcome.bytes + 1);
  record_transfer({false, transfer_->outcome.bytes, message, transfer_->outcome.sha256, true}, true);
  // An inspected upload never reached the backend: a file there of that name is an older
  // one and not ours to delete.
  const bool reached_backend = transfer_->scanner == nullptr;
  if (data_) {
    data_->drop_spool();
    data_->end_refused();
  }
  transfer_.reset();
  retire_data_channel();
  const policy::RefusalInfo& usual = policy::refusal_info(policy::Refusal::kUploadTooLarge);
  log_.denial(policy::Refusal::kUploadTooLarge, command.verb, usual.code, usual.text, message, limits.rule);
  if (!reached_backend || !limits.delete_partial || command.verb != "STOR" || command.argument.empty()) {
    downstream_.reply(usual.code, std::string(usual.text));
    session_.resume_commands();
    return;
  }
  // The reply waits for the DELE, so the client never sees the partial file listed.
  upstream_.send("DELE " + command.argument, [this, command](const ftp::Reply& reply) {
    if (reply.preliminary()) return;
    log_.log(reply.positive() ? LogLevel::kInfo : LogLevel::kWarn, "partial_deleted",
             {{"path", command.argument}, {"reply", reply.code}, {"result", reply.positive() ? "ok" : "failed"}});
    const policy::RefusalInfo& refused = policy::refusal_info(policy::Refusal::kUploadTooLarge);
    downstream_.reply(refused.code, std::string(refused.text));
    session_.resume_commands();
  });
}

// ---------------------------------------------------------------------------------------
// Inspected uploads (issue 16)

void TransferCoordinator::spool_upload() {
  const auto& inspection = runtime_.config.inspection;
  transfer_->spool = std::make_unique<inspection::Spool>(
      inspection::Spool::Settings{inspection.spool_dir, inspection.memory_threshold, services_.spool_budget});
  transfer_->keepalive = std::make_unique<net::Timer>(services_.base, [this] {
    if (!transfer_ || (transfer_->inspected && transfer_->inspected->forwarded())) return;
    upstream_.send("NOOP", [](const ftp::Reply&) {});
    transfer_->keepalive->arm(limits::kInspectionBackendKeepalive);
  });
  transfer_->keepalive->arm(limits::kInspectionBackendKeepalive);
  data_->start_spool(*transfer_->spool, transfer_->limits.relay_limit(), transfer_->throttle);
}

void TransferCoordinator::spooled(const data::TransferOutcome& outcome) {
  transfer_->spool_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - transfer_->started).count();
  if (outcome.ok) {
    if (transfer_->spool->on_disk()) log_.log(LogLevel::kDebug, "spooled", {{"bytes", outcome.bytes}, {"on_disk", true}});
    retire_data_channel();
    data::SpoolSender::Settings sender;
    sender.base = services_.base;
    sender.dialer = services_.dialer;
    sender.connect_timeout = runtime_.config.limits.data_connect_timeout;
    sender.stall_timeout = runtime_.config.data.stall_timeout;
    sender.upstream_tls = backend_data_tls();
    inspection::ScanSubject subject;
    subject.file_name = transfer_->command.argument;
    subject.client_ip = endpoints_.client.ip();
    subject.user = std::string(session_.user());
    InspectedUpload::Context context{services_, transfer_->inspection, *transfer_->scanner, upstream_, log_, std::move(sender),
                                     backend_data_target(), std::move(subject)};
    transfer_->inspected = std::make_unique<InspectedUpload>(
        std::move(context), transfer_->command, std::move(transfer_->spool),
        [this](const InspectedUpload::Result& result) { inspected(result); },
        [this](const ftp::Reply& reply) { downstream_.send(reply.wire()); });
    transfer_->inspected->start();
    return;
  }
  // The client's side failed: nothing reached the backend, which never saw the command.
  if (outcome.size_exceeded) {
    refuse_oversized_upload();  // 552; no partial file exists to delete
    return;
  }
  record_transfer(outcome);
  end_inspected(outcome.spool_failed
                    ? ftp::make_reply(452, "Requested action not taken: the gateway's upload spool is full")
                    : ftp::make_reply(426, "Connection closed; transfer aborted"));
}

void TransferCoordinator::inspected(const InspectedUpload::Result& result) {
  transfer_->inspection_result = result;
  record_transfer({result.ok, transfer_->outcome.bytes, result.error, transfer_->outcome.sha256}, result.refused);
  end_inspected(result.reply);
}

void TransferCoordinator::end_inspected(const std::string& reply) {
  if (data_) data_->drop_spool();  // before the download that owns its spool goes
  retire_inspection();
  transfer_.reset();
  retire_data_channel();
  downstream_.send(reply);
  session_.resume_commands();
}

void TransferCoordinator::retire_inspection() {
  // Abandoned at once: a reply or verdict that arrives before the deferred free must not
  // reach a transfer that is gone.
  if (transfer_->inspected) transfer_->inspected->abandon();
  if (transfer_->download) transfer_->download->abandon();
  retired_uploads_.retire(std::move(transfer_->inspected));
  retired_downloads_.retire(std::move(transfer_->download));
}

void TransferCoordinator::inspect_download() {
  if (!backend_data_endpoint_) {  // backend data_mode: active; --check refuses it with inspection
    end_inspected(ftp::make_reply(425, "Unable to build data connection: inspection needs a passive backend"));
    return;
  }
  transfer_->forwarded = true;
  const auto& config = runtime_.config;
  inspection::ScanSubject subject;
  subject.file_name = transfer_->command.argument;
  subject.client_ip = endpoints_.client.ip();
  subject.user = std::string(session_.user());
  InspectedDownload::Context context{
      services_,
      transfer_->inspection,
      *transfer_->scanner,
      upstream_,
      log_,
      data::SpoolReceiver::Settings{services_.base, services_.dialer, backend_data_tls(),
                                    config.limits.data_connect_timeout, config.data.stall_timeout},
      inspection::Spool::Settings{config.inspection.spool_dir, config.inspection.memory_threshold,
                                  services_.spool_budget},
      *backend_data_endpoint_,
      std::move(subject)};
  transfer_->download = std::make_unique<InspectedDownload>(
      std::move(context), transfer_->command,
      [this](const InspectedDownload::Result& result) { download_inspected(result); },
      [this](const ftp::Reply& reply) {
        // Given up (ABOR): the client never got the file, whatever the backend says of its
        // side (a 226 that crossed our ABOR must not read as a complete download).
        downstream_.send(reply.positive() ? ftp::make_reply(426, "Connection closed; transfer aborted")
                                          : reply.wire());
      });
  transfer_->download->start();
}

void TransferCoordinator::download_inspected(const InspectedDownload::Result& result) {
  transfer_->spool_seconds = result.spool_seconds;
  InspectedUpload::Result facts;  // what the transfer record says of the inspection
  facts.scanner = transfer_->scanner->name;
  facts.verdict = result.verdict;
  facts.signature = result.signature;
  facts.scan_seconds = result.scan_seconds;
  if (!result.verdict.empty()) transfer_->inspection_result = facts;
  if (transfer_->client_failed) {
    // The client's data connection ended while the file was spooled or scanned.
    record_transfer(*transfer_->client_failed);
    end_inspected(ftp::make_reply(426, "Connection closed; transfer aborted"));
    return;
  }
  if (!result.pass) {
    record_transfer({false, 0, result.error, ""}, result.refused);
    if (data_) data_->end_refused();
    end_inspected(result.reply);
    return;
  }
  transfer_->download_final = result.reply;
  transfer_->unspooling = true;
  transfer_->unspool_started = std::chrono::steady_clock::now();
  data_->start_unspool(transfer_->download->spool(), transfer_->throttle);
}

void TransferCoordinator::unspooled(const data::TransferOutcome& outcome) {
  if (!transfer_->unspooling) {
    transfer_->client_failed = outcome;  // answered once the backend's side is settled
    return;
  }
  if (transfer_->inspection_result) {
    transfer_->inspection_result->forward_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - transfer_->unspool_started).count();
  }
  record_transfer(outcome);
  if (data_) data_->end_download(outcome.ok);
  end_inspected(outcome.ok ? transfer_->download_final : ftp::make_reply(426, "Connection closed; transfer aborted"));
}

void TransferCoordinator::abort() {
  if (!transfer_) return;
  log_.log(LogLevel::kInfo, "abort", {{"command", transfer_->command.verb}});
  const uint64_t relayed = transfer_->data_done ? transfer_->outcome.bytes : data_ ? data_->bytes() : 0;
  if (data_) {
    data_->drop_spool();
    data_->reset_upstream();
  }
  retire_data_channel();
  if (transfer_->scanner != nullptr) {
    // Spooling, scanning or sending: whatever was spooled goes with the transfer. Once
    // the backend has the command, it gets ABOR too (its partial file is its own).
    const bool forwarded = (transfer_->inspected && transfer_->inspected->forwarded()) ||
                           (transfer_->download && transfer_->download->backend_busy());
    record_transfer({false, relayed, "aborted by the client", transfer_->outcome.sha256});
    retire_inspection();
    transfer_.reset();
      if (!forwarded) {
      downstream_.reply(426, "Connection closed; transfer aborted");
      downstream_.reply(226, "ABOR command successful");
      return;
    }
    upstream_.send("ABOR", [this](const ftp::Reply& reply) { downstream_.send(reply.wire()); });
    return;
  }
  if (!transfer_->forwarded) {
    transfer_.reset();
    downstream_.reply(426, "Connection closed; transfer aborted");
    downstream_.reply(226, "ABOR command successful");
    return;
  }
  // The backend sees its data connection close, ends the transfer (426/226) and answers
  // ABOR; both replies are relayed in order.
  transfer_.reset();
  upstream_.send("ABOR", [this](const ftp::Reply& reply) { downstream_.send(reply.wire()); });
}

void TransferCoordinator::retire_data_channel() {
  if (!data_) return;
  data_->drop_spool();
  data_->release_reservation();
  data_->detach();
  if (data_->lingering()) {
    keep_until_quiet(std::move(data_));
    return;
  }
  // The channel may be calling us right now: free it from the event loop, not here.
  retired_data_.retire(std::move(data_));
}

void TransferCoordinator::keep_until_quiet(std::unique_ptr<data::DataChannel> channel) {
  // Freed at once, a channel whose client still sends (a refused upload) would make the
  // kernel answer with RST, and the client lose the refusal on the control channel.
  if (lingering_data_.size() >= limits::kLingeringDataChannelsPerSession) {
    retired_data_.retire(std::move(lingering_data_.front()));
    lingering_data_.erase(lingering_data_.begin());
  }
  data::DataChannel* raw = channel.get();
  channel->on_quiet([this, raw] {
    auto it = std::find_if(lingering_data_.begin(), lingering_data_.end(),
                           [raw](const auto& held) { return held.get() == raw; });
    if (it == lingering_data_.end()) return;
    retired_data_.retire(std::move(*it));
    lingering_data_.erase(it);
  });
  lingering_data_.push_back(std::move(channel));
}

void TransferCoordinator::cut_by_shutdown() {
  if (transfer_ && !transfer_->recorded) {
    record_transfer({false, data_ ? data_->bytes() : 0, "cut by shutdown (limits.drain_timeout)", relayed_sha256()});
  }
}

void TransferCoordinator::session_ending() {
  if (data_) data_->drop_spool();
  if (transfer_ && transfer_->scanner != nullptr) {
    if (!transfer_->recorded) {
      record_transfer({false, transfer_->data_done ? transfer_->outcome.bytes : (data_ ? data_->bytes() : 0),
                       "session ended during the transfer", transfer_->outcome.sha256});
    }
    retire_inspection();
    transfer_.reset();
  }
  // Every transfer gets its record, also one cut short because the session ended.
  if (transfer_ && !transfer_->recorded && transfer_->forwarded) {
    if (data_ && !transfer_->data_done) data_->reset_upstream();
    record_transfer({false, data_ ? data_->bytes() : 0,
                     transfer_->data_done ? transfer_->outcome.error : "session ended during the transfer",
                     relayed_sha256()});
  }
  retire_data_channel();
}

}  // namespace ftpsgate::session
