/* Float32 gate passes for the common activations (tanh, sigmoid) with reset_after=1, written
 * so that the compiler vectorises them. Included once per instruction set by gates_f32.c,
 * which defines ISA (the name suffix). */

#define GATES_CAT_(a, b) a##_##b
#define GATES_CAT(a, b) GATES_CAT_(a, b)

/* Forward of one row (see cgru_gates_fwd_f32 below); `save` is a constant wherever this is
 * inlined. Each gate block gets its own pointer, so every access is unit-stride in j. */
static CGRU_ALWAYS_INLINE void
GATES_CAT(gates_fwd_row, ISA)(const int save, int H, const float *restrict a,
                              const float *restrict u, const float *restrict bx,
                              const float *restrict bh, float *restrict h, float *restrict out,
                              float *restrict gates)
{
    const float *restrict az = a, *restrict ar = a + H, *restrict an = a + 2 * H;
    const float *restrict uz = u, *restrict ur = u + H, *restrict un = u + 2 * H;
    const float *restrict bxz = bx, *restrict bxr = bx + H, *restrict bxn = bx + 2 * H;
    const float *restrict bhz = bh, *restrict bhr = bh + H, *restrict bhn = bh + 2 * H;
    float *restrict gz = gates, *restrict gr = gates + (save ? H : 0);
    float *restrict gn = gates + (save ? 2 * H : 0), *restrict gu = gates + (save ? 3 * H : 0);
    CGRU_IVDEP
    for (int j = 0; j < H; ++j) {
        float z = cgru_vsigmoidf(az[j] + bxz[j] + uz[j] + bhz[j]);
        float r = cgru_vsigmoidf(ar[j] + bxr[j] + ur[j] + bhr[j]);
        float uh = un[j] + bhn[j];
        float n = cgru_vtanhf(an[j] + bxn[j] + r * uh);
        float hn = n + z * (h[j] - n);
        out[j] = hn;
        h[j] = hn;
        if (save) {
            gz[j] = z;
            gr[j] = r;
            gn[j] = n;
            gu[j] = uh;
        }
    }
}

/* Forward: see gates_after in gru_impl.h; `gates` (4H: z, r, n, u_h) may be NULL. */
void GATES_CAT(cgru_gates_fwd_f32, ISA)(int H, const float *restrict a, const float *restrict u,
                                        const float *restrict bx, const float *restrict bh,
                                        float *restrict h, float *restrict out,
                                        float *restrict gates)
{
    if (gates)
        GATES_CAT(gates_fwd_row, ISA)(1, H, a, u, bx, bh, h, out, gates);
    else
        GATES_CAT(gates_fwd_row, ISA)(0, H, a, u, bx, bh, h, out, gates);
}

/* Backward of one row (see cgru_gates_bwd_f32 below); has_dy is a constant wherever this is
 * inlined, so each variant is a branch-free loop the compiler vectorises. */
static CGRU_ALWAYS_INLINE void
GATES_CAT(gates_bwd_row, ISA)(const int has_dy, int H, const float *restrict hp,
                              const float *restrict sg, const float *restrict dy,
                              float *restrict dp, float *restrict du, float *restrict dh)
{
    const float *restrict sz = sg, *restrict sr = sg + H, *restrict sn = sg + 2 * H, *restrict su = sg + 3 * H;
    float *restrict dpz = dp, *restrict dpr = dp + H, *restrict dpn = dp + 2 * H;
    float *restrict duz = du, *restrict dur = du + H, *restrict dun = du + 2 * H;
    CGRU_IVDEP
    for (int j = 0; j < H; ++j) {
        float z = sz[j], r = sr[j], n = sn[j], uh = su[j];
        float g = has_dy ? dh[j] + dy[j] : dh[j];
        float dz = g * (hp[j] - n) * z * (1 - z);
        float dn = g * (1 - z) * (1 - n * n);
        float dr = dn * uh * r * (1 - r);
        dpz[j] = dz;
        dpr[j] = dr;
        dpn[j] = dn;
        duz[j] = dz;
        dur[j] = dr;
        dun[j] = dn * r;
        dh[j] = g * z;
    }
}

/* Backward of one row: g = dh + dy; writes the input-projection gradient dp (3H), the
 * recurrent-product gradient du (3H) and dh <- g * z (the direct path). dy may be NULL. */
void GATES_CAT(cgru_gates_bwd_f32, ISA)(int H, const float *restrict hp, const float *restrict sg,
                                        const float *restrict dy, float *restrict dp,
                                        float *restrict du, float *restrict dh)
{
    if (dy)
        GATES_CAT(gates_bwd_row, ISA)(1, H, hp, sg, dy, dp, du, dh);
    else
        GATES_CAT(gates_bwd_row, ISA)(0, H, hp, sg, dy, dp, du, dh);
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
