// How a transfer ends once the backend's final reply is in, pure: what the record says,
// how the client's data connection is ended and which reply the client gets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace ftpsgate::policy {

struct TransferState {
  bool data_done = false;  // the data side finished (ok or not)
  bool data_ok = false;    // ... and its source ended cleanly
  std::string data_error;  // the data side's error, if any
  uint64_t bytes = 0;      // relayed so far
  bool preliminary = false;  // the backend answered 1xx: it accepted the command
  int final_code = 0;      // the backend's final reply
  std::string final_line;  // its first line, for the record
};

struct TransferCompletion {
  enum class DataEnd {
    kRefused,      // the backend refused (no 1xx, or nothing relayed): clean TLS close
    kConfirmed,    // complete: the download's end reaches the client
    kUnconfirmed,  // not complete: the client sees a reset, not an end
  };
  bool ok = false;    // the transfer record's result
  bool refused = false;  // the backend refused the command (4xx/5xx without a 1xx first)
  std::string error;  // the record's error when not ok
  DataEnd data_end = DataEnd::kUnconfirmed;
  bool replace_with_426 = false;  // the backend said 2xx but the gateway saw a failure
};

// SECURITY: truncation. Complete = the source ended cleanly *and* the backend said 2xx;
// anything else is a failed transfer, and a download's client sees a reset, not an end.
TransferCompletion complete_transfer(const TransferState& state);

}  // namespace ftpsgate::policy
