// libFuzzer target: the pure scanner protocols of upload inspection (issue 16): clamd
// replies, ICAP URLs (a parsed URL prints back to itself), ICAP response heads (bounded,
// and a verdict for every final one), Encapsulated headers and chunked bodies (skipped
// alike in one piece or byte by byte). The first byte picks what the rest is.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "fuzz_check.h"
#include "inspection/clamd_protocol.h"
#include "inspection/icap_body.h"
#include "inspection/icap_message.h"

namespace {

using namespace ftpsgate::inspection;

void check_clamd(std::string_view reply) {
  const ScanResult result = parse_clamd_reply(reply);
  if (result.verdict == Verdict::kInfected) FUZZ_CHECK(!result.signature.empty() && result.signature.size() <= reply.size());
  if (result.verdict == Verdict::kError) FUZZ_CHECK(!result.error.empty());
}

void check_url(std::string_view text) {
  auto url = parse_icap_url(text);
  if (!url) return;
  FUZZ_CHECK(!url->host.empty() && !url->service.empty() && url->port != 0);
  auto again = parse_icap_url(url->text());
  FUZZ_CHECK(again && again->host == url->host && again->port == url->port && again->service == url->service);
}

void check_response(std::string_view data) {
  auto parsed = parse_icap_response(data);
  if (auto* response = std::get_if<IcapResponse>(&parsed)) {
    FUZZ_CHECK(response->status >= 100 && response->status <= 599);
    FUZZ_CHECK(response->head_length <= data.size() && response->head_length <= kIcapMaxHead);
    const ScanResult verdict = icap_verdict(*response);
    if (verdict.verdict == Verdict::kInfected) FUZZ_CHECK(!verdict.signature.empty() && verdict.signature.size() <= 256 + 64);
    if (response->status != 200 && response->status != 204) {
      FUZZ_CHECK(verdict.verdict != Verdict::kClean);
    }
  } else if (std::holds_alternative<IcapParse>(parsed)) {
    FUZZ_CHECK(data.size() <= kIcapMaxHead);
  }
}

void check_body(std::string_view data) {
  if (auto encapsulated = parse_icap_encapsulated(data)) {
    FUZZ_CHECK(encapsulated->has_body || data.find("null-body") != std::string_view::npos);
  }
  IcapBodySkipper whole;
  std::size_t used = 0;
  const auto status = whole.feed(data, used);
  FUZZ_CHECK(used <= data.size());
  if (status == IcapBodySkipper::Status::kNeedMore) FUZZ_CHECK(used == data.size());
  IcapBodySkipper bytes;
  auto last = IcapBodySkipper::Status::kNeedMore;
  std::size_t total = 0;
  for (std::size_t at = 0; at < data.size() && last == IcapBodySkipper::Status::kNeedMore; ++at) {
    std::size_t one = 0;
    last = bytes.feed(data.substr(at, 1), one);
    total += one;
  }
  FUZZ_CHECK(last == status);
  if (status == IcapBodySkipper::Status::kDone) FUZZ_CHECK(total == used && bytes.data_bytes() == whole.data_bytes());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: check_clamd(text); break;
    case 1: check_url(text); break;
    case 3: check_body(text); break;
    default: check_response(text); break;
  }
  return 0;
}
