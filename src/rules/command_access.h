// What an FTP command does to the backend's file tree (issue 15, pure): the kind of access
// and the path argument it names, as the rules need them. LIST/NLST/STAT options ("-la")
// are not paths; SITE CHMOD's mode is not either.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ftpsgate::rules {

enum class Access {
  kNone,        // no file-tree effect (NOOP, TYPE, PWD, ...)
  kRead,        // RETR, SIZE, MDTM
  kList,        // LIST, NLST, MLSD, MLST, STAT with an argument
  kWrite,       // STOR, APPE, STOU
  kDelete,      // DELE
  kMakeDir,     // MKD, XMKD
  kRemoveDir,   // RMD, XRMD
  kRenameFrom,  // RNFR
  kRenameTo,    // RNTO
  kChangeDir,   // CWD, XCWD, CDUP, XCUP
  kSite,        // SITE (CHMOD and friends)
};

std::string_view access_name(Access access);

struct CommandAccess {
  Access access = Access::kNone;
  // The path text to resolve against the working directory: "" = the working directory
  // itself (LIST without argument), ".." for CDUP; nullopt = no path (NOOP, SITE HELP).
  std::optional<std::string> path;
};

// `verb` upper-case, `argument` as received.
CommandAccess command_access(std::string_view verb, std::string_view argument);

// Verbs rules may name: those with a file-tree effect above (session verbs such as USER,
// AUTH, PASV or QUIT are not the rules' business).
bool is_rule_verb(std::string_view verb);
// The first word of `text`, upper-cased (a SITE subcommand).
std::string upper_word(std::string_view text);

// Named verb sets for rules: "read_only" (everything that changes the tree or runs SITE)
// and "upload_only" (a drop box: no download, no listing). Empty for an unknown name.
const std::vector<std::string>& preset_denied_verbs(std::string_view preset);

}  // namespace ftpsgate::rules
