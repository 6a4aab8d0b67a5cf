#include <doctest/doctest.h>

#include <string>
#include <variant>

#include "inspection/icap_body.h"
#include "inspection/icap_message.h"

using namespace ftpsgate::inspection;

namespace {

// Feeds `data` in pieces of `step` bytes; the status of the last feed and the bytes used.
IcapBodySkipper::Status skip(IcapBodySkipper& skipper, const std::string& data, std::size_t step,
                             std::size_t& used_total) {
  used_total = 0;
  IcapBodySkipper::Status status = IcapBodySkipper::Status::kNeedMore;
  for (std::size_t at = 0; at < data.size(); at += step) {
    std::size_t used = 0;
    status = skipper.feed(std::string_view(data).substr(at, step), used);
    used_total += used;
    if (status != IcapBodySkipper::Status::kNeedMore) break;
  }
  return status;
}

}  // namespace

TEST_CASE("Encapsulated headers that are malformed, out of order or end without a body are refused") {
  for (const char* bad : {"", "res-hdr=0", "req-hdr=0, res-hdr=10", "res-body", "res-body=", "res-body=x",
                          "res-body=-1", "res-hdr=50, res-body=10", "null-body=0, res-hdr=0", "foo=0, res-body=3",
                          "res-body=1 2", "res-body=0, res-body=0", "res-body=99999999999999999999999"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_icap_encapsulated(bad));
  }
}

TEST_CASE("Encapsulated headers give the HTTP headers' length and whether a chunked body follows") {
  auto value = parse_icap_encapsulated("res-hdr=0, res-body=45");
  REQUIRE(value);
  CHECK(value->headers_length == 45);
  CHECK(value->has_body);
  value = parse_icap_encapsulated("req-hdr=0, res-hdr=137,res-body=296");
  REQUIRE(value);
  CHECK(value->headers_length == 296);
  value = parse_icap_encapsulated("null-body=0");
  REQUIRE(value);
  CHECK(value->headers_length == 0);
  CHECK_FALSE(value->has_body);
  value = parse_icap_encapsulated(" res-hdr=0 , null-body=19 ");
  REQUIRE(value);
  CHECK(value->headers_length == 19);
  CHECK_FALSE(value->has_body);
  CHECK(parse_icap_encapsulated("opt-body=0")->has_body);
  CHECK(parse_icap_encapsulated("req-hdr=0, req-body=20")->has_body);
}

TEST_CASE("a chunked body that lies about its framing is an error, not a buffer") {
  for (const char* bad : {"x\r\n", "\r\n", "-1\r\n", "1 2\r\n", "3\r\nabcd\r\n", "1000000000000000\r\n",
                          "3\r\nabc\r\n0\r\nTrailer: " /* then more than the limit */}) {
    CAPTURE(bad);
    IcapBodySkipper skipper;
    std::string data = bad;
    if (data.ends_with("Trailer: ")) data += std::string(kIcapMaxTrailer, 'a');
    std::size_t used = 0;
    CHECK(skip(skipper, data, data.size(), used) == IcapBodySkipper::Status::kError);
    CHECK_FALSE(skipper.error().empty());
    std::size_t more = 1;
    CHECK(skipper.feed("0\r\n\r\n", more) == IcapBodySkipper::Status::kError);
    CHECK(more == 0);
  }
  IcapBodySkipper long_line;
  std::size_t used = 0;
  CHECK(skip(long_line, "1" + std::string(kIcapMaxChunkLine * 4, ' '), 7, used) == IcapBodySkipper::Status::kError);
  CHECK(long_line.error() == "chunk line too long");
}

