// The config loader: passive, active and data.
#include "config/loader.h"

namespace ftpsgate::config::detail {

void Loader::read_passive(MapReader& top) {
  MapReader map = section(top, "passive", {"ports", "masquerade_address", "shared_port"});
  PassiveConfig& passive = config_.passive;
  std::string ports;
  if (const Field* field = map.read("ports", ports)) {
    passive_ports_mark_ = field->value_mark();
    if (auto range = parse_port_range(ports)) {
      passive.port_min = range->min;
      passive.port_max = range->max;
    } else {
      passive_ports_ok_ = false;
      diag_.error(field->value_mark(), "invalid port range '" + ports +
                                           "' (use e.g. 30000-30999 or 30000; ports 1-65535, "
                                           "low to high)");
    }
  } else if (map.get("ports") != nullptr) {
    passive_ports_ok_ = false;
  }
  if (const Field* field = map.read("masquerade_address", passive.masquerade_address)) {
    check_masquerade(passive.masquerade_address, field->value_mark());
  }
  if (const Field* field = map.read("shared_port", passive.shared_port)) shared_port_mark_ = field->value_mark();
}

void Loader::read_active(MapReader& top) {
  MapReader map = section(top, "active", {"enabled", "allow_foreign_address", "min_port"});
  map.read("enabled", config_.active.enabled);
  map.read("allow_foreign_address", config_.active.allow_foreign_address);
  map.read_int<uint16_t>("min_port", 1, 65535, config_.active.min_port);
}

void Loader::read_data(MapReader& top) {
  MapReader map = section(top, "data", {"allow_foreign_address", "stall_timeout"});
  map.read("allow_foreign_address", config_.data.allow_foreign_address);
  map.read_duration("stall_timeout", config_.data.stall_timeout);
}

}  // namespace ftpsgate::config::detail
