/* Float32 product with a pre-packed right operand, C (M, N) = A (M, K) Bp [+ C], for the
 * recurrent product of every time step: the recurrent kernel is packed once per call (or once
 * per model) instead of once per step, as a BLAS GEMM does. Included by gates_f32.c once per
 * instruction set, which defines ISA (the name suffix), VW (floats per vector register),
 * MR (rows of a register tile) and TP (panels of a register tile), and #undef'd at the end.
 *
 * Packed layout: column panels of CGRU_PANEL floats; panel p holds B[k, p*CGRU_PANEL + j] at
 * Bp[(p * K + k) * CGRU_PANEL + j], with zeros past column N. */

#define PK_CAT_(a, b) a##_##b
#define PK_CAT(a, b) PK_CAT_(a, b)
#define PK_NV (CGRU_PANEL / VW) /* vectors per panel row */

typedef float PK_CAT(vf, ISA) __attribute__((vector_size(VW * sizeof(float))));
#define vf PK_CAT(vf, ISA)

static inline vf PK_CAT(vload, ISA)(const float *p)
{
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* One register tile: rows [0, mr) of A times panels [0, tp) of Bp, into C; mr and tp are
 * constants wherever this is inlined, so the accumulators live in registers. */
static inline __attribute__((always_inline)) void
PK_CAT(packed_tile, ISA)(const int mr, const int tp, int K, const float *restrict A, int lda,
                         const float *restrict Bp, int ncols, int accumulate, float *restrict C,
                         int ldc)
{
    vf acc[MR][TP * PK_NV];
    const size_t pstride = (size_t)K * CGRU_PANEL;
    for (int i = 0; i < mr; ++i)
        for (int v = 0; v < tp * PK_NV; ++v)
            acc[i][v] = (vf){0};
    for (int k = 0; k < K; ++k) {
        vf b[TP * PK_NV];
        for (int p = 0; p < tp; ++p)
            for (int v = 0; v < PK_NV; ++v)
                b[p * PK_NV + v] = PK_CAT(vload, ISA)(Bp + p * pstride + (size_t)k * CGRU_PANEL + v * VW);
        for (int i = 0; i < mr; ++i) {
            const float a = A[(size_t)i * lda + k];
            for (int v = 0; v < tp * PK_NV; ++v)
                acc[i][v] += a * b[v];
        }
    }
    for (int i = 0; i < mr; ++i) {
        float *c = C + (size_t)i * ldc;
        for (int v = 0; v < tp * PK_NV; ++v) {
            const int col = v * VW;
            if (col + VW <= ncols) {
                vf out = acc[i][v];
                if (accumulate)
                    out += PK_CAT(vload, ISA)(c + col);
                memcpy(c + col, &out, sizeof out);
            } else {
                for (int j = 0; col + j < ncols; ++j)
                    c[col + j] = (accumulate ? c[col + j] : 0.0f) + acc[i][v][j];
            }
        }
    }
}

/* M = 1: a row vector times Bp, bound by streaming Bp. A group of gp panels (gp a constant
 * where this is inlined) keeps PK_ROW_CHAINS multiply-add chains in flight, over as many
 * values of k as it takes, to hide their latency. */
#define PK_ROW_VECS (8 / 2)  /* vectors of a full group's panel row */
#define PK_ROW_CHAINS 8
static inline __attribute__((always_inline)) void
PK_CAT(packed_row_group, ISA)(const int gp, int N, int K, const float *restrict a,
                              const float *restrict bp, size_t pstride, int col0, int accumulate,
                              float *restrict c)
{
    const int nv = gp * PK_NV;
    const int ku = PK_ROW_CHAINS / nv > 0 ? PK_ROW_CHAINS / nv : 1;
    vf acc[PK_ROW_CHAINS > PK_ROW_VECS ? PK_ROW_CHAINS : PK_ROW_VECS];
    for (int v = 0; v < ku * nv; ++v)
        acc[v] = (vf){0};
    int k = 0;
    for (; k + ku <= K; k += ku)
        for (int i = 0; i < ku; ++i)
            for (int p = 0; p < gp; ++p)
                for (int v = 0; v < PK_NV; ++v)
                    acc[i * nv + p * PK_NV + v] +=
                        a[k + i] * PK_CAT(vload, ISA)(bp + p * pstride + (size_t)(k + i) * CGRU_PANEL + v * VW);
    for (; k < K; ++k)
        for (int p = 0; p < gp; ++p)
            for (int v = 0; v < PK_NV; ++v)
                acc[p * PK_NV + v] += a[k] * PK_CAT(vload, ISA)(bp + p * pstride + (size_t)k * CGRU_PANEL + v * VW);
    for (int v = 0; v < nv; ++v) {
        vf sum = acc[v];
        for (int i = 1; i < ku; ++i)
            sum += acc[i * nv + v];
        float *out = c + col0 + v * VW;
        if (col0 + (v + 1) * VW <= N) {
            if (accumulate)
                sum += PK_CAT(vload, ISA)(out);
            memcpy(out, &sum, sizeof sum);
        } else {
            for (int j = 0; col0 + v * VW + j < N; ++j)
                out[j] = (accumulate ? out[j] : 0.0f) + sum[j];
        }
    }
}

static void PK_CAT(packed_row, ISA)(int N, int K, const float *restrict a, const float *restrict Bp,
                                    int accumulate, float *restrict c)
{
    enum { group = PK_ROW_VECS / PK_NV > 0 ? PK_ROW_VECS / PK_NV : 1 };
    const int panels = (N + CGRU_PANEL - 1) / CGRU_PANEL;
    const size_t pstride = (size_t)K * CGRU_PANEL;
    int p0 = 0;
    for (; p0 + group <= panels; p0 += group)
        PK_CAT(packed_row_group, ISA)(group, N, K, a, Bp + p0 * pstride, pstride, p0 * CGRU_PANEL,
                                      accumulate, c);
    switch (panels - p0) { /* what is left: fewer than `group` panels */
    case 3:
        PK_CAT(packed_row_group, ISA)(3, N, K, a, Bp + p0 * pstride, pstride, p0 * CGRU_PANEL, accumulate, c);
        break;
    case 2:
        PK_CAT(packed_row_group, ISA)(2, N, K, a, Bp + p0 * pstride, pstride, p0 * CGRU_PANEL, accumulate, c);
        break;
    case 1:
        PK_CAT(packed_row_group, ISA)(1, N, K, a, Bp + p0 * pstride, pstride, p0 * CGRU_PANEL, accumulate, c);
        break;
    }
}

#define PK_TILE_CASE(m)                                                                          \
    case m:                                                                                      \
        if (tp == TP)                                                                            \
            PK_CAT(packed_tile, ISA)(m, TP, K, a, lda, bp, ncols, accumulate, c, ldc);           \
        else                                                                                     \
            PK_CAT(packed_tile, ISA)(m, 1, K, a, lda, bp, ncols, accumulate, c, ldc);            \
        break;

void PK_CAT(cgru_packed_gemm_f32, ISA)(int M, int N, int K, const float *restrict A, int lda,
                                       const float *restrict Bp, int accumulate, float *restrict C,
                                       int ldc)
{
    if (M == 1) {
        PK_CAT(packed_row, ISA)(N, K, A, Bp, accumulate, C);
        return;
    }
    const int panels = (N + CGRU_PANEL - 1) / CGRU_PANEL;
    for (int p0 = 0; p0 < panels;) {
        const int tp = panels - p0 >= TP ? TP : 1;
        const int col0 = p0 * CGRU_PANEL;
        const int ncols = N - col0 < tp * CGRU_PANEL ? N - col0 : tp * CGRU_PANEL;
        const float *bp = Bp + (size_t)p0 * K * CGRU_PANEL;
        for (int i0 = 0; i0 < M; i0 += MR) {
            const int mr = M - i0 < MR ? M - i0 : MR;
            const float *a = A + (size_t)i0 * lda;
            float *c = C + (size_t)i0 * ldc + col0;
            switch (mr) {
                PK_TILE_CASE(1)
#if MR > 1
                PK_TILE_CASE(2)
#endif
#if MR > 2
                PK_TILE_CASE(3)
#endif
#if MR > 3
                PK_TILE_CASE(4)
#endif
#if MR > 4
                PK_TILE_CASE(5)
#endif
#if MR > 5
                PK_TILE_CASE(6)
#endif
#if MR > 6
                PK_TILE_CASE(7)
#endif
#if MR > 7
                PK_TILE_CASE(8)
#endif
            }
        }
        p0 += tp;
    }
}

#undef PK_TILE_CASE
#undef PK_ROW_VECS
#undef PK_ROW_CHAINS
#undef vf
#undef PK_NV
#undef PK_CAT
#undef PK_CAT_
#undef VW
#undef MR
#undef TP
