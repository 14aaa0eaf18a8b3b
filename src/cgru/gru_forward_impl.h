/* The forward of gru_impl.h (included there, once per precision; FN names its functions).
 *
 * Phases, over the scratch layout of FN(forward_ws):
 *   1  the input projection x W of every step in one product (with quantized weights, of a few
 *      steps at a time), with U packed for the per-step products
 *   per step:
 *   2  the recurrent product u = h_in U (U's z, r columns only for reset_after=0)
 *   3  the gate rows of gate_math.h (reset_after=0: z, r and r * h_in only)
 *   4  reset_after=0: (r * h_in) U_h, then n and the new state */

/* The forward's scratch, one cgru_workspace block laid out in this order:
 *   proj      (chunk * B, 3H)  input projection x W, time-major: row s * B + b holds step s of
 *                              sequence b (time index s; processing step s with q)
 *   u         (B, 3H)          this step's recurrent product h_in U
 *   h_in      (B, H)           the state times the recurrent mask
 *   rh        (B, H)           r * h_in, reset_after=0
 *   x_tm      (T, B, I)        x time-major (B > 1 and T > 1, float weights); or, with q,
 *   rows      (chunk * B)      pointers to the rows of x a chunk projects
 *   packed    64-aligned       U packed for the per-step products (float32, T > 1); or, with q,
 *   quant_scratch              the scratch of the quantized products */
typedef struct {
    int chunk; /* processing steps projected at once: all, or with q a few (quant_chunk) */
    REAL *proj, *u, *h_in, *rh, *x_tm;
    const REAL **rows;
    REAL *packed, *packed_n; /* all of U (or its z, r columns), and its h columns: or NULL */
    void *quant_scratch;
} FN(forward_ws);

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
#endif

/* Lays out ws (see above) in the calling thread's workspace; CGRU_ENOMEM when out of memory. */
static int FN(forward_workspace)(const cgru_dims *d, const struct cgru_qweights *q, FN(forward_ws) *ws)
{
    const int B = d->batch, T = d->time, In = d->input, H = d->units, G = 3 * H;
    const size_t BH = (size_t)B * H;
    size_t pack_floats = 0, quant_floats = 0;
    ws->chunk = T;
#ifdef PACKED_GEMM
    if (T > 1 && PACKED_GEMM && !q) /* packing costs about one step's product */
        pack_floats = PACKED_RECURRENT_FLOATS(H, d->reset_after) + 64 / sizeof(REAL);
#endif
#ifdef QUANT_GEMM
    if (q) {
        ws->chunk = FN(quant_chunk)(B, G, T);
        quant_floats = (cgru_quant_scratch_bytes(In > H ? In : H) + 64) / sizeof(REAL) + 1;
    }
#endif
    const size_t proj_rows = (size_t)ws->chunk * B;
    const size_t xt_floats = q ? (proj_rows * sizeof(REAL *) + 64) / sizeof(REAL)
                               : (B > 1 && T > 1 ? (size_t)B * T * In : 0);
    REAL *block = cgru_workspace((proj_rows * G + (size_t)B * G + 2 * BH + xt_floats + pack_floats +
                                  quant_floats + 1) * sizeof(REAL));
    if (!block)
        return CGRU_ENOMEM;
    ws->proj = block;
    ws->u = ws->proj + proj_rows * G;
    ws->h_in = ws->u + (size_t)B * G;
    ws->rh = ws->h_in + BH;
    REAL *after_rh = ws->rh + BH;
    ws->x_tm = xt_floats && !q ? after_rh : NULL;
    ws->rows = q ? (const REAL **)cgru_align64(after_rh) : NULL;
    ws->packed = pack_floats ? (REAL *)cgru_align64(after_rh + xt_floats) : NULL;
#ifdef PACKED_GEMM
    ws->packed_n = ws->packed ? ws->packed + PACKED_FLOATS(H, 2 * H) : NULL; /* U_h, reset_after=0 */
#else
    ws->packed_n = NULL;
#endif
    ws->quant_scratch = q ? cgru_align64(after_rh + xt_floats) : NULL;
    return 0;
}

