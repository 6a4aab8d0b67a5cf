#include "inspection/clamd_protocol.h"

#include <algorithm>
#include <string>

namespace ftpsgate::inspection {

namespace {

bool printable(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte >= 0x20 && byte < 0x7f;
  });
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.back() == '\0' || text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  return text;
}

}  // namespace

std::string_view verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::kClean: return "clean";
    case Verdict::kInfected: return "infected";
    case Verdict::kError: return "error";
  }
  return "error";
}

std::string_view clamd_instream_command() {
  static constexpr char kCommand[] = "zINSTREAM";
  return std::string_view(kCommand, sizeof(kCommand));  // with the NUL
}

std::array<unsigned char, 4> clamd_chunk_prefix(uint32_t length) {
  return {static_cast<unsigned char>(length >> 24), static_cast<unsigned char>(length >> 16),
          static_cast<unsigned char>(length >> 8), static_cast<unsigned char>(length)};
}

ScanResult parse_clamd_reply(std::string_view reply) {
  if (reply.size() > kClamdMaxReply) return ScanResult::failed("clamd reply too long");
  const std::string_view line = trimmed(reply);
  if (line.empty()) return ScanResult::failed("empty clamd reply");
  if (!printable(line)) return ScanResult::failed("clamd reply with control characters");
  // "stream: ..." (INSTREAM) or "1: stream: ..." (IDSESSION); a signature name may hold ": ".
  constexpr std::string_view kStream = "stream: ";
  const std::size_t at = line.find(kStream);
  const std::string_view status = at == std::string_view::npos ? line : line.substr(at + kStream.size());
  if (status == "OK") return ScanResult::clean();
  constexpr std::string_view kFound = " FOUND";
  if (status.size() > kFound.size() && status.ends_with(kFound)) {
    const std::string_view name = trimmed(status.substr(0, status.size() - kFound.size()));
    if (!name.empty()) return ScanResult::infected(std::string(name));
  }
  return ScanResult::failed("clamd: " + std::string(line));
}

}  // namespace ftpsgate::inspection
