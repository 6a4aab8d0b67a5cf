#include "rules/glob.h"

namespace ftpsgate::rules {

std::optional<Glob> Glob::compile(std::string_view pattern, std::string* error) {
  auto fail = [error](const char* why) -> std::optional<Glob> {
    if (error != nullptr) *error = why;
    return std::nullopt;
  };
  if (pattern.empty()) return fail("empty pattern");
  if (pattern.size() > kMaxGlobLength) return fail("pattern too long");
  Glob glob;
  glob.pattern_ = std::string(pattern);
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    Token token;
    if (c == '\\') {
      if (i + 1 == pattern.size()) return fail("trailing backslash");
      token.literal = pattern[++i];
    } else if (c == '?') {
      token.kind = Token::Kind::kAny;
    } else if (c == '*') {
      const bool doubled = i + 1 < pattern.size() && pattern[i + 1] == '*';
      if (!doubled) {
        token.kind = Token::Kind::kStar;
      } else {
        i += 1;
        while (i + 1 < pattern.size() && pattern[i + 1] == '*') ++i;  // *** is **
        const bool after_slash = !glob.tokens_.empty() && glob.tokens_.back().kind == Token::Kind::kLiteral &&
                                 glob.tokens_.back().literal == '/';
        if (after_slash && i + 1 < pattern.size() && pattern[i + 1] == '/') {
          // "/**/": zero or more whole parts between the slashes.
          token.kind = Token::Kind::kGlobstarSlash;
          ++i;
        } else if (after_slash && i + 1 == pattern.size()) {
          glob.tokens_.pop_back();  // "/**" at the end: the directory itself or anything below
          token.kind = Token::Kind::kSlashGlobstarEnd;
        } else {
          token.kind = Token::Kind::kGlobstar;
        }
      }
    } else if (c == '[') {
      token.kind = Token::Kind::kClass;
      std::size_t j = i + 1;
      if (j < pattern.size() && (pattern[j] == '!' || pattern[j] == '^')) {
        token.negated = true;
        ++j;
      }
      bool closed = false;
      for (bool first = true; j < pattern.size(); first = false) {
        if (pattern[j] == ']' && !first) {
          closed = true;
          break;
        }
        const auto low = static_cast<unsigned char>(pattern[j]);
        if (j + 2 < pattern.size() && pattern[j + 1] == '-' && pattern[j + 2] != ']') {
          token.ranges.emplace_back(low, static_cast<unsigned char>(pattern[j + 2]));
          j += 3;
        } else {
          token.ranges.emplace_back(low, low);
          j += 1;
        }
      }
      if (!closed) return fail("unclosed '['");
      i = j;
    } else {
      token.literal = c;
    }
    glob.tokens_.push_back(std::move(token));
  }
  return glob;
}

bool Glob::class_matches(const Token& token, char c) {
  const auto byte = static_cast<unsigned char>(c);
  bool in = false;
  for (const auto& [low, high] : token.ranges) in |= byte >= low && byte <= high;
  return in != token.negated && c != '/';
}

bool Glob::matches(std::string_view path) const {
  const std::size_t n = path.size();
  // row[j]: the tokens so far match path[0, j).
  std::vector<char> row(n + 1, 0);
  std::vector<char> next(n + 1, 0);
  row[0] = 1;
  for (const Token& token : tokens_) {
    std::fill(next.begin(), next.end(), 0);
    switch (token.kind) {
      case Token::Kind::kLiteral:
        for (std::size_t j = 1; j <= n; ++j) next[j] = row[j - 1] && path[j - 1] == token.literal;
        break;
      case Token::Kind::kAny:
        for (std::size_t j = 1; j <= n; ++j) next[j] = row[j - 1] && path[j - 1] != '/';
        break;
      case Token::Kind::kClass:
        for (std::size_t j = 1; j <= n; ++j) next[j] = row[j - 1] && class_matches(token, path[j - 1]);
        break;
      case Token::Kind::kStar:
        next[0] = row[0];
        for (std::size_t j = 1; j <= n; ++j) next[j] = row[j] || (next[j - 1] && path[j - 1] != '/');
        break;
      case Token::Kind::kGlobstar:
        next[0] = row[0];
        for (std::size_t j = 1; j <= n; ++j) next[j] = row[j] || next[j - 1];
        break;
      case Token::Kind::kGlobstarSlash: {
        // "" (the preceding '/' is the only one) or anything that ends with '/'.
        bool any_before = false;
        for (std::size_t j = 0; j <= n; ++j) {
          next[j] = row[j] || (j > 0 && path[j - 1] == '/' && any_before);
          any_before = any_before || row[j];
        }
        break;
      }
      case Token::Kind::kSlashGlobstarEnd: {
        // "" (the directory itself) or "/" followed by anything.
        bool open = false;
        for (std::size_t j = 0; j <= n; ++j) {
          if (j > 0 && path[j - 1] == '/' && row[j - 1]) open = true;
          next[j] = row[j] || open;
        }
        break;
      }
    }
    row.swap(next);
  }
  return row[n] != 0;
}

}  // namespace ftpsgate::rules
