// The config loader's inspection section (issue 16): the spool, clamd and ICAP scanners,
// and each class's use of them. Every error with its exact line:col and message.
#include <doctest/doctest.h>

#include <string>

#include "config/config_loader.h"
#include "config_test_support.h"

using namespace ftpsgate::config_test;  // doc, with_base, check_only_error, load_ok, ...
using namespace std::chrono_literals;
using ftpsgate::IcapMethod;
using ftpsgate::ScanEngine;

// ---- Loading ---------------------------------------------------------------------------

TEST_CASE("inspection: every key of the spool, clamd and ICAP scanners and class inspection is read") {
  const auto config = load_ok(with_base(R"(
    inspection:
      spool_dir: /var/spool/ftpsgate
      memory_threshold: 256KiB
      max_spool_bytes: 2GiB
      scanners:
        - name: av
          clamd: {socket: /run/clamav/clamd.ctl}
          max_connections: 4
          connect_timeout: 2s
          timeout: 30s
          health_check: {interval: 5s, timeout: 1s}
          readyz: true
        - name: av-tcp
          clamd: {address: "10.0.0.9:3310"}
        - name: icap1
          icap:
            url: icap://127.0.0.1:1344/virus_scan
            method: reqmod
            preview: 4KiB
    classes:
      - name: partners
        from: ["192.0.2.0/24"]
        inspection:
          scanner: icap1
          uploads: true
          downloads: false
          max_scan_size: 100MiB
          above_max_scan_size: allow
          on_error: allow
      - name: staff
        from: ["10.0.0.0/8"]
        inspection: {scanner: av-tcp, uploads: false, above_max_scan_size: deny, on_error: deny}
      - name: internet
        inspection: {scanner: av}
  )"));
  const auto& inspection = config.inspection;
  CHECK(inspection.spool_dir == "/var/spool/ftpsgate");
  CHECK(inspection.memory_threshold == 256 * 1024);
  CHECK(inspection.max_spool_bytes == uint64_t{2} << 30);
  REQUIRE(inspection.scanners.size() == 3);

  const auto& av = inspection.scanners[0];
  CHECK(av.name == "av");
  CHECK(av.position.line == 10);
  CHECK(av.position.column == 7);
  CHECK(av.engine == ScanEngine::kClamd);
  CHECK(av.clamd_socket == "/run/clamav/clamd.ctl");
  CHECK_FALSE(av.clamd_address.has_value());
  CHECK(av.max_connections == 4);
  CHECK(av.connect_timeout == 2s);
  CHECK(av.timeout == 30s);
  CHECK(av.health_check.interval == 5s);
  CHECK(av.health_check.timeout == 1s);
  CHECK(av.readyz);

  const auto& tcp = inspection.scanners[1];
  CHECK(tcp.engine == ScanEngine::kClamd);
  CHECK(tcp.clamd_socket.empty());
  REQUIRE(tcp.clamd_address.has_value());
  CHECK(tcp.clamd_address->host == "10.0.0.9");
  CHECK(tcp.clamd_address->port == 3310);

  const auto& icap = inspection.scanners[2];
  CHECK(icap.engine == ScanEngine::kIcap);
  CHECK(icap.icap_url == "icap://127.0.0.1:1344/virus_scan");
  CHECK(icap.icap_method == IcapMethod::kReqmod);
  CHECK(icap.icap_preview == 4096);
  CHECK(inspection.find_scanner("icap1") == &icap);
  CHECK(inspection.find_scanner("nope") == nullptr);

  REQUIRE(config.classes.size() == 3);
  const auto& partners = config.classes[0].inspection;
  CHECK(partners.scanner == "icap1");
  CHECK(partners.uploads);
  CHECK_FALSE(partners.downloads);
  CHECK(partners.max_scan_size == std::optional<uint64_t>(100 * 1024 * 1024));
  CHECK(partners.allow_above_max);
  CHECK(partners.allow_on_error);
  const auto& staff = config.classes[1].inspection;
  CHECK(staff.scanner == "av-tcp");
  CHECK_FALSE(staff.uploads);
  CHECK_FALSE(staff.allow_above_max);
  CHECK_FALSE(staff.allow_on_error);
  CHECK(config.classes[2].inspection.scanner == "av");
}

TEST_CASE("inspection: defaults — /var/tmp, 1MiB in memory, 1GiB spooled, fail closed") {
  const auto result = load(with_base(R"(
    inspection:
      scanners:
        - {name: av, clamd: {socket: /run/clamav/clamd.ctl}}
        - {name: icap1, icap: {url: "icap://10.0.0.5/avscan"}}
    classes:
      - {name: lan, from: ["10.0.0.0/8"], inspection: {scanner: icap1}}
      - {name: internet, inspection: {scanner: av}}
  )"));
  INFO(describe(result));
  REQUIRE(result.config.has_value());
  CHECK(result.warnings.empty());
  const auto& inspection = result.config->inspection;
  CHECK(inspection.spool_dir == "/var/tmp");
  CHECK(inspection.memory_threshold == 1024 * 1024);
  CHECK(inspection.max_spool_bytes == uint64_t{1} << 30);
  REQUIRE(inspection.scanners.size() == 2);
  const auto& av = inspection.scanners[0];
  CHECK(av.max_connections == 8);
  CHECK(av.connect_timeout == 5s);
  CHECK(av.timeout == 60s);
  CHECK(av.health_check.interval == 10s);
  CHECK(av.health_check.timeout == 3s);
  CHECK_FALSE(av.readyz);
  const auto& icap = inspection.scanners[1];
  CHECK(icap.icap_method == IcapMethod::kRespmod);
  CHECK(icap.icap_preview == 0);
  const auto& cls = result.config->classes[1].inspection;
  CHECK(cls.scanner == "av");
  CHECK(cls.uploads);
  CHECK_FALSE(cls.downloads);
  CHECK_FALSE(cls.max_scan_size.has_value());
  CHECK_FALSE(cls.allow_above_max);
  CHECK_FALSE(cls.allow_on_error);
}

TEST_CASE("inspection: without the section nothing is inspected") {
  const auto config = load_ok(with_base(R"(
    classes:
      - {name: internet}
  )"));
  CHECK(config.inspection.scanners.empty());
  CHECK(config.inspection.spool_dir == "/var/tmp");
  CHECK(config.classes[0].inspection.scanner.empty());
}

TEST_CASE("inspection: a scanner no class names is a warning") {
  const auto result = load(with_base(R"(
    inspection:
      scanners:
        - {name: av, clamd: {socket: /run/clamav/clamd.ctl}}
  )"));
  REQUIRE(result.config.has_value());
  REQUIRE(result.warnings.size() == 1);
  CHECK(result.warnings[0] == "test.yaml:7:7: scanner 'av' is not used by any class or rule");
}

// ---- Scanners ---------------------------------------------------------------------------

TEST_CASE("inspection: a scanner has exactly one engine, reported at the scanner") {
  check_only_error(7, 7, "scanner 'av' has both 'clamd' and 'icap' (a scanner uses one engine)", with_base(R"(
    inspection:
      scanners:
        - name: av
          clamd: {socket: /run/clamav/clamd.ctl}
          icap: {url: "icap://127.0.0.1/avscan"}
  )"));
  check_only_error(7, 7, "scanner 'av' needs an engine: 'clamd' or 'icap'", with_base(R"(
    inspection:
      scanners:
        - {name: av, readyz: true}
  )"));
}

TEST_CASE("inspection: clamd takes one absolute socket path or one host:port") {
  check_only_error(8, 23, "'socket' must be an absolute path (e.g. /run/clamav/clamd.ctl)", with_base(R"(
    inspection:
      scanners:
        - name: av
          clamd: {socket: clamd.ctl}
  )"));
  const std::string long_path = "/run/" + std::string(103, 'x');  // 108 bytes, one too many
  check_only_error(8, 23, "'socket' is longer than a unix socket path may be (107 bytes)", with_base(R"(
    inspection:
      scanners:
        - name: av
          clamd: {socket: )" + long_path + R"(}
  )"));
  check_only_error(8, 14, "clamd takes either 'socket' or 'address', not both", with_base(R"(
    inspection:
      scanners:
        - name: av
          clamd: {socket: /run/clamav/clamd.ctl, address: "127.0.0.1:3310"}
  )"));
  check_only_error(8, 14, "clamd needs 'socket' (a unix socket path) or 'address' (host:port)", with_base(R"(
    inspection:
      scanners:
        - name: av
          clamd: {}
  )"));
  check_only_error(8, 24, "invalid clamd address '127.0.0.1' (use host:port or [IPv6]:port)", with_base(R"(
    inspection:
      scanners:
        - name: av
          clamd: {address: "127.0.0.1"}
  )"));
  check_only_error(8, 42, "unknown key 'port' in 'inspection.scanners[0].clamd'", with_base(R"(
    inspection:
      scanners:
        - name: av
          clamd: {address: "127.0.0.1:3310", port: 3310}
  )"));
  // The loops never block on DNS: a scanner's host is an address (or localhost).
  check_only_error(8, 24, "a scanner's host must be an IP address or localhost (names are not resolved)", with_base(R"(
    inspection:
      scanners:
        - name: av
          clamd: {address: "clamav.internal:3310"}
  )"));
  check_only_error(8, 19, "a scanner's host must be an IP address or localhost (names are not resolved)", with_base(R"(
    inspection:
      scanners:
        - name: i
          icap: {url: "icap://icap.internal/avscan"}
  )"));
}

TEST_CASE("inspection: an ICAP scanner needs a URL parse_icap_url accepts, a method and a bounded preview") {
  for (const char* bad : {"http://127.0.0.1:1344/avscan", "icap://127.0.0.1:1344", "icap://127.0.0.1:1344/",
                          "icap://user@host/avscan", "icap://host:0/avscan"}) {
    INFO(bad);
    check_only_error(8, 19,
                     "invalid ICAP URL '" + std::string(bad) + "' (use icap://host[:port]/service)", with_base(R"(
      inspection:
        scanners:
          - name: i
            icap: {url: ")" + std::string(bad) + R"("}
    )"));
  }
  check_only_error(8, 13, "missing required key 'url' in 'inspection.scanners[0].icap'", with_base(R"(
    inspection:
      scanners:
        - name: i
          icap: {method: reqmod}
  )"));
  check_only_error(8, 54, "method must be one of: respmod, reqmod", with_base(R"(
    inspection:
      scanners:
        - name: i
          icap: {url: "icap://localhost/avscan", method: options}
  )"));
  check_only_error(8, 55, "'preview' must be at most 1MiB", with_base(R"(
    inspection:
      scanners:
        - name: i
          icap: {url: "icap://localhost/avscan", preview: 2MiB}
  )"));
  check_only_error(8, 55, "invalid size '4k' (use e.g. 4096, 64KiB, 1MiB)", with_base(R"(
    inspection:
      scanners:
        - name: i
          icap: {url: "icap://localhost/avscan", preview: 4k}
  )"));
  const auto config = load_ok(with_base(R"(
    inspection:
      scanners:
        - {name: i, icap: {url: "icap://[::1]:1344/avscan", preview: 1MiB}}
    classes:
      - {name: c, inspection: {scanner: i}}
  )"));
  CHECK(config.inspection.scanners[0].icap_preview == 1024 * 1024);
}

TEST_CASE("inspection: scanner names are plain and unique; limits are bounded") {
  check_only_error(9, 14, "duplicate scanner name 'av' (first used on line 7)", with_base(R"(
    inspection:
      scanners:
        - {name: av, clamd: {socket: /run/clamav/clamd.ctl}}
        - {name: av2, clamd: {socket: /run/clamav/clamd.ctl}}
        - {name: av, clamd: {socket: /run/clamav/clamd.ctl}}
  )"));
  check_only_error(7, 14, "scanner name 'a v' must be letters, digits, '-', '_' or '.'", with_base(R"(
    inspection:
      scanners:
        - {name: "a v", clamd: {socket: /run/clamav/clamd.ctl}}
  )"));
  check_only_error(7, 7, "missing required key 'name' in 'inspection.scanners[0]'", with_base(R"(
    inspection:
      scanners:
        - {clamd: {socket: /run/clamav/clamd.ctl}}
  )"));
  for (const char* bad : {"0", "1025"}) {
    INFO(bad);
    check_only_error(9, 24, "'max_connections' must be between 1 and 1024", with_base(R"(
      inspection:
        scanners:
          - name: av
            clamd: {socket: /run/clamav/clamd.ctl}
            max_connections: )" + std::string(bad) + R"(
    )"));
  }
  check_only_error(9, 16, "'timeout' must be greater than zero", with_base(R"(
    inspection:
      scanners:
        - name: av
          clamd: {socket: /run/clamav/clamd.ctl}
          timeout: 0s
  )"));
  check_only_error(9, 36, "unknown key 'retries' in 'inspection.scanners[0].health_check'", with_base(R"(
    inspection:
      scanners:
        - name: av
          clamd: {socket: /run/clamav/clamd.ctl}
          health_check: {interval: 5s, retries: 3}
  )"));
  check_only_error(9, 7, "unknown key 'engine' in 'inspection.scanners[0]'", with_base(R"(
    inspection:
      scanners:
        - name: av
          clamd: {socket: /run/clamav/clamd.ctl}
          engine: clamd
  )"));
  check_only_error(6, 13, "'scanners' must be a list", with_base(R"(
    inspection:
      scanners: {name: av}
  )"));
}

// ---- The spool ----------------------------------------------------------------------------

TEST_CASE("inspection: the spool directory is absolute and its sizes are valid and consistent") {
  check_only_error(6, 14, "'spool_dir' must be an absolute path (e.g. /var/tmp)", with_base(R"(
    inspection:
      spool_dir: spool
  )"));
  check_only_error(6, 21, "invalid size '1MB' (use e.g. 4096, 64KiB, 1MiB)", with_base(R"(
    inspection:
      memory_threshold: 1MB
  )"));
  check_only_error(6, 20, "'max_spool_bytes' must be greater than zero", with_base(R"(
    inspection:
      max_spool_bytes: 0
  )"));
  check_only_error(6, 21, "'memory_threshold' must not be larger than 'max_spool_bytes'", with_base(R"(
    inspection:
      memory_threshold: 64MiB
      max_spool_bytes: 32MiB
  )"));
  // Only the total written: the default threshold (1MiB) is above it.
  check_only_error(6, 20, "'memory_threshold' must not be larger than 'max_spool_bytes'", with_base(R"(
    inspection:
      max_spool_bytes: 512KiB
  )"));
  check_only_error(6, 3, "unknown key 'spool' in 'inspection'", with_base(R"(
    inspection:
      spool: /var/tmp
  )"));
  const auto config = load_ok(with_base(R"(
    inspection:
      memory_threshold: 0
      max_spool_bytes: 1MiB
  )"));
  CHECK(config.inspection.memory_threshold == 0);
  CHECK(config.inspection.max_spool_bytes == 1024 * 1024);
}

// ---- Classes --------------------------------------------------------------------------------

// Two lines of scanners after the base: classes start on line 7.
const std::string kScanners = doc(R"(
  inspection:
    scanners: [{name: av, clamd: {socket: /run/clamav/clamd.ctl}}]
)");

TEST_CASE("inspection: a class names a scanner of inspection.scanners") {
  // A duplicate scanner name does not hide an unknown one.
  const auto result = load(with_base(R"(
    inspection:
      scanners:
        - {name: av, clamd: {socket: /run/clamav/clamd.ctl}}
        - {name: av, clamd: {socket: /run/clamav/clamd.ctl}}
    classes:
      - {name: c, inspection: {scanner: avv}}
  )"));
  INFO(describe(result));
  REQUIRE(result.errors.size() == 2);
  CHECK(result.errors[0].format() == "test.yaml:8:14: duplicate scanner name 'av' (first used on line 7)");
  CHECK(result.errors[1].format() == "test.yaml:10:37: unknown scanner 'avv'");

  check_only_error(8, 37, "unknown scanner 'avv'", with_base(kScanners + doc(R"(
    classes:
      - {name: c, inspection: {scanner: avv}}
  )")));
  // No scanners at all.
  check_only_error(6, 37, "unknown scanner 'av'", with_base(R"(
    classes:
      - {name: c, inspection: {scanner: av}}
  )"));
  check_only_error(8, 27, "missing required key 'scanner' in 'classes[0].inspection'", with_base(kScanners + doc(R"(
    classes:
      - {name: c, inspection: {uploads: true}}
  )")));
  check_only_error(8, 41, "unknown key 'scan' in 'classes[0].inspection'", with_base(kScanners + doc(R"(
    classes:
      - {name: c, inspection: {scanner: av, scan: true}}
  )")));
}

TEST_CASE("inspection: a class's sizes and deny/allow choices are checked at their values") {
  check_only_error(11, 28, "above_max_scan_size must be one of: deny, allow", with_base(kScanners + doc(R"(
    classes:
      - name: c
        inspection:
          scanner: av
          above_max_scan_size: skip
  )")));
  check_only_error(11, 17, "on_error must be one of: deny, allow", with_base(kScanners + doc(R"(
    classes:
      - name: c
        inspection:
          scanner: av
          on_error: true
  )")));
  check_only_error(11, 22, "invalid size '100MB' (use e.g. 4096, 64KiB, 1MiB)", with_base(kScanners + doc(R"(
    classes:
      - name: c
        inspection:
          scanner: av
          max_scan_size: 100MB
  )")));
  check_only_error(11, 22, "'max_scan_size' must be greater than zero (omit it for no limit)",
                   with_base(kScanners + doc(R"(
    classes:
      - name: c
        inspection:
          scanner: av
          max_scan_size: 0
  )")));
  check_only_error(11, 16, "'uploads' must be true or false (or yes/no), not 'on'", with_base(kScanners + doc(R"(
    classes:
      - name: c
        inspection:
          scanner: av
          uploads: on
  )")));
}

TEST_CASE("inspection: downloads are inspected when asked, uploads alone by default") {
  const auto config = load_ok(with_base(kScanners + doc(R"(
    classes:
      - name: c
        from: ["192.0.2.0/24"]
        inspection:
          scanner: av
          downloads: true
      - name: d
        from: ["198.51.100.0/24"]
        inspection: {scanner: av}
      - name: e
        inspection: {scanner: av, uploads: false, downloads: true}
  )")));
  CHECK(config.classes[0].inspection.inspects_downloads());
  CHECK(config.classes[0].inspection.inspects_uploads());
  CHECK_FALSE(config.classes[1].inspection.inspects_downloads());
  CHECK_FALSE(config.classes[2].inspection.inspects_uploads());
  CHECK(config.classes[2].inspection.inspects_downloads());
  check_only_error(8, 52, "'downloads' must be true or false (or yes/no), not 'maybe'", with_base(kScanners + doc(R"(
    classes:
      - {name: c, inspection: {scanner: av, downloads: maybe}}
  )")));
}

TEST_CASE("inspection needs every backend in data_mode: passive, reported at each inspecting class") {
  const std::string two_backends = doc(R"(
    listeners:
      - {name: l, address: "127.0.0.1:2121", backend: b, host_backends: [b, old]}
    backends:
      - {name: b, servers: ["127.0.0.1:21"], data_mode: passive}
      - {name: old, servers: ["127.0.0.1:2100"], data_mode: active, hosts: [old.example]}
    inspection:
      scanners: [{name: av, clamd: {socket: /run/clamav/clamd.ctl}}]
  )");
  check_only_error(9, 37, "inspection needs the backend's data_mode: passive (backend 'old' has data_mode: active)",
                   two_backends + doc(R"(
    classes:
      - {name: c, inspection: {scanner: av}}
  )"));
  // A class that inspects nothing does not care.
  load_ok(two_backends + doc(R"(
    classes:
      - {name: c, inspection: {scanner: av, uploads: false}}
  )"));
  const auto result = load(doc(R"(
    listeners:
      - {name: l, address: "127.0.0.1:2121", backend: a1, host_backends: [a1, a2]}
    backends:
      - {name: a1, servers: ["127.0.0.1:21"], data_mode: active}
      - {name: a2, servers: ["127.0.0.1:2100"], data_mode: active}
    inspection:
      scanners: [{name: av, clamd: {socket: /run/clamav/clamd.ctl}}]
    classes:
      - {name: lan, from: ["10.0.0.0/8"], inspection: {scanner: av}}
      - {name: c, inspection: {scanner: av}}
  )"));
  INFO(describe(result));
  REQUIRE(result.errors.size() == 2);
  CHECK(result.errors[0].format() ==
        "test.yaml:9:61: inspection needs the backend's data_mode: passive (backends 'a1', 'a2' have data_mode: "
        "active)");
  CHECK(result.errors[1].line == 10);
  CHECK(result.errors[1].column == 37);
}

// ---- Rules: inspection per user, group or class -----------------------------------------

TEST_CASE("inspection: a rule sets inspection for its users, groups or classes, with the class's keys") {
  const auto config = load_ok(with_base(kScanners + doc(R"(
    classes:
      - {name: internet}
    rules:
      - name: partner-uploads
        users: [acme]
        inspection: {scanner: av, max_scan_size: 10MiB, on_error: allow}
      - name: admins-unscanned
        groups: [ops]
        inspection: {scanner: av, uploads: false}
      - name: no-inspection-here
        classes: [internet]
        verbs: {deny: [DELE]}
  )")));
  REQUIRE(config.rules.size() == 3);
  REQUIRE(config.rules[0].inspection.has_value());
  CHECK(config.rules[0].inspection->scanner == "av");
  CHECK(config.rules[0].inspection->max_scan_size == 10u * 1024 * 1024);
  CHECK(config.rules[0].inspection->allow_on_error);
  CHECK(config.rules[0].inspection->inspects_uploads());
  REQUIRE(config.rules[1].inspection.has_value());
  CHECK_FALSE(config.rules[1].inspection->inspects_uploads());
  CHECK_FALSE(config.rules[2].inspection.has_value());
  CHECK(config.classes[0].inspection.scanner.empty());
}

TEST_CASE("inspection: a rule's inspection is checked like a class's, and is never in monitor mode") {
  check_only_error(8, 52, "unknown scanner 'avv'", with_base(kScanners + doc(R"(
    rules:
      - {name: r, users: [acme], inspection: {scanner: avv}}
  )")));
  check_only_error(8, 42, "missing required key 'scanner' in 'rules[0].inspection'", with_base(kScanners + doc(R"(
    rules:
      - {name: r, users: [acme], inspection: {uploads: false}}
  )")));
  check_only_error(8, 66, "a rule with 'inspection' cannot have 'enforce: false'", with_base(kScanners + doc(R"(
    rules:
      - {name: r, users: [acme], inspection: {scanner: av}, enforce: false}
  )")));
}
