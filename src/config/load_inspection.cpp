// The config loader: inspection (issue 16): the spool uploads wait in, the scanning
// services (clamd, ICAP), and each class's use of them.
#include "config/loader.h"
#include "inspection/icap_message.h"

namespace ftpsgate::config::detail {

void Loader::read_inspection(MapReader& top) {
  MapReader map = section(top, "inspection", {"spool_dir", "memory_threshold", "max_spool_bytes", "scanners"});
  InspectionConfig& inspection = config_.inspection;
  if (const Field* field = map.read("spool_dir", inspection.spool_dir)) {
    // A relative directory would follow the working directory, which differs between
    // --check, a service manager and a shell.
    if (inspection.spool_dir.empty() || inspection.spool_dir.front() != '/') {
      diag_.error(field->value_mark(), "'spool_dir' must be an absolute path (e.g. /var/tmp)");
    }
  }
  const Field* threshold = map.read_size("memory_threshold", inspection.memory_threshold);
  std::size_t max_spool = inspection.max_spool_bytes;
  const Field* max_spool_field = map.read_size("max_spool_bytes", max_spool);
  if (max_spool_field != nullptr && max_spool == 0) {
    diag_.error(max_spool_field->value_mark(), "'max_spool_bytes' must be greater than zero");
  } else if (max_spool_field != nullptr) {
    inspection.max_spool_bytes = max_spool;
  }
  if (inspection.memory_threshold > inspection.max_spool_bytes) {
    // One of them was written: the defaults (1MiB, 1GiB) agree.
    const Field* at = threshold != nullptr ? threshold : max_spool_field;
    diag_.error(at->value_mark(), "'memory_threshold' must not be larger than 'max_spool_bytes'");
  }
  const Field* scanners = map.get("scanners");
  if (scanners == nullptr) return;
  const auto items = list_items(*scanners, "scanners", diag_);
  std::map<std::string, YAML::Mark> names;
  for (std::size_t i = 0; i < items.size(); ++i) read_scanner(items[i], i, names);
}

void Loader::read_scanner(const YAML::Node& node, std::size_t index, std::map<std::string, YAML::Mark>& names) {
  MapReader map(node, node.Mark(), indexed("inspection.scanners", index),
                {"name", "clamd", "icap", "max_connections", "connect_timeout", "timeout", "health_check", "readyz"},
                diag_, MapReader::Empty::kError);
  if (!map.is_mapping()) {
    scanner_names_complete_ = false;
    return;
  }
  ScannerConfig scanner;
  scanner.position = {node.Mark().line + 1, node.Mark().column + 1};
  read_name(map, "scanner", names, scanner.name);
  // A missing or malformed name may be the one a class names; a duplicate is still known.
  if (!is_plain_name(scanner.name)) scanner_names_complete_ = false;
  const std::string who = scanner.name.empty() ? "scanner" : "scanner '" + scanner.name + "'";
  const bool has_clamd = map.get("clamd") != nullptr;
  const bool has_icap = map.get("icap") != nullptr;
  if (has_clamd && has_icap) {
    diag_.error(map.mark(), who + " has both 'clamd' and 'icap' (a scanner uses one engine)");
  } else if (!has_clamd && !has_icap) {
    diag_.error(map.mark(), who + " needs an engine: 'clamd' or 'icap'");
  }
  if (has_clamd) read_clamd(map, scanner);
  if (has_icap) read_icap(map, scanner);
  map.read_int<uint32_t>("max_connections", 1, kMaxScannerConnections, scanner.max_connections);
  map.read_duration("connect_timeout", scanner.connect_timeout);
  map.read_duration("timeout", scanner.timeout);
  read_health_check(map, scanner.health_check);
  map.read("readyz", scanner.readyz);
  scanner_marks_.push_back(map.mark());
  config_.inspection.scanners.push_back(std::move(scanner));
}

namespace {
// Scanners are reached from the event loops, where a blocking name lookup has no place.
bool scanner_host_ok(const std::string& host) { return host == "localhost" || is_ip_literal(host); }
constexpr const char* kScannerHostError = "a scanner's host must be an IP address or localhost (names are not resolved)";
}  // namespace

void Loader::read_clamd(MapReader& scanner_map, ScannerConfig& scanner) {
  scanner.engine = ScanEngine::kClamd;
  MapReader clamd = section(scanner_map, "clamd", {"socket", "address"});
  if (!clamd.is_mapping()) return;
  const bool has_socket = clamd.get("socket") != nullptr;
  const bool has_address = clamd.get("address") != nullptr;
  if (has_socket && has_address) {
    diag_.error(clamd.mark(), "clamd takes either 'socket' or 'address', not both");
  } else if (!has_socket && !has_address) {
    diag_.error(clamd.mark(), "clamd needs 'socket' (a unix socket path) or 'address' (host:port)");
  }
  if (const Field* field = clamd.read("socket", scanner.clamd_socket)) {
    if (scanner.clamd_socket.empty() || scanner.clamd_socket.front() != '/') {
      diag_.error(field->value_mark(), "'socket' must be an absolute path (e.g. /run/clamav/clamd.ctl)");
    } else if (scanner.clamd_socket.size() > kMaxUnixSocketPath) {
      diag_.error(field->value_mark(), "'socket' is longer than a unix socket path may be (" +
                                           std::to_string(kMaxUnixSocketPath) + " bytes)");
    }
  }
  std::string address;
  if (const Field* field = clamd.read("address", address)) {
    scanner.clamd_address = parse_host_port(address);
    if (!scanner.clamd_address) {
      diag_.error(field->value_mark(), "invalid clamd address '" + address + "' (use host:port or [IPv6]:port)");
    } else if (!scanner_host_ok(scanner.clamd_address->host)) {
      diag_.error(field->value_mark(), kScannerHostError);
    }
  }
}

void Loader::read_icap(MapReader& scanner_map, ScannerConfig& scanner) {
  scanner.engine = ScanEngine::kIcap;
  MapReader icap = section(scanner_map, "icap", {"url", "method", "preview"});
  if (const Field* field = read_required(icap, "url", scanner.icap_url)) {
    const auto url = inspection::parse_icap_url(scanner.icap_url);
    if (!url) {
      diag_.error(field->value_mark(), "invalid ICAP URL '" + scanner.icap_url + "' (use icap://host[:port]/service)");
    } else if (!scanner_host_ok(url->host)) {
      diag_.error(field->value_mark(), kScannerHostError);
    }
  }
  icap.read_choice("method", scanner.icap_method, {{"respmod", IcapMethod::kRespmod}, {"reqmod", IcapMethod::kReqmod}});
  std::size_t preview = 0;
  if (const Field* field = icap.read_size("preview", preview)) {
    if (preview > kMaxIcapPreview) {
      diag_.error(field->value_mark(), "'preview' must be at most 1MiB");
    } else {
      scanner.icap_preview = preview;
    }
  }
}

void Loader::read_inspection_policy(MapReader& parent, inspection::InspectionPolicy& out) {
  if (parent.get("inspection") == nullptr) return;
  MapReader map = section(parent, "inspection",
                          {"scanner", "uploads", "downloads", "max_scan_size", "above_max_scan_size", "on_error"});
  if (!map.is_mapping()) return;
  const Field* scanner = read_required(map, "scanner", out.scanner);
  map.read("uploads", out.uploads);
  map.read("downloads", out.downloads);
  std::size_t max_scan_size = 0;
  if (const Field* field = map.read_size("max_scan_size", max_scan_size)) {
    if (max_scan_size == 0) {
      diag_.error(field->value_mark(), "'max_scan_size' must be greater than zero (omit it for no limit)");
    } else {
      out.max_scan_size = max_scan_size;
    }
  }
  map.read_choice("above_max_scan_size", out.allow_above_max, kDenyAllowChoices);
  map.read_choice("on_error", out.allow_on_error, kDenyAllowChoices);
  if (scanner != nullptr) inspection_sites_.push_back({out.scanner, out.uploads, scanner->value_mark()});
}

}  // namespace ftpsgate::config::detail
