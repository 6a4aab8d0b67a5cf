#include "ftpsgate/config.h"

namespace ftpsgate {

std::string HostPort::to_string() const {
  const std::string port_text = std::to_string(port);
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + port_text;
  return host + ":" + port_text;
}

const BackendConfig* Config::find_backend(const std::string& name) const {
  for (const auto& backend : backends) {
    if (backend.name == name) return &backend;
  }
  return nullptr;
}

const ListenerConfig* Config::find_listener(const std::string& name) const {
  for (const auto& listener : listeners) {
    if (listener.name == name) return &listener;
  }
  return nullptr;
}

}  // namespace ftpsgate
