#include "net/dialer.h"

namespace ftpsgate::net {

std::string DialTarget::to_string() const {
  // The configured form (HostPort::to_string): an IPv6 literal in brackets.
  const std::string where =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  return agent.empty() ? where : "agent:" + agent + "/" + where;
}

}  // namespace ftpsgate::net
