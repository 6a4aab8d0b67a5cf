// Path globs for command rules (issue 15, pure): `*` and `?` stay within one path part,
// `**` crosses parts, `[a-z]` / `[!x]` are classes, `\` escapes. `/**/` also matches a single
// `/` and a trailing `/**` also matches the directory itself, so `/pub/**` covers `/pub`
// and everything under it. Matching is a dynamic programme, linear in path x pattern, with
// no backtracking blow-up whatever the pattern.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ftpsgate::rules {

inline constexpr std::size_t kMaxGlobLength = 1024;

class Glob {
 public:
  // nullopt with `error` set for an unclosed class, a trailing backslash, an empty
  // pattern or one longer than kMaxGlobLength.
  static std::optional<Glob> compile(std::string_view pattern, std::string* error = nullptr);

  bool matches(std::string_view path) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Token {
    enum class Kind { kLiteral, kAny, kStar, kGlobstar, kGlobstarSlash, kSlashGlobstarEnd, kClass };
    Kind kind = Kind::kLiteral;
    char literal = 0;
    bool negated = false;
    std::vector<std::pair<unsigned char, unsigned char>> ranges;
  };
  static bool class_matches(const Token& token, char c);

  std::string pattern_;
  std::vector<Token> tokens_;
};

}  // namespace ftpsgate::rules
