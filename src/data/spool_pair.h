// Inspection: a relay writes into one end of a bufferevent pair, and what reaches the
// other end goes to a spool. So the relay's limits, throttle, digest and end-of-stream
// rules hold unchanged whether its bytes go to a peer or wait for a verdict.
#pragma once

#include <event2/bufferevent.h>

#include "net/libevent_handles.h"
#include "scan/spool.h"

namespace ftpsgate::data {

struct SpoolPair {
  net::BufferEventPtr relay_end;  // the relay's sink
  net::BufferEventPtr spool_end;  // read into the spool
};

// Both ends on `base`, or empty ones when libevent cannot make a pair.
SpoolPair make_spool_pair(event_base* base);

// Moves what `in` holds into `spool`; false when the spool refused (full, write error),
// with what it refused left in `in`.
bool move_to_spool(evbuffer* in, inspection::Spool& spool);

}  // namespace ftpsgate::data