TEST_CASE("a chunk line's limit is the same whether it comes at once or byte by byte") {
  const std::string longest = "1" + std::string(kIcapMaxChunkLine - 1, ' ') + "\r\nx\r\n0\r\n\r\n";
  const std::string too_long = "1" + std::string(kIcapMaxChunkLine, ' ') + "\r\nx\r\n0\r\n\r\n";
  for (std::size_t step : {std::size_t{1}, std::size_t{3}, longest.size()}) {
    CAPTURE(step);
    IcapBodySkipper accepted;
    std::size_t used = 0;
    CHECK(skip(accepted, longest, step, used) == IcapBodySkipper::Status::kDone);
    IcapBodySkipper refused;
    CHECK(skip(refused, too_long, step, used) == IcapBodySkipper::Status::kError);
  }
}

TEST_CASE("a chunked body is walked to its end in any split, leaving the next message's bytes") {
  const std::string body = "4\r\nabcd\r\n1f; ieof\r\n" + std::string(0x1f, 'z') + "\r\n0\r\nX-Trailer: 1\r\n\r\n";
  const std::string next = "ICAP/1.0 204 No Content\r\n\r\n";
  for (std::size_t step : {std::size_t{1}, std::size_t{2}, std::size_t{5}, body.size(), body.size() + next.size()}) {
    CAPTURE(step);
    IcapBodySkipper skipper;
    std::size_t used = 0;
    CHECK(skip(skipper, body + next, step, used) == IcapBodySkipper::Status::kDone);
    CHECK(used == body.size());
    CHECK(skipper.data_bytes() == 4 + 0x1f);
  }
  IcapBodySkipper empty;
  std::size_t used = 0;
  CHECK(empty.feed("0\r\n\r\n", used) == IcapBodySkipper::Status::kDone);
  CHECK(used == 5);
  IcapBodySkipper bare_lf;
  CHECK(bare_lf.feed("2\nab\n0\n\n", used) == IcapBodySkipper::Status::kDone);
  IcapBodySkipper partial;
  CHECK(partial.feed("10\r\nabc", used) == IcapBodySkipper::Status::kNeedMore);
  CHECK(used == 7);
}

TEST_CASE("the ICAP health check is an OPTIONS request without a body") {
  CHECK(icap_options_request(*parse_icap_url("icap://127.0.0.1:1344/virus_scan")) ==
        "OPTIONS icap://127.0.0.1:1344/virus_scan ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n");
}

TEST_CASE("ICAP response heads: a folded line needs a header before it; c-icap's folded X-Violations-Found") {
  auto parsed = parse_icap_response("ICAP/1.0 200 OK\r\n\t-\r\nEncapsulated: null-body=0\r\n\r\n");
  REQUIRE(std::holds_alternative<ScanResult>(parsed));
  CHECK(std::get<ScanResult>(parsed).error == "malformed ICAP header line");

  // As c-icap 0.5 answers an infected RESPMOD (virus_scan over clamd).
  const std::string infected =
      "ICAP/1.0 200 OK\r\nServer: C-ICAP/0.5.10\r\nConnection: keep-alive\r\nISTag: \"CI0001-L5CkDhq\"\r\n"
      "X-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Test-Signature.UNOFFICIAL;\r\n"
      "X-Violations-Found: 1\r\n\t-\r\n\tEicar-Test-Signature.UNOFFICIAL\r\n\t0\r\n\t0\r\n"
      "Encapsulated: res-hdr=0, res-body=25\r\n\r\nHTTP/1.0 403 Forbidden\r\n\r\n";
  parsed = parse_icap_response(infected);
  REQUIRE(std::holds_alternative<IcapResponse>(parsed));
  IcapResponse response = std::get<IcapResponse>(parsed);
  CHECK(response.headers["x-violations-found"] == "1\t-\tEicar-Test-Signature.UNOFFICIAL\t0\t0");
  CHECK(response.headers["encapsulated"] == "res-hdr=0, res-body=25");
  CHECK(response.http_status == 403);
  CHECK(icap_verdict(response).signature == "Eicar-Test-Signature.UNOFFICIAL");
  response.headers.erase("x-infection-found");
  CHECK(icap_verdict(response).signature == "Eicar-Test-Signature.UNOFFICIAL");
  response.headers["x-violations-found"] = "Unfolded.Name";
  CHECK(icap_verdict(response).signature == "Unfolded.Name");
}
