#include "ftp/feat.h"

#include <algorithm>
#include <cctype>
#include <array>
#include <cstddef>
#include <string_view>
#include <unordered_set>

namespace ftpsgate::ftp {

namespace {

// Features the gateway answers itself or cannot relay (it rewrites the data channel and
// terminates TLS), compared case-insensitively on the first word.
constexpr std::array<std::string_view, 15> kNotRelayed = {
    "AUTH", "PBSZ", "PROT", "CCC", "EPSV", "EPRT", "PASV", "PORT",
    "HOST", "LPSV", "LPRT", "ADAT", "MIC",  "CONF", "ENC",
};

std::string upper_ascii(std::string_view text) {
  std::string out(text);
  for (char& ch : out) {
    if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
  }
  return out;
}

std::string_view trim(std::string_view text) {
  constexpr std::string_view kSpace = " \t";
  const std::size_t first = text.find_first_not_of(kSpace);
  if (first == std::string_view::npos) return {};
  const std::size_t last = text.find_last_not_of(kSpace);
  return text.substr(first, last - first + 1);
}

std::string_view first_word(std::string_view feature) {
  return feature.substr(0, feature.find_first_of(" \t"));
}

// SECURITY: backend text is copied into our reply to the client; control bytes (and CR/LF
// in particular) could forge reply lines, so such features are dropped.
bool printable(std::string_view text) {
  for (const char ch : text) {
    const auto byte = static_cast<unsigned char>(ch);
    if (byte < 0x20 || byte == 0x7f) return false;
  }
  return true;
}

}  // namespace

std::vector<std::string> parse_feat_reply(const Reply& reply) {
  std::vector<std::string> out;
  if (reply.code != 211 || reply.lines.size() < 2) return out;
  for (std::size_t i = 1; i + 1 < reply.lines.size(); ++i) {
    const std::string_view feature = trim(reply.lines[i]);
    if (!feature.empty()) out.emplace_back(feature);
  }
  return out;
}

std::vector<std::string> relayable_backend_features(const std::vector<std::string>& backend) {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;  // upper-cased first words
  for (const auto& raw : backend) {
    if (out.size() >= kMaxRelayedFeatures) break;
    const std::string_view feature = trim(raw);
    if (feature.empty() || feature.size() > kMaxFeatureLength || !printable(feature)) continue;
    std::string name = upper_ascii(first_word(feature));
    bool owned = false;
    for (const auto not_relayed : kNotRelayed) owned = owned || name == not_relayed;
    if (owned || !seen.insert(std::move(name)).second) continue;
    out.emplace_back(feature);
  }
  return out;
}

std::vector<std::string> gateway_features(bool allow_ccc) {
  std::vector<std::string> out = {"AUTH TLS", "AUTH SSL", "PBSZ", "PROT"};
  if (allow_ccc) out.emplace_back("CCC");
  for (const char* feature : {"EPSV", "EPRT", "HOST"}) out.emplace_back(feature);
  return out;
}

std::string build_feat_reply(const std::vector<std::string>& features) {
  std::string out = "211-Features:\r\n";
  for (const auto& feature : features) {
    if (feature.empty() || !printable(feature)) continue;  // SECURITY: no forged reply lines
    out += ' ';
    out += feature;
    out += "\r\n";
  }
  out += "211 End\r\n";
  return out;
}

std::vector<std::string> common_features(const std::vector<std::vector<std::string>>& per_server) {
  if (per_server.empty()) return {};
  const auto lower = [](std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
  };
  std::vector<std::string> out;
  for (const auto& feature : per_server.front()) {
    const std::string key = lower(feature);
    bool everywhere = true;
    for (std::size_t i = 1; i < per_server.size() && everywhere; ++i) {
      everywhere = std::any_of(per_server[i].begin(), per_server[i].end(),
                               [&](const std::string& other) { return lower(other) == key; });
    }
    if (everywhere) out.push_back(feature);
  }
  return out;
}

}  // namespace ftpsgate::ftp
