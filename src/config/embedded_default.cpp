// SPEC §9: what `ftpsgate` runs on without --config. Loopback only, so starting it by
// accident exposes nothing.
#include "config/config_loader.h"

namespace ftpsgate::config {

const std::string& embedded_default_yaml() {
  static const std::string text = R"yaml(# ftpsgate embedded default (SPEC section 9)
listeners:
  - name: explicit
    address: "127.0.0.1:2121"
    mode: explicit
    backend: default
  - name: implicit
    address: "127.0.0.1:2990"
    mode: implicit
    backend: default
tls:
  certificates: []          # none: a self-signed ECDSA certificate is generated in memory
backends:
  - name: default
    servers: ["127.0.0.1:21"]
passive:
  ports: "30000-30099"
  masquerade_address: "127.0.0.1"
classes:
  - name: default
    tls_required: "on"
metrics:
  address: "127.0.0.1:9121"
)yaml";
  return text;
}

}  // namespace ftpsgate::config