/* Phase 1 (float weights): U packed for the per-step products, and the input projection of
 * every step in one product, proj = x W, time-major (x transposed into x_tm first, so that each
 * step reads one contiguous block). */
static void FN(project_inputs)(const cgru_dims *d, const REAL *x, const REAL *W, const REAL *U,
                               FN(forward_ws) *ws)
{
    const int B = d->batch, T = d->time, In = d->input, G = 3 * d->units;
#ifdef PACKED_GEMM
    if (ws->packed)
        PACK_RECURRENT(d->units, d->reset_after, U, ws->packed);
#else
    (void)U;
#endif
    const REAL *x_tm = x; /* with one step, or one sequence, x is time-major already */
    if (ws->x_tm) {
        for (int b = 0; b < B; ++b)
            for (int t = 0; t < T; ++t)
                memcpy(ws->x_tm + ((size_t)t * B + b) * In, x + ((size_t)b * T + t) * In, In * sizeof(REAL));
        x_tm = ws->x_tm;
    }
    FN(matmul)(0, 0, B * T, G, In, x_tm, In, W, G, 0, ws->proj, G);
}

#ifdef QUANT_GEMM
/* Phase 1 with quantized weights, every `chunk` steps: proj (steps, B, 3H) = the projection of
 * processing steps [s0, s0 + chunk) (fewer at the end), row b of step s from x[b, t_b(s)]
 * (zeros past a sequence's length), through the row pointers `rows`. */
static void FN(quant_projection)(const cgru_dims *d, const struct cgru_qweights *q, const REAL *x,
                                 int s0, const FN(forward_ws) *ws)
{
    const int B = d->batch, T = d->time, In = d->input, G = 3 * d->units;
    const int steps = T - s0 < ws->chunk ? T - s0 : ws->chunk;
    if (B == 1 && !d->reverse) { /* one sequence forward: x's rows in order already */
        QUANT_GEMM(&q->kernel, steps, x + (size_t)s0 * In, In, 0, ws->proj, G, ws->quant_scratch);
        return;
    }
    for (int i = 0; i < steps; ++i)
        for (int b = 0; b < B; ++b) {
            const int t = FN(time_index)(d, b, s0 + i);
            ws->rows[(size_t)i * B + b] = t < 0 ? NULL : x + ((size_t)b * T + t) * In;
        }
    QUANT_GEMM_ROWS(&q->kernel, steps * B, ws->rows, 0, ws->proj, G, ws->quant_scratch);
}
#endif

/* Phase 2: u = h_in U, h_in = h times the recurrent mask (U's z, r columns only for
 * reset_after=0), through q's recurrent matrix when given; returns h_in. */
static const REAL *FN(recurrent_product)(const cgru_dims *d, const REAL *U, const struct cgru_qweights *q,
                                         const REAL *rmask, const REAL *h, const FN(forward_ws) *ws)
{
    const int B = d->batch, H = d->units, G = 3 * H;
    const REAL *h_in = h;
    if (rmask) {
        for (size_t k = 0; k < (size_t)B * H; ++k)
            ws->h_in[k] = h[k] * rmask[k];
        h_in = ws->h_in;
    }
#ifdef QUANT_GEMM
    if (q) {
        QUANT_GEMM(&q->recurrent, B, h_in, H, 0, ws->u, G, ws->quant_scratch);
        return h_in;
    }
#else
    (void)q;
#endif
    FN(step_product)(ws->packed, 0, B, d->reset_after ? G : 2 * H, H, h_in, H, U, G, 0, ws->u, G);
    return h_in;
}

/* Phase 4, first half (reset_after=0): u_h = (r * h_in) U_h into u's h block. */
static void FN(reset_product)(const cgru_dims *d, const REAL *U, const struct cgru_qweights *q,
                              const FN(forward_ws) *ws)
{
    const int B = d->batch, H = d->units, G = 3 * H;
#ifdef QUANT_GEMM
    if (q) {
        QUANT_GEMM(&q->recurrent_h, B, ws->rh, H, 0, ws->u + 2 * H, G, ws->quant_scratch);
        return;
    }
#else
    (void)q;
#endif
    FN(step_product)(ws->packed_n, 0, B, H, H, ws->rh, H, U + 2 * H, G, 0, ws->u + 2 * H, G);
}

