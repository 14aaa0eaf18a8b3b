/* The backward of gru_impl.h (included there, once per precision; FN names its functions).
 *
 * Phases, over the scratch layout of FN(backward_ws):
 *   1  U^T packed for the per-step products; no gradient at padded positions
 *   per step, last first:
 *   2a the gate rows' backward of gate_math.h (reset_after=0: all but the reset gate)
 *   2b reset_after=0: d(r * h_in) = dn U_h^T, then the reset gate's rows
 *   2c dh += d_rec U^T
 *   2d every `chunk` steps, their d_rec into dU and dbh in one product
 *   3  dx = d_proj W^T and dW = x^T d_proj, one product each */

/* The backward's scratch, one cgru_workspace block laid out in this order:
 *   d_proj     (B * T, 3H)     gradient of the input projection, batch-major (row b * T + t)
 *   d_rec      (chunk * B, 3H) gradient of the recurrent product of the last `chunk` steps
 *                              processed, turned into dU every `chunk` steps
 *   tmp        (B, H)          d(r * h_in) (reset_after=0), or d_rec U^T before the mask
 *   left       (chunk * B, H)  left operand of dU where it is not the saved state itself (a
 *                              recurrent mask, or reset_after=0)
 *   packed_t   64-aligned      U^T (K_rec, H) packed, and for reset_after=0
 *   packed_tn                  U_h^T (H, H), for the per-step products (float32, T > 1) */
typedef struct {
    int chunk;
    REAL *d_proj, *d_rec, *tmp, *left;
    REAL *packed_t, *packed_tn; /* or NULL */
} FN(backward_ws);

/* Lays out ws (see above); K_rec: the gate columns of d_rec that reach dh through U. */
static int FN(backward_workspace)(const cgru_dims *d, const REAL *rmask, int K_rec, FN(backward_ws) *ws)
{
    const int B = d->batch, T = d->time, H = d->units, G = 3 * H;
    const size_t chunk_floats = cgru_grad_chunk_floats;
    ws->chunk = (size_t)T * B * G <= chunk_floats ? T : (int)(chunk_floats / ((size_t)B * G)) + 1;
    const size_t chunk_rows = (size_t)ws->chunk * B;
    const size_t left_floats = rmask || !d->reset_after ? chunk_rows * H : 0;
    size_t pack_floats = 0;
#ifdef PACKED_GEMM
    if (T > 1 && PACKED_GEMM) /* as in the forward: packing costs about one step's product */
        pack_floats = PACKED_FLOATS(K_rec, H) + PACKED_FLOATS(H, H) + 2 * 64 / sizeof(REAL);
#else
    (void)K_rec;
#endif
    REAL *block = cgru_workspace(((size_t)B * T * G + chunk_rows * G + (size_t)B * H + left_floats +
                                  pack_floats + 1) * sizeof(REAL));
    if (!block)
        return CGRU_ENOMEM;
    ws->d_proj = block;
    ws->d_rec = ws->d_proj + (size_t)B * T * G;
    ws->tmp = ws->d_rec + chunk_rows * G;
    ws->left = ws->tmp + (size_t)B * H;
    ws->packed_t = ws->packed_tn = NULL;
#ifdef PACKED_GEMM
    if (pack_floats) {
        ws->packed_t = cgru_align64(ws->left + left_floats);
        if (!d->reset_after)
            ws->packed_tn = cgru_align64(ws->packed_t + PACKED_FLOATS(K_rec, H));
    }
#endif
    return 0;
}

/* sum (n) += row (n) */
static inline void FN(add_row)(int n, const REAL *row, REAL *sum)
{
    for (int j = 0; j < n; ++j)
        sum[j] += row[j];
}

/* Phase 2d: dU (+)= h_in^T d_rec and dbh += the column sums of d_rec over steps [lo, hi) (rows
 * of B), h_in the saved states (times the recurrent mask); `left` holds (hi - lo) * B rows. */
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

/* Phase 3: dW = x^T d_proj over the valid rows only (row b * T + t, t < length of b): a padded
 * step of x may hold anything, and its zero row of d_proj would turn inf or NaN there into NaN.
 * The product runs over each block of consecutive valid rows, which ends at each padded
 * sequence; one product for the whole batch when nothing is padded. */
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
    const size_t BH = (size_t)B * H;
    const int ra = d->recurrent_activation, ac = d->activation;
#ifdef FAST_GATES_BWD
    const int fused = FN(fast_gates)(d) && d->reset_after; /* FAST_GATES_BWD */
#else
    const int fused = 0;
#endif
    const int K_rec = d->reset_after ? G : 2 * H; /* gate columns of d_rec that reach dh via U */
    FN(backward_ws) ws;
    if (FN(backward_workspace)(d, rmask, K_rec, &ws))
        return CGRU_ENOMEM;
    /* Phase 1: U^T (and U_h^T) packed; no gradient at positions past each sequence's length */
