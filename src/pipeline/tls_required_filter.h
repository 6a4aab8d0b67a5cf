// tls_required (ProFTPD mod_tls TLSRequired) as the first command filter.
#pragma once

#include "pipeline/command_filter.h"

namespace ftpsgate::pipeline {

// What a client command means to the TLS policy: USER/PASS/ACCT log in, PROT C/P change
// the data protection, CCC clears the control channel, LIST NLST MLSD RETR STOR APPE
// STOU move data; everything else is kOther.
policy::CommandKind tls_command_kind(const ftp::Command& command);

class TlsRequiredFilter final : public CommandFilter {
 public:
  std::string_view name() const override { return "tls_required"; }
  FilterVerdict check(const ftp::Command& command, policy::CommandKind kind,
                      const SessionView& session) const override;
};

}  // namespace ftpsgate::pipeline
