#include <doctest/doctest.h>

#include <algorithm>

#include "rules/command_access.h"

using ftpsgate::rules::Access;
using ftpsgate::rules::command_access;
using ftpsgate::rules::preset_denied_verbs;

TEST_CASE("commands name their access and path") {
  CHECK(command_access("RETR", "a.txt").access == Access::kRead);
  CHECK(command_access("RETR", "a.txt").path == "a.txt");
  CHECK(command_access("STOR", "up/b.bin").access == Access::kWrite);
  CHECK(command_access("RNTO", "../x").access == Access::kRenameTo);
  CHECK(command_access("CDUP", "").path == "..");
  CHECK(command_access("CWD", "/allowed/../secret").path == "/allowed/../secret");
  CHECK(command_access("NOOP", "").access == Access::kNone);
  CHECK_FALSE(command_access("PWD", "").path.has_value());
}

TEST_CASE("listing options are not paths") {
  CHECK(command_access("LIST", "").path == "");
  CHECK(command_access("LIST", "-la").path == "");
  CHECK(command_access("LIST", "-l -a  /pub/x").path == "/pub/x");
  CHECK(command_access("NLST", "dir").path == "dir");
  CHECK(command_access("STAT", "").access == Access::kNone);  // session status
  CHECK(command_access("STAT", "/etc").access == Access::kList);
}

TEST_CASE("SITE CHMOD names its path; other SITE commands none") {
  const auto chmod = command_access("SITE", "CHMOD 777 ../../etc/shadow");
  CHECK(chmod.access == Access::kSite);
  CHECK(chmod.path == "../../etc/shadow");
  CHECK_FALSE(command_access("SITE", "HELP").path.has_value());
  CHECK(command_access("SITE", "chmod 600 x").path == "x");
}

TEST_CASE("presets") {
  const auto& read_only = preset_denied_verbs("read_only");
  for (const char* verb : {"STOR", "APPE", "STOU", "DELE", "RNFR", "RNTO", "MKD", "RMD", "SITE"}) {
    CHECK(std::find(read_only.begin(), read_only.end(), verb) != read_only.end());
  }
  CHECK(std::find(read_only.begin(), read_only.end(), "RETR") == read_only.end());
  const auto& drop_box = preset_denied_verbs("upload_only");
  for (const char* verb : {"RETR", "LIST", "NLST", "MLSD"}) {
    CHECK(std::find(drop_box.begin(), drop_box.end(), verb) != drop_box.end());
  }
  CHECK(std::find(drop_box.begin(), drop_box.end(), "STOR") == drop_box.end());
  CHECK(preset_denied_verbs("nonsense").empty());
}
