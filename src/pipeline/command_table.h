// The dispatch table, pure: which handler a verb goes to, the login phase it needs,
// whether the command filters see it and whether local checks come first. The session
// maps each CommandHandler to its member function (ProFTPD's cmdtable, in small).
#pragma once

#include <string_view>

namespace ftpsgate::pipeline {

enum class CommandHandler {
  kAuth, kPbsz, kProt, kCcc, kFeat, kHost, kClnt, kQuit, kUser, kPass, kNoop,
  kPasv, kEpsv, kPort, kEprt, kObsoleteData, kDownload, kUpload,
  kRelay,  // everything else: sent to the backend as it came
};

enum class Gate {
  kAny,       // before and after login (the handler checks what it needs)
  kLoggedIn,  // before login: relayed between USER and PASS, else 530
};

struct CommandRoute {
  CommandHandler handler = CommandHandler::kRelay;
  Gate gate = Gate::kLoggedIn;
  bool filtered = true;  // false: gateway-local protocol commands the filters never see
};

// The route of an upper-cased verb; unknown verbs are relayed once logged in.
CommandRoute route_command(std::string_view verb);

}  // namespace ftpsgate::pipeline
