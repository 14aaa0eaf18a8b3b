/* The unit split: one float32 sequence's inference forward shared by several threads, each
 * computing the gate columns of its range of units (cgru_forward_units_f32), and its pair
 * driver, which runs two parts on the calling thread and the helper thread of helper.h; the
 * count of running engine calls that the pair checks before it starts; and what a forked child
 * forgets of the parent's threads. See gru_kernels.h for the contracts. */
#include <stdint.h>
#include <string.h>

#include "gru_kernels.h"
#include "barrier.h"
#include "gates_f32.h"
#include "helper.h"
#include "quant.h"

#define CGRU_HAVE_UNIT_SPLIT (CGRU_HAVE_BARRIER && CGRU_HAVE_PACKED_GEMM)

int cgru_units_split_available(void) { return CGRU_HAVE_UNIT_SPLIT; }

int cgru_units_pair_available(void) { return CGRU_HAVE_UNIT_SPLIT && CGRU_HAVE_HELPER; }

/* ------------------------------------------------------------------------------------------ */
/* Running engine calls                                                                       */

#if CGRU_HAVE_BARRIER
static int running_calls;

void cgru_call_begin(void) { __atomic_add_fetch(&running_calls, 1, __ATOMIC_RELAXED); }
void cgru_call_end(void) { __atomic_sub_fetch(&running_calls, 1, __ATOMIC_RELAXED); }
int cgru_calls_running(void) { return __atomic_load_n(&running_calls, __ATOMIC_RELAXED); }
static void forget_calls(void) { __atomic_store_n(&running_calls, 0, __ATOMIC_RELAXED); }
#else
void cgru_call_begin(void) {}
void cgru_call_end(void) {}
int cgru_calls_running(void) { return 0; }
static void forget_calls(void) {}
#endif

void cgru_forget_threads(void)
{
    forget_calls();
    cgru_helper_forget();
}

#if CGRU_HAVE_UNIT_SPLIT
/* ------------------------------------------------------------------------------------------ */
/* One part                                                                                   */

/* Mailbox lines (barrier.h) of parts 0..parts-1 in one round: with parts = all of them, a
 * round's size; with parts = p, where part p's lines start. */
static size_t units_mail_lines(int parts, const int *edges)
{
    size_t lines = 0;
    for (int q = 0; q < parts; ++q)
        lines += cgru_mail_lines(edges[q + 1] - edges[q]);
    return lines;
}

size_t cgru_units_mail_floats(int parts, const int *edges)
{
    return (2 * units_mail_lines(parts, edges) + 1) * sizeof(cgru_mail_line) / sizeof(float);
}

/* The rows [k0, k1) of this part's U columns (H, 3n) packed for the row kernel: straight from
 * U per gate block (U_cols: U + u0, ldu = 3H, n a multiple of CGRU_PANEL), or from the
 * gathered Up (H, 3n) when given. */
static void pack_unit_rows(int k0, int k1, int n, const float *U_cols, int ldu, const float *Up,
                           float *packed)
{
    const int K = k1 - k0, H3 = ldu / 3;
    if (Up) {
        cgru_pack_f32(K, 3 * n, Up + (size_t)k0 * 3 * n, 3 * n, 1, packed);
        return;
    }
    for (int g = 0; g < 3; ++g)
        cgru_pack_f32(K, n, U_cols + (size_t)k0 * ldu + (size_t)g * H3, ldu, 1,
                      packed + g * cgru_packed_floats(K, n));
}

/* u (3n) (+)= h[k0:k1] times rows [k0, k1) of the part's U columns: packed, or gathered (Up). */
static inline void units_product(cgru_packed_gemm_f32_fn kernel, const float *packed, const float *Up,
                                 const int rows[2], const float *h, int Gp, int accumulate, float *u)
{
    const int k0 = rows[0], K = rows[1] - rows[0];
    if (K <= 0)
        return;
    if (kernel)
        kernel(1, Gp, K, h + k0, K, packed, accumulate, u, Gp);
    else
        cgru_matmul_f32(0, 0, 1, Gp, K, h + k0, K, Up + (size_t)k0 * Gp, Gp, accumulate, u, Gp);
}

/* cgru_forward_units_f32; with q, this part's columns of the weights quantized (quant.h:
 * q->kernel (I, 3n) and q->recurrent (H, 3n), z, r, h blocks of its units) stand for W and U. */
