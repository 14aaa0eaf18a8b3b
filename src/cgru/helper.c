/* The helper thread of helper.h. One caller at a time owns it (`busy`); the owner posts a job
 * by advancing `posted`, the helper answers by advancing `done` to the same number. */
#if defined(__linux__) && !defined(__ANDROID__)
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getcpu, CPU sets and thread affinity */
#endif
#else
#define _POSIX_C_SOURCE 200809L
#endif
#include "helper.h"

#if CGRU_HAVE_HELPER
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static struct {
    pthread_mutex_t lock; /* guards `started` and the helper's sleep */
    pthread_cond_t wake;
    pthread_t thread;
    int started;
    int busy;
    int away_from; /* the CPU the helper was last kept off (Linux), -1 for none yet */
    void (*fn)(void *arg, int part);
    void *arg;
    unsigned posted __attribute__((aligned(64))); /* written by the owner, read by the helper */
    unsigned done __attribute__((aligned(64)));   /* written by the helper, read by the owner */
} helper = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static long elapsed_ns(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000000000L + (now.tv_nsec - since->tv_nsec);
}

/* Waits until `posted` moves past `seen`: spinning for CGRU_HELPER_SPIN_NS, then asleep. */
static unsigned wait_for_job(unsigned seen)
{
    struct timespec since;
    clock_gettime(CLOCK_MONOTONIC, &since);
    for (unsigned spins = 1;; ++spins) {
        const unsigned posted = __atomic_load_n(&helper.posted, __ATOMIC_ACQUIRE);
        if (posted != seen)
            return posted;
        cgru_cpu_relax();
        if (spins % 256 == 0 && elapsed_ns(&since) > CGRU_HELPER_SPIN_NS)
            break;
    }
    pthread_mutex_lock(&helper.lock);
    unsigned posted;
    while ((posted = __atomic_load_n(&helper.posted, __ATOMIC_ACQUIRE)) == seen)
        pthread_cond_wait(&helper.wake, &helper.lock);
    pthread_mutex_unlock(&helper.lock);
    return posted;
}

static void *serve(void *unused)
{
    (void)unused;
    for (unsigned seen = 0;;) {
        seen = wait_for_job(seen);
        helper.fn(helper.arg, 1);
        __atomic_store_n(&helper.done, seen, __ATOMIC_RELEASE);
    }
    return NULL;
}

/* Keeps the helper off the calling thread's CPU: it may run on the caller's other CPUs (or,
 * for a caller pinned to one CPU, the main thread's). A woken thread tends to be placed on its
 * waker's CPU, and there the two halves of a job, which wait for each other, would take turns
 * (a unit-split call after an idle pause took 14 ms instead of 0.3). Called by the owner; only
 * when the caller's CPU has changed does it cost system calls. Elsewhere the scheduler decides. */
static void keep_helper_off_this_cpu(void)
{
#if defined(__linux__) && !defined(__ANDROID__)
    const int cpu = sched_getcpu();
    if (cpu < 0 || cpu == helper.away_from)
        return;
    helper.away_from = cpu;
    cpu_set_t elsewhere;
    if (sched_getaffinity(0, sizeof elsewhere, &elsewhere) != 0)
        return;
    CPU_CLR(cpu, &elsewhere);
    if (CPU_COUNT(&elsewhere) == 0) {
        if (sched_getaffinity(getpid(), sizeof elsewhere, &elsewhere) != 0)
            return;
        CPU_CLR(cpu, &elsewhere);
    }
    if (CPU_COUNT(&elsewhere) > 0)
        pthread_setaffinity_np(helper.thread, sizeof elsewhere, &elsewhere);
#endif
}

/* Called only in a forked child (through cgru_forget_threads), where the helper thread and any
 * caller that owned it are gone: the next job starts a new helper. The lock and condition may
 * have been held or waited on by those threads, so they are replaced by fresh ones rather than
 * reinitialised. */
void cgru_helper_forget(void)
{
    helper.lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
    helper.wake = (pthread_cond_t)PTHREAD_COND_INITIALIZER;
    helper.started = helper.busy = 0;
    helper.posted = helper.done = 0;
}

/* Starts the helper thread (signals blocked: they belong to the interpreter's threads); 4 MB of
 * stack, whatever the C library's default. */
static int ensure_started(void)
{
    pthread_mutex_lock(&helper.lock);
    if (!helper.started) {
        pthread_attr_t attr;
        pthread_t thread;
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        if (pthread_attr_init(&attr) == 0) {
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            pthread_attr_setstacksize(&attr, 4u << 20);
            helper.started = pthread_create(&thread, &attr, serve, NULL) == 0;
            if (helper.started) {
                helper.thread = thread;
                helper.away_from = -1;
#if defined(__linux__) && !defined(__ANDROID__)
                pthread_setname_np(thread, "cgru-helper"); /* as ps and top show it */
#endif
            }
            pthread_attr_destroy(&attr);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    const int ok = helper.started;
    pthread_mutex_unlock(&helper.lock);
    return ok;
}

int cgru_helper_run_pair(void (*fn)(void *arg, int part), void *arg)
{
    int idle = 0;
    if (!__atomic_compare_exchange_n(&helper.busy, &idle, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return -1;
    if (!ensure_started()) {
        __atomic_store_n(&helper.busy, 0, __ATOMIC_RELEASE);
        return -1;
    }
    keep_helper_off_this_cpu();
    helper.fn = fn;
    helper.arg = arg;
    const unsigned job = helper.posted + 1;
    __atomic_store_n(&helper.posted, job, __ATOMIC_RELEASE);
    pthread_mutex_lock(&helper.lock); /* wakes it if it has gone to sleep */
    pthread_cond_signal(&helper.wake);
    pthread_mutex_unlock(&helper.lock);

    fn(arg, 0);

    for (unsigned spins = 0; __atomic_load_n(&helper.done, __ATOMIC_ACQUIRE) != job;)
        if (++spins < 4000)
            cgru_cpu_relax();
        else
            sched_yield();
    __atomic_store_n(&helper.busy, 0, __ATOMIC_RELEASE);
    return 0;
}
#else
int cgru_helper_run_pair(void (*fn)(void *arg, int part), void *arg)
{
    (void)fn, (void)arg;
    return -1;
}

void cgru_helper_forget(void) {}
#endif