/* The forward of cgru_forward, with the products through the quantized weights q instead of
 * W and U when q is given (float32 only; inference: no saved activations, no mask). */
static int FN(forward)(const cgru_dims *d, const REAL *x, const REAL *W, const REAL *U,
                       const REAL *bx, const REAL *bh, const REAL *h0, const REAL *rmask,
                       REAL *y, REAL *h_n, REAL *saved_h, REAL *saved_gates,
                       const struct cgru_qweights *q)
{
    const int B = d->batch, T = d->time, H = d->units, G = 3 * H;
    const int ra = d->recurrent_activation, ac = d->activation, fast = FN(fast_gates)(d);
    FN(forward_ws) ws;
    if (FN(forward_workspace)(d, q, &ws))
        return CGRU_ENOMEM;
    REAL *h = h_n;
    memmove(h, h0, (size_t)B * H * sizeof(REAL)); /* h_n may be h0 itself (in-place streaming) */
    if (!q)
        FN(project_inputs)(d, x, W, U, &ws);

    for (int s = 0; s < T; ++s) {
#ifdef QUANT_GEMM
        if (q && s % ws.chunk == 0)
            FN(quant_projection)(d, q, x, s, &ws);
#endif
        const REAL *h_in = FN(recurrent_product)(d, U, q, rmask, h, &ws);
        /* Phase 3: the gate rows (reset_after=0: z, r and r * h_in only) */
        for (int b = 0; b < B; ++b) {
            REAL *hb = h + (size_t)b * H;
            REAL *sg = saved_gates ? saved_gates + ((size_t)s * B + b) * 4 * H : NULL;
            const int t = FN(time_index)(d, b, s);
            if (saved_h)
                memcpy(saved_h + ((size_t)s * B + b) * H, hb, H * sizeof(REAL));
            if (t < 0) { /* past the sequence's end: the state stays, no output */
                if (sg)
                    memset(sg, 0, 4 * H * sizeof(REAL));
                if (!d->reset_after)
                    memset(ws.rh + (size_t)b * H, 0, H * sizeof(REAL));
                continue;
            }
            const REAL *a = ws.proj + (q ? (size_t)(s % ws.chunk) * B + b : (size_t)t * B + b) * G;
            REAL *ub = ws.u + (size_t)b * G;
            if (d->reset_after)
                FN(row_after)(d, fast, H, a, ub, bx, bh, hb, y + ((size_t)b * T + t) * H, sg);
            else
                FN(fwd_before_zr)(ra, H, a, ub, bx, h_in + (size_t)b * H, ws.rh + (size_t)b * H);
        }
        if (d->reset_after)
            continue;
        /* Phase 4 (reset_after=0): (r * h_in) U_h, then n and the new state */
        FN(reset_product)(d, U, q, &ws);
        for (int b = 0; b < B; ++b) {
            const int t = FN(time_index)(d, b, s);
            if (t < 0)
                continue;
            REAL *sg = saved_gates ? saved_gates + ((size_t)s * B + b) * 4 * H : NULL;
            const REAL *a = ws.proj + (q ? (size_t)(s % ws.chunk) * B + b : (size_t)t * B + b) * G;
            FN(fwd_before_n)(ac, sg != NULL, H, a, ws.u + (size_t)b * G, bx, h + (size_t)b * H,
                             y + ((size_t)b * T + t) * H, sg);
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

#ifdef QUANT_GEMM
int FN(cgru_forward_quantized)(const cgru_dims *d, const struct cgru_qweights *q, const REAL *x,
                               const REAL *bx, const REAL *bh, const REAL *h0, REAL *y, REAL *h_n)
{
    return FN(forward)(d, x, NULL, NULL, bx, bh, h0, NULL, y, h_n, NULL, NULL, q);
}
#endif
