// One log record as one line: JSON, or the text format's `key=value` pairs. Pure, so the
// escaping that keeps a hostile value (a USER name, a command) inside its own field is
// unit-tested.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "ftpsgate/config.h"

namespace ftpsgate::log {

std::string_view to_string(LogLevel level);

// A value for the text format: bare when it is plain (no space, '=', quote, backslash,
// control byte or invalid UTF-8), else quoted with \" \\ \n \r \t and \xNN escapes, so a
// value can never end its line or forge another key=value pair.
std::string text_value(std::string_view value);

// The record without the trailing newline. `fields` is a JSON object; invalid UTF-8 in
// JSON output becomes U+FFFD instead of an exception.
std::string format_json(std::string_view ts, LogLevel level, std::string_view event, const nlohmann::json& fields);
std::string format_text(std::string_view ts, LogLevel level, std::string_view event, const nlohmann::json& fields);

}  // namespace ftpsgate::log
