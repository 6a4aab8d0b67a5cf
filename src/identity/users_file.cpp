#include "identity/users_file.h"

#include <algorithm>
#include <cctype>

#include "ftp/command.h"
#include "identity/hash_scheme.h"

namespace ftpsgate::identity {

namespace {

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

bool all_digits_or_empty(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
}

bool plain_group(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '@';
  });
}

class LineParser {
 public:
  LineParser(std::string_view line, int number, UsersFile& out) : line_(line), number_(number), out_(out) {}

  void parse() {
    if (line_.size() > kMaxUsersFileLine) return error(1, "line longer than " + std::to_string(kMaxUsersFileLine) + " bytes");
    const auto fields = split(line_, ':');
    if (fields.size() < 2) return error(1, "expected name:hash");
    UserEntry entry;
    entry.line = number_;
    entry.name = std::string(fields[0]);
    if (entry.name.empty() || !ftp::is_acceptable_user_name(entry.name)) return error(1, "invalid user name");
    if (out_.users.count(entry.name) != 0) {
      return error(1, "user '" + entry.name + "' is listed twice (first on line " +
                          std::to_string(out_.users[entry.name].line) + ")");
    }
    entry.password_hash = std::string(fields[1]);
    const int hash_column = static_cast<int>(fields[0].size()) + 2;
    if (hash_scheme(entry.password_hash) == HashScheme::kUnsupported) {
      return error(hash_column,
                   "user '" + entry.name +
                       "': unsupported password hash (use yescrypt $y$, bcrypt $2b$/$2y$, sha512crypt $6$ or "
                       "sha256crypt $5$; DES, MD5, plain text and locked entries are refused)");
    }
    // An /etc/shadow line: numeric ageing fields follow the hash and carry nothing for us.
    const bool shadow = fields.size() == 9 && std::all_of(fields.begin() + 2, fields.end(), all_digits_or_empty);
    if (!shadow && fields.size() > 4) return error(1, "user '" + entry.name + "': expected name:hash:groups:options");
    if (!shadow) {
      std::size_t column = fields[0].size() + fields[1].size() + 3;
      if (fields.size() >= 3 && !read_groups(fields[2], static_cast<int>(column), entry)) return;
      if (fields.size() >= 3) column += fields[2].size() + 1;
      if (fields.size() == 4 && !read_options(fields[3], static_cast<int>(column), entry)) return;
    }
    out_.users.emplace(entry.name, std::move(entry));
  }

 private:
  bool read_groups(std::string_view text, int column, UserEntry& entry) {
    if (text.empty()) return true;
    for (auto group : split(text, ',')) {
      if (!plain_group(group)) {
        error(column, "user '" + entry.name + "': invalid group name '" + std::string(group) + "'");
        return false;
      }
      if (entry.groups.size() == kMaxGroupsPerUser) {
        error(column, "user '" + entry.name + "': more than " + std::to_string(kMaxGroupsPerUser) + " groups");
        return false;
      }
      entry.groups.emplace_back(group);
    }
    return true;
  }

  bool read_options(std::string_view text, int column, UserEntry& entry) {
    if (text.empty()) return true;
    for (auto option : split(text, ';')) {
      const std::size_t eq = option.find('=');
      const std::string key(option.substr(0, eq));
      const std::string value(eq == std::string_view::npos ? std::string_view() : option.substr(eq + 1));
      if (eq == std::string_view::npos || value.empty()) {
        error(column, "user '" + entry.name + "': option '" + key + "' needs a value (key=value)");
        return false;
      }
      if (key == "backend") {
        entry.backend = value;
      } else if (key == "backend_user") {
        if (!ftp::is_acceptable_user_name(value)) {
          error(column, "user '" + entry.name + "': invalid backend_user");
          return false;
        }
        entry.backend_user = value;
      } else if (key == "backend_password_file") {
        entry.backend_password_file = value;
      } else if (key == "tls_required") {
        entry.tls_required = value;
      } else {
        error(column, "user '" + entry.name + "': unknown option '" + key +
                          "' (known: backend, backend_user, backend_password_file, tls_required)");
        return false;
      }
      column += static_cast<int>(option.size()) + 1;
    }
    if (!entry.backend_password_file.empty() && entry.backend_user.empty()) {
      error(column, "user '" + entry.name + "': backend_password_file needs backend_user");
      return false;
    }
    return true;
  }

  void error(int column, std::string message) { out_.errors.push_back({number_, column, std::move(message)}); }

  std::string_view line_;
  int number_;
  UsersFile& out_;
};

}  // namespace

UsersFile parse_users_file(std::string_view text) {
  UsersFile out;
  int number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    LineParser(line, number, out).parse();
  }
  return out;
}

}  // namespace ftpsgate::identity
