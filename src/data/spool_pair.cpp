#include "data/spool_pair.h"

#include <event2/buffer.h>

namespace ftpsgate::data {

SpoolPair make_spool_pair(event_base* base) {
  bufferevent* pair[2] = {nullptr, nullptr};
  SpoolPair out;
  if (bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE, pair) != 0) return out;
  out.relay_end.reset(pair[0]);
  out.spool_end.reset(pair[1]);
  return out;
}

bool move_to_spool(evbuffer* in, inspection::Spool& spool) {
  while (evbuffer_get_length(in) > 0) {
    evbuffer_iovec vec{};
    if (evbuffer_peek(in, -1, nullptr, &vec, 1) < 1) break;
    if (!spool.append(static_cast<const char*>(vec.iov_base), vec.iov_len)) return false;
    evbuffer_drain(in, vec.iov_len);
  }
  return true;
}

}  // namespace ftpsgate::data
