/* Packed products with an AVX-512 dot-product instruction that takes one 32-bit group of A
 * (2 bfloat16 values, or 4 biased uint8) broadcast against 64 bytes of a panel (16 columns of
 * that group) per instruction: vdpbf16ps and vpdpbusd. Included by quant.c inside their target
 * region, which defines:
 *   QD_NAME    name suffix
 *   QD_ACC     the accumulator type (__m512 or __m512i)
 *   QD_DOT(acc, a, b)  acc + the dot products of a and b (both __m512i)
 *   QD_INT8    1: int8 accumulators, turned into float32 by the epilogue of quant.h
 *   QD_MR, QD_TP  rows and panels of a register tile
 * A holds M rows of Kg groups (row stride lda bytes); Bp the panels, Kg * 64 bytes each. */

#define QD_CAT_(a, b) a##_##b
#define QD_CAT(a, b) QD_CAT_(a, b)
#define QD(name) QD_CAT(name, QD_NAME)

/* Column block [col, col + n) (n <= 16) of row i: the epilogue, then C (+)= the result. */
static CGRU_ALWAYS_INLINE void QD(store)(QD_ACC acc, int i, int col, int n, const quant_out *o)
{
    const __mmask16 mask = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
    float *c = o->C + (size_t)i * o->ldc + col;
#if QD_INT8
    /* the uint8 values were q + 128: take 128 times each column's sum of q back */
    const __m512i sums = _mm512_loadu_si512((const void *)(o->col_sum + col));
    const __m512i exact = _mm512_sub_epi32((__m512i)acc, _mm512_slli_epi32(sums, 7));
    const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(o->row_scale[i]),
                                       _mm512_maskz_loadu_ps(mask, o->col_scale + col));
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(exact), scale);
#else
    __m512 v = acc;
#endif
    if (o->accumulate)
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, c));
    _mm512_mask_storeu_ps(c, mask, v);
}

static CGRU_ALWAYS_INLINE QD_ACC QD(zero)(void)
{
#if QD_INT8
    return (QD_ACC)_mm512_setzero_si512();
#else
    return _mm512_setzero_ps();
#endif
}

static CGRU_ALWAYS_INLINE __m512i QD(broadcast)(const uint8_t *a)
{
    int32_t group;
    memcpy(&group, a, sizeof group);
    return _mm512_set1_epi32(group);
}

/* Rows [i0, i0 + mr) times panels [p0, p0 + tp) (mr, tp constants where inlined). */
static CGRU_ALWAYS_INLINE void QD(tile)(const int mr, const int tp, int Kg, const uint8_t *A,
                                        size_t lda, const uint8_t *Bp, int i0, int p0, int N,
                                        const quant_out *o)
{
    QD_ACC acc[QD_MR][QD_TP];
    const size_t pstride = (size_t)Kg * 64;
    const uint8_t *a = A + (size_t)i0 * lda, *bp = Bp + (size_t)p0 * pstride;
    for (int i = 0; i < mr; ++i)
        for (int p = 0; p < tp; ++p)
            acc[i][p] = QD(zero)();
    for (int kg = 0; kg < Kg; ++kg) {
        __m512i b[QD_TP];
        for (int p = 0; p < tp; ++p)
            b[p] = _mm512_load_si512((const void *)(bp + p * pstride + (size_t)kg * 64));
        for (int i = 0; i < mr; ++i) {
            const __m512i ai = QD(broadcast)(a + (size_t)i * lda + (size_t)kg * 4);
            for (int p = 0; p < tp; ++p)
                acc[i][p] = QD_DOT(acc[i][p], ai, b[p]);
        }
    }
    for (int i = 0; i < mr; ++i)
        for (int p = 0; p < tp; ++p) {
            const int col = (p0 + p) * 16;
            if (col < N)
                QD(store)(acc[i][p], i0 + i, col, N - col, o);
        }
}

/* One row times a group of gp panels (gp a constant where inlined): 8 chains of
 * accumulation, over 8 / gp groups of k at a time, to hide the instruction's latency. */
static CGRU_ALWAYS_INLINE void QD(row_group)(const int gp, int Kg, const uint8_t *a,
                                             const uint8_t *Bp, int p0, int N, const quant_out *o)
{
    enum { chains = 8 };
    const int ku = chains / gp;
    const size_t pstride = (size_t)Kg * 64;
    const uint8_t *bp = Bp + (size_t)p0 * pstride;
    QD_ACC acc[chains];
    for (int v = 0; v < chains; ++v)
        acc[v] = QD(zero)();
    int kg = 0;
    for (; kg + ku <= Kg; kg += ku)
        for (int u = 0; u < ku; ++u) {
            const __m512i ai = QD(broadcast)(a + (size_t)(kg + u) * 4);
            for (int p = 0; p < gp; ++p)
                acc[u * gp + p] = QD_DOT(acc[u * gp + p], ai,
                                         _mm512_load_si512((const void *)(bp + p * pstride + (size_t)(kg + u) * 64)));
        }
    for (; kg < Kg; ++kg) {
        const __m512i ai = QD(broadcast)(a + (size_t)kg * 4);
        for (int p = 0; p < gp; ++p)
            acc[p] = QD_DOT(acc[p], ai, _mm512_load_si512((const void *)(bp + p * pstride + (size_t)kg * 64)));
    }
    for (int p = 0; p < gp; ++p) {
        QD_ACC sum = acc[p];
        for (int u = 1; u < ku; ++u)
            sum += acc[u * gp + p];
        const int col = (p0 + p) * 16;
        if (col < N)
            QD(store)(sum, 0, col, N - col, o);
    }
}

#define QD_TILE_CASE(m)                                                                          \
    case m:                                                                                      \
        if (tp == QD_TP)                                                                         \
            QD(tile)(m, QD_TP, Kg, a, lda, bp, i0, p0, N, o);                                    \
        else                                                                                     \
            QD(tile)(m, 1, Kg, a, lda, bp, i0, p0, N, o);                                        \
        break;

static void QD(gemm)(int M, int N, int Kg, const void *A, size_t lda, const void *Bp,
                     const quant_out *o)
{
    const uint8_t *a = A, *bp = Bp;
    const int panels = (N + 15) / 16;
    if (M == 1) {
        int p0 = 0;
        for (; p0 + 4 <= panels; p0 += 4)
            QD(row_group)(4, Kg, a, bp, p0, N, o);
        switch (panels - p0) {
        case 3: QD(row_group)(3, Kg, a, bp, p0, N, o); break;
        case 2: QD(row_group)(2, Kg, a, bp, p0, N, o); break;
        case 1: QD(row_group)(1, Kg, a, bp, p0, N, o); break;
        }
        return;
    }
    for (int p0 = 0; p0 < panels;) {
        const int tp = panels - p0 >= QD_TP ? QD_TP : 1;
        for (int i0 = 0; i0 < M; i0 += QD_MR) {
            switch (M - i0 < QD_MR ? M - i0 : QD_MR) {
                QD_TILE_CASE(1)
                QD_TILE_CASE(2)
                QD_TILE_CASE(3)
                QD_TILE_CASE(4)
                QD_TILE_CASE(5)
                QD_TILE_CASE(6)
                QD_TILE_CASE(7)
                QD_TILE_CASE(8)
            }
        }
        p0 += tp;
    }
}

#undef QD_TILE_CASE
#undef QD
#undef QD_CAT
#undef QD_CAT_
