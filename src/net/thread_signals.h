// Threads other than the main one leave SIGHUP, SIGTERM and SIGINT to the main loop.
#pragma once

#include <pthread.h>

#include <csignal>

namespace ftpsgate::net {

inline void leave_signals_to_main_thread() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
}

}  // namespace ftpsgate::net
