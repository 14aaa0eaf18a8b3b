/* The compiled GRU engine: forward (inference and training) and backward through time.
 *
 * Layout (row-major, Keras convention): x (B, T, I), kernel W (I, 3H), recurrent kernel
 * U (H, 3H), gate blocks z, r, h. Biases are given as two (3H) rows: input bias bx and
 * recurrent bias bh (bh is all zeros when reset_after is 0).
 *
 * Every function checks nothing about Python objects: the Cython layer validates shapes and
 * types before calling. All scratch memory is allocated per call, so concurrent calls on
 * shared weights are safe. Functions return 0 on success, CGRU_ENOMEM when out of memory.
 */
#ifndef CGRU_GRU_KERNELS_H
#define CGRU_GRU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "barrier.h"

#define CGRU_ENOMEM 1
#define CGRU_EUNSUPPORTED 2 /* a function this build does not have */
#define CGRU_EBUSY 3        /* a shared resource (the helper thread, the cores) is in use: nothing was done */

/* The activation codes: cgru/backends/activations.py's table (the formulas: gate_math.h). */
enum cgru_activation { CGRU_TANH = 0, CGRU_RELU = 1, CGRU_LINEAR = 2 };
enum cgru_recurrent_activation { CGRU_SIGMOID = 0, CGRU_HARD_SIGMOID = 1 };

typedef struct {
    int batch;      /* B */
    int time;       /* T */
    int input;      /* I */
    int units;      /* H */
    int reset_after;
    int reverse;
    int activation;            /* enum cgru_activation */
    int recurrent_activation;  /* enum cgru_recurrent_activation */
    const int64_t *lengths;    /* (B,) in 0..T, or NULL for all T */
} cgru_dims;

/* Training forward saves, per processing step s: h_prev (T, B, H) and gates (T, B, 4H)
 * holding z, r, n and u_h = h U_h + b_hh (reset_after) or (r*h) U_h (otherwise). */

/* Forward. y (B, T, H) must be zero-filled by the caller when lengths are given (every entry
 * is written otherwise); h_n (B, H) receives the final state and may be the same array as h0.
 * rmask (B, H) or NULL. saved_h/saved_gates may be NULL (inference). */
int cgru_forward_f32(const cgru_dims *d, const float *x, const float *W, const float *U,
                     const float *bx, const float *bh, const float *h0, const float *rmask,
                     float *y, float *h_n, float *saved_h, float *saved_gates);
int cgru_forward_f64(const cgru_dims *d, const double *x, const double *W, const double *U,
                     const double *bx, const double *bh, const double *h0, const double *rmask,
                     double *y, double *h_n, double *saved_h, double *saved_gates);

/* Float32 inference forward through reduced-precision weights (quant.h): q's products stand
 * for W and U; everything else as cgru_forward_f32 with no recurrent mask. */
struct cgru_qweights;
int cgru_forward_quantized_f32(const cgru_dims *d, const struct cgru_qweights *q, const float *x,
                               const float *bx, const float *bh, const float *h0, float *y,
                               float *h_n);

/* Float32 inference forward of batch 1 shared by `parts` threads (at most
 * CGRU_BARRIER_MAX_PARTS), each calling this with its own part number: part p computes the
 * gate columns of units [edges[p], edges[p + 1]) (0 = edges[0] < ... < edges[parts] = H).
 * All share the barrier (initialised for `parts`) and the mailbox `mail`, zero-filled,
 * cgru_units_mail_floats(parts, edges) floats, through which each step's new state travels.
 * reset_after=1, no recurrent mask; x (1, T, I), y (1, T, H) (zero-filled by the caller when
 * lengths are given), h0 and h_n (1, H), may alias. Returns CGRU_ENOMEM in every thread when
 * one of them is out of memory. Available where cgru_units_split_available() is 1. */
int cgru_units_split_available(void);
size_t cgru_units_mail_floats(int parts, const int *edges);
int cgru_forward_units_f32(const cgru_dims *d, int part, int parts, const int *edges,
                           cgru_barrier *barrier, float *mail, const float *x, const float *W,
                           const float *U, const float *bx, const float *bh, const float *h0,
                           float *y, float *h_n);