static int forward_units(const cgru_dims *d, int part, int parts, const int *edges,
                         cgru_barrier *barrier, float *mail, const float *x, const float *W,
                         const float *U, const float *bx, const float *bh, const float *h0, float *y,
                         float *h_n, const cgru_qweights *q)
{
    const int T = d->time, In = d->input, H = d->units, G = 3 * H;
    const int u0 = edges[part], u1 = edges[part + 1], n = u1 - u0, Gp = 3 * n;
    const int steps = d->lengths ? (int)d->lengths[0] : T;
    const cgru_packed_gemm_f32_fn kernel = q ? NULL : cgru_packed_gemm_f32; /* read once: set_isa may change it */
    /* this part's U columns go straight into panels when its gate blocks fill whole panels;
     * otherwise (and for the BLAS) they are gathered first */
    const int gather = !q && (!kernel || n % CGRU_PANEL != 0);
    /* The recurrent product in three row ranges of U: this part's own units first, which
     * overlaps the other parts' new state on its way here, then the units before and after. */
    const int rows[3][2] = {{u0, u1}, {0, u0}, {u1, H}};
    int round = 0;
    /* Scratch, in this order: input projection (T, 3n) of this part's gate columns (z, r, h
     * blocks of units u0..u1), recurrent product (3n), the whole state (H), biases (3n) each,
     * U's columns (H, 3n) when gathered; then the packed U rows and, when U is not gathered,
     * W's columns for the projection; or, with q, the quantized products' scratch. */
    const size_t floats = (size_t)T * Gp + Gp + H + 2 * Gp + (gather ? (size_t)H * Gp : 0);
    size_t packed_floats = !kernel ? 0
        : cgru_packed_floats(H, Gp) + 3 * 64 / sizeof(float) +
          (gather ? 0 : cgru_packed_floats(In, Gp) + 64 / sizeof(float));
    if (q)
        packed_floats = (cgru_quant_scratch_bytes(In > H ? In : H) + 64) / sizeof(float) + 1;
    float *proj = cgru_workspace((floats + packed_floats) * sizeof(float));
    if (!proj)
        cgru_barrier_fail(barrier, part);
    if (cgru_barrier_wait(barrier, part, &round))
        return CGRU_ENOMEM;
    float *u = proj + (size_t)T * Gp, *h = u + Gp, *bxp = h + H, *bhp = bxp + Gp, *Up = bhp + Gp;
    for (int g = 0; g < 3; ++g) {
        memcpy(bxp + g * n, bx + g * H + u0, n * sizeof(float));
        memcpy(bhp + g * n, bh + g * H + u0, n * sizeof(float));
        if (!gather)
            continue; /* projection and packing below, with the packed kernel */
        cgru_matmul_f32(0, 0, T, n, In, x, In, W + g * H + u0, G, 0, proj + g * n, Gp);
        for (int k = 0; k < H; ++k)
            memcpy(Up + (size_t)k * Gp + g * n, U + (size_t)k * G + g * H + u0, n * sizeof(float));
    }
    float *packed[3] = {NULL, NULL, NULL};
    if (kernel) {
        float *next = Up + (gather ? (size_t)H * Gp : 0);
        for (int r = 0; r < 3; ++r) {
            packed[r] = cgru_align64(next);
            if (rows[r][1] > rows[r][0])
                pack_unit_rows(rows[r][0], rows[r][1], n, U + u0, G, gather ? Up : NULL, packed[r]);
            next = packed[r] + cgru_packed_floats(rows[r][1] - rows[r][0], Gp);
        }
        if (!gather) { /* one product over all steps, without a BLAS call per gate block */
            float *packed_w = cgru_align64(next);
            pack_unit_rows(0, In, n, W + u0, G, NULL, packed_w);
            kernel(T, Gp, In, x, In, packed_w, 0, proj, Gp);
        }
    }
    void *quant_scratch = cgru_align64(Up);
    if (q)
        cgru_quant_gemm(&q->kernel, T, x, In, 0, proj, Gp, quant_scratch);
    memcpy(h, h0, H * sizeof(float));
    cgru_barrier_wait(barrier, part, &round); /* all have read h0 before any writes h_n (aliases) */

    /* each round's new state travels through the mailbox: (2 rounds, every part's lines) */
    const size_t lines = units_mail_lines(parts, edges), own_lines = units_mail_lines(part, edges);
    cgru_mail_line *mailbox = (cgru_mail_line *)cgru_align64(mail);
    for (int s = 0; s < steps; ++s) {
        const int t = d->reverse ? steps - 1 - s : s;
        if (!q) /* quantized: after the whole state is here (int8 scales it as a whole) */
            units_product(kernel, packed[0], Up, rows[0], h, Gp, 0, u);
        if (s > 0) { /* the others' state of round s */
            const cgru_mail_line *box = mailbox + (size_t)(s & 1) * lines;
            for (int other = 0; other < parts; ++other) {
                const int q0 = edges[other], qn = edges[other + 1] - q0;
                if (other != part)
                    cgru_mail_receive(box, h + q0, qn, s);
                box += cgru_mail_lines(qn);
            }
        }
        if (q) {
            cgru_quant_gemm(&q->recurrent, 1, h, H, 0, u, Gp, quant_scratch);
        } else {
            units_product(kernel, packed[1], Up, rows[1], h, Gp, 1, u);
            units_product(kernel, packed[2], Up, rows[2], h, Gp, 1, u);
        }
        cgru_row_after_f32(d, n, proj + (size_t)t * Gp, u, bxp, bhp, h + u0, y + (size_t)t * H + u0);
        if (s + 1 == steps)
            break;
        cgru_mail_send(mailbox + (size_t)((s + 1) & 1) * lines + own_lines, h + u0, n, s + 1);
    }
    memcpy(h_n + u0, h + u0, n * sizeof(float));
    return 0;
}

