#include "session/inspected_upload.h"

#include "ftp/address_codec.h"

namespace ftpsgate::session {

namespace {
// The scanner's name for a finding goes into a reply line and the logs: printable ASCII,
// bounded (an ICAP header may be 64 KiB).
std::string printable_signature(std::string_view text) {
  constexpr std::size_t kMax = 200;
  std::string out;
  for (char c : text.substr(0, kMax)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  return out;
}
}  // namespace

InspectedUpload::InspectedUpload(Context context, ftp::Command command, std::unique_ptr<inspection::Spool> spool,
                                 Done done, Orphan orphan)
    : context_(std::move(context)),
      command_(std::move(command)),
      spool_(std::move(spool)),
      done_(std::move(done)),
      orphan_(std::move(orphan)),
      self_(std::make_shared<InspectedUpload*>(this)) {
  context_.subject.content = spool_.get();
}

InspectedUpload::~InspectedUpload() {
  *self_ = nullptr;
  scan_.reset();
  sender_.reset();  // before the spool it reads
}

UpstreamChannel::ReplyHandler InspectedUpload::guarded(void (InspectedUpload::*handler)(const ftp::Reply&),
                                                       bool orphan_final) {
  std::weak_ptr<InspectedUpload*> weak = self_;
  Orphan orphan = orphan_;
  return [weak, handler, orphan_final, orphan](const ftp::Reply& reply) {
    auto self = weak.lock();
    if (self && *self != nullptr) {
      ((*self)->*handler)(reply);
    } else if (orphan_final) {
      orphan(reply);
    }
  };
}

InspectedUpload::Result InspectedUpload::base_result() const {
  Result result;
  const auto seconds = [](auto from, auto to) { return std::chrono::duration<double>(to - from).count(); };
  const auto now = std::chrono::steady_clock::now();
  if (forward_started_ != std::chrono::steady_clock::time_point{}) {
    result.scan_seconds = seconds(scan_started_, forward_started_);
    result.forward_seconds = seconds(forward_started_, now);
  } else {
    result.scan_seconds = seconds(scan_started_, now);
  }
  result.verdict = verdict_;
  result.signature = signature_;
  result.scanner = context_.scanner.name;
  return result;
}

void InspectedUpload::start() {
  scan_started_ = std::chrono::steady_clock::now();
  const ClassInspection& policy = context_.cls.inspection;
  auto& metrics = *context_.services.metrics;
  const std::string engine = context_.scanner.engine == ScanEngine::kIcap ? "icap" : "clamd";
  if (policy.max_scan_size && spool_->size() > *policy.max_scan_size) {
    metrics.inspections(engine, "skipped").Increment();
    const std::string why = "file larger than max_scan_size (" + std::to_string(*policy.max_scan_size) + " bytes)";
    context_.log.log(policy.allow_above_max ? LogLevel::kWarn : LogLevel::kInfo, "inspection",
                     {{"scanner", context_.scanner.name}, {"engine", engine}, {"verdict", "skipped"},
                      {"path", command_.argument}, {"bytes", spool_->size()}, {"message", why},
                      {"passed", policy.allow_above_max}});
    if (policy.allow_above_max) {
      forward();
      return;
    }
    Result result = base_result();
    result.refused = true;
    result.error = why;
    result.reply = ftp::make_reply(550, "Upload rejected: " + why);
    finish(std::move(result));
    return;
  }
  scanner_ = context_.services.scanners->get(context_.scanner);
  std::weak_ptr<InspectedUpload*> weak = self_;
  scan_ = scanner_->scan(context_.subject, [weak](inspection::ScanResult result) {
    auto self = weak.lock();
    if (self && *self != nullptr) (*self)->verdict(result);
  });
}

void InspectedUpload::verdict(const inspection::ScanResult& result) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - scan_started_).count();
  const std::string engine(scanner_->engine());
  const ClassInspection& policy = context_.cls.inspection;
  auto& metrics = *context_.services.metrics;
  verdict_ = std::string(inspection::verdict_name(result.verdict));
  signature_ = printable_signature(result.signature);
  metrics.inspections(engine, verdict_).Increment();
  metrics.observe_scan(engine, seconds);
  nlohmann::json fields = {{"scanner", context_.scanner.name}, {"engine", engine},       {"verdict", verdict_},
                           {"path", command_.argument},        {"bytes", spool_->size()}, {"seconds", seconds}};
  if (!signature_.empty()) fields["signature"] = signature_;
  if (result.verdict == inspection::Verdict::kError) {
    fields["error"] = result.error;
    fields["passed"] = policy.allow_on_error;
  }
  context_.log.log(result.verdict == inspection::Verdict::kClean ? LogLevel::kInfo : LogLevel::kWarn, "inspection",
                   fields);
  if (result.verdict == inspection::Verdict::kClean ||
      (result.verdict == inspection::Verdict::kError && policy.allow_on_error)) {
    forward();
    return;
  }
  Result refused = base_result();
  refused.refused = true;
  if (result.verdict == inspection::Verdict::kInfected) {
    refused.error = "infected: " + signature_;
    refused.reply = ftp::make_reply(550, "Upload rejected: " + signature_ + " found");
  } else {
    refused.error = "scan failed: " + result.error;
    refused.reply = ftp::make_reply(451, "Requested action aborted: the upload could not be scanned");
  }
  finish(std::move(refused));
}

