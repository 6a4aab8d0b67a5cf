// libFuzzer target: FEAT parsing and merging (src/ftp/feat.h). The input is a backend's
// FEAT answer, lines split at LF: assembled by the reply assembler as the gateway does,
// and also taken as the feature lines of a 211 reply directly.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "ftp/feat.h"
#include "ftp/reply.h"
#include "fuzz_check.h"
#include "fuzz_lines.h"

namespace {

using namespace ftpsgate::ftp;
using ftpsgate::fuzz::backend_lines;
using ftpsgate::fuzz::split;

bool printable(std::string_view text) {
  for (const char ch : text) {
    const auto byte = static_cast<unsigned char>(ch);
    if (byte < 0x20 || byte == 0x7f) return false;
  }
  return true;
}

bool is_blank(char ch) { return ch == ' ' || ch == '\t'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_blank(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_blank(text.back())) text.remove_suffix(1);
  return text;
}

std::string first_word_upper(std::string_view feature) {
  std::string word(feature.substr(0, feature.find_first_of(" \t")));
  for (char& ch : word) {
    if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
  }
  return word;
}

// build_feat_reply's output is one well-formed 211 reply whose features read back as given.
std::vector<std::string> round_trip(const std::vector<std::string>& features) {
  const std::string wire = build_feat_reply(features);
  FUZZ_CHECK(wire.size() >= 2 && wire.compare(wire.size() - 2, 2, "\r\n") == 0);
  const auto lines = split(wire, "\r\n");
  ReplyAssembler assembler(ReplyLimits{1u << 20, 1u << 30});
  for (std::size_t i = 0; i < lines.size(); ++i) {
    // SECURITY: no CR or LF inside a line, so no forged reply lines.
    FUZZ_CHECK(lines[i].find_first_of("\r\n") == std::string_view::npos);
    const auto status = assembler.feed_line(lines[i]);
    FUZZ_CHECK(status == (i + 1 == lines.size() ? ReplyAssembler::Status::kComplete
                                                 : ReplyAssembler::Status::kNeedMore));
  }
  const Reply reply = assembler.take();
  FUZZ_CHECK(reply.code == 211);
  return parse_feat_reply(reply);
}

void check_feat(const Reply& reply) {
  const std::vector<std::string> features = parse_feat_reply(reply);
  if (reply.code != 211) FUZZ_CHECK(features.empty());
  for (const auto& feature : features) {
    FUZZ_CHECK(!feature.empty() && trim(feature) == feature);
  }

  const std::vector<std::string> relayed = relayable_backend_features(features);
  FUZZ_CHECK(relayed.size() <= kMaxRelayedFeatures);
  std::unordered_set<std::string> names;
  std::size_t from = 0;  // relayed is a subsequence of features
  for (const auto& feature : relayed) {
    FUZZ_CHECK(!feature.empty() && feature.size() <= kMaxFeatureLength);
    FUZZ_CHECK(printable(feature) && trim(feature) == feature);
    const std::string name = first_word_upper(feature);
    for (const char* owned : {"AUTH", "PBSZ", "PROT", "CCC", "EPSV", "EPRT", "PASV", "PORT", "HOST", "LPSV",
                              "LPRT", "ADAT", "MIC", "CONF", "ENC"}) {
      FUZZ_CHECK(name != owned);
    }
    FUZZ_CHECK(names.insert(name).second);
    while (from < features.size() && features[from] != feature) ++from;
    FUZZ_CHECK(from < features.size());
    ++from;
  }

  for (const bool allow_ccc : {false, true}) {
    std::vector<std::string> merged = gateway_features(allow_ccc);
    merged.insert(merged.end(), relayed.begin(), relayed.end());
    const auto parsed = round_trip(merged);
    FUZZ_CHECK(parsed == merged);
    std::size_t ccc = 0;
    for (const auto& feature : parsed) ccc += first_word_upper(feature) == "CCC" ? 1 : 0;
    FUZZ_CHECK(ccc == (allow_ccc ? 1u : 0u));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::string_view> lines = backend_lines(data, size);

  // As the gateway reads it from the backend.
  ReplyAssembler assembler;
  for (const auto line : lines) {
    if (assembler.feed_line(line) == ReplyAssembler::Status::kComplete) check_feat(assembler.take());
  }

  // The same lines as the body of a 211 reply.
  Reply reply;
  reply.code = 211;
  reply.lines.emplace_back("211-Features:");
  for (const auto line : lines) reply.lines.emplace_back(line);
  reply.lines.emplace_back("211 End");
  check_feat(reply);

  // Raw lines straight into the builder: unprintable ones are skipped, the rest read back trimmed.
  std::vector<std::string> raw(lines.begin(), lines.end());
  std::vector<std::string> expected;
  for (const auto& line : raw) {
    if (!line.empty() && printable(line) && !trim(line).empty()) expected.emplace_back(trim(line));
  }
  FUZZ_CHECK(round_trip(raw) == expected);
  return 0;
}
