// What inspection a class (or a rule for users, groups or classes) asks for (issue 16):
// which scanner, and what to do with files it cannot or need not scan.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ftpsgate::inspection {

struct InspectionPolicy {
  std::string scanner;  // a name in inspection.scanners; "" = no inspection
  bool uploads = true;
  bool downloads = false;  // RETR: the backend's file is spooled and scanned before the client gets it
  std::optional<uint64_t> max_scan_size;  // larger files are not scanned; unset = no limit
  bool allow_above_max = false;  // above max_scan_size: false = refused (550), true = passed unscanned
  bool allow_on_error = false;   // scanner down or failing: false = 451 (fail closed), true = passed with a warning
  // Whether uploads are scanned at all.
  bool inspects_uploads() const { return uploads && !scanner.empty(); }
  bool inspects_downloads() const { return downloads && !scanner.empty(); }
};

}  // namespace ftpsgate::inspection
