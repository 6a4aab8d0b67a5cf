#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "ftp/feat.h"
#include "ftp/reply.h"

using namespace ftpsgate::ftp;

namespace {

Reply reply_of(int code, std::vector<std::string> lines) {
  Reply reply;
  reply.code = code;
  reply.lines = std::move(lines);
  return reply;
}

using Features = std::vector<std::string>;

}  // namespace

TEST_CASE("FEAT replies that are not a 211 multi-line reply list no features") {
  CHECK(parse_feat_reply(Reply{}).empty());
  CHECK(parse_feat_reply(reply_of(211, {"211 No features"})).empty());
  CHECK(parse_feat_reply(reply_of(500, {"500-Unknown", " UTF8", "500 End"})).empty());
  CHECK(parse_feat_reply(reply_of(211, {"211-Features:", "211 End"})).empty());
  CHECK(parse_feat_reply(reply_of(211, {"211-Features:", "   ", "\t", "211 End"})).empty());
}

TEST_CASE("FEAT reply lines are trimmed and empty ones skipped") {
  const auto features =
      parse_feat_reply(reply_of(211, {"211-Features:", " MDTM", "", "  REST STREAM  ", "\tUTF8", "211 End"}));
  CHECK(features == Features{"MDTM", "REST STREAM", "UTF8"});
}

TEST_CASE("backend features the gateway owns or cannot relay are dropped") {
  const Features backend = {"AUTH TLS", "auth ssl", "PBSZ", "Prot", "CCC",  "EPSV", "EPRT", "PASV",
                            "PORT",     "HOST",     "LPSV", "LPRT", "ADAT", "MIC",  "CONF", "ENC",
                            "MDTM",     "SIZE"};
  CHECK(relayable_backend_features(backend) == Features{"MDTM", "SIZE"});
}

TEST_CASE("only the first word decides: AUTHX and MLST with parameters are relayed") {
  CHECK(relayable_backend_features({"AUTHX", "MLST type*;size*;", "PROTX"}) ==
        Features{"AUTHX", "MLST type*;size*;", "PROTX"});
}

TEST_CASE("duplicate backend features are relayed once") {
  CHECK(relayable_backend_features({"UTF8", "utf8", "MDTM", "UTF8", "REST STREAM", "rest stream"}) ==
        Features{"UTF8", "MDTM", "REST STREAM"});
}

TEST_CASE("backend features with control characters, over-long or beyond the count cap are dropped") {
  CHECK(relayable_backend_features({"MDTM\r\n230 fake", std::string("SI\0ZE", 5), "UTF8\x7f", "TVFS"}) ==
        Features{"TVFS"});
  CHECK(relayable_backend_features({std::string(kMaxFeatureLength + 1, 'X'), "SIZE"}) == Features{"SIZE"});
  Features many;
  for (std::size_t i = 0; i < kMaxRelayedFeatures + 10; ++i) many.push_back("X" + std::to_string(i));
  CHECK(relayable_backend_features(many).size() == kMaxRelayedFeatures);
}

TEST_CASE("the gateway's own features include CCC only when allowed") {
  CHECK(gateway_features(false) == Features{"AUTH TLS", "AUTH SSL", "PBSZ", "PROT", "EPSV", "EPRT", "HOST"});
  CHECK(gateway_features(true) ==
        Features{"AUTH TLS", "AUTH SSL", "PBSZ", "PROT", "CCC", "EPSV", "EPRT", "HOST"});
}

TEST_CASE("the FEAT reply is 211-Features:, one indented line per feature, 211 End") {
  CHECK(build_feat_reply({}) == "211-Features:\r\n211 End\r\n");
  CHECK(build_feat_reply({"AUTH TLS", "PBSZ"}) == "211-Features:\r\n AUTH TLS\r\n PBSZ\r\n211 End\r\n");
  CHECK(build_feat_reply({"UTF8", "BAD\r\n230 x", ""}) == "211-Features:\r\n UTF8\r\n211 End\r\n");

  // The built reply goes back through the assembler and parser unchanged.
  ReplyAssembler assembler;
  const Features features = {"AUTH TLS", "MDTM", "REST STREAM"};
  const std::string wire = build_feat_reply(features);
  ReplyAssembler::Status status = ReplyAssembler::Status::kNeedMore;
  std::size_t start = 0;
  while (start < wire.size()) {
    const std::size_t end = wire.find("\r\n", start);
    REQUIRE(end != std::string::npos);
    status = assembler.feed_line(std::string_view(wire).substr(start, end - start));
    start = end + 2;
  }
  REQUIRE(status == ReplyAssembler::Status::kComplete);
  CHECK(parse_feat_reply(assembler.take()) == features);
}

TEST_CASE("a pool's pre-login features are those every server announced, in the first one's order") {
  CHECK(common_features({}).empty());
  CHECK(common_features({{"SIZE", "MLST type*;size*;", "UTF8"}}) == Features{"SIZE", "MLST type*;size*;", "UTF8"});
  // A server without MLST (vsftpd) next to one with it: MLST is not promised.
  CHECK(common_features({{"SIZE", "MLST type*;size*;", "UTF8"}, {"utf8", "REST STREAM", "size"}}) ==
        Features{"SIZE", "UTF8"});
  // The same feature with other facts is not the same promise.
  CHECK(common_features({{"MLST type*;size*;"}, {"MLST type*;"}}).empty());
}
