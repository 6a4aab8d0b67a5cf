// Helpers of the config loader tests: YAML documents written inline and indented, and
// checks of the exact errors (line:col and message) a document produces.
#pragma once

#include <doctest/doctest.h>

#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "config/config_loader.h"

namespace ftpsgate::config_test {

// Lets a YAML document be written indented inside a test: drops the first line break and
// the indentation common to all lines, so the document's first line is line 1.
inline std::string doc(std::string_view text) {
  if (!text.empty() && text.front() == '\n') text.remove_prefix(1);
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const auto end = text.find('\n');
    lines.push_back(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  }
  if (!lines.empty() && lines.back().find_first_not_of(' ') == std::string_view::npos) {
    lines.pop_back();
  }
  std::size_t indent = std::string_view::npos;
  for (auto line : lines) {
    const auto first = line.find_first_not_of(' ');
    if (first != std::string_view::npos && first < indent) indent = first;
  }
  std::string out;
  for (auto line : lines) {
    out += line.size() >= indent ? line.substr(indent) : std::string_view();
    out += '\n';
  }
  return out;
}

// One listener and one backend: four lines, so what follows starts on line 5.
inline const std::string kBase = doc(R"(
  listeners:
    - {name: l, address: "127.0.0.1:2121", backend: b}
  backends:
    - {name: b, servers: ["127.0.0.1:21"]}
)");

inline std::string with_base(std::string_view rest) { return kBase + doc(rest); }

inline ftpsgate::config::LoadResult load(const std::string& yaml) {
  return ftpsgate::config::load_config_text(yaml, "test.yaml");
}

// Works for the gateway's LoadResult and the agent's AgentLoadResult alike.
template <typename Result>
std::string describe(const Result& result) {
  std::ostringstream out;
  for (const auto& error : result.errors) out << "error: " << error.format() << "\n";
  for (const auto& warning : result.warnings) out << "warning: " << warning << "\n";
  return out.str();
}

// `result` of `yaml` (named `file`) is refused for exactly this one reason, at this position.
template <typename Result>
void check_only_error_in(const Result& result, const std::string& file, int line, int column,
                         const std::string& message, const std::string& yaml) {
  INFO("document:\n" << yaml << describe(result));
  CHECK_FALSE(result.config.has_value());
  REQUIRE(result.errors.size() == 1);
  CHECK(result.errors[0].message == message);
  CHECK(result.errors[0].line == line);
  CHECK(result.errors[0].column == column);
  CHECK(result.errors[0].file == file);
}

// The document is refused for exactly this one reason, at this position.
inline void check_only_error(int line, int column, const std::string& message, const std::string& yaml) {
  check_only_error_in(load(yaml), "test.yaml", line, column, message, yaml);
}

inline ftpsgate::Config load_ok(const std::string& yaml) {
  const auto result = load(yaml);
  INFO("document:\n" << yaml << describe(result));
  REQUIRE(result.errors.empty());
  REQUIRE(result.config.has_value());
  return *result.config;
}

}  // namespace ftpsgate::config_test
