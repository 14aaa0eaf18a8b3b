/* A spinning barrier for the threads that share one recurrence (cgru_forward_units_f32): they
 * meet once per time step, far too often for a kernel wait, so they spin, and yield the core
 * once a wait grows long (more threads than free cores). GCC/clang builtins only; elsewhere
 * CGRU_HAVE_BARRIER is 0 and the recurrence runs on one thread. */
#ifndef CGRU_BARRIER_H
#define CGRU_BARRIER_H

#ifndef CGRU_HAVE_BARRIER /* predefine it as 0 to build without (as with MSVC) */
#if defined(__GNUC__) || defined(__clang__)
#define CGRU_HAVE_BARRIER 1
#else
#define CGRU_HAVE_BARRIER 0
#endif
#endif

#if CGRU_HAVE_BARRIER
#include <sched.h>
#include <string.h>

#define CGRU_BARRIER_MAX_PARTS 16

/* Each thread announces the rounds it has finished in its own cache line and reads the
 * others': no shared counter bounces between the cores. */
typedef struct {
    int parts;
    struct {
        int done;   /* rounds this thread has finished */
        int failed; /* this thread cannot go on */
        char pad[64 - 2 * sizeof(int)];
    } slot[CGRU_BARRIER_MAX_PARTS];
} cgru_barrier;

static inline void cgru_barrier_init(cgru_barrier *b, int parts)
{
    memset(b, 0, sizeof *b);
    b->parts = parts;
}

static inline void cgru_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Thread `part` finishes round *round (start it at 0) and waits for every other part to
 * finish it too. Returns nonzero when some thread has reported failure. */
static inline int cgru_barrier_wait(cgru_barrier *b, int part, int *round)
{
    const int target = ++*round;
    int failed = 0;
    __atomic_store_n(&b->slot[part].done, target, __ATOMIC_RELEASE);
    for (int p = 0; p < b->parts; ++p) {
        unsigned spins = 0;
        while (__atomic_load_n(&b->slot[p].done, __ATOMIC_ACQUIRE) < target) {
            if (++spins < 4000)
                cgru_cpu_relax();
            else
                sched_yield();
        }
        failed |= __atomic_load_n(&b->slot[p].failed, __ATOMIC_RELAXED);
    }
    return failed;
}

/* Report that this part cannot go on (before its next wait; all parts see it there). */
static inline void cgru_barrier_fail(cgru_barrier *b, int part)
{
    __atomic_store_n(&b->slot[part].failed, 1, __ATOMIC_RELAXED);
}

/* A thread's new state goes out through a mailbox of cache lines: 15 floats each and the round
 * they belong to, so the values arrive with the signal. A reader polls all the lines at once
 * (their loads overlap), which takes about one cross-core transfer per round instead of one
 * for a counter and then more for the data. n values take cgru_mail_lines(n) lines. */
#define CGRU_MAIL_FLOATS 15
typedef struct {
    float value[CGRU_MAIL_FLOATS];
    int round;
} cgru_mail_line;

static inline int cgru_mail_lines(int n) { return (n + CGRU_MAIL_FLOATS - 1) / CGRU_MAIL_FLOATS; }

static inline int cgru_mail_count(int n, int line)
{
    return n - line * CGRU_MAIL_FLOATS < CGRU_MAIL_FLOATS ? n - line * CGRU_MAIL_FLOATS : CGRU_MAIL_FLOATS;
}

/* Move a written line out of this core's private caches into the shared cache, where the
 * reader finds it sooner: x86 CLDEMOTE, spelled as its bytes (0F 1C /0, here [rax]) so that
 * compilers and assemblers that do not know it build it too; a no-op hint on CPUs without it. */
#if defined(__x86_64__)
static inline void cgru_mail_demote(const void *p)
{
    __asm__ __volatile__(".byte 0x0f, 0x1c, 0x00" : : "a"(p) : "memory");
}
#else
static inline void cgru_mail_demote(const void *p) { (void)p; }
#endif

/* dst[0..k) = src[0..k), k <= CGRU_MAIL_FLOATS: a whole line's worth with a constant size
 * (inlined, no library call), a partial last line element by element. */
static inline void cgru_mail_copy(float *dst, const float *src, int k)
{
    if (k == CGRU_MAIL_FLOATS)
        memcpy(dst, src, CGRU_MAIL_FLOATS * sizeof(float));
    else
        for (int j = 0; j < k; ++j)
            dst[j] = src[j];
}

/* Publish v[0..n) as round `round` (above every round these lines held before). */
static inline void cgru_mail_send(cgru_mail_line *line, const float *v, int n, int round)
{
    for (int i = 0; i < cgru_mail_lines(n); ++i) {
        cgru_mail_copy(line[i].value, v + (size_t)i * CGRU_MAIL_FLOATS, cgru_mail_count(n, i));
        __atomic_store_n(&line[i].round, round, __ATOMIC_RELEASE);
    }
    for (int i = 0; i < cgru_mail_lines(n); ++i)
        cgru_mail_demote(&line[i]);
}

/* Wait for round `round` of the n values in these lines and copy them to v[0..n). */
static inline void cgru_mail_receive(const cgru_mail_line *line, float *v, int n, int round)
{
    const int lines = cgru_mail_lines(n);
    for (unsigned spins = 0;;) {
        int ready = 1;
        for (int i = 0; i < lines; ++i)
            ready &= __atomic_load_n(&line[i].round, __ATOMIC_ACQUIRE) == round;
        if (ready)
            break;
        if (++spins < 4000)
            cgru_cpu_relax();
        else
            sched_yield();
    }
    for (int i = 0; i < lines; ++i)
        cgru_mail_copy(v + (size_t)i * CGRU_MAIL_FLOATS, line[i].value, cgru_mail_count(n, i));
}
#else
#define CGRU_BARRIER_MAX_PARTS 16
typedef struct {
    int parts;
} cgru_barrier;

static inline void cgru_barrier_init(cgru_barrier *b, int parts) { b->parts = parts; }
#endif

#endif
