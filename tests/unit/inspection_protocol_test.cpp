#include <doctest/doctest.h>

#include <string>

#include "inspection/clamd_protocol.h"
#include "inspection/icap_message.h"

using namespace ftpsgate::inspection;

TEST_CASE("clamd: INSTREAM command, chunk prefixes and replies") {
  CHECK(clamd_instream_command() == std::string_view("zINSTREAM\0", 10));
  CHECK(clamd_chunk_prefix(0x01020304) == std::array<unsigned char, 4>{1, 2, 3, 4});
  CHECK(clamd_chunk_prefix(0) == std::array<unsigned char, 4>{0, 0, 0, 0});
  CHECK(parse_clamd_reply(std::string_view("stream: OK\0", 11)).verdict == Verdict::kClean);
  const ScanResult eicar = parse_clamd_reply("stream: Eicar-Signature FOUND");
  CHECK(eicar.verdict == Verdict::kInfected);
  CHECK(eicar.signature == "Eicar-Signature");
  CHECK(parse_clamd_reply("1: stream: Win.Test.EICAR_HDB-1 FOUND\n").signature == "Win.Test.EICAR_HDB-1");
  CHECK(parse_clamd_reply("stream: Odd: Name FOUND").signature == "Odd: Name");
  for (const char* bad : {"", "INSTREAM size limit exceeded. ERROR", "stream: FOUND", "stream: ", "garbage",
                          "stream: OK\x01"}) {
    CAPTURE(bad);
    CHECK(parse_clamd_reply(bad).verdict == Verdict::kError);
  }
  CHECK(parse_clamd_reply(std::string(kClamdMaxReply + 1, 'a')).verdict == Verdict::kError);
  CHECK(verdict_name(Verdict::kInfected) == "infected");
}

TEST_CASE("ICAP URLs: host, port, service; anything else refused") {
  auto url = parse_icap_url("icap://127.0.0.1:1344/avscan");
  REQUIRE(url);
  CHECK(url->host == "127.0.0.1");
  CHECK(url->port == 1344);
  CHECK(url->service == "avscan");
  CHECK(url->text() == "icap://127.0.0.1:1344/avscan");
  CHECK(parse_icap_url("icap://scanner/virus_scan")->port == 1344);
  auto v6 = parse_icap_url("icap://[::1]:11344/srv_clamav?allow204=on");
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->service == "srv_clamav?allow204=on");
  CHECK(v6->text() == "icap://[::1]:11344/srv_clamav?allow204=on");
  for (const char* bad : {"http://x/avscan", "icap://x", "icap://x/", "icap://:1344/s", "icap://x:0/s",
                          "icap://x:65536/s", "icap://x:/s", "icap://u@x/s", "icap://x/a b", "icap://[::1/s",
                          "icap://x:12a/s", "icap://[[]/2", "icap://[x]/s", "icap://a_b/s"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_icap_url(bad));
  }
}

TEST_CASE("ICAP RESPMOD request head: encapsulated offsets point at each section") {
  IcapRequest request;
  request.url = *parse_icap_url("icap://127.0.0.1:1344/virus_scan");
  request.file_name = "/in/report 1.csv";
  request.size = 1234;
  request.preview = 1024;
  request.client_ip = "192.0.2.7";
  request.user = "alice";
  const std::string head = icap_request_head(request);
  CHECK(head.starts_with("RESPMOD icap://127.0.0.1:1344/virus_scan ICAP/1.0\r\nHost: 127.0.0.1\r\n"));
  CHECK(head.find("Allow: 204\r\n") != std::string::npos);
  CHECK(head.find("Preview: 1024\r\n") != std::string::npos);
  CHECK(head.find("X-Client-IP: 192.0.2.7\r\n") != std::string::npos);
  CHECK(head.find("X-Authenticated-User: TG9jYWw6Ly9hbGljZQ==\r\n") != std::string::npos);  // Local://alice
  const std::size_t blank = head.find("\r\n\r\n") + 4;
  const std::string body = head.substr(blank);
  CHECK(body.starts_with("GET /in/report%201.csv HTTP/1.1\r\n"));
  const std::size_t res_hdr = body.find("HTTP/1.1 200 OK");
  CHECK(head.find("Encapsulated: req-hdr=0, res-hdr=" + std::to_string(res_hdr) +
                  ", res-body=" + std::to_string(body.size()) + "\r\n") != std::string::npos);
  CHECK(body.find("Content-Length: 1234\r\n") != std::string::npos);
  CHECK(icap_chunk_head(0x1f40) == "1f40\r\n");
  CHECK(icap_last_chunk(true) == "0; ieof\r\n\r\n");
  CHECK(icap_last_chunk(false) == "0\r\n\r\n");
}

TEST_CASE("ICAP REQMOD request head carries the file as a PUT body") {
  IcapRequest request;
  request.method = IcapMethod::kReqmod;
  request.url = *parse_icap_url("icap://scanner:1344/avscan");
  request.file_name = "a.bin";
  request.allow_204 = false;
  const std::string head = icap_request_head(request);
  CHECK(head.starts_with("REQMOD icap://scanner:1344/avscan ICAP/1.0\r\n"));
  CHECK(head.find("Allow: 204") == std::string::npos);
  const std::string body = head.substr(head.find("\r\n\r\n") + 4);
  CHECK(body == "PUT /a.bin HTTP/1.1\r\nHost: ftpsgate\r\n\r\n");
  CHECK(head.find("Encapsulated: req-hdr=0, req-body=" + std::to_string(body.size()) + "\r\n") != std::string::npos);
}