void InspectedUpload::forward() {
  forward_started_ = std::chrono::steady_clock::now();
  // A fresh passive connection: the one prepared at the client's PASV may have timed out
  // at the backend while the upload spooled and the scanner worked.
  context_.upstream.send(context_.backend_host.is_v6() ? "EPSV" : "PASV",
                         guarded(&InspectedUpload::backend_passive, false));
}

void InspectedUpload::backend_passive(const ftp::Reply& reply) {
  if (reply.preliminary()) return;
  const std::optional<uint16_t> port = ftp::parse_passive_reply_port(reply.code, reply.text());
  if (!port) {
    Result result = base_result();
    result.error = "the backend's passive reply was not usable: " + std::string(reply.text());
    result.reply = ftp::make_reply(451, "Requested action aborted: the backend did not open a data connection");
    finish(std::move(result));
    return;
  }
  // SECURITY: the backend host we already talk to, whatever address its reply names.
  net::SocketAddress endpoint = context_.backend_host;
  endpoint.set_port(*port);
  forwarded_ = true;
  context_.upstream.send(command_.verb + (command_.argument.empty() ? "" : " " + command_.argument),
                         guarded(&InspectedUpload::backend_final, true));
  std::weak_ptr<InspectedUpload*> weak = self_;
  sender_ = std::make_unique<data::SpoolSender>(context_.sender, *spool_, [weak](bool ok, const std::string& error) {
    auto self = weak.lock();
    if (self && *self != nullptr) (*self)->sender_done(ok, error);
  });
  sender_->start(endpoint);
}

void InspectedUpload::backend_final(const ftp::Reply& reply) {
  if (reply.preliminary()) return;  // the client had the gateway's own 150
  backend_final_ = reply;
  if (!reply.positive()) sender_.reset();  // refused (e.g. 553): stop sending, reset
  maybe_finish();
}

void InspectedUpload::sender_done(bool ok, const std::string& error) {
  sender_ok_ = ok;
  sender_error_ = error;
  maybe_finish();
}

void InspectedUpload::maybe_finish() {
  if (!backend_final_) return;
  const ftp::Reply& final_reply = *backend_final_;
  Result result = base_result();
  if (!final_reply.positive()) {
    // The backend's own refusal (permissions, quota, a name it rejects) goes to the client.
    result.refused = true;
    result.error = "backend refused: " + std::to_string(final_reply.code);
    result.reply = final_reply.wire();
    finish(std::move(result));
    return;
  }
  if (!sender_ok_) return;  // a 226 before the last byte left: wait for the sender
  if (!*sender_ok_) {
    result.error = sender_error_;
    result.reply = ftp::make_reply(451, "Requested action aborted: the upload did not reach the backend");
    finish(std::move(result));
    return;
  }
  result.ok = true;
  result.reply = final_reply.wire();
  finish(std::move(result));
}

void InspectedUpload::finish(Result result) {
  if (finished_) return;
  finished_ = true;
  scan_.reset();
  done_(result);  // may retire this upload (freed later, from the loop)
}

}  // namespace ftpsgate::session
