// FEAT reply (RFC 2389): the gateway's own features merged with what the backend offers.
#pragma once

#include <string>
#include <vector>

#include "ftp/reply.h"

namespace ftpsgate::ftp {

// Feature lines of a 211 multi-line FEAT reply, trimmed, without the first/last lines.
std::vector<std::string> parse_feat_reply(const Reply& reply);

// Features of a backend the gateway can relay: drops the ones the gateway owns or cannot
// pass through (AUTH, PBSZ, PROT, CCC, EPSV, EPRT, HOST, ...) and duplicates.
std::vector<std::string> relayable_backend_features(const std::vector<std::string>& backend);

// "211-Features:\r\n <f>\r\n...211 End\r\n"
std::string build_feat_reply(const std::vector<std::string>& features);

}  // namespace ftpsgate::ftp
