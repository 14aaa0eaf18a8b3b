/* GRU forward/backward, written once and included by gru_kernels.c for each precision: the
 * products and gate rows both share, here, then the forward (gru_forward_impl.h) and the
 * backward (gru_backward_impl.h).
 * The includer defines REAL (float or double), SUFFIX (f32 or f64), GEMM (the cblas ?gemm),
 * GEMV (the cblas ?gemv), EXP and TANH; and, where the precision has them (float):
 *   FAST_GATES_FWD, FAST_GATES_BWD  the instruction-set variants of the default-activation
 *                                   reset_after rows (gates_f32.h)
 *   FAST_VECMAT                     the batch-1 vector-matrix product
 *   PACKED_GEMM, PACK, PACKED_FLOATS, PACKED_RECURRENT_FLOATS, PACK_RECURRENT
 *                                   the per-step products through a packed recurrent kernel
 *   QUANT_GEMM, QUANT_GEMM_ROWS     quant.h's products, with which the forward also runs on
 *                                   bfloat16 or int8 weights
 *   UNIT_SPLIT_HOOKS                export this precision's product and reset_after row for
 *                                   unit_split.c
 *
 * Each entry point runs in named phases over a named layout of its scratch memory (one
 * cgru_workspace block per call), in the manner of ONNX Runtime's deep_cpu_gru: the forward
 * projects the inputs of every step in one product, then per step multiplies the state by the
 * recurrent kernel and runs the gate rows of gate_math.h; the backward runs the gate rows' own
 * backward per step, and turns the saved gradients into the weight gradients in a few large
 * products. */

#define FN_(name, sfx) name##_##sfx
#define FN2(name, sfx) FN_(name, sfx)
#define FN(name) FN2(name, SUFFIX)

#define GM_REAL REAL
#define GM_NAME SUFFIX
#define GM_EXP EXP
#define GM_TANH TANH
#include "gate_math.h"
#undef GM_REAL
#undef GM_NAME
#undef GM_EXP
#undef GM_TANH

/* ------------------------------------------------------------------------------------------ */
/* Products                                                                                   */

/* C (M, N) = alpha * op(A) op(B) + beta * C, row-major; tolerates empty sizes. */
static void FN(matmul)(int trans_a, int trans_b, int M, int N, int K, const REAL *A, int lda,
                       const REAL *B, int ldb, REAL beta, REAL *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j)
                C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
#ifdef FAST_VECMAT
    if (M == 1 && !trans_a && !trans_b) {
        FAST_VECMAT(K, N, A, B, ldb, beta, C);
        return;
    }
#endif
    if (M == 1 && !trans_a) {
        /* row vector times matrix: y = op(B)^T a, a GEMV without GEMM's packing cost */
        if (trans_b)
            GEMV(CblasRowMajor, CblasNoTrans, N, K, 1, B, ldb, A, 1, beta, C, 1);
        else
            GEMV(CblasRowMajor, CblasTrans, K, N, 1, B, ldb, A, 1, beta, C, 1);
        return;
    }
    GEMM(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
         M, N, K, 1, A, lda, B, ldb, beta, C, ldc);
}

/* C (M, N) = A (M, K) op(B) (+ C when accumulate), the product of one time step: through Bp,
 * op(B) packed once for all steps, where the precision has a packed kernel and Bp is given. */
static void FN(step_product)(const REAL *Bp, int trans_b, int M, int N, int K, const REAL *A,
                             int lda, const REAL *B, int ldb, int accumulate, REAL *C, int ldc)
{
#ifdef PACKED_GEMM
    const cgru_packed_gemm_f32_fn kernel = PACKED_GEMM; /* read once: set_isa may change it */
    if (Bp && kernel && M > 0 && K > 0) {
        kernel(M, N, K, A, lda, Bp, accumulate, C, ldc);
        return;
    }
#else
    (void)Bp;
#endif
    FN(matmul)(0, trans_b, M, N, K, A, lda, B, ldb, accumulate ? 1 : 0, C, ldc);
}

/* ------------------------------------------------------------------------------------------ */
/* Rows                                                                                       */

/* Time index of row b at processing step s, or -1 when the step is past its length. */
static inline int FN(time_index)(const cgru_dims *d, int b, int s)
{
    int len = d->lengths ? (int)d->lengths[b] : d->time;
    if (s >= len)
        return -1;
    return d->reverse ? len - 1 - s : s;
}

/* Whether the instruction-set variants of the reset_after rows compute these activations. */
static inline int FN(fast_gates)(const cgru_dims *d)
{
#ifdef FAST_GATES_FWD
    return d->activation == CGRU_TANH && d->recurrent_activation == CGRU_SIGMOID;
#else
    (void)d;
    return 0;
#endif
}

/* One row of the reset_after forward (FN(fwd_after)); `fast`: FN(fast_gates). */
static inline void FN(row_after)(const cgru_dims *d, int fast, int H, const REAL *a, const REAL *u,
                                 const REAL *bx, const REAL *bh, REAL *h, REAL *out, REAL *gates)
{
#ifdef FAST_GATES_FWD
    if (fast) {
        FAST_GATES_FWD(H, a, u, bx, bh, h, out, gates);
        return;
    }
#else
    (void)fast;
#endif
    FN(fwd_after)(d->recurrent_activation, d->activation, gates != NULL, H, a, u, bx, bh, h, out, gates);
}

#ifdef UNIT_SPLIT_HOOKS
void FN(cgru_matmul)(int trans_a, int trans_b, int M, int N, int K, const REAL *A, int lda,
                     const REAL *B, int ldb, REAL beta, REAL *C, int ldc)
{
    FN(matmul)(trans_a, trans_b, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

void FN(cgru_row_after)(const cgru_dims *d, int H, const REAL *a, const REAL *u, const REAL *bx,
                        const REAL *bh, REAL *h, REAL *out)
{
    FN(row_after)(d, FN(fast_gates)(d), H, a, u, bx, bh, h, out, NULL);
}
#endif

#include "gru_forward_impl.h"
#include "gru_backward_impl.h"

#undef FN
#undef FN2
#undef FN_
