// glibc heap settings for the relays' buffers. A relay reads into fresh 512 KiB evbuffer
// chains and frees them once written; with glibc's defaults each free at the top of a
// thread's heap gives the pages back (madvise) and the next chain faults them in again,
// zeroed: a quarter of the gateway's CPU on a busy link. Freed memory is kept instead,
// and handed back explicitly once the process (or a worker) is idle.
#pragma once

namespace ftpsgate::data {

// Once, at start-up, before any thread: fixed mmap and trim thresholds.
void tune_heap_for_relays();
// Return freed heap memory to the system (when idle: RSS back to its baseline).
void return_free_memory();

}  // namespace ftpsgate::data