int cgru_forward_units_f32(const cgru_dims *d, int part, int parts, const int *edges,
                           cgru_barrier *barrier, float *mail, const float *x, const float *W,
                           const float *U, const float *bx, const float *bh, const float *h0, float *y,
                           float *h_n)
{
    return forward_units(d, part, parts, edges, barrier, mail, x, W, U, bx, bh, h0, y, h_n, NULL);
}
#else
size_t cgru_units_mail_floats(int parts, const int *edges)
{
    (void)parts, (void)edges;
    return 0;
}

int cgru_forward_units_f32(const cgru_dims *d, int part, int parts, const int *edges,
                           cgru_barrier *barrier, float *mail, const float *x, const float *W,
                           const float *U, const float *bx, const float *bh, const float *h0,
                           float *y, float *h_n)
{
    (void)d, (void)part, (void)parts, (void)edges, (void)barrier, (void)mail, (void)x, (void)W;
    (void)U, (void)bx, (void)bh, (void)h0, (void)y, (void)h_n;
    return CGRU_EUNSUPPORTED; /* never called: the driver checks cgru_units_split_available */
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* Two parts: the calling thread and the helper thread                                        */

#if CGRU_HAVE_UNIT_SPLIT && CGRU_HAVE_HELPER
typedef struct {
    const cgru_dims *d;
    const int *edges;
    cgru_barrier *barrier;
    float *mail, *y, *h_n;
    const float *x, *W, *U, *bx, *bh, *h0;
    const cgru_qweights *q; /* each part's quantized weights, or NULL */
    int status[2];
} units_pair;

static void run_units_part(void *arg, int part)
{
    units_pair *p = arg;
    p->status[part] = forward_units(p->d, part, 2, p->edges, p->barrier, p->mail, p->x, p->W, p->U,
                                    p->bx, p->bh, p->h0, p->y, p->h_n, p->q ? &p->q[part] : NULL);
}

static int run_units_pair(units_pair *pair)
{
    cgru_barrier barrier __attribute__((aligned(64)));
    cgru_barrier_init(&barrier, 2);
    pair->barrier = &barrier;
    if (cgru_calls_running() > 0 || cgru_helper_run_pair(run_units_part, pair) != 0)
        return CGRU_EBUSY;
    return pair->status[0] ? pair->status[0] : pair->status[1];
}

int cgru_forward_units_pair_f32(const cgru_dims *d, int split, float *mail, const float *x,
                                const float *W, const float *U, const float *bx, const float *bh,
                                const float *h0, float *y, float *h_n)
{
    const int edges[3] = {0, split, d->units};
    units_pair pair = {d, edges, NULL, mail, y, h_n, x, W, U, bx, bh, h0, NULL, {0, 0}};
    return run_units_pair(&pair);
}

int cgru_forward_units_pair_quantized_f32(const cgru_dims *d, int split, float *mail,
                                          const cgru_qweights *q, const float *x, const float *bx,
                                          const float *bh, const float *h0, float *y, float *h_n)
{
    const int edges[3] = {0, split, d->units};
    units_pair pair = {d, edges, NULL, mail, y, h_n, x, NULL, NULL, bx, bh, h0, q, {0, 0}};
    return run_units_pair(&pair);
}
#else
int cgru_forward_units_pair_f32(const cgru_dims *d, int split, float *mail, const float *x,
                                const float *W, const float *U, const float *bx, const float *bh,
                                const float *h0, float *y, float *h_n)
{
    (void)d, (void)split, (void)mail, (void)x, (void)W, (void)U, (void)bx, (void)bh, (void)h0;
    (void)y, (void)h_n;
    return CGRU_EUNSUPPORTED;
}

int cgru_forward_units_pair_quantized_f32(const cgru_dims *d, int split, float *mail,
                                          const cgru_qweights *q, const float *x, const float *bx,
                                          const float *bh, const float *h0, float *y, float *h_n)
{
    (void)d, (void)split, (void)mail, (void)q, (void)x, (void)bx, (void)bh, (void)h0, (void)y;
    (void)h_n;
    return CGRU_EUNSUPPORTED;
}
#endif
