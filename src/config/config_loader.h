// YAML -> validated Config. Every error carries the file name and the line:col of the
// offending node.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "ftpsgate/agent_config.h"
#include "ftpsgate/config.h"

namespace ftpsgate::config {

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 = not tied to a position (e.g. the file cannot be read)
  int column = 0;  // 1-based
  std::string message;
  std::string format() const;  // "FILE:LINE:COL: message" ("FILE: message" when line is 0)
};

struct LoadResult {
  std::optional<Config> config;       // set when errors is empty
  std::vector<ConfigError> errors;    // all errors found (not just the first), by position
  std::vector<std::string> warnings;  // already formatted as "FILE:LINE:COL: message"
};

// Parses YAML text; file_name is used in error messages only.
LoadResult load_config_text(const std::string& yaml_text, const std::string& file_name);
LoadResult load_config_file(const std::string& path);

// The inside-out agent's own file (`ftpsgate agent --config FILE`, issue 17): keys
// agent|metrics|logging|user, checked as strictly as the gateway's.
struct AgentLoadResult {
  std::optional<AgentConfig> config;  // set when errors is empty
  std::vector<ConfigError> errors;    // all errors found, by position
  std::vector<std::string> warnings;  // already formatted as "FILE:LINE:COL: message"
};
AgentLoadResult load_agent_config_text(const std::string& yaml_text, const std::string& file_name);
AgentLoadResult load_agent_config_file(const std::string& path);

// The embedded default (SPEC §9) as YAML text; loads without errors.
const std::string& embedded_default_yaml();

// "500ms", "10s", "5m", "1h" -> milliseconds; nullopt if malformed.
std::optional<Duration> parse_duration(std::string_view text);
// "64KiB", "4096", "1MiB" -> bytes.
std::optional<std::size_t> parse_size(std::string_view text);
// Bandwidth: "10MB/s" (SI, 10^6), "512KiB/s" (IEC), "1GB/s", "2000B/s" -> bytes per
// second (> 0).
std::optional<uint64_t> parse_rate(std::string_view text);
// "host:port", "[v6]:port"
std::optional<HostPort> parse_host_port(std::string_view text);

}  // namespace ftpsgate::config
