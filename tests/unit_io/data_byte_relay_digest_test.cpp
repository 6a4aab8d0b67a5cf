// logging.transfer_sha256: the relay hashes exactly the bytes it moves, both those it
// pumps from the source's input buffer (TLS may hold decrypted bytes before the relay
// starts) and those it reads from the socket itself (socketpairs, no network).
#include <doctest/doctest.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "data/byte_relay.h"
#include "data/transfer_digest.h"
#include "net/libevent_handles.h"

using namespace ftpsgate;

namespace {
std::string sha256_hex(const std::string& data) {
  auto digest = data::TransferDigest::create();
  REQUIRE(digest);
  digest->update(data.data(), data.size());
  return digest->hex();
}

struct EndObserver : data::ByteRelay::Observer {
  bool ended = false;
  bool ok = false;
  event_base* base = nullptr;
  std::string error;
  void on_relay_end(bool result, const std::string& why) override {
    error = why;
    ended = true;
    ok = result;
    event_base_loopbreak(base);
  }
};

std::string pattern(std::size_t size, char seed) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>(seed + i * 7 % 251);
  return out;
}
}  // namespace

TEST_CASE("a TransferDigest gives sha256sum's hex, also of nothing, and can go on after hex()") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  auto digest = data::TransferDigest::create();
  REQUIRE(digest);
  digest->update("ab", 2);
  CHECK(digest->hex() == sha256_hex("ab"));
  digest->update("c", 1);
  CHECK(digest->hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");  // "abc"
}

TEST_CASE("the relay's sha256 covers pumped and directly read bytes, in order") {
  net::EventBasePtr base(event_base_new());
  int source_pair[2];
  int sink_pair[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, source_pair) == 0);
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sink_pair) == 0);
  net::BufferEventPtr source(bufferevent_socket_new(base.get(), source_pair[0], BEV_OPT_CLOSE_ON_FREE));
  net::BufferEventPtr sink(bufferevent_socket_new(base.get(), sink_pair[0], BEV_OPT_CLOSE_ON_FREE));
  REQUIRE(source);
  REQUIRE(sink);

  // Already in the source's input buffer when the relay starts: moved by pump().
  const std::string early = pattern(30000, 'a');
  evbuffer* input = bufferevent_get_input(source.get());
  evbuffer_unfreeze(input, 0);  // only the bufferevent itself adds to its input
  REQUIRE(evbuffer_add(input, early.data(), early.size()) == 0);
  evbuffer_freeze(input, 0);
  // In the socket: read by the relay itself.
  const std::string late = pattern(50000, 'q');
  REQUIRE(write(source_pair[1], late.data(), late.size()) == static_cast<ssize_t>(late.size()));
  shutdown(source_pair[1], SHUT_WR);

  EndObserver observer;
  observer.base = base.get();
  data::ByteRelay relay(base.get(), data::Direction::kUpload, source.get(), sink.get(), std::chrono::seconds(10),
                        observer);
  // As DataChannel does: the sink's low watermark reaches the relay.
  bufferevent_setcb(
      sink.get(), nullptr, [](bufferevent*, void* self) { static_cast<data::ByteRelay*>(self)->sink_drained(); },
      nullptr, &relay);
  CHECK(relay.sha256().empty());  // off unless enabled
  relay.enable_sha256();
  relay.start();
  std::string received;
  char buf[65536];
  while (!observer.ended) {
    event_base_loop(base.get(), EVLOOP_ONCE | EVLOOP_NONBLOCK);
    const ssize_t n = read(sink_pair[1], buf, sizeof(buf));
    if (n > 0) received.append(buf, static_cast<std::size_t>(n));
  }
  for (ssize_t n; (n = read(sink_pair[1], buf, sizeof(buf))) > 0;) received.append(buf, static_cast<std::size_t>(n));
  CHECK_MESSAGE(observer.ok, observer.error);
  CHECK(received.size() == early.size() + late.size());
  REQUIRE(received == early + late);
  CHECK(relay.bytes() == early.size() + late.size());
  CHECK(relay.sha256() == sha256_hex(early + late));
  close(source_pair[1]);
  close(sink_pair[1]);
}
