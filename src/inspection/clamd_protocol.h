// clamd's INSTREAM protocol (clamd(8)), pure: the command, the chunk framing and the reply.
// The stream is "zINSTREAM\0", then chunks of <4-byte big-endian length><bytes>, then a
// zero length; clamd answers one NUL-terminated line ("stream: OK",
// "stream: Eicar-Signature FOUND", "INSTREAM size limit exceeded. ERROR").
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "inspection/scan_result.h"

namespace ftpsgate::inspection {

// The command that opens a stream (with its NUL: the z-prefixed form).
std::string_view clamd_instream_command();
// The length prefix of a chunk; 0 ends the stream.
std::array<unsigned char, 4> clamd_chunk_prefix(uint32_t length);
// The largest chunk we send (clamd's StreamMaxLength limits the whole stream, not chunks).
inline constexpr std::size_t kClamdMaxChunk = 64 * 1024;
// The longest reply we read; a longer one is an error, not a buffer to grow.
inline constexpr std::size_t kClamdMaxReply = 1024;

// One reply line, without its terminating NUL or newline.
ScanResult parse_clamd_reply(std::string_view reply);

}  // namespace ftpsgate::inspection
