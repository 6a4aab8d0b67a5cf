// FEAT reply (RFC 2389): the gateway's own features merged with what the backend offers.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "ftp/reply.h"

namespace ftpsgate::ftp {

// Feature lines of a 211 multi-line FEAT reply, trimmed, without the first/last lines.
std::vector<std::string> parse_feat_reply(const Reply& reply);

// Bounds on what is taken from a backend's FEAT reply.
inline constexpr std::size_t kMaxRelayedFeatures = 64;
inline constexpr std::size_t kMaxFeatureLength = 256;

// Features of a backend the gateway can relay: drops the ones the gateway owns or cannot
// pass through (AUTH, PBSZ, PROT, CCC, EPSV, EPRT, PASV, PORT, HOST, LPSV, LPRT, ADAT, MIC,
// CONF, ENC; case-insensitive on the first word), duplicates (same first word, first kept),
// features with control characters or longer than kMaxFeatureLength; at most
// kMaxRelayedFeatures are kept.
std::vector<std::string> relayable_backend_features(const std::vector<std::string>& backend);

// The features every server of a pool announced (exact lines, case-insensitive), in the
// first server's order: what a FEAT before login may promise whichever server the session
// lands on.
std::vector<std::string> common_features(const std::vector<std::vector<std::string>>& per_server);

// The gateway's own features (SPEC §3): AUTH TLS, AUTH SSL, PBSZ, PROT, [CCC], EPSV, EPRT, HOST.
std::vector<std::string> gateway_features(bool allow_ccc);

// "211-Features:\r\n <f>\r\n...211 End\r\n" (features with control characters are skipped).
std::string build_feat_reply(const std::vector<std::string>& features);

}  // namespace ftpsgate::ftp
