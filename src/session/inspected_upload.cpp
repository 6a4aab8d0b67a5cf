#include "session/inspected_upload.h"

#include "ftp/address_codec.h"

namespace ftpsgate::session {

InspectedUpload::InspectedUpload(Context context, ftp::Command command, std::unique_ptr<inspection::Spool> spool,
                                 Done done, Orphan orphan)
    : context_(std::move(context)),
      command_(std::move(command)),
      spool_(std::move(spool)),
      done_(std::move(done)),
      orphan_(std::move(orphan)),
      self_(std::make_shared<InspectedUpload*>(this)) {}

InspectedUpload::~InspectedUpload() {
  *self_ = nullptr;
  scan_.reset();    // before the spool it reads
  sender_.reset();  // likewise
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

void InspectedUpload::abandon() {
  *self_ = nullptr;
  finished_ = true;
  scan_.reset();
  sender_.reset();
}

void InspectedUpload::start() {
  scan_started_ = std::chrono::steady_clock::now();
  context_.subject.content = spool_.get();
  std::weak_ptr<InspectedUpload*> weak = self_;
  scan_ = std::make_unique<SpoolScan>(
      SpoolScan::Context{context_.services, context_.policy, context_.scanner, context_.log, "Upload"},
      context_.subject, [weak](const SpoolScan::Decision& decision) {
        auto self = weak.lock();
        if (self && *self != nullptr) (*self)->decided(decision);
      });
  scan_->start();
}

void InspectedUpload::decided(const SpoolScan::Decision& decision) {
  verdict_ = decision.verdict;
  signature_ = decision.signature;
  if (decision.pass) {
    forward();
    return;
  }
  Result refused = base_result();
  refused.refused = true;
  refused.error = decision.error;
  refused.reply = decision.reply;
  finish(std::move(refused));
}

void InspectedUpload::forward() {
  forward_started_ = std::chrono::steady_clock::now();
  // A fresh passive connection: the one prepared at the client's PASV may have timed out
  // at the backend while the upload spooled and the scanner worked.
  context_.upstream.send(context_.upstream.server()->prefers_epsv() ? "EPSV" : "PASV",
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
  const net::DialTarget endpoint = context_.backend.with_port(*port);
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
