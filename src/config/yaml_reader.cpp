#include "config/yaml_reader.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <sstream>
#include <tuple>

#include "config/value_parsers.h"

namespace ftpsgate::config::detail {
namespace {

// yaml-cpp marks are 0-based and -1 when unknown (e.g. an empty document).
int one_based(int position) { return position < 0 ? 1 : position + 1; }

bool by_position(const ConfigError& a, const ConfigError& b) {
  return std::tie(a.line, a.column) < std::tie(b.line, b.column);
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string where(const std::string& path) {
  return path.empty() ? "at top level" : "in '" + path + "'";
}

std::string quoted(std::string_view key) { return "'" + std::string(key) + "'"; }

// Sees only where documents start; the nodes are built by YAML::Load.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;

  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

std::optional<YAML::Node> parse_single_document(const std::string& text, Diagnostics& diag) {
  try {
    // Not YAML::LoadAll: in yaml-cpp 0.7 it loops forever, allocating, on a stray ','
    // (jbeder/yaml-cpp#1040): the parser reports the same empty document again and again
    // without consuming the token. Two steps tell one document from several, and a
    // second "document" starting where the first did is that unconsumed token.
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    DocumentStarts documents;
    if (parser.HandleNextDocument(documents) && parser.HandleNextDocument(documents) &&
        documents.starts.size() == 2) {
      const YAML::Mark& second = documents.starts[1];
      if (second.pos == documents.starts[0].pos) {
        const auto pos = static_cast<std::size_t>(second.pos);
        diag.error(second, pos < text.size()
                               ? "YAML syntax error: unexpected '" + std::string(1, text[pos]) + "'"
                               : std::string("YAML syntax error: unexpected end of input"));
        return std::nullopt;
      }
      diag.error(second, "only one YAML document is allowed in a config file");
    }
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    diag.error(e.mark, "YAML syntax error: " + e.msg);
    return std::nullopt;
  }
}

ConfigError Diagnostics::located(const YAML::Mark& at, std::string message) const {
  return ConfigError{file_, one_based(at.line), one_based(at.column), std::move(message)};
}

void Diagnostics::error(const YAML::Mark& at, std::string message) {
  errors_.push_back(located(at, std::move(message)));
}

void Diagnostics::warning(const YAML::Mark& at, std::string message) {
  warnings_.push_back(located(at, std::move(message)));
}

std::vector<ConfigError> Diagnostics::take_errors() {
  std::stable_sort(errors_.begin(), errors_.end(), by_position);
  return std::move(errors_);
}

std::vector<std::string> Diagnostics::take_warnings() {
  std::stable_sort(warnings_.begin(), warnings_.end(), by_position);
  std::vector<std::string> formatted;
  for (const auto& warning : warnings_) formatted.push_back(warning.format());
  return formatted;
}

std::optional<std::string> scalar_text(const YAML::Node& value, const YAML::Mark& at,
                                       std::string_view what, Diagnostics& diag) {
  if (value.IsNull()) {
    diag.error(at, std::string(what) + " has no value");
    return std::nullopt;
  }
  if (!value.IsScalar()) {
    diag.error(at, std::string(what) + " must be a single value, not a " +
                       (value.IsSequence() ? "list" : "mapping"));
    return std::nullopt;
  }
  // "?" = plain, "!" = quoted; an unquoted "!data" becomes a tag with an empty value.
  const std::string& tag = value.Tag();
  if (tag != "?" && tag != "!" && tag.rfind("tag:yaml.org,2002:", 0) != 0) {
    diag.error(at, "unexpected YAML tag '" + tag + "' (quote values that start with '!', e.g. \"" +
                       tag + "\")");
    return std::nullopt;
  }
  return value.Scalar();
}

std::vector<YAML::Node> list_items(const Field& field, std::string_view key, Diagnostics& diag) {
  std::vector<YAML::Node> items;
  if (field.value.IsNull()) return items;
  if (!field.value.IsSequence()) {
    diag.error(field.value_mark(), quoted(key) + " must be a list");
    return items;
  }
  for (const auto& item : field.value) items.push_back(item);
  return items;
}

MapReader::MapReader(const YAML::Node& node, const YAML::Mark& at, std::string path,
                     std::initializer_list<std::string_view> known_keys, Diagnostics& diag,
                     Empty empty)
    : mark_(at), path_(std::move(path)), known_keys_(known_keys), diag_(diag) {
  if (node.IsNull() && empty == Empty::kAllowed) {
    is_mapping_ = true;
    return;
  }
  if (!node.IsMap()) {
    diag_.error(at, (path_.empty() ? std::string("the configuration") : quoted(path_)) +
                        " must be a mapping of keys to values");
    return;
  }
  is_mapping_ = true;
  for (const auto& pair : node) {
    const Field field{pair.first, pair.second};
    if (!field.key.IsScalar()) {
      diag_.error(field.key_mark(), "keys must be plain names " + where(path_));
      continue;
    }
    const std::string& name = field.key.Scalar();
    if (std::find(known_keys_.begin(), known_keys_.end(), name) == known_keys_.end()) {
      report_unknown_key(field.key, name);
      continue;
    }
    // yaml-cpp keeps both copies of a repeated key; which one wins would be a surprise.
    if (get(name) != nullptr) {
      diag_.error(field.key_mark(), "duplicate key '" + name + "' " + where(path_));
      continue;
    }
    fields_.emplace_back(name, field);
  }
}

void MapReader::report_unknown_key(const YAML::Node& key, const std::string& name) {
  std::string message = "unknown key '" + name + "' " + where(path_);
  std::string_view best;
  // Near misses only: one edit per three letters, so "foo" does not suggest "log".
  std::size_t best_distance = std::max<std::size_t>(1, name.size() / 3) + 1;
  for (auto known : known_keys_) {
    const std::size_t distance = edit_distance(name, known);
    if (distance < best_distance) {
      best = known;
      best_distance = distance;
    }
  }
  if (!best.empty()) message += " (did you mean '" + std::string(best) + "'?)";
  diag_.error(key.Mark(), std::move(message));
}

const Field* MapReader::get(std::string_view key) const {
  for (const auto& [name, field] : fields_) {
    if (name == key) return &field;
  }
  return nullptr;
}

const Field* MapReader::require(std::string_view key) {
  const Field* field = get(key);
  if (field == nullptr && is_mapping_) {
    diag_.error(mark_, "missing required key '" + std::string(key) + "' " + where(path_));
  }
  return field;
}

const Field* MapReader::read(std::string_view key, std::string& out) {
  const Field* field = get(key);
  if (field == nullptr) return nullptr;
  if (field->value.IsNull()) {
    diag_.error(field->value_mark(),
                quoted(key) + " has no value (write \"\" for an empty string)");
    return nullptr;
  }
  auto text = scalar_text(field->value, field->value_mark(), quoted(key), diag_);
  if (!text) return nullptr;
  out = std::move(*text);
  return field;
}

const Field* MapReader::read(std::string_view key, bool& out) {
  std::string text;
  const Field* field = read(key, text);
  if (field == nullptr) return nullptr;
  auto value = parse_bool(text);
  if (!value) {
    diag_.error(field->value_mark(),
                quoted(key) + " must be true or false (or yes/no), not '" + text + "'");
    return nullptr;
  }
  out = *value;
  return field;
}

const Field* MapReader::read(std::string_view key, std::optional<bool>& out) {
  bool value = false;
  const Field* field = read(key, value);
  if (field != nullptr) out = value;
  return field;
}

const Field* MapReader::read_duration(std::string_view key, Duration& out, bool allow_zero) {
  std::string text;
  const Field* field = read(key, text);
  if (field == nullptr) return nullptr;
  auto value = parse_duration(text);
  if (!value) {
    diag_.error(field->value_mark(), "invalid duration '" + text + "' (use e.g. 500ms, 10s, 5m)");
    return nullptr;
  }
  if (!allow_zero && value->count() == 0) {
    diag_.error(field->value_mark(), quoted(key) + " must be greater than zero");
    return nullptr;
  }
  out = *value;
  return field;
}

const Field* MapReader::read_size(std::string_view key, std::size_t& out) {
  std::string text;
  const Field* field = read(key, text);
  if (field == nullptr) return nullptr;
  auto value = parse_size(text);
  if (!value) {
    diag_.error(field->value_mark(), "invalid size '" + text + "' (use e.g. 4096, 64KiB, 1MiB)");
    return nullptr;
  }
  out = *value;
  return field;
}

const Field* MapReader::read_uint(std::string_view key, uint64_t min, uint64_t max, uint64_t& out) {
  std::string text;
  const Field* field = read(key, text);
  if (field == nullptr) return nullptr;
  auto value = parse_uint(text);
  if (!value) {
    diag_.error(field->value_mark(), quoted(key) + " must be a whole number, not '" + text + "'");
    return nullptr;
  }
  if (*value < min || *value > max) {
    diag_.error(field->value_mark(), quoted(key) + " must be between " + std::to_string(min) +
                                         " and " + std::to_string(max));
    return nullptr;
  }
  out = *value;
  return field;
}

}  // namespace ftpsgate::config::detail
