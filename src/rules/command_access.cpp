#include "rules/command_access.h"

#include <cctype>
#include <map>

namespace ftpsgate::rules {

namespace {

const std::map<std::string_view, Access>& verb_access() {
  static const std::map<std::string_view, Access> table = {
      {"RETR", Access::kRead},        {"SIZE", Access::kRead},        {"MDTM", Access::kRead},
      {"LIST", Access::kList},        {"NLST", Access::kList},        {"MLSD", Access::kList},
      {"MLST", Access::kList},        {"STAT", Access::kList},        {"STOR", Access::kWrite},
      {"APPE", Access::kWrite},       {"STOU", Access::kWrite},       {"DELE", Access::kDelete},
      {"MKD", Access::kMakeDir},      {"XMKD", Access::kMakeDir},     {"RMD", Access::kRemoveDir},
      {"XRMD", Access::kRemoveDir},   {"RNFR", Access::kRenameFrom},  {"RNTO", Access::kRenameTo},
      {"CWD", Access::kChangeDir},    {"XCWD", Access::kChangeDir},   {"CDUP", Access::kChangeDir},
      {"XCUP", Access::kChangeDir},   {"SITE", Access::kSite},
  };
  return table;
}

// "-la /dir" -> "/dir"; "-la" -> "". Options come first and start with '-'.
std::string without_list_options(std::string_view argument) {
  while (!argument.empty() && argument.front() == '-') {
    const std::size_t space = argument.find(' ');
    if (space == std::string_view::npos) return "";
    argument.remove_prefix(space + 1);
    while (!argument.empty() && argument.front() == ' ') argument.remove_prefix(1);
  }
  return std::string(argument);
}


}  // namespace

std::string upper_word(std::string_view text) {
  std::string word(text.substr(0, text.find(' ')));
  for (char& c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return word;
}

std::string_view access_name(Access access) {
  switch (access) {
    case Access::kNone: return "none";
    case Access::kRead: return "read";
    case Access::kList: return "list";
    case Access::kWrite: return "write";
    case Access::kDelete: return "delete";
    case Access::kMakeDir: return "mkdir";
    case Access::kRemoveDir: return "rmdir";
    case Access::kRenameFrom: return "rename_from";
    case Access::kRenameTo: return "rename_to";
    case Access::kChangeDir: return "chdir";
    case Access::kSite: return "site";
  }
  return "none";
}

CommandAccess command_access(std::string_view verb, std::string_view argument) {
  auto it = verb_access().find(verb);
  if (it == verb_access().end()) return {};
  CommandAccess out{it->second, std::string(argument)};
  switch (out.access) {
    case Access::kList:
      // STAT without an argument is the session's status, not a listing.
      if (verb == "STAT" && argument.empty()) return {};
      out.path = without_list_options(argument);
      break;
    case Access::kChangeDir:
      if (verb == "CDUP" || verb == "XCUP") out.path = "..";
      break;
    case Access::kSite: {
      // SITE CHMOD mode path / SITE UTIME ...: the last word is the path when there is one.
      const std::string command = upper_word(argument);
      const std::size_t last = argument.rfind(' ');
      out.path = command == "CHMOD" && last != std::string_view::npos
                     ? std::optional<std::string>(std::string(argument.substr(last + 1)))
                     : std::nullopt;
      break;
    }
    default:
      break;
  }
  return out;
}

bool is_rule_verb(std::string_view verb) { return verb_access().count(verb) != 0; }

const std::vector<std::string>& preset_denied_verbs(std::string_view preset) {
  static const std::vector<std::string> read_only = {"STOR", "APPE", "STOU", "DELE", "RNFR", "RNTO", "MKD",
                                                     "XMKD", "RMD",  "XRMD", "SITE"};
  static const std::vector<std::string> upload_only = {"RETR", "LIST", "NLST", "MLSD", "MLST", "STAT", "SIZE",
                                                       "MDTM"};
  static const std::vector<std::string> none;
  if (preset == "read_only") return read_only;
  if (preset == "upload_only") return upload_only;
  return none;
}

}  // namespace ftpsgate::rules
