/* GRU forward/backward, written once and included by gru_kernels.c for each precision.
 * The includer defines REAL (float or double), SUFFIX (f32 or f64), GEMM (the cblas
 * ?gemm), GEMV (the cblas ?gemv), EXP and TANH; and, for float, QUANT_GEMM and QUANT_GEMM_ROWS
 * (quant.h's cgru_quant_gemm and _rows), with which the forward also runs on bfloat16 or int8
 * weights. */

#define FN_(name, sfx) name##_##sfx
#define FN2(name, sfx) FN_(name, sfx)
#define FN(name) FN2(name, SUFFIX)

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

/* p rounded up to a 64-byte boundary (the workspace reserves the slack). */
static inline REAL *FN(align64)(REAL *p)
{
    return (REAL *)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

static inline REAL FN(sigmoid)(REAL v) { return 1 / (1 + EXP(-v)); }

static inline REAL FN(recurrent_act)(int kind, REAL v)
{
    if (kind == CGRU_SIGMOID)
        return FN(sigmoid)(v);
    v = (v + 3) / 6;
    return v < 0 ? 0 : (v > 1 ? 1 : v);
}

static inline REAL FN(recurrent_act_grad)(int kind, REAL y)
{
    if (kind == CGRU_SIGMOID)
        return y * (1 - y);
    return (y > 0 && y < 1) ? (REAL)1 / 6 : 0;
}

static inline REAL FN(act)(int kind, REAL v)
{
    if (kind == CGRU_TANH)
        return TANH(v);
    if (kind == CGRU_RELU)
        return v > 0 ? v : 0;
    return v;
}

static inline REAL FN(act_grad)(int kind, REAL y)
{
    if (kind == CGRU_TANH)
        return 1 - y * y;
    if (kind == CGRU_RELU)
        return y > 0 ? 1 : 0;
    return 1;
}

/* Time index of row b at processing step s, or -1 when the step is past its length. */
static inline int FN(time_index)(const cgru_dims *d, int b, int s)
{
    int len = d->lengths ? (int)d->lengths[b] : d->time;
    if (s >= len)
        return -1;
    return d->reverse ? len - 1 - s : s;
}

/* Training keeps unit j's z, r, n and u_h in its row of the saved gates (4H). */
static inline void FN(save_gates)(REAL *gates, int H, int j, REAL z, REAL r, REAL n, REAL uh)
{
    gates[j] = z;
    gates[H + j] = r;
    gates[2 * H + j] = n;
    gates[3 * H + j] = uh;
}

/* reset_after=1: all of z, r, n from the input projection `a` and the recurrent product `u`. */
static inline void FN(gates_after)(const cgru_dims *d, int H, const REAL *a, const REAL *u,
                                   const REAL *bx, const REAL *bh, REAL *h, REAL *out,
                                   REAL *gates)
{
    const int ra = d->recurrent_activation, ac = d->activation;
    for (int j = 0; j < H; ++j) {
        REAL z = FN(recurrent_act)(ra, a[j] + bx[j] + u[j] + bh[j]);
        REAL r = FN(recurrent_act)(ra, a[H + j] + bx[H + j] + u[H + j] + bh[H + j]);
        REAL uh = u[2 * H + j] + bh[2 * H + j];
        REAL n = FN(act)(ac, a[2 * H + j] + bx[2 * H + j] + r * uh);
        REAL hn = n + z * (h[j] - n);
        out[j] = hn;
        h[j] = hn;
        if (gates)
            FN(save_gates)(gates, H, j, z, r, n, uh);
    }
}

#ifdef QUANT_GEMM
/* With quantized weights the input projection of `chunk` processing steps (rows of B) at a time
 * fills about 256 KB: the projection of a whole batch-mid or batch-large sequence (tens of MB)
 * went to memory and back, and its short-K products were bound by writing it. */
static int FN(quant_chunk)(int B, int G, int T)
{
    const int rows = (int)((256 << 10) / (sizeof(REAL) * (size_t)G));
    const int chunk = rows / B > 1 ? rows / B : 1;
    return chunk < T ? chunk : T;
}

/* proj (steps, B, 3H) = the projection of processing steps [s0, s0 + chunk) (fewer at the end),
 * row b of step s from x[b, t_b(s)] (zeros past a sequence's length); rows holds chunk * B
 * row pointers. */
static void FN(quant_projection)(const cgru_dims *d, const struct cgru_qweights *q, const REAL *x,
                                 int s0, int chunk, const REAL **rows, REAL *proj, void *scratch)
{
    const int B = d->batch, T = d->time, In = d->input, G = 3 * d->units;
    const int steps = T - s0 < chunk ? T - s0 : chunk;
    if (B == 1 && !d->reverse) { /* one sequence forward: x's rows in order already */
        QUANT_GEMM(&q->kernel, steps, x + (size_t)s0 * In, In, 0, proj, G, scratch);
        return;
    }
    for (int i = 0; i < steps; ++i)
        for (int b = 0; b < B; ++b) {
            const int t = FN(time_index)(d, b, s0 + i);
            rows[(size_t)i * B + b] = t < 0 ? NULL : x + ((size_t)b * T + t) * In;
        }
    QUANT_GEMM_ROWS(&q->kernel, steps * B, rows, 0, proj, G, scratch);
}
#endif

/* The forward of cgru_forward, with the products through the quantized weights q instead of
 * W and U when q is given (float32 only; inference: no saved activations, no mask). */
static int FN(forward)(const cgru_dims *d, const REAL *x, const REAL *W, const REAL *U,
                       const REAL *bx, const REAL *bh, const REAL *h0, const REAL *rmask,
                       REAL *y, REAL *h_n, REAL *saved_h, REAL *saved_gates,
                       const struct cgru_qweights *q)
{
    const int B = d->batch, T = d->time, In = d->input, H = d->units, G = 3 * H;
    const size_t BT = (size_t)B * T, BH = (size_t)B * H;
    const REAL *packed = NULL; /* U packed for the per-step products (float32) */
    size_t pack_floats = 0;
#ifdef PACKED_GEMM
    if (T > 1 && PACKED_GEMM && !q) /* packing costs about one step's product */
        pack_floats = PACKED_RECURRENT_FLOATS(H, d->reset_after) + 64 / sizeof(REAL);
#endif
    /* processing steps whose input projection is computed at once: all, but with quantized
     * weights a few at a time (quant_chunk) */
    int chunk = T;
    size_t quant_floats = 0; /* scratch of the quantized products */
#ifdef QUANT_GEMM
    if (q) {
        chunk = FN(quant_chunk)(B, G, T);
        quant_floats = (cgru_quant_scratch_bytes(In > H ? In : H) + 64) / sizeof(REAL) + 1;
    }
#endif
    const size_t proj_rows = (size_t)chunk * B;
    /* x time-major (with one step, x is time-major already), or pointers to a chunk's rows
     * of x (q) */
    const size_t xt_floats = q ? (proj_rows * sizeof(REAL *) + 64) / sizeof(REAL) : (B > 1 && T > 1 ? BT * In : 0);
    REAL *proj = cgru_workspace((proj_rows * G + (size_t)B * G + 2 * BH + xt_floats + pack_floats + quant_floats + 1) * sizeof(REAL));
    if (!proj)
        return CGRU_ENOMEM;
    REAL *u = proj + proj_rows * G; /* (B, 3H) recurrent product of this step */
    REAL *h_in = u + (size_t)B * G; /* (B, H) state times recurrent mask */
    REAL *rh = h_in + BH;      /* (B, H) r * h_in, reset_after=0 */
    /* proj (T, B, 3H), time-major, so that each step reads one contiguous block */
    const REAL *x_tm = x;
    if (xt_floats && !q) {
        REAL *xt = rh + BH;
        for (int b = 0; b < B; ++b)
            for (int t = 0; t < T; ++t)
                memcpy(xt + ((size_t)t * B + b) * In, x + ((size_t)b * T + t) * In, In * sizeof(REAL));
        x_tm = xt;
    }
#ifdef PACKED_GEMM
    if (pack_floats) {
        REAL *buffer = FN(align64)(rh + BH + xt_floats);
        PACK_RECURRENT(H, d->reset_after, U, buffer);
        packed = buffer;
    }
    const REAL *packed_n = packed ? packed + PACKED_FLOATS(H, 2 * H) : NULL; /* U_h, reset_after=0 */
#else
    const REAL *packed_n = NULL;
#endif
    REAL *h = h_n;
    const int fast = d->activation == CGRU_TANH && d->recurrent_activation == CGRU_SIGMOID;
    (void)fast;
    memmove(h, h0, BH * sizeof(REAL)); /* h_n may be h0 itself (in-place streaming) */
#ifdef QUANT_GEMM
    void *quant_scratch = q ? FN(align64)(rh + BH + xt_floats) : NULL; /* where U is packed otherwise */
    if (!q)
#endif
        FN(matmul)(0, 0, (int)BT, G, In, x_tm, In, W, G, 0, proj, G);

    for (int s = 0; s < T; ++s) {
#ifdef QUANT_GEMM
        if (q && s % chunk == 0)
            FN(quant_projection)(d, q, x, s, chunk, (const REAL **)(void *)FN(align64)(rh + BH), proj,
                                 quant_scratch);
#endif
        const REAL *hsrc = h;
        if (rmask) {
            for (size_t k = 0; k < BH; ++k)
                h_in[k] = h[k] * rmask[k];
            hsrc = h_in;
        }
#ifdef QUANT_GEMM
        if (q)
            QUANT_GEMM(&q->recurrent, B, hsrc, H, 0, u, G, quant_scratch);
        else
#endif
            FN(step_product)(packed, 0, B, d->reset_after ? G : 2 * H, H, hsrc, H, U, G, 0, u, G);
        for (int b = 0; b < B; ++b) {
            REAL *hb = h + (size_t)b * H;
            REAL *sh = saved_h ? saved_h + ((size_t)s * B + b) * H : NULL;
            REAL *sg = saved_gates ? saved_gates + ((size_t)s * B + b) * 4 * H : NULL;
            int t = FN(time_index)(d, b, s);
            if (sh)
                memcpy(sh, hb, H * sizeof(REAL));
            if (t < 0) {
                if (sg)
                    memset(sg, 0, 4 * H * sizeof(REAL));
                if (!d->reset_after)
                    memset(rh + (size_t)b * H, 0, H * sizeof(REAL));
                continue;
            }
            const REAL *a = proj + (q ? (size_t)(s % chunk) * B + b : (size_t)t * B + b) * G;
            REAL *ub = u + (size_t)b * G;
            if (d->reset_after) {
                REAL *out = y + ((size_t)b * T + t) * H;
#ifdef FAST_GATES
                if (fast)
                    FAST_GATES_FWD(H, a, ub, bx, bh, hb, out, sg);
                else
#endif
                    FN(gates_after)(d, H, a, ub, bx, bh, hb, out, sg);
            } else {
                const REAL *hs = hsrc + (size_t)b * H;
                for (int j = 0; j < H; ++j) {
                    REAL z = FN(recurrent_act)(d->recurrent_activation, a[j] + bx[j] + ub[j]);
                    REAL r = FN(recurrent_act)(d->recurrent_activation, a[H + j] + bx[H + j] + ub[H + j]);
                    ub[j] = z;
                    ub[H + j] = r;
                    rh[(size_t)b * H + j] = r * hs[j];
                }
            }
        }
        if (d->reset_after)
            continue;
#ifdef QUANT_GEMM
        if (q)
            QUANT_GEMM(&q->recurrent_h, B, rh, H, 0, u + 2 * H, G, quant_scratch);
        else
#endif
            FN(step_product)(packed_n, 0, B, H, H, rh, H, U + 2 * H, G, 0, u + 2 * H, G);
        for (int b = 0; b < B; ++b) {
            int t = FN(time_index)(d, b, s);
            if (t < 0)
                continue;
            const REAL *a = proj + (q ? (size_t)(s % chunk) * B + b : (size_t)t * B + b) * G;
            const REAL *ub = u + (size_t)b * G;
            REAL *hb = h + (size_t)b * H;
            REAL *out = y + ((size_t)b * T + t) * H;
            REAL *sg = saved_gates ? saved_gates + ((size_t)s * B + b) * 4 * H : NULL;
            for (int j = 0; j < H; ++j) {
                REAL z = ub[j], r = ub[H + j], uh = ub[2 * H + j];
                REAL n = FN(act)(d->activation, a[2 * H + j] + bx[2 * H + j] + uh);
                REAL hn = n + z * (hb[j] - n);
                out[j] = hn;
                hb[j] = hn;
                if (sg)
                    FN(save_gates)(sg, H, j, z, r, n, uh);
            }
        }
    }
    return 0;
}

int FN(cgru_forward)(const cgru_dims *d, const REAL *x, const REAL *W, const REAL *U,
                     const REAL *bx, const REAL *bh, const REAL *h0, const REAL *rmask,
                     REAL *y, REAL *h_n, REAL *saved_h, REAL *saved_gates)
{
    return FN(forward)(d, x, W, U, bx, bh, h0, rmask, y, h_n, saved_h, saved_gates, NULL);
}

#if defined(PACKED_GEMM) && CGRU_HAVE_BARRIER
/* Mailbox lines (barrier.h) of parts 0..parts-1 in one round: with parts = all of them, a
 * round's size; with parts = p, where part p's lines start. */
static size_t FN(units_mail_lines)(int parts, const int *edges)
{
    size_t lines = 0;
    for (int q = 0; q < parts; ++q)
        lines += cgru_mail_lines(edges[q + 1] - edges[q]);
    return lines;
}

/* The rows [k0, k1) of this part's U columns (H, 3n) packed for the row kernel: straight from
 * U per gate block (U_cols: U + u0, ldu = 3H, n a multiple of CGRU_PANEL), or from the
 * gathered Up (H, 3n) when given. */
static void FN(pack_unit_rows)(int k0, int k1, int n, const REAL *U_cols, int ldu, const REAL *Up,
                               REAL *packed)
{
    const int K = k1 - k0, H3 = ldu / 3;
    if (Up) {
        PACK(K, 3 * n, Up + (size_t)k0 * 3 * n, 3 * n, 1, packed);
        return;
    }
    for (int g = 0; g < 3; ++g)
        PACK(K, n, U_cols + (size_t)k0 * ldu + (size_t)g * H3, ldu, 1, packed + g * PACKED_FLOATS(K, n));
}

/* u (3n) (+)= h[k0:k1] times rows [k0, k1) of the part's U columns: packed, or gathered (Up). */
static inline void FN(units_product)(cgru_packed_gemm_f32_fn kernel, const REAL *packed,
                                     const REAL *Up, const int rows[2], const REAL *h, int Gp,
                                     int accumulate, REAL *u)
{
    const int k0 = rows[0], K = rows[1] - rows[0];
    if (K <= 0)
        return;
    if (kernel)
        kernel(1, Gp, K, h + k0, K, packed, accumulate, u, Gp);
    else
        FN(matmul)(0, 0, 1, Gp, K, h + k0, K, Up + (size_t)k0 * Gp, Gp, accumulate, u, Gp);
}

/* cgru_forward_units; with q, this part's columns of the weights quantized (quant.h: q->kernel
 * (I, 3n) and q->recurrent (H, 3n), z, r, h blocks of its units) stand for W and U. */
static int FN(forward_units)(const cgru_dims *d, int part, int parts, const int *edges,
                             cgru_barrier *barrier, REAL *mail, const REAL *x, const REAL *W,
                             const REAL *U, const REAL *bx, const REAL *bh, const REAL *h0, REAL *y,
                             REAL *h_n, const struct cgru_qweights *q)
{
    const int T = d->time, In = d->input, H = d->units, G = 3 * H;
    const int u0 = edges[part], u1 = edges[part + 1], n = u1 - u0, Gp = 3 * n;
    const int steps = d->lengths ? (int)d->lengths[0] : T;
    const int fast = d->activation == CGRU_TANH && d->recurrent_activation == CGRU_SIGMOID;
    const cgru_packed_gemm_f32_fn kernel = q ? NULL : PACKED_GEMM; /* read once: set_isa may change it */
    /* this part's U columns go straight into panels when its gate blocks fill whole panels;
     * otherwise (and for the BLAS) they are gathered first */
    const int gather = !q && (!kernel || n % CGRU_PANEL != 0);
    /* The recurrent product in three row ranges of U: this part's own units first, which
     * overlaps the other parts' new state on its way here, then the units before and after. */
    const int rows[3][2] = {{u0, u1}, {0, u0}, {u1, H}};
    int round = 0;
    /* input projection (T, 3n) of this part's gate columns (z, r, h blocks of units u0..u1),
     * recurrent product (3n), the whole state (H), biases (3n) each, U's columns (H, 3n) */
    const size_t floats = (size_t)T * Gp + Gp + H + 2 * Gp + (gather ? (size_t)H * Gp : 0);
    /* the packed U rows and, when U is not gathered, W's columns for the projection */
    size_t packed_floats = !kernel ? 0
        : PACKED_FLOATS(H, Gp) + 3 * 64 / sizeof(REAL) + (gather ? 0 : PACKED_FLOATS(In, Gp) + 64 / sizeof(REAL));
#ifdef QUANT_GEMM
    if (q) /* the quantized products' scratch */
        packed_floats = (cgru_quant_scratch_bytes(In > H ? In : H) + 64) / sizeof(REAL) + 1;
#endif
    REAL *proj = cgru_workspace((floats + packed_floats) * sizeof(REAL));
    if (!proj)
        cgru_barrier_fail(barrier, part);
    if (cgru_barrier_wait(barrier, part, &round))
        return CGRU_ENOMEM;
    REAL *u = proj + (size_t)T * Gp, *h = u + Gp, *bxp = h + H, *bhp = bxp + Gp, *Up = bhp + Gp;
    for (int g = 0; g < 3; ++g) {
        memcpy(bxp + g * n, bx + g * H + u0, n * sizeof(REAL));
        memcpy(bhp + g * n, bh + g * H + u0, n * sizeof(REAL));
        if (!gather)
            continue; /* projection and packing below, with the packed kernel */
        FN(matmul)(0, 0, T, n, In, x, In, W + g * H + u0, G, 0, proj + g * n, Gp);
        for (int k = 0; k < H; ++k)
            memcpy(Up + (size_t)k * Gp + g * n, U + (size_t)k * G + g * H + u0, n * sizeof(REAL));
    }
    REAL *packed[3] = {NULL, NULL, NULL};
    if (kernel) {
        REAL *next = Up + (gather ? (size_t)H * Gp : 0);
        for (int r = 0; r < 3; ++r) {
            packed[r] = FN(align64)(next);
            if (rows[r][1] > rows[r][0])
                FN(pack_unit_rows)(rows[r][0], rows[r][1], n, U + u0, G, gather ? Up : NULL, packed[r]);
            next = packed[r] + PACKED_FLOATS(rows[r][1] - rows[r][0], Gp);
        }
        if (!gather) { /* one product over all steps, without a BLAS call per gate block */
            REAL *packed_w = FN(align64)(next);
            FN(pack_unit_rows)(0, In, n, W + u0, G, NULL, packed_w);
            kernel(T, Gp, In, x, In, packed_w, 0, proj, Gp);
        }
    }
#ifdef QUANT_GEMM
    void *quant_scratch = FN(align64)(Up);
    if (q)
        QUANT_GEMM(&q->kernel, T, x, In, 0, proj, Gp, quant_scratch);
#endif
    memcpy(h, h0, H * sizeof(REAL));
    cgru_barrier_wait(barrier, part, &round); /* all have read h0 before any writes h_n (aliases) */

    /* each round's new state travels through the mailbox: (2 rounds, every part's lines) */
    const size_t lines = FN(units_mail_lines)(parts, edges), own_lines = FN(units_mail_lines)(part, edges);
    cgru_mail_line *mailbox = (cgru_mail_line *)FN(align64)(mail);
    for (int s = 0; s < steps; ++s) {
        const int t = d->reverse ? steps - 1 - s : s;
        if (!q) /* quantized: after the whole state is here (int8 scales it as a whole) */
            FN(units_product)(kernel, packed[0], Up, rows[0], h, Gp, 0, u);
        if (s > 0) { /* the others' state of round s */
            const cgru_mail_line *box = mailbox + (size_t)(s & 1) * lines;
            for (int other = 0; other < parts; ++other) {
                const int q0 = edges[other], qn = edges[other + 1] - q0;
                if (other != part)
                    cgru_mail_receive(box, h + q0, qn, s);
                box += cgru_mail_lines(qn);
            }
        }
#ifdef QUANT_GEMM
        if (q)
            QUANT_GEMM(&q->recurrent, 1, h, H, 0, u, Gp, quant_scratch);
        else
#endif
        {
            FN(units_product)(kernel, packed[1], Up, rows[1], h, Gp, 1, u);
            FN(units_product)(kernel, packed[2], Up, rows[2], h, Gp, 1, u);
        }
        const REAL *a = proj + (size_t)t * Gp;
        REAL *out = y + (size_t)t * H + u0;
        if (fast)
            FAST_GATES_FWD(n, a, u, bxp, bhp, h + u0, out, NULL);
        else
            FN(gates_after)(d, n, a, u, bxp, bhp, h + u0, out, NULL);
        if (s + 1 == steps)
            break;
        cgru_mail_send(mailbox + (size_t)((s + 1) & 1) * lines + own_lines, h + u0, n, s + 1);
    }
    memcpy(h_n + u0, h + u0, n * sizeof(REAL));
    return 0;
}

int FN(cgru_forward_units)(const cgru_dims *d, int part, int parts, const int *edges,
                           cgru_barrier *barrier, REAL *mail, const REAL *x, const REAL *W,
                           const REAL *U, const REAL *bx, const REAL *bh, const REAL *h0, REAL *y,
                           REAL *h_n)
{
    return FN(forward_units)(d, part, parts, edges, barrier, mail, x, W, U, bx, bh, h0, y, h_n, NULL);
}
#endif

/* sum (n) += row (n) */
static inline void FN(add_row)(int n, const REAL *row, REAL *sum)
{
    for (int j = 0; j < n; ++j)
        sum[j] += row[j];
}

/* dU (+)= h_in^T d_rec and dbh += the column sums of d_rec over steps [lo, hi) (rows of B),
 * h_in the saved states (times the recurrent mask); `left` holds (hi - lo) * B rows of H. */
static void FN(recurrent_weight_grad)(const cgru_dims *d, int lo, int hi, const REAL *rmask,
                                      const REAL *saved_h, const REAL *saved_gates,
                                      const REAL *d_rec, REAL *left, REAL beta, REAL *dU, REAL *dbh)
{
    const int B = d->batch, H = d->units, G = 3 * H;
    const size_t rows = (size_t)(hi - lo) * B, first = (size_t)lo * B;
    const REAL *h_in = saved_h + first * H;
    if (rmask) {
        for (size_t k = 0; k < rows; ++k) /* row k of step-major (T, B) is batch row k % B */
            for (int j = 0; j < H; ++j)
                left[k * H + j] = h_in[k * H + j] * rmask[((first + k) % B) * H + j];
        h_in = left;
    }
    if (d->reset_after) {
        FN(matmul)(1, 0, H, G, (int)rows, h_in, H, d_rec, G, beta, dU, G);
        for (size_t k = 0; k < rows; ++k)
            FN(add_row)(G, d_rec + k * G, dbh);
    } else {
        FN(matmul)(1, 0, H, 2 * H, (int)rows, h_in, H, d_rec, G, beta, dU, G);
        const REAL *gates = saved_gates + first * 4 * H;
        for (size_t k = 0; k < rows; ++k) /* in place when h_in is left */
            for (int j = 0; j < H; ++j)
                left[k * H + j] = h_in[k * H + j] * gates[k * 4 * H + H + j];
        FN(matmul)(1, 0, H, H, (int)rows, left, H, d_rec + 2 * H, G, beta, dU + 2 * H, G);
    }
}

/* dW = x^T d_proj over the valid rows only (row b * T + t, t < length of b): a padded step of
 * x may hold anything, and its zero row of d_proj would turn inf or NaN there into NaN. The
 * product runs over each block of consecutive valid rows, which ends at each padded sequence;
 * one product for the whole batch when nothing is padded. */
static void FN(input_weight_grad)(const cgru_dims *d, const REAL *x, const REAL *d_proj, REAL *dW)
{
    const int B = d->batch, T = d->time, In = d->input, G = 3 * d->units;
    size_t start = 0; /* first row of the current block */
    REAL beta = 0;
    for (int b = 0; b < B; ++b) {
        const int len = d->lengths ? (int)d->lengths[b] : T;
        if (len == T && b + 1 < B)
            continue; /* the block goes on into the next sequence */
        const size_t stop = (size_t)b * T + len;
        if (stop > start) {
            FN(matmul)(1, 0, In, G, (int)(stop - start), x + start * In, In, d_proj + start * G, G, beta, dW, G);
            beta = 1;
        }
        start = (size_t)(b + 1) * T;
    }
    if (beta == 0) /* no valid row */
        memset(dW, 0, (size_t)In * G * sizeof(REAL));
}

int FN(cgru_backward)(const cgru_dims *d, const REAL *x, const REAL *W, const REAL *U,
                      const REAL *rmask, const REAL *saved_h, const REAL *saved_gates,
                      const REAL *dy, const REAL *dh_n,
                      REAL *dx, REAL *dh0, REAL *dW, REAL *dU, REAL *dbx, REAL *dbh)
{
    const int B = d->batch, T = d->time, In = d->input, H = d->units, G = 3 * H;
    const size_t BT = (size_t)B * T, BH = (size_t)B * H;
    const int ra = d->recurrent_activation, ac = d->activation;
#ifdef FAST_GATES
    const int fused = ac == CGRU_TANH && ra == CGRU_SIGMOID && d->reset_after; /* FAST_GATES_BWD */
#else
    const int fused = 0;
#endif
    /* d_proj (B*T, 3H): gradient of the input projection, at each sequence's time index;
     * d_rec (chunk*B, 3H): gradient of the recurrent product for the last `chunk` steps
     * processed, turned into dU every `chunk` steps; tmp (B, H); left (chunk*B, H): left
     * operand of the recurrent weight gradient, when it is not the saved state itself. */
    const int K_rec = d->reset_after ? G : 2 * H; /* gate columns of d_rec that reach dh via U */
    const size_t chunk_floats = cgru_grad_chunk_floats;
    const int chunk = (size_t)T * B * G <= chunk_floats ? T : (int)(chunk_floats / ((size_t)B * G)) + 1;
    const size_t chunk_rows = (size_t)chunk * B;
    const size_t left_floats = rmask || !d->reset_after ? chunk_rows * H : 0;
    size_t pack_floats = 0;
#ifdef PACKED_GEMM
    if (T > 1 && PACKED_GEMM) /* as in the forward: packing costs about one step's product */
        pack_floats = PACKED_FLOATS(K_rec, H) + PACKED_FLOATS(H, H) + 2 * 64 / sizeof(REAL);
#endif
    REAL *d_proj = cgru_workspace((BT * G + chunk_rows * G + BH + left_floats + pack_floats + 1) * sizeof(REAL));
    if (!d_proj)
        return CGRU_ENOMEM;
    REAL *d_rec = d_proj + BT * G;
    REAL *tmp = d_rec + chunk_rows * G;
    REAL *left = tmp + BH;
    /* U^T (K_rec, H) and, for reset_after=0, U_h^T (H, H), packed for the per-step products */
    REAL *packed_t = NULL, *packed_tn = NULL;
#ifdef PACKED_GEMM
    if (pack_floats) {
        packed_t = FN(align64)(left + left_floats);
        PACK(K_rec, H, U, 1, G, packed_t);
        if (!d->reset_after) {
            packed_tn = FN(align64)(packed_t + PACKED_FLOATS(K_rec, H));
            PACK(H, H, U + 2 * H, 1, G, packed_tn);
        }
    }
#endif
    REAL *dh = dh0;
    if (d->lengths) /* positions past each sequence's length get no gradient */
        for (int b = 0; b < B; ++b)
            memset(d_proj + ((size_t)b * T + d->lengths[b]) * G, 0, (size_t)(T - d->lengths[b]) * G * sizeof(REAL));
    if (dh_n)
        memcpy(dh, dh_n, BH * sizeof(REAL));
    else
        memset(dh, 0, BH * sizeof(REAL));
    for (int j = 0; j < G; ++j)
        dbx[j] = dbh[j] = 0;

    int dU_started = 0;
    for (int s = T - 1; s >= 0; --s) {
        const int lo = s - s % chunk; /* this step's chunk: steps [lo, min(lo + chunk, T)) */
        REAL *dr_s = d_rec + (size_t)(s - lo) * B * G;
        for (int b = 0; b < B; ++b) {
            int t = FN(time_index)(d, b, s);
            REAL *dub = dr_s + (size_t)b * G;
            if (t < 0) { /* no gradient through this step; dh passes through unchanged */
                memset(dub, 0, G * sizeof(REAL));
                continue;
            }
            const REAL *hp = saved_h + ((size_t)s * B + b) * H;
            const REAL *sg = saved_gates + ((size_t)s * B + b) * 4 * H;
            const REAL *dyb = dy ? dy + ((size_t)b * T + t) * H : NULL;
            REAL *dpb = d_proj + ((size_t)b * T + t) * G;
            REAL *dhb = dh + (size_t)b * H;
#ifdef FAST_GATES
            if (fused) {
                FAST_GATES_BWD(H, hp, sg, dyb, dpb, dub, dhb);
                FN(add_row)(G, dpb, dbx); /* while the row is in cache */
                continue;
            }
#endif
            for (int j = 0; j < H; ++j) {
                REAL z = sg[j], r = sg[H + j], n = sg[2 * H + j], uh = sg[3 * H + j];
                REAL g = dhb[j] + (dyb ? dyb[j] : 0);
                REAL dz = g * (hp[j] - n) * FN(recurrent_act_grad)(ra, z);
                REAL dn = g * (1 - z) * FN(act_grad)(ac, n);
                dpb[j] = dz;
                dpb[2 * H + j] = dn;
                dub[j] = dz;
                if (d->reset_after) {
                    REAL dr = dn * uh * FN(recurrent_act_grad)(ra, r);
                    dpb[H + j] = dr;
                    dub[H + j] = dr;
                    dub[2 * H + j] = dn * r;
                } else {
                    dub[2 * H + j] = dn;
                }
                dhb[j] = g * z;
            }
        }
        if (!d->reset_after) {
            /* d(r*h_in) = dn U_h^T, then the reset gate and the direct path through r*h_in */
            FN(step_product)(packed_tn, 1, B, H, H, dr_s + 2 * H, G, U + 2 * H, G, 0, tmp, H);
            for (int b = 0; b < B; ++b) {
                int t = FN(time_index)(d, b, s);
                if (t < 0)
                    continue;
                const REAL *hp = saved_h + ((size_t)s * B + b) * H;
                const REAL *sg = saved_gates + ((size_t)s * B + b) * 4 * H;
                const REAL *mb = rmask ? rmask + (size_t)b * H : NULL;
                REAL *dpb = d_proj + ((size_t)b * T + t) * G;
                REAL *dub = dr_s + (size_t)b * G;
                const REAL *tb = tmp + (size_t)b * H;
                REAL *dhb = dh + (size_t)b * H;
                for (int j = 0; j < H; ++j) {
                    REAL m = mb ? mb[j] : 1, r = sg[H + j];
                    REAL dr = tb[j] * hp[j] * m * FN(recurrent_act_grad)(ra, r);
                    dpb[H + j] = dr;
                    dub[H + j] = dr;
                    dhb[j] += tb[j] * r * m;
                }
            }
        }
        if (!fused) /* the fused gate pass has added its rows already */
            for (int b = 0; b < B; ++b) {
                const int t = FN(time_index)(d, b, s);
                if (t >= 0)
                    FN(add_row)(G, d_proj + ((size_t)b * T + t) * G, dbx);
            }
        if (rmask) {
            FN(step_product)(packed_t, 1, B, H, K_rec, dr_s, G, U, G, 0, tmp, H);
            for (size_t k = 0; k < BH; ++k)
                dh[k] += tmp[k] * rmask[k];
        } else {
            FN(step_product)(packed_t, 1, B, H, K_rec, dr_s, G, U, G, 1, dh, H);
        }
        if (s == lo) { /* the chunk is complete: fold it into dU and dbh */
            const int hi = lo + chunk < T ? lo + chunk : T;
            FN(recurrent_weight_grad)(d, lo, hi, rmask, saved_h, saved_gates, d_rec, left,
                                      dU_started ? 1 : 0, dU, dbh);
            dU_started = 1;
        }
    }
    if (!dU_started) /* T == 0 */
        memset(dU, 0, (size_t)H * G * sizeof(REAL));

    if (dx) /* NULL when the input needs no gradient (a model's first layer) */
        FN(matmul)(0, 1, (int)BT, In, G, d_proj, G, W, G, 0, dx, In);
    FN(input_weight_grad)(d, x, d_proj, dW);
    return 0;
}

#undef FN
#undef FN2
#undef FN_
