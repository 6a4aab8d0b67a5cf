// The options `ftpsgate` and `ftpsgate agent` share (SPEC §1).
#include <doctest/doctest.h>

#include <vector>

#include "config/command_line.h"

namespace {
ftpsgate::config::CommandLine parse(std::vector<const char*> args) {
  return ftpsgate::config::parse_command_line(static_cast<int>(args.size()), args.data());
}
}  // namespace

TEST_CASE("a bad argument is refused with the reason, and a missing file name too") {
  CHECK(parse({"ftpsgate", "--frobnicate"}).error == "unknown argument '--frobnicate'");
  CHECK(parse({"agent", "--check", "--config"}).error == "--config needs a file name");
  CHECK(parse({"agent", "-x", "--version"}).error == "unknown argument '-x'");
}

TEST_CASE("--config in its three spellings, --check, --version and --help") {
  CHECK(parse({"ftpsgate", "--config", "a.yaml"}).config_path == "a.yaml");
  CHECK(parse({"ftpsgate", "-c", "b.yaml"}).config_path == "b.yaml");
  CHECK(parse({"ftpsgate", "--config=c.yaml"}).config_path == "c.yaml");
  const auto all = parse({"agent", "--check", "--version", "-h", "--config", "d.yaml"});
  CHECK(all.error.empty());
  CHECK(all.check);
  CHECK(all.version);
  CHECK(all.help);
  CHECK(all.config_path == "d.yaml");
  const auto none = parse({"ftpsgate"});
  CHECK(none.error.empty());
  CHECK(none.config_path.empty());
  CHECK_FALSE(none.check);
}
