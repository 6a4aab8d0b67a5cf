// A credential held in memory (a backend service password, an LDAP service password):
// no stream operator, so it cannot end up in a log line or a config dump by accident,
// and wiped when dropped.
#pragma once

#include <string>

namespace ftpsgate::identity {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  Secret(const Secret&) = default;
  Secret& operator=(const Secret&) = default;
  ~Secret() { wipe(); }

  const std::string& reveal() const { return value_; }
  bool empty() const { return value_.empty(); }

 private:
  void wipe() {
    volatile char* p = value_.data();
    for (std::size_t i = 0; i < value_.size(); ++i) p[i] = 0;
  }
  std::string value_;
};

}  // namespace ftpsgate::identity
