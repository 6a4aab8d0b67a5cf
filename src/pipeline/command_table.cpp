#include "pipeline/command_table.h"

#include <array>
#include <utility>

namespace ftpsgate::pipeline {

namespace {

using H = CommandHandler;

// clang-format off
constexpr std::array<std::pair<std::string_view, CommandRoute>, 25> kTable = {{
    //         handler             gate             filtered
    {"AUTH", {H::kAuth,         Gate::kAny,      false}},
    {"PBSZ", {H::kPbsz,         Gate::kAny,      false}},
    {"PROT", {H::kProt,         Gate::kAny,      true}},   // the session answers 503 without TLS first
    {"CCC",  {H::kCcc,          Gate::kAny,      true}},
    {"FEAT", {H::kFeat,         Gate::kAny,      false}},
    {"HOST", {H::kHost,         Gate::kAny,      false}},
    {"CLNT", {H::kClnt,         Gate::kAny,      false}},  // answered here, for audit records
    {"QUIT", {H::kQuit,         Gate::kAny,      false}},
    {"USER", {H::kUser,         Gate::kAny,      true}},   // 501/503 first; sets the user
    {"PASS", {H::kPass,         Gate::kAny,      true}},   // 503 outside the login
    {"ACCT", {H::kPass,         Gate::kAny,      true}},
    {"NOOP", {H::kNoop,         Gate::kAny,      true}},  // local before login
    {"PASV", {H::kPasv,         Gate::kLoggedIn, true}},
    {"EPSV", {H::kEpsv,         Gate::kLoggedIn, true}},
    {"PORT", {H::kPort,         Gate::kLoggedIn, true}},
    {"EPRT", {H::kEprt,         Gate::kLoggedIn, true}},
    {"LPRT", {H::kObsoleteData, Gate::kLoggedIn, false}},
    {"LPSV", {H::kObsoleteData, Gate::kLoggedIn, false}},
    {"RETR", {H::kDownload,     Gate::kLoggedIn, true}},
    {"LIST", {H::kDownload,     Gate::kLoggedIn, true}},
    {"NLST", {H::kDownload,     Gate::kLoggedIn, true}},
    {"MLSD", {H::kDownload,     Gate::kLoggedIn, true}},
    {"STOR", {H::kUpload,       Gate::kLoggedIn, true}},
    {"APPE", {H::kUpload,       Gate::kLoggedIn, true}},
    {"STOU", {H::kUpload,       Gate::kLoggedIn, true}},
}};
// clang-format on

}  // namespace

CommandRoute route_command(std::string_view verb) {
  for (const auto& [name, route] : kTable) {
    if (name == verb) return route;
  }
  return CommandRoute{};
}

}  // namespace ftpsgate::pipeline
