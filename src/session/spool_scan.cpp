#include "session/spool_scan.h"

#include <cctype>

#include "ftp/reply.h"

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

SpoolScan::SpoolScan(Context context, inspection::ScanSubject subject, Done done)
    : context_(std::move(context)),
      subject_(std::move(subject)),
      done_(std::move(done)),
      self_(std::make_shared<SpoolScan*>(this)) {}

SpoolScan::~SpoolScan() {
  *self_ = nullptr;
  scan_.reset();
}

std::string SpoolScan::direction() const {
  std::string lowered = context_.what;
  if (!lowered.empty()) lowered[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(lowered[0])));
  return lowered;
}

std::string SpoolScan::engine() const { return context_.scanner.engine == ScanEngine::kIcap ? "icap" : "clamd"; }

void SpoolScan::start() {
  started_ = std::chrono::steady_clock::now();
  const ClassInspection& policy = context_.policy;
  const uint64_t size = subject_.content->size();
  if (policy.max_scan_size && size > *policy.max_scan_size) {
    context_.services.metrics->inspections(engine(), "skipped").Increment();
    const std::string why = "file larger than max_scan_size (" + std::to_string(*policy.max_scan_size) + " bytes)";
    context_.log.log(policy.allow_above_max ? LogLevel::kWarn : LogLevel::kInfo, "inspection",
                     {{"scanner", context_.scanner.name}, {"engine", engine()}, {"verdict", "skipped"},
                      {"direction", direction()},
                      {"path", subject_.file_name}, {"bytes", size}, {"message", why},
                      {"passed", policy.allow_above_max}});
    Decision decision;
    decision.pass = policy.allow_above_max;
    if (!decision.pass) {
      decision.error = why;
      decision.reply = ftp::make_reply(550, context_.what + " rejected: " + why);
    }
    const Done done = done_;  // it may free this scan
    done(decision);
    return;
  }
  scanner_ = context_.services.scanners->get(context_.scanner);
  std::weak_ptr<SpoolScan*> weak = self_;
  scan_ = scanner_->scan(subject_, [weak](inspection::ScanResult result) {
    auto self = weak.lock();
    if (self && *self != nullptr) (*self)->verdict(result);
  });
}

void SpoolScan::verdict(const inspection::ScanResult& result) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  const ClassInspection& policy = context_.policy;
  auto& metrics = *context_.services.metrics;
  Decision decision;
  decision.verdict = std::string(inspection::verdict_name(result.verdict));
  decision.signature = printable_signature(result.signature);
  metrics.inspections(engine(), decision.verdict).Increment();
  metrics.observe_scan(engine(), seconds);
  nlohmann::json fields = {{"scanner", context_.scanner.name}, {"engine", engine()},
                           {"verdict", decision.verdict},     {"direction", direction()},
                           {"path", subject_.file_name},
                           {"bytes", subject_.content->size()}, {"seconds", seconds}};
  if (!decision.signature.empty()) fields["signature"] = decision.signature;
  if (result.verdict == inspection::Verdict::kError) {
    fields["error"] = result.error;
    fields["passed"] = policy.allow_on_error;
  }
  context_.log.log(result.verdict == inspection::Verdict::kClean ? LogLevel::kInfo : LogLevel::kWarn, "inspection",
                   fields);
  decision.pass = result.verdict == inspection::Verdict::kClean ||
                  (result.verdict == inspection::Verdict::kError && policy.allow_on_error);
  if (!decision.pass && result.verdict == inspection::Verdict::kInfected) {
    decision.error = "infected: " + decision.signature;
    decision.reply = ftp::make_reply(550, context_.what + " rejected: " + decision.signature + " found");
  } else if (!decision.pass) {
    decision.error = "scan failed: " + result.error;
    decision.reply = ftp::make_reply(451, "Requested action aborted: the " + direction() + " could not be scanned");
  }
  const Done done = done_;  // it may free this scan
  done(decision);
}

}  // namespace ftpsgate::session
