#include "session/inspected_download.h"

namespace ftpsgate::session {

InspectedDownload::InspectedDownload(Context context, ftp::Command command, Done done, Orphan orphan)
    : context_(std::move(context)),
      command_(std::move(command)),
      done_(std::move(done)),
      orphan_(std::move(orphan)),
      self_(std::make_shared<InspectedDownload*>(this)) {}

InspectedDownload::~InspectedDownload() {
  *self_ = nullptr;
  scan_.reset();      // before the spool they read and write
  receiver_.reset();  // a download cut here resets the backend's data connection
}

InspectedDownload::Result InspectedDownload::base_result() const {
  Result result;
  const auto seconds = [](auto from, auto to) { return std::chrono::duration<double>(to - from).count(); };
  const auto now = std::chrono::steady_clock::now();
  if (scan_started_ != std::chrono::steady_clock::time_point{}) {
    result.spool_seconds = seconds(started_, scan_started_);
    result.scan_seconds = seconds(scan_started_, now);
  } else {
    result.spool_seconds = seconds(started_, now);
  }
  result.verdict = verdict_;
  result.signature = signature_;
  return result;
}

void InspectedDownload::start() {
  started_ = std::chrono::steady_clock::now();
  spool_ = std::make_unique<inspection::Spool>(context_.spool);
  std::weak_ptr<InspectedDownload*> weak = self_;
  Orphan orphan = orphan_;
  context_.upstream.send(command_.verb + (command_.argument.empty() ? "" : " " + command_.argument),
                         [weak, orphan](const ftp::Reply& reply) {
                           auto self = weak.lock();
                           if (self && *self != nullptr) {
                             (*self)->backend_reply(reply);
                           } else if (!reply.preliminary()) {
                             orphan(reply);
                           }
                         });
  receiver_ = std::make_unique<data::SpoolReceiver>(context_.receiver, *spool_,
                                                    [weak](const data::SpoolReceiver::Outcome& outcome) {
                                                      auto self = weak.lock();
                                                      if (self && *self != nullptr) (*self)->received(outcome);
                                                    });
  receiver_->start(context_.backend_data);
}

void InspectedDownload::abandon() {
  *self_ = nullptr;
  finished_ = true;
  scan_.reset();
  receiver_.reset();
}

void InspectedDownload::backend_reply(const ftp::Reply& reply) {
  if (reply.preliminary()) return;  // the client had the gateway's own 150
  backend_final_ = reply;
  // Refused at once (550 no such file): no data connection will come.
  if (!reply.positive() && !received_) receiver_.reset();
  maybe_scan();
}

void InspectedDownload::received(const data::SpoolReceiver::Outcome& outcome) {
  received_ = outcome;
  maybe_scan();
}

void InspectedDownload::maybe_scan() {
  if (finished_ || !backend_final_) return;
  Result result = base_result();
  const ftp::Reply& final_reply = *backend_final_;
  if (received_ && received_->spool_full) {
    // Before the backend's word on the file: it answers our cut, and that answer is ours.
    result.error = received_->error;
    result.reply = ftp::make_reply(451, "Requested action aborted: the gateway's download spool is full, try again later");
    finish(std::move(result));
    return;
  }
  if (!final_reply.positive()) {
    // The backend's own refusal (a missing file, permissions) goes to the client as it is.
    result.refused = !received_ || received_->ok;
    result.error = received_ && !received_->ok ? received_->error : "backend refused: " + std::to_string(final_reply.code);
    result.reply = final_reply.wire();
    finish(std::move(result));
    return;
  }
  if (!received_) return;  // a 226 before the last byte arrived: wait for the data
  if (!received_->ok) {
    result.error = received_->error;
    result.reply = ftp::make_reply(426, "Connection closed; transfer aborted");
    finish(std::move(result));
    return;
  }
  receiver_.reset();
  scan_started_ = std::chrono::steady_clock::now();
  context_.subject.content = spool_.get();
  std::weak_ptr<InspectedDownload*> weak = self_;
  scan_ = std::make_unique<SpoolScan>(
      SpoolScan::Context{context_.services, context_.policy, context_.scanner, context_.log, "Download"},
      context_.subject, [weak](const SpoolScan::Decision& decision) {
        auto self = weak.lock();
        if (self && *self != nullptr) (*self)->decided(decision);
      });
  scan_->start();
}

void InspectedDownload::decided(const SpoolScan::Decision& decision) {
  verdict_ = decision.verdict;
  signature_ = decision.signature;
  Result result = base_result();
  result.pass = decision.pass;
  if (decision.pass) {
    result.reply = backend_final_->wire();
  } else {
    result.refused = true;
    result.error = decision.error;
    result.reply = decision.reply;
  }
  finish(std::move(result));
}

void InspectedDownload::finish(Result result) {
  if (finished_) return;
  finished_ = true;
  const Done done = done_;  // it may retire this download
  done(result);
}

}  // namespace ftpsgate::session
