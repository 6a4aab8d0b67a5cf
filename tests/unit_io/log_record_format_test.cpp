// Log record formatting: a hostile value stays inside its own field, on its own line.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "log/record_format.h"

using ftpsgate::LogLevel;
using ftpsgate::log::format_json;
using ftpsgate::log::format_text;
using ftpsgate::log::text_value;

namespace {
// A logfmt reader: bare or double-quoted values with \" \\ \n \r \t \xNN escapes.
std::map<std::string, std::string> parse_logfmt(const std::string& line, std::size_t from) {
  std::map<std::string, std::string> out;
  std::size_t i = from;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    const std::size_t eq = line.find('=', i);
    REQUIRE(eq != std::string::npos);
    const std::string key = line.substr(i, eq - i);
    i = eq + 1;
    std::string value;
    if (i < line.size() && line[i] == '"') {
      ++i;
      while (true) {
        REQUIRE(i < line.size());
        if (line[i] == '"') {
          ++i;
          break;
        }
        if (line[i] == '\\') {
          const char e = line[i + 1];
          if (e == 'x') {
            value += static_cast<char>(std::stoi(line.substr(i + 2, 2), nullptr, 16));
            i += 4;
            continue;
          }
          value += e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
          i += 2;
          continue;
        }
        value += line[i++];
      }
    } else {
      const std::size_t end = line.find(' ', i);
      value = line.substr(i, end == std::string::npos ? std::string::npos : end - i);
      i = end == std::string::npos ? line.size() : end;
    }
    CHECK_MESSAGE(out.count(key) == 0, "duplicate key " << key);
    out[key] = value;
  }
  return out;
}
}  // namespace

TEST_CASE("text values: plain ones bare, anything that could split a field quoted and escaped") {
  CHECK(text_value("alice") == "alice");
  CHECK(text_value("") == "\"\"");
  CHECK(text_value("mallory result=success") == "\"mallory result=success\"");
  CHECK(text_value("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(text_value("x\ny\rz\t") == "\"x\\ny\\rz\\t\"");
  CHECK(text_value(std::string("nul\0bell\a", 9)) == "\"nul\\x00bell\\x07\"");
  CHECK(text_value("\x7f") == "\"\\x7f\"");
  CHECK(text_value("gr\xc3\xbc\xc3\x9f") == "gr\xc3\xbc\xc3\x9f");           // valid UTF-8 stays
  CHECK(text_value("ftp\xff\xff\xf4user") == "\"ftp\\xff\\xff\\xf4user\"");  // telnet IAC bytes
  CHECK(text_value("\xc0\xaf") == "\"\\xc0\\xaf\"");                        // overlong '/'
  CHECK(text_value("\xed\xa0\x80") == "\"\\xed\\xa0\\x80\"");               // a surrogate
}

TEST_CASE("a forged key=value in a USER name stays one field of one line") {
  const nlohmann::json fields = {{"reason", "tls_required"},
                                 {"user", "mallory result=success event=login\nts=x level=info event=login"},
                                 {"list", {"a b", "c"}}};
  const std::string line = format_text("2026-12-05T00:00:00.000Z", LogLevel::kInfo, "policy_denial", fields);
  CHECK(line.find('\n') == std::string::npos);
  const std::string prefix = "2026-12-05T00:00:00.000Z info policy_denial ";
  REQUIRE(line.rfind(prefix, 0) == 0);
  const auto parsed = parse_logfmt(line, prefix.size());
  CHECK(parsed.size() == 3);
  CHECK(parsed.count("result") == 0);
  CHECK(parsed.count("event") == 0);
  CHECK(parsed.at("user") == "mallory result=success event=login\nts=x level=info event=login");
  CHECK(parsed.at("list") == "[\"a b\",\"c\"]");
}

TEST_CASE("JSON records survive invalid UTF-8 and control bytes") {
  const nlohmann::json fields = {{"user", std::string("ftp\xff\xff\xf4user\n\x01", 12)}, {"nested", {{"k", "\xfe"}}}};
  std::string line;
  CHECK_NOTHROW(line = format_json("ts", LogLevel::kWarn, "policy_denial", fields));
  CHECK(line.find('\n') == std::string::npos);
  const auto parsed = nlohmann::json::parse(line);
  CHECK(parsed["event"] == "policy_denial");
  CHECK(parsed["user"].get<std::string>().find("\n\x01") != std::string::npos);
  CHECK(parsed["level"] == "warn");
  // Invalid UTF-8 in a nested value does not throw in the text format either.
  CHECK_NOTHROW(format_text("ts", LogLevel::kWarn, "x", fields));
}