/* cgru_forward_units_f32 in two parts, units [0, split) on the calling thread and [split, H)
 * on the helper thread (helper.h), with a barrier of its own; `mail` as above for edges
 * {0, split, H}. Returns once both parts are done, or CGRU_EBUSY, having done nothing, when
 * the helper is running another caller's job or other engine calls are running (the two
 * parts would share the cores with them, and each waits for the other every step).
 * Available where cgru_units_pair_available() is 1. */
int cgru_units_pair_available(void);
int cgru_forward_units_pair_f32(const cgru_dims *d, int split, float *mail, const float *x,
                                const float *W, const float *U, const float *bx, const float *bh,
                                const float *h0, float *y, float *h_n);

/* cgru_forward_units_pair_f32 over reduced-precision weights (quant.h): q[p] holds part p's
 * columns of the weights, quantized (kernel (I, 3n) and recurrent (H, 3n) for the n units of
 * part p, z, r, h blocks); recurrent_h is not used. Each part multiplies by the whole state
 * once the other's half has arrived. */
int cgru_forward_units_pair_quantized_f32(const cgru_dims *d, int split, float *mail,
                                          const struct cgru_qweights *q, const float *x,
                                          const float *bx, const float *bh, const float *h0,
                                          float *y, float *h_n);

/* Engine calls running now, in every thread: the Cython layer brackets each call of
 * cgru_forward_f32/f64 and cgru_backward_f32/f64 (streaming steps included, for the time they
 * spend here) with cgru_call_begin/cgru_call_end; a running unit-split pair is not counted.
 * Relaxed atomics; no-ops without CGRU_HAVE_BARRIER. */
void cgru_call_begin(void);
void cgru_call_end(void);
int cgru_calls_running(void);

/* In a forked child only, where no other thread runs: forget the parent's other threads (their
 * running calls and the helper thread of helper.h), so that the child computes as a fresh
 * process does. */
void cgru_forget_threads(void);

/* Floats of the recurrent-product gradient (steps of B x 3H) the backward keeps between two
 * recurrent weight-gradient GEMMs: big enough for an efficient GEMM, small enough not to hold
 * every step's (4 MB; tests lower it to cover the chunking). */
extern size_t cgru_grad_chunk_floats;

/* Backward. dy (B, T, H) and dh_n (B, H) may be NULL (zero). Outputs: dx (B, T, I),
 * dh0 (B, H), dW (I, 3H), dU (H, 3H), dbx (3H), dbh (3H); all overwritten. dx may be NULL
 * when the input needs no gradient. Padded steps (t >= length) of x and dy are never read;
 * dx is zero there. */
int cgru_backward_f32(const cgru_dims *d, const float *x, const float *W, const float *U,
                      const float *rmask, const float *saved_h, const float *saved_gates,
                      const float *dy, const float *dh_n,
                      float *dx, float *dh0, float *dW, float *dU, float *dbx, float *dbh);
int cgru_backward_f64(const cgru_dims *d, const double *x, const double *W, const double *U,
                      const double *rmask, const double *saved_h, const double *saved_gates,
                      const double *dy, const double *dh_n,
                      double *dx, double *dh0, double *dW, double *dU, double *dbx, double *dbh);

/* The calling thread's scratch memory: at least `bytes`, reused by its next call (so large
 * problems do not fault fresh pages in on every call), freed when the thread ends. Contents
 * are undefined. NULL when out of memory. */
void *cgru_workspace(size_t bytes);

/* p rounded up to a 64-byte boundary (callers reserve 64 bytes of slack for it). */
static inline void *cgru_align64(void *p)
{
    return (void *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

/* For unit_split.c, float32 only (instantiated from gru_impl.h): the engine's product
 * (C (M, N) = op(A) op(B) + beta C, row-major, empty sizes allowed), and one batch row of the
 * reset_after forward's gate pass (gate_math.h; the instruction-set variant for the default
 * activations) over H units, without saved gates. */
void cgru_matmul_f32(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc);
void cgru_row_after_f32(const cgru_dims *d, int H, const float *a, const float *u, const float *bx,
                        const float *bh, float *h, float *out);

#endif