TEST_CASE("ICAP responses: 204 clean, 200 echo clean, 200 with a threat or a 403 page infected") {
  auto parsed = parse_icap_response("ICAP/1.0 204 No Content\r\nISTag: \"x\"\r\n\r\n");
  REQUIRE(std::holds_alternative<IcapResponse>(parsed));
  CHECK(icap_verdict(std::get<IcapResponse>(parsed)).verdict == Verdict::kClean);

  const std::string infected =
      "ICAP/1.0 200 OK\r\nX-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Signature;\r\n"
      "Encapsulated: res-hdr=0, res-body=45\r\n\r\nHTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
  parsed = parse_icap_response(infected);
  REQUIRE(std::holds_alternative<IcapResponse>(parsed));
  const IcapResponse& response = std::get<IcapResponse>(parsed);
  CHECK(response.http_status == 403);
  const ScanResult verdict = icap_verdict(response);
  CHECK(verdict.verdict == Verdict::kInfected);
  CHECK(verdict.signature == "Eicar-Signature");

  parsed = parse_icap_response("ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\nHTTP/1.1 403 Forbidden\r\n\r\n");
  CHECK(icap_verdict(std::get<IcapResponse>(parsed)).verdict == Verdict::kInfected);
  parsed = parse_icap_response("ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=17\r\n\r\nHTTP/1.1 200 OK\r\n\r\n");
  CHECK(icap_verdict(std::get<IcapResponse>(parsed)).verdict == Verdict::kClean);
  parsed = parse_icap_response("ICAP/1.0 200 OK\r\nEncapsulated: req-hdr=0, req-body=20\r\n\r\nPUT /a HTTP/1.1\r\n\r\n");
  CHECK(icap_verdict(std::get<IcapResponse>(parsed)).verdict == Verdict::kClean);
  parsed = parse_icap_response("ICAP/1.0 200 OK\r\nX-Virus-ID: Win.Trojan\r\nEncapsulated: null-body=0\r\n\r\n");
  CHECK(icap_verdict(std::get<IcapResponse>(parsed)).signature == "Win.Trojan");
  parsed = parse_icap_response("ICAP/1.0 500 Server Error\r\n\r\n");
  CHECK(icap_verdict(std::get<IcapResponse>(parsed)).verdict == Verdict::kError);
  parsed = parse_icap_response("ICAP/1.0 100 Continue\r\n\r\n");
  CHECK(std::get<IcapResponse>(parsed).status == 100);
}

TEST_CASE("ICAP response heads: folded header lines continue the previous header (c-icap's X-Violations-Found)") {
  // As c-icap 0.5.10's virus_scan answers for EICAR (the test fixture pins the same).
  const std::string head =
      "ICAP/1.0 200 OK\r\nServer: C-ICAP/0.5.10\r\nConnection: keep-alive\r\nISTag: CI0001-2-1\r\n"
      "X-Infection-Found: Type=0; Resolution=2; Threat=Eicar-Signature.UNOFFICIAL;\r\n"
      "X-Violations-Found: 1\r\n\t-\r\n\tEicar-Signature.UNOFFICIAL\r\n\t0\r\n\t0\r\n"
      "Encapsulated: res-hdr=0, res-body=108\r\n\r\nHTTP/1.0 403 Forbidden\r\n\r\n";
  auto parsed = parse_icap_response(head);
  REQUIRE(std::holds_alternative<IcapResponse>(parsed));
  const IcapResponse& response = std::get<IcapResponse>(parsed);
  CHECK(response.headers.at("x-violations-found") == "1\t-\tEicar-Signature.UNOFFICIAL\t0\t0");
  CHECK(response.headers.at("encapsulated") == "res-hdr=0, res-body=108");
  const ScanResult verdict = icap_verdict(response);
  CHECK(verdict.verdict == Verdict::kInfected);
  CHECK(verdict.signature == "Eicar-Signature.UNOFFICIAL");
  // A continuation with nothing to continue is malformed.
  CHECK(std::holds_alternative<ScanResult>(parse_icap_response("ICAP/1.0 204 No\r\n\tdangling\r\n\r\n")));
}

TEST_CASE("ICAP response heads: incomplete, malformed, too long") {
  CHECK(std::holds_alternative<IcapParse>(parse_icap_response("ICAP/1.0 204 No Content\r\n")));
  for (const char* bad : {"HTTP/1.1 200 OK\r\n\r\n", "ICAP/1.0 2x4 No\r\n\r\n", "ICAP/1.0 204\r\nbroken\r\n\r\n",
                          "ICAP/1.0 999 What\r\n\r\n"}) {
    CAPTURE(bad);
    auto parsed = parse_icap_response(bad);
    REQUIRE(std::holds_alternative<ScanResult>(parsed));
    CHECK(std::get<ScanResult>(parsed).verdict == Verdict::kError);
  }
  const std::string flood = "ICAP/1.0 200 OK\r\n" + std::string(kIcapMaxHead, 'a');
  CHECK(std::holds_alternative<ScanResult>(parse_icap_response(flood)));
}
