// The config loader: listeners: addresses, modes, banners, PROXY protocol, HOST routing.
#include "config/loader.h"

namespace ftpsgate::config::detail {

void Loader::read_listeners(MapReader& top) {
  const Field* field = top.get("listeners");
  if (is_empty_list(field)) {
    diag_.error(field != nullptr ? field->value_mark() : top.mark(), "at least one listener is required ('listeners')");
    return;
  }
  const auto items = list_items(*field, "listeners", diag_);
  std::map<std::string, YAML::Mark> names;
  for (std::size_t i = 0; i < items.size(); ++i) {
    MapReader map(
        items[i], items[i].Mark(), indexed("listeners", i),
        {"name", "address", "mode", "backend", "proxy_protocol", "proxy_protocol_from", "host_backends", "banner", "auth"},
        diag_, MapReader::Empty::kError);
    if (!map.is_mapping()) continue;
    ListenerConfig listener;
    ListenerSite site;
    read_name(map, "listener", names, listener.name);
    std::string address_text;
    if (const Field* address = read_required(map, "address", address_text)) {
      site.address = address->value_mark();
      site.address_ok = read_bind_address(address_text, site.address, "listener", listener.address);
    }
    map.read_choice("mode", listener.mode,
                    {{"explicit", ListenerMode::kExplicit}, {"implicit", ListenerMode::kImplicit}});
    if (const Field* backend = read_required(map, "backend", listener.backend)) {
      site.backend = backend->value_mark();
      site.backend_ok = true;
    }
    const Field* proxy = map.read("proxy_protocol", listener.proxy_protocol);
    listener.proxy_protocol_from = read_cidrs(map, "proxy_protocol_from");
    if (listener.proxy_protocol && is_empty_list(map.get("proxy_protocol_from"))) {
      diag_.error(proxy != nullptr ? proxy->value_mark() : map.mark(),
                  "proxy_protocol: true needs proxy_protocol_from, the addresses (CIDRs) of the load balancers "
                  "allowed to send PROXY headers (a header from anyone else could claim any client address)");
    } else if (!listener.proxy_protocol && !listener.proxy_protocol_from.empty()) {
      diag_.warning(map.get("proxy_protocol_from")->value_mark(),
                    "proxy_protocol_from has no effect without proxy_protocol: true");
    }
    if (const Field* hosts = map.get("host_backends")) {
      site.host_backends = hosts->value_mark();
      for (const auto& item : list_items(*hosts, "host_backends", diag_)) {
        if (auto text = scalar_text(item, item.Mark(), "a 'host_backends' entry", diag_)) {
          listener.host_backends.push_back(*text);
        }
      }
    }
    if (const Field* banner = map.read("banner", listener.banner)) {
      check_banner(listener.banner, banner->value_mark());
    }
    read_auth_chain(map, listener.auth);
    config_.listeners.push_back(std::move(listener));
    listener_sites_.push_back(site);
  }
}

std::vector<std::string> Loader::read_cidrs(MapReader& map, const char* key) {
  std::vector<std::string> out;
  const Field* field = map.get(key);
  if (field == nullptr) return out;
  const std::string what = std::string("a '") + key + "' entry";
  for (const auto& item : list_items(*field, key, diag_)) {
    auto text = scalar_text(item, item.Mark(), what, diag_);
    if (!text) continue;
    if (auto error = cidr_error(*text)) {
      diag_.error(item.Mark(), *error);
    } else {
      out.push_back(*text);
    }
  }
  return out;
}

bool Loader::read_bind_address(const std::string& text, const YAML::Mark& at, std::string_view what, HostPort& out) {
  auto address = parse_host_port(text);
  if (!address) {
    diag_.error(at, "invalid address '" + text + "' (use host:port or [IPv6]:port)");
    return false;
  }
  if (!is_ip_literal(address->host)) {
    diag_.error(
        at, std::string(what) + " address must be an IP address, not a host name " + "(e.g. 0.0.0.0:21 or [::]:21)");
    return false;
  }
  out = *address;
  return true;
}

void Loader::check_banner(const std::string& banner, const YAML::Mark& at) {
  // SECURITY: a CR/LF in the greeting would let the config forge extra reply lines.
  for (char c : banner) {
    if (std::iscntrl(static_cast<unsigned char>(c))) {
      diag_.error(at, "banner must be a single line without control characters");
      return;
    }
  }
  if (banner.size() > kMaxBannerLength) {
    diag_.error(at, "banner is longer than " + std::to_string(kMaxBannerLength) + " characters");
  }
}

}  // namespace ftpsgate::config::detail
