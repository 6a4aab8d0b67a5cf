#include "policy/transfer_completion.h"

namespace ftpsgate::policy {

TransferCompletion complete_transfer(const TransferState& state) {
  TransferCompletion result;
  const bool positive = state.final_code / 100 == 2;
  result.ok = state.data_done && state.data_ok && positive;
  if (!result.ok) {
    result.error = state.data_done ? state.data_error : "";
    if (result.error.empty()) {
      result.error =
          "backend replied " + (state.final_line.empty() ? std::to_string(state.final_code) : state.final_line);
    }
  }
  result.refused = state.final_code >= 400 && !state.preliminary;
  if (!result.ok && (result.refused || (state.final_code >= 400 && state.bytes == 0))) {
    // The backend's refusal (550 missing file, 553) is the reason, whatever the data side
    // saw meanwhile: the backend closing its data port, or an upload's first bytes that
    // went into a connection the backend never read.
    result.data_end = TransferCompletion::DataEnd::kRefused;
    result.error =
        "backend replied " + (state.final_line.empty() ? std::to_string(state.final_code) : state.final_line);
  } else {
    result.data_end = result.ok ? TransferCompletion::DataEnd::kConfirmed : TransferCompletion::DataEnd::kUnconfirmed;
  }
  // The backend saw a complete transfer, the gateway did not (e.g. the client's TLS ended
  // with an alert): the client must not be told it succeeded.
  result.replace_with_426 = state.data_done && !state.data_ok && positive;
  return result;
}

}  // namespace ftpsgate::policy
