// Errors of a libevent OpenSSL bufferevent, drained into one reason string.
#pragma once

#include <event2/bufferevent.h>

#include <string>

namespace ftpsgate::tls {

std::string drain_bufferevent_errors(bufferevent* bev, const std::string& fallback);

}  // namespace ftpsgate::tls
