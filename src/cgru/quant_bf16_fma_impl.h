/* Packed bfloat16 products for CPUs without bfloat16 instructions: each panel row of a pair
 * of k (16 columns, (k even, k odd) in each 32-bit word) becomes two float32 vectors by a
 * shift and a mask, multiplied by the activations (already rounded to bfloat16 and held as
 * float32) with fused multiply-adds. Included by quant.c in a target region per instruction
 * set, which defines QF_ISA (name suffix), QF_VW (floats per vector), QF_MR and QF_TP (rows
 * and panels of a register tile). GCC/clang vector extensions. */

#define QF_CAT_(a, b) a##_##b
#define QF_CAT(a, b) QF_CAT_(a, b)
#define QF(name) QF_CAT(name, QF_ISA)
#define QF_NV (16 / QF_VW) /* vectors per panel row */

typedef float QF(vf) __attribute__((vector_size(QF_VW * sizeof(float))));
typedef uint32_t QF(vu) __attribute__((vector_size(QF_VW * sizeof(uint32_t))));

static CGRU_ALWAYS_INLINE QF(vu) QF(load)(const uint32_t *p)
{
    QF(vu) v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The float32 values of the even-k and odd-k halves of a vector of pairs. */
static CGRU_ALWAYS_INLINE QF(vf) QF(even)(QF(vu) w) { return (QF(vf))(w << 16); }
static CGRU_ALWAYS_INLINE QF(vf) QF(odd)(QF(vu) w) { return (QF(vf))(w & 0xffff0000u); }

static CGRU_ALWAYS_INLINE void QF(store)(QF(vf) v, int col, int N, float *c, int accumulate)
{
    if (col + QF_VW <= N) {
        if (accumulate) {
            QF(vf) old;
            memcpy(&old, c + col, sizeof old);
            v += old;
        }
        memcpy(c + col, &v, sizeof v);
    } else {
        for (int j = 0; col + j < N; ++j)
            c[col + j] = (accumulate ? c[col + j] : 0.0f) + v[j];
    }
}

static CGRU_ALWAYS_INLINE void QF(tile)(const int mr, const int tp, int Kg, const float *A, size_t lda,
                                        const uint32_t *Bp, int i0, int p0, int N, const quant_out *o)
{
    QF(vf) acc[QF_MR][QF_TP * QF_NV];
    const size_t pstride = (size_t)Kg * 16;
    const float *a = A + (size_t)i0 * lda;
    const uint32_t *bp = Bp + (size_t)p0 * pstride;
    for (int i = 0; i < mr; ++i)
        for (int v = 0; v < tp * QF_NV; ++v)
            acc[i][v] = (QF(vf)){0};
    for (int kg = 0; kg < Kg; ++kg) {
        QF(vu) w[QF_TP * QF_NV];
        for (int p = 0; p < tp; ++p)
            for (int v = 0; v < QF_NV; ++v)
                w[p * QF_NV + v] = QF(load)(bp + p * pstride + (size_t)kg * 16 + v * QF_VW);
        for (int i = 0; i < mr; ++i) {
            const float ae = a[(size_t)i * lda + 2 * kg], ao = a[(size_t)i * lda + 2 * kg + 1];
            for (int v = 0; v < tp * QF_NV; ++v) {
                acc[i][v] += ae * QF(even)(w[v]);
                acc[i][v] += ao * QF(odd)(w[v]);
            }
        }
    }
    for (int i = 0; i < mr; ++i)
        for (int v = 0; v < tp * QF_NV; ++v)
            QF(store)(acc[i][v], p0 * 16 + v * QF_VW, N, o->C + (size_t)(i0 + i) * o->ldc, o->accumulate);
}

/* One row times a group of gp panels: 8 chains (even and odd k of each vector, over as many
 * pairs as it takes), as the float32 row kernel. */
static CGRU_ALWAYS_INLINE void QF(row_group)(const int gp, int Kg, const float *a, const uint32_t *Bp,
                                             int p0, int N, const quant_out *o)
{
    enum { chains = 8 };
    const int nv = gp * QF_NV;
    const int ku = chains / (2 * nv) > 0 ? chains / (2 * nv) : 1;
    const size_t pstride = (size_t)Kg * 16;
    const uint32_t *bp = Bp + (size_t)p0 * pstride;
    QF(vf) acc[2 * chains];
    for (int v = 0; v < 2 * ku * nv; ++v)
        acc[v] = (QF(vf)){0};
    int kg = 0;
    for (; kg + ku <= Kg; kg += ku)
        for (int u = 0; u < ku; ++u)
            for (int p = 0; p < gp; ++p)
                for (int v = 0; v < QF_NV; ++v) {
                    const QF(vu) w = QF(load)(bp + p * pstride + (size_t)(kg + u) * 16 + v * QF_VW);
                    const int x = 2 * (u * nv + p * QF_NV + v);
                    acc[x] += a[2 * (kg + u)] * QF(even)(w);
                    acc[x + 1] += a[2 * (kg + u) + 1] * QF(odd)(w);
                }
    for (; kg < Kg; ++kg)
        for (int p = 0; p < gp; ++p)
            for (int v = 0; v < QF_NV; ++v) {
                const QF(vu) w = QF(load)(bp + p * pstride + (size_t)kg * 16 + v * QF_VW);
                const int x = 2 * (p * QF_NV + v);
                acc[x] += a[2 * kg] * QF(even)(w);
                acc[x + 1] += a[2 * kg + 1] * QF(odd)(w);
            }
    for (int v = 0; v < nv; ++v) {
        QF(vf) sum = acc[2 * v] + acc[2 * v + 1];
        for (int u = 1; u < ku; ++u)
            sum += acc[2 * (u * nv + v)] + acc[2 * (u * nv + v) + 1];
        QF(store)(sum, p0 * 16 + v * QF_VW, N, o->C, o->accumulate);
    }
}

#define QF_TILE_CASE(m)                                                                          \
    case m:                                                                                      \
        if (tp == QF_TP)                                                                         \
            QF(tile)(m, QF_TP, Kg, a, lda, bp, i0, p0, N, o);                                    \
        else                                                                                     \
            QF(tile)(m, 1, Kg, a, lda, bp, i0, p0, N, o);                                        \
        break;

static void QF(gemm_bf16)(int M, int N, int Kg, const void *A, size_t lda_bytes, const void *Bp,
                          const quant_out *o)
{
    const float *a = A;
    const uint32_t *bp = Bp;
    const size_t lda = lda_bytes / sizeof(float);
    const int panels = (N + 15) / 16;
    if (M == 1) { /* groups of panels whose even and odd halves make 8 chains */
        enum { group = 4 / QF_NV };
        int p0 = 0;
        for (; p0 + group <= panels; p0 += group)
            QF(row_group)(group, Kg, a, bp, p0, N, o);
        switch (panels - p0) {
#if QF_NV == 1
        case 3: QF(row_group)(3, Kg, a, bp, p0, N, o); break;
        case 2: QF(row_group)(2, Kg, a, bp, p0, N, o); break;
#endif
        case 1: QF(row_group)(1, Kg, a, bp, p0, N, o); break;
        }
        return;
    }
    for (int p0 = 0; p0 < panels;) {
        const int tp = panels - p0 >= QF_TP ? QF_TP : 1;
        for (int i0 = 0; i0 < M; i0 += QF_MR) {
            switch (M - i0 < QF_MR ? M - i0 : QF_MR) {
                QF_TILE_CASE(1)
#if QF_MR > 1
                QF_TILE_CASE(2)
#endif
#if QF_MR > 2
                QF_TILE_CASE(3)
#endif
#if QF_MR > 3
                QF_TILE_CASE(4)
#endif
#if QF_MR > 4
                QF_TILE_CASE(5)
#endif
#if QF_MR > 5
                QF_TILE_CASE(6)
#endif
#if QF_MR > 6
                QF_TILE_CASE(7)
#endif
#if QF_MR > 7
                QF_TILE_CASE(8)
#endif
            }
        }
        p0 += tp;
    }
}

#undef QF_TILE_CASE
#undef QF_NV
#undef QF
#undef QF_CAT
#undef QF_CAT_