#ifdef PACKED_GEMM
    if (ws.packed_t)
        PACK(K_rec, H, U, 1, G, ws.packed_t);
    if (ws.packed_tn)
        PACK(H, H, U + 2 * H, 1, G, ws.packed_tn);
#endif
    REAL *dh = dh0;
    if (d->lengths)
        for (int b = 0; b < B; ++b)
            memset(ws.d_proj + ((size_t)b * T + d->lengths[b]) * G, 0, (size_t)(T - d->lengths[b]) * G * sizeof(REAL));
    if (dh_n)
        memcpy(dh, dh_n, BH * sizeof(REAL));
    else
        memset(dh, 0, BH * sizeof(REAL));
    for (int j = 0; j < G; ++j)
        dbx[j] = dbh[j] = 0;

    /* Phase 2, steps in reverse */
    int dU_started = 0;
    for (int s = T - 1; s >= 0; --s) {
        const int lo = s - s % ws.chunk; /* this step's chunk: steps [lo, min(lo + chunk, T)) */
        REAL *dr_s = ws.d_rec + (size_t)(s - lo) * B * G;
        /* 2a: the gate rows' backward (reset_after=0: all but the reset gate) */
        for (int b = 0; b < B; ++b) {
            const int t = FN(time_index)(d, b, s);
            REAL *dub = dr_s + (size_t)b * G;
            if (t < 0) { /* no gradient through this step; dh passes through unchanged */
                memset(dub, 0, G * sizeof(REAL));
                continue;
            }
            const REAL *hp = saved_h + ((size_t)s * B + b) * H;
            const REAL *sg = saved_gates + ((size_t)s * B + b) * 4 * H;
            const REAL *dyb = dy ? dy + ((size_t)b * T + t) * H : NULL;
            REAL *dpb = ws.d_proj + ((size_t)b * T + t) * G;
            REAL *dhb = dh + (size_t)b * H;
#ifdef FAST_GATES_BWD
            if (fused) {
                FAST_GATES_BWD(H, hp, sg, dyb, dpb, dub, dhb);
                FN(add_row)(G, dpb, dbx); /* while the row is in cache */
                continue;
            }
#endif
            if (d->reset_after)
                FN(bwd_after)(ra, ac, dyb != NULL, H, hp, sg, dyb, dpb, dub, dhb);
            else
                FN(bwd_before_zn)(ra, ac, dyb != NULL, H, hp, sg, dyb, dpb, dub, dhb);
        }
        /* 2b (reset_after=0): d(r * h_in) = dn U_h^T, then the reset gate and the direct path
         * through r * h_in */
        if (!d->reset_after) {
            FN(step_product)(ws.packed_tn, 1, B, H, H, dr_s + 2 * H, G, U + 2 * H, G, 0, ws.tmp, H);
            for (int b = 0; b < B; ++b) {
                const int t = FN(time_index)(d, b, s);
                if (t < 0)
                    continue;
                FN(bwd_before_r)(ra, H, saved_h + ((size_t)s * B + b) * H,
                                 saved_gates + ((size_t)s * B + b) * 4 * H,
                                 rmask ? rmask + (size_t)b * H : NULL, ws.tmp + (size_t)b * H,
                                 ws.d_proj + ((size_t)b * T + t) * G, dr_s + (size_t)b * G,
                                 dh + (size_t)b * H);
            }
        }
        if (!fused) /* the input-bias gradient (the fused rows have added theirs already) */
            for (int b = 0; b < B; ++b) {
                const int t = FN(time_index)(d, b, s);
                if (t >= 0)
                    FN(add_row)(G, ws.d_proj + ((size_t)b * T + t) * G, dbx);
            }
        /* 2c: dh += d_rec U^T (times the mask) */
        if (rmask) {
            FN(step_product)(ws.packed_t, 1, B, H, K_rec, dr_s, G, U, G, 0, ws.tmp, H);
            for (size_t k = 0; k < BH; ++k)
                dh[k] += ws.tmp[k] * rmask[k];
        } else {
            FN(step_product)(ws.packed_t, 1, B, H, K_rec, dr_s, G, U, G, 1, dh, H);
        }
        /* 2d: a complete chunk into dU and dbh */
        if (s == lo) {
            const int hi = lo + ws.chunk < T ? lo + ws.chunk : T;
            FN(recurrent_weight_grad)(d, lo, hi, rmask, saved_h, saved_gates, ws.d_rec, ws.left,
                                      dU_started ? 1 : 0, dU, dbh);
            dU_started = 1;
        }
    }
    if (!dU_started) /* T == 0 */
        memset(dU, 0, (size_t)H * G * sizeof(REAL));

    /* Phase 3: the input's and the kernel's gradients, one product each */
    if (dx) /* NULL when the input needs no gradient (a model's first layer) */
        FN(matmul)(0, 1, B * T, In, G, ws.d_proj, G, W, G, 0, dx, In);
    FN(input_weight_grad)(d, x, ws.d_proj, dW);
    return 0;
}
