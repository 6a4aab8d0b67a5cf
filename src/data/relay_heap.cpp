#include "data/relay_heap.h"

#include <malloc.h>

#include <cstddef>

namespace ftpsgate::data {

namespace {
// Above a relay chain (512 KiB, libevent rounds 256 KiB reads up to a power of two):
// chains come from the heap, never from mmap/munmap per chain.
constexpr std::size_t kMmapThreshold = 4 * 1024 * 1024;
// Free memory a thread's heap keeps at its top while busy: a few relays' high
// watermarks. Idle workers trim to zero anyway (return_free_memory).
constexpr std::size_t kTrimThreshold = 64 * 1024 * 1024;
}  // namespace

// ASan and TSan own the heap: glibc's mallopt/malloc_trim would act on arenas they never
// set up (the TSan build crashed in mtrim).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
void tune_heap_for_relays() {}
void return_free_memory() {}
#else
void tune_heap_for_relays() {
  mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMmapThreshold));
  mallopt(M_TRIM_THRESHOLD, static_cast<int>(kTrimThreshold));
}

void return_free_memory() { malloc_trim(0); }
#endif

}  // namespace ftpsgate::data
