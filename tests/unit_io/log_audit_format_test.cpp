// The audit outputs' line formats: xferlog(5) lines and syslog datagrams. A hostile file
// or user name stays one field of one line.
#include <doctest/doctest.h>

#include <cstdlib>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

#include "log/syslog_sink.h"
#include "log/xferlog_format.h"

using ftpsgate::LogLevel;
using ftpsgate::log::format_xferlog_line;
using ftpsgate::log::syslog_datagram;
using ftpsgate::log::XferlogEntry;

namespace {
// 2026-12-06 01:02:03 in the zone the test runs in (the formats use local time).
std::time_t sunday_morning() {
  setenv("TZ", "UTC", 1);
  tzset();
  tm when{};
  when.tm_year = 2026 - 1900;
  when.tm_mon = 11;
  when.tm_mday = 6;
  when.tm_hour = 1;
  when.tm_min = 2;
  when.tm_sec = 3;
  return timegm(&when);
}

std::vector<std::string> fields(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string word; in >> word;) out.push_back(word);
  return out;
}
}  // namespace

TEST_CASE("an xferlog line has the wu-ftpd/ProFTPD layout, one line, 18 fields") {
  XferlogEntry entry;
  entry.end = sunday_morning();
  entry.seconds = 0.8;
  entry.remote_host = "127.0.0.1";
  entry.bytes = 1048576;
  entry.filename = "/path/file";
  entry.user = "alice";
  entry.complete = true;
  CHECK(format_xferlog_line(entry) == "Sun Dec  6 01:02:03 2026 1 127.0.0.1 1048576 /path/file b _ o r alice ftp 0 * c\n");
  entry.upload = true;
  entry.binary = false;
  entry.complete = false;
  entry.seconds = 2.6;
  CHECK(format_xferlog_line(entry) == "Sun Dec  6 01:02:03 2026 3 127.0.0.1 1048576 /path/file a _ i r alice ftp 0 * i\n");
}

TEST_CASE("an xferlog transfer time is at least one second, also for a zero or negative duration") {
  XferlogEntry entry;
  entry.end = sunday_morning();
  entry.seconds = -5;
  CHECK(fields(format_xferlog_line(entry))[5] == "1");
  entry.seconds = 0;
  CHECK(fields(format_xferlog_line(entry))[5] == "1");
  entry.seconds = 125.4;
  CHECK(fields(format_xferlog_line(entry))[5] == "125");
}

TEST_CASE("xferlog: spaces and control bytes of file and user names become '_', empty ones '-'") {
  XferlogEntry entry;
  entry.end = sunday_morning();
  entry.remote_host = "::1";
  entry.filename = "/up/my file\r\n Sun Dec  6 01:02:03 2026 1 6.6.6.6 1 /forged b _ o r root ftp 0 * c\tx\x7f";
  entry.user = "mallory evil\n";
  const std::string line = format_xferlog_line(entry);
  CHECK(line.find('\n') == line.size() - 1);
  CHECK(line.find('\r') == std::string::npos);
  CHECK(line.find('\t') == std::string::npos);
  const auto f = fields(line);
  REQUIRE(f.size() == 18);
  CHECK(f[6] == "::1");
  CHECK(f[8].rfind("/up/my_file___Sun_Dec__6_", 0) == 0);
  CHECK(f[8].substr(f[8].size() - 4) == "c_x_");
  CHECK(f[13] == "mallory_evil_");
  entry.filename = "";
  entry.user = "";
  const auto g = fields(format_xferlog_line(entry));
  REQUIRE(g.size() == 18);
  CHECK(g[8] == "-");
  CHECK(g[13] == "-");
}

TEST_CASE("xferlog: a very long file name is cut, the line keeps its fields") {
  XferlogEntry entry;
  entry.end = sunday_morning();
  const std::string name = "/" + std::string(100000, 'a');
  entry.filename = name;
  const auto f = fields(format_xferlog_line(entry));
  REQUIRE(f.size() == 18);
  CHECK(f[8].size() == 4096);
}

TEST_CASE("a syslog datagram carries PRI = facility * 8 + severity, an RFC 3164 stamp and the tag") {
  const std::time_t when = sunday_morning();
  CHECK(syslog_datagram(3, LogLevel::kInfo, when, 4242, "{\"event\":\"transfer\"}") ==
        "<30>Dec  6 01:02:03 ftpsgate[4242]: {\"event\":\"transfer\"}");
  CHECK(syslog_datagram(16, LogLevel::kWarn, when, 1, "x").rfind("<132>Dec  6 ", 0) == 0);
  CHECK(syslog_datagram(23, LogLevel::kError, when, 1, "x").rfind("<187>", 0) == 0);
  CHECK(syslog_datagram(1, LogLevel::kDebug, when, 1, "x").rfind("<15>", 0) == 0);
}

TEST_CASE("a syslog datagram is bounded: a huge record is cut at 8 KiB") {
  const std::string huge(100000, 'r');
  CHECK(syslog_datagram(3, LogLevel::kInfo, sunday_morning(), 1, huge).size() == 8192);
}
