/* A spinning barrier for the threads that share one recurrence (cgru_forward_units_f32): they
 * meet once per time step, far too often for a kernel wait, so they spin, and yield the core
 * once a wait grows long (more threads than free cores). GCC/clang builtins only; elsewhere
 * CGRU_HAVE_BARRIER is 0 and the recurrence runs on one thread. */
#ifndef CGRU_BARRIER_H
#define CGRU_BARRIER_H

#if defined(__GNUC__) || defined(__clang__)
#define CGRU_HAVE_BARRIER 1
#include <sched.h>

typedef struct {
    int parts;   /* threads that meet */
    int arrived; /* how many reached the current round */
    int round;   /* flips when a round completes */
    int failed;  /* set by a thread that cannot go on; all see it at the next round */
} cgru_barrier;

static inline void cgru_barrier_init(cgru_barrier *b, int parts)
{
    b->parts = parts;
    b->arrived = 0;
    b->round = 0;
    b->failed = 0;
}

static inline void cgru_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Wait until all parts have arrived; *round is this thread's copy of the round flag (start it
 * at 0). Returns nonzero when some thread has reported failure. */
static inline int cgru_barrier_wait(cgru_barrier *b, int *round)
{
    const int next = !*round;
    *round = next;
    if (__atomic_add_fetch(&b->arrived, 1, __ATOMIC_ACQ_REL) == b->parts) {
        __atomic_store_n(&b->arrived, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->round, next, __ATOMIC_RELEASE);
    } else {
        unsigned spins = 0;
        while (__atomic_load_n(&b->round, __ATOMIC_ACQUIRE) != next) {
            if (++spins < 20000)
                cgru_cpu_relax();
            else
                sched_yield();
        }
    }
    return __atomic_load_n(&b->failed, __ATOMIC_ACQUIRE);
}

static inline void cgru_barrier_fail(cgru_barrier *b)
{
    __atomic_store_n(&b->failed, 1, __ATOMIC_RELEASE);
}
#else
#define CGRU_HAVE_BARRIER 0
typedef struct {
    int parts, arrived, round, failed;
} cgru_barrier;
#endif

#endif
