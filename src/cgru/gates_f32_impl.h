/* Float32 gate passes for the default activations (tanh, sigmoid) with reset_after=1: the rows
 * of gate_math.h over vmath.h's exp and tanh, with the activations as constants, so that the
 * compiler vectorises them. Included once per instruction set by gates_f32.c, which defines ISA
 * (the name suffix). */

#define GATES_CAT_(a, b) a##_##b
#define GATES_CAT(a, b) GATES_CAT_(a, b)

#define GM_REAL float
#define GM_NAME ISA
#define GM_EXP cgru_vexpf
#define GM_TANH cgru_vtanhf
#include "gate_math.h"
#undef GM_REAL
#undef GM_NAME
#undef GM_EXP
#undef GM_TANH

/* Forward: see GM(fwd_after); `gates` (4H: z, r, n, u_h) may be NULL. */
void GATES_CAT(cgru_gates_fwd_f32, ISA)(int H, const float *restrict a, const float *restrict u,
                                        const float *restrict bx, const float *restrict bh,
                                        float *restrict h, float *restrict out,
                                        float *restrict gates)
{
    if (gates)
        GATES_CAT(fwd_after, ISA)(CGRU_SIGMOID, CGRU_TANH, 1, H, a, u, bx, bh, h, out, gates);
    else
        GATES_CAT(fwd_after, ISA)(CGRU_SIGMOID, CGRU_TANH, 0, H, a, u, bx, bh, h, out, gates);
}

/* Backward: see GM(bwd_after); dy may be NULL. Each case inlines into a branch-free loop. */
void GATES_CAT(cgru_gates_bwd_f32, ISA)(int H, const float *restrict hp, const float *restrict sg,
                                        const float *restrict dy, float *restrict dp,
                                        float *restrict du, float *restrict dh)
{
    if (dy)
        GATES_CAT(bwd_after, ISA)(CGRU_SIGMOID, CGRU_TANH, 1, H, hp, sg, dy, dp, du, dh);
    else
        GATES_CAT(bwd_after, ISA)(CGRU_SIGMOID, CGRU_TANH, 0, H, hp, sg, dy, dp, du, dh);
}

/* c (N) = beta * c + a (K) B (K, N), B row-major with row stride ldb; single-threaded, for
 * the batch-1 recurrent product where a BLAS call costs more than the arithmetic. */
void GATES_CAT(cgru_vecmat_f32, ISA)(int K, int N, const float *restrict a, const float *restrict B,
                                     int ldb, float beta, float *restrict c)
{
    if (beta == 0.0f) {
        for (int j = 0; j < N; ++j)
            c[j] = 0.0f;
    } else if (beta != 1.0f) {
        for (int j = 0; j < N; ++j)
            c[j] *= beta;
    }
    int k = 0;
    for (; k + 4 <= K; k += 4) {
        const float a0 = a[k], a1 = a[k + 1], a2 = a[k + 2], a3 = a[k + 3];
        const float *restrict r0 = B + (size_t)k * ldb, *restrict r1 = r0 + ldb;
        const float *restrict r2 = r1 + ldb, *restrict r3 = r2 + ldb;
        CGRU_IVDEP
        for (int j = 0; j < N; ++j)
            c[j] += a0 * r0[j] + a1 * r1[j] + a2 * r2[j] + a3 * r3[j];
    }
    for (; k < K; ++k) {
        const float ak = a[k];
        const float *restrict r = B + (size_t)k * ldb;
        CGRU_IVDEP
        for (int j = 0; j < N; ++j)
            c[j] += ak * r[j];
    }
}

#undef GATES_CAT
#undef GATES_CAT_
