// Walking yaml-cpp nodes with positions: the one place that knows how a config value is
// spelled in YAML. Every mapping is read through MapReader, which checks its keys against
// a fixed list, so unknown and duplicate keys are caught the same way everywhere.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config_loader.h"

namespace ftpsgate::config::detail {

// Collects errors and warnings; yaml-cpp's 0-based marks become 1-based line:col.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void error(const YAML::Mark& at, std::string message);
  void warning(const YAML::Mark& at, std::string message);
  // An error inside another file the config names (a users file): its own FILE:LINE:COL.
  void error_in(const std::string& file, int line, int column, std::string message) {
    errors_.push_back(ConfigError{file, line, column, std::move(message)});
  }
  std::size_t error_count() const { return errors_.size(); }

  std::vector<ConfigError> take_errors();    // sorted by position
  std::vector<std::string> take_warnings();  // formatted, sorted by position

 private:
  ConfigError located(const YAML::Mark& at, std::string message) const;

  std::string file_;
  std::vector<ConfigError> errors_;
  std::vector<ConfigError> warnings_;
};

// The single YAML document of `text`, or nullopt after reporting a syntax error. A second
// document is reported as an error, but the first is still returned so that its own
// errors are found too.
std::optional<YAML::Node> parse_single_document(const std::string& text, Diagnostics& diag);

// One key/value pair of a mapping.
struct Field {
  YAML::Node key;
  YAML::Node value;

  YAML::Mark key_mark() const { return key.Mark(); }
  // Where to report a bad value. An empty value ("key:") carries the mark of whatever
  // follows it, often the next line, so the key's own position is used instead.
  YAML::Mark value_mark() const { return value.IsNull() ? key.Mark() : value.Mark(); }
};

// The text of a scalar, or nullopt after reporting why `value` is not one.
// `what` names the value in messages ("'banner'", "a server address").
std::optional<std::string> scalar_text(const YAML::Node& value, const YAML::Mark& at,
                                       std::string_view what, Diagnostics& diag);

// The items of a list (an empty value counts as an empty list), or nothing after
// reporting that `field` is not a list.
std::vector<YAML::Node> list_items(const Field& field, std::string_view key, Diagnostics& diag);

class MapReader {
 public:
  enum class Empty { kAllowed, kError };

  // `path` names the mapping in messages ("tls", "listeners[0]", "" for the top level).
  // An empty value is an empty mapping when `empty` is kAllowed (e.g. "tls:").
  MapReader(const YAML::Node& node, const YAML::Mark& at, std::string path,
            std::initializer_list<std::string_view> known_keys, Diagnostics& diag,
            Empty empty = Empty::kAllowed);

  bool is_mapping() const { return is_mapping_; }
  const YAML::Mark& mark() const { return mark_; }
  const std::string& path() const { return path_; }
  Diagnostics& diag() { return diag_; }

  // The field for a known key, or nullptr when it is absent.
  const Field* get(std::string_view key) const;
  // As get(), but an absent key is an error at the mapping's position.
  const Field* require(std::string_view key);

  // Typed readers. Each returns the field when the key is present and its value valid;
  // when absent or invalid (the error is recorded), `out` keeps its default.
  const Field* read(std::string_view key, std::string& out);
  const Field* read(std::string_view key, bool& out);
  const Field* read(std::string_view key, std::optional<bool>& out);
  const Field* read_duration(std::string_view key, Duration& out, bool allow_zero = false);
  const Field* read_size(std::string_view key, std::size_t& out);
  const Field* read_uint(std::string_view key, uint64_t min, uint64_t max, uint64_t& out);

  template <typename Int>
  const Field* read_int(std::string_view key, Int min, Int max, Int& out) {
    uint64_t value = 0;
    const Field* field = read_uint(key, min, max, value);
    if (field != nullptr) out = static_cast<Int>(value);
    return field;
  }

  template <typename Enum>
  using Choices = std::initializer_list<std::pair<std::string_view, Enum>>;

  template <typename Enum>
  const Field* read_choice(std::string_view key, Enum& out, Choices<Enum> choices) {
    std::string text;
    const Field* field = read(key, text);
    if (field == nullptr) return nullptr;
    for (const auto& [name, value] : choices) {
      if (name == text) {
        out = value;
        return field;
      }
    }
    std::string names;
    for (const auto& choice : choices) {
      names += names.empty() ? "" : ", ";
      names += choice.first;
    }
    diag_.error(field->value_mark(), std::string(key) + " must be one of: " + names);
    return nullptr;
  }

 private:
  void report_unknown_key(const YAML::Node& key, const std::string& name);

  const YAML::Mark mark_;
  const std::string path_;
  const std::vector<std::string_view> known_keys_;
  Diagnostics& diag_;
  bool is_mapping_ = false;
  std::vector<std::pair<std::string, Field>> fields_;  // known keys present, first wins
};

}  // namespace ftpsgate::config::detail
