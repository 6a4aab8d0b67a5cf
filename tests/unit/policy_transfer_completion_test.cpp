#include <doctest/doctest.h>

#include "policy/transfer_completion.h"

using namespace ftpsgate::policy;
using DataEnd = TransferCompletion::DataEnd;

namespace {
TransferState state(bool data_done, bool data_ok, int code, uint64_t bytes = 100, std::string error = "") {
  TransferState s;
  s.data_done = data_done;
  s.data_ok = data_ok;
  s.data_error = std::move(error);
  s.bytes = bytes;
  s.final_code = code;
  s.preliminary = true;  // the backend accepted with 1xx; the refusal cases say otherwise
  s.final_line = std::to_string(code) + " text";
  return s;
}
}  // namespace

TEST_CASE("a transfer is complete when its source ended cleanly and the backend said 226") {
  const auto end = complete_transfer(state(true, true, 226));
  CHECK(end.ok);
  CHECK(end.data_end == DataEnd::kConfirmed);
  CHECK_FALSE(end.replace_with_426);
}

TEST_CASE("a download the backend ends with 426 after some bytes is failed and reset for the client") {
  const auto end = complete_transfer(state(true, true, 426));
  CHECK_FALSE(end.ok);
  CHECK(end.error == "backend replied 426 text");
  CHECK(end.data_end == DataEnd::kUnconfirmed);
  CHECK_FALSE(end.replace_with_426);  // the client gets the backend's own 426
}

TEST_CASE("a backend reply before the data side finished never confirms the transfer") {
  const auto end = complete_transfer(state(false, false, 226));
  CHECK_FALSE(end.ok);
  CHECK(end.data_end == DataEnd::kUnconfirmed);
  CHECK_FALSE(end.replace_with_426);
}

TEST_CASE("a 226 after the gateway saw the data side fail becomes 426 for the client") {
  const auto end = complete_transfer(state(true, false, 226, 50, "client TLS ended with an alert"));
  CHECK_FALSE(end.ok);
  CHECK(end.error == "client TLS ended with an alert");
  CHECK(end.replace_with_426);
}

TEST_CASE("a transfer the backend refuses before any byte ends the data connection cleanly") {
  auto refusal = state(false, false, 550, 0);
  refusal.preliminary = false;
  const auto end = complete_transfer(refusal);
  CHECK_FALSE(end.ok);
  CHECK(end.refused);
  CHECK(end.error == "backend replied 550 text");
  CHECK(end.data_end == DataEnd::kRefused);
}

TEST_CASE("a refusal names the backend's reply even when the data side ended meanwhile") {
  // vsftpd closes its data port when RETR names a missing file: the gateway's data side
  // may see that end before the 550 arrives.
  auto refusal = state(true, false, 550, 0, "backend data connection closed early");
  refusal.preliminary = false;
  const auto end = complete_transfer(refusal);
  CHECK(end.refused);
  CHECK(end.data_end == DataEnd::kRefused);
  CHECK(end.error == "backend replied 550 text");
  CHECK_FALSE(end.replace_with_426);
}

TEST_CASE("an upload the backend refused without a 1xx is a refusal even after bytes went out") {
  // The first bytes sat in the backend's socket buffer; it answered 553 and never read them.
  auto refused = state(true, false, 553, 65536, "backend data connection closed early");
  refused.preliminary = false;
  const auto end = complete_transfer(refused);
  CHECK(end.data_end == DataEnd::kRefused);
  CHECK(end.refused);
  CHECK(end.error == "backend replied 553 text");
}

TEST_CASE("a failure after the backend's 1xx is not a refusal, though nothing moved") {
  const auto end = complete_transfer(state(true, false, 426, 0, "backend data connection closed early"));
  CHECK_FALSE(end.refused);                  // the record says failed
  CHECK(end.data_end == DataEnd::kRefused);  // and the empty data connection still ends cleanly
}

TEST_CASE("a refusal after bytes moved is not a clean refusal") {
  CHECK(complete_transfer(state(false, false, 451, 10)).data_end == DataEnd::kUnconfirmed);
}
