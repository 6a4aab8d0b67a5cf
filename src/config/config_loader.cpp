#include "config/config_loader.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "config/loader.h"

namespace ftpsgate::config {

std::string ConfigError::format() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

namespace detail {

void Loader::read_document(const std::string& text, void (Loader::*read)(const YAML::Node&)) {
  const auto document = detail::parse_single_document(text, diag_);
  if (!document) return;
  try {
    (this->*read)(*document);
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws on misuse only; report rather than crash on exotic input.
    diag_.error(e.mark, std::string("cannot read the configuration: ") + e.what());
  }
}

LoadResult Loader::load(const std::string& text) {
  read_document(text, &Loader::read_root);
  return finish();
}

AgentLoadResult Loader::load_agent(const std::string& text) {
  read_document(text, &Loader::read_agent_root);
  return finish<AgentLoadResult>(agent_config_);
}

LoadResult Loader::finish() { return finish<LoadResult>(config_); }

const Field* Loader::read_required(MapReader& map, std::string_view key, std::string& out) {
  return map.require(key) != nullptr ? map.read(key, out) : nullptr;
}

void Loader::read_name(MapReader& map, std::string_view kind, std::map<std::string, YAML::Mark>& seen,
                       std::string& out) {
  const Field* field = read_required(map, "name", out);
  if (field == nullptr) return;
  if (!is_plain_name(out)) {
    diag_.error(field->value_mark(),
                std::string(kind) + " name '" + out + "' must be letters, digits, '-', '_' or '.'");
    return;
  }
  auto [it, inserted] = seen.emplace(out, field->value_mark());
  if (!inserted) {
    diag_.error(field->value_mark(), "duplicate " + std::string(kind) + " name '" + out + "' (first used on line " +
                                         line_of(it->second) + ")");
  }
}

void Loader::read_root(const YAML::Node& root) {
  MapReader top(root, root.Mark(), "",
                {"listeners", "tls", "classes", "backends", "passive", "active", "data", "limits", "metrics", "user",
                 "logging", "workers", "auth", "rules", "inspection", "agents"},
                diag_);
  if (!top.is_mapping()) return;
  read_listeners(top);
  read_tls(top);
  read_classes(top);
  read_backends(top);
  read_passive(top);
  read_active(top);
  read_data(top);
  read_limits(top);
  read_metrics(top);
  top.read("user", config_.user);
  top.read_int<uint32_t>("workers", 0, 256, config_.workers);
  read_logging(top);
  read_auth(top);
  read_rules(top);
  read_inspection(top);
  read_agents(top);
  check_backend_references();
  check_inspection_references();
  check_auth_references();
  check_agent_references();
  check_socket_clashes();
  check_agents_socket_clashes();
  check_client_verification();
  check_shared_port();
}

}  // namespace detail

using detail::Loader;

LoadResult load_config_text(const std::string& yaml_text, const std::string& file_name) {
  return Loader(file_name).load(yaml_text);
}

namespace {

// The file's text, or the reason it cannot be read.
std::optional<std::string> read_file(const std::string& path, std::string& reason) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    reason = "is a directory";
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    reason = std::strerror(errno);
    return std::nullopt;
  }
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) {
    reason = std::strerror(errno);
    return std::nullopt;
  }
  return text;
}

template <typename Result, typename LoadText>
Result load_file(const std::string& path, LoadText load_text) {
  std::string reason;
  auto text = read_file(path, reason);
  if (!text) {
    Result result;
    result.errors.push_back(ConfigError{path, 0, 0, "cannot read the configuration: " + reason});
    return result;
  }
  return load_text(*text, path);
}

}  // namespace

LoadResult load_config_file(const std::string& path) { return load_file<LoadResult>(path, load_config_text); }

AgentLoadResult load_agent_config_text(const std::string& yaml_text, const std::string& file_name) {
  return Loader(file_name).load_agent(yaml_text);
}

AgentLoadResult load_agent_config_file(const std::string& path) {
  return load_file<AgentLoadResult>(path, load_agent_config_text);
}

}  // namespace ftpsgate::config
