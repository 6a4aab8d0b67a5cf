// Drains OpenSSL's thread-local error queue into one reason string.
#pragma once

#include <string>

namespace ftpsgate::tls {

// Empty when the queue was empty. Always leaves the queue empty.
std::string drain_errors();
// Same, but with `fallback` when there was nothing queued.
std::string drain_errors_or(const std::string& fallback);

}  // namespace ftpsgate::tls
