/* One helper thread that runs the second half of a job beside the calling thread, for work
 * whose two halves meet too often to hand the second half to a sleeping thread each call (the
 * two parts of a unit-split recurrence meet every time step, and a pool thread's wake-up alone
 * costs tens of microseconds in a virtual machine). After each job the helper spins for
 * CGRU_HELPER_SPIN_NS waiting for the next one, then sleeps until it is posted one. On Linux
 * each job keeps it off the CPU its caller runs on (it is named cgru-helper there).
 * POSIX threads with GCC/clang atomics only: elsewhere CGRU_HAVE_HELPER is 0. */
#ifndef CGRU_HELPER_H
#define CGRU_HELPER_H

#include "barrier.h"

#ifndef CGRU_HAVE_HELPER /* predefine it as 0 to build without */
#if CGRU_HAVE_BARRIER && (defined(__linux__) || defined(__APPLE__))
#define CGRU_HAVE_HELPER 1
#else
#define CGRU_HAVE_HELPER 0
#endif
#endif

#define CGRU_HELPER_SPIN_NS 500000L

/* Runs fn(arg, 0) on the calling thread and fn(arg, 1) on the helper at the same time, and
 * returns once both have returned: 0. Returns -1, having run nothing, when the helper is busy
 * with another caller's job or cannot be started (or CGRU_HAVE_HELPER is 0). fn must not
 * raise or longjmp; its two calls may wait for each other. */
int cgru_helper_run_pair(void (*fn)(void *arg, int part), void *arg);

/* In a forked child only (no other thread runs there): forget the parent's helper thread, which
 * the child does not have, so that the next job starts one. There is no pthread_atfork handler:
 * the child of os.fork() runs Python's fork hook (cgru.backends.parallel) before any cgru code,
 * and that hook calls this through cgru_forget_threads; a child that runs no Python code never
 * calls the engine. */
void cgru_helper_forget(void);

#endif
