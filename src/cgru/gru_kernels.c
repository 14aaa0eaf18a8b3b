/* Instantiates gru_impl.h for float and double against the linked CBLAS. */
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "gru_kernels.h"
#include "blas.h"
#include "gates_f32.h"
#include "barrier.h"
#include "helper.h"
#include "quant.h"

size_t cgru_grad_chunk_floats = (size_t)1 << 20;

size_t cgru_packed_recurrent_floats(int H, int reset_after)
{
    if (reset_after)
        return cgru_packed_floats(H, 3 * H);
    return cgru_packed_floats(H, 2 * H) + cgru_packed_floats(H, H);
}

void cgru_pack_recurrent_f32(int H, int reset_after, const float *U, float *out)
{
    const size_t G = 3 * (size_t)H;
    if (reset_after) {
        cgru_pack_f32(H, 3 * H, U, G, 1, out);
    } else {
        cgru_pack_f32(H, 2 * H, U, G, 1, out);
        cgru_pack_f32(H, H, U + 2 * H, G, 1, out + cgru_packed_floats(H, 2 * H));
    }
}

#define REAL float
#define SUFFIX f32
#define GEMM CGRU_BLAS(cblas_sgemm)
#define GEMV CGRU_BLAS(cblas_sgemv)
#define EXP expf
#define TANH tanhf
#define FAST_GATES 1
#define FAST_GATES_FWD cgru_gates_fwd_f32
#define FAST_GATES_BWD cgru_gates_bwd_f32
#define FAST_VECMAT cgru_vecmat_f32
#define QUANT_GEMM cgru_quant_gemm
#define QUANT_GEMM_ROWS cgru_quant_gemm_rows
#if CGRU_HAVE_PACKED_GEMM
#define PACKED_GEMM cgru_packed_gemm_f32
#define PACK cgru_pack_f32
#define PACKED_FLOATS cgru_packed_floats
#define PACKED_RECURRENT_FLOATS cgru_packed_recurrent_floats
#define PACK_RECURRENT cgru_pack_recurrent_f32
#endif
#include "gru_impl.h"

int cgru_forward_quantized_f32(const cgru_dims *d, const cgru_qweights *q, const float *x,
                               const float *bx, const float *bh, const float *h0, float *y,
                               float *h_n)
{
    return forward_f32(d, x, NULL, NULL, bx, bh, h0, NULL, y, h_n, NULL, NULL, q);
}

#undef QUANT_GEMM
#undef QUANT_GEMM_ROWS
#undef FAST_GATES
#undef FAST_VECMAT
#undef PACKED_GEMM
#undef PACK
#undef PACKED_FLOATS
#undef PACKED_RECURRENT_FLOATS
#undef PACK_RECURRENT
#undef REAL
#undef SUFFIX
#undef GEMM
#undef GEMV
#undef EXP
#undef TANH

#define REAL double
#define SUFFIX f64
#define GEMM CGRU_BLAS(cblas_dgemm)
#define GEMV CGRU_BLAS(cblas_dgemv)
#define EXP exp
#define TANH tanh
#include "gru_impl.h"

void cgru_blas_set_threads(int n)
{
#ifdef CGRU_OPENBLAS
    CGRU_BLAS(openblas_set_num_threads)(n);
#else
    (void)n;
#endif
}

int cgru_blas_get_threads(void)
{
#ifdef CGRU_OPENBLAS
    return CGRU_BLAS(openblas_get_num_threads)();
#else
    return 0;
#endif
}

#define CGRU_HAVE_UNIT_SPLIT (CGRU_HAVE_BARRIER && CGRU_HAVE_PACKED_GEMM)

int cgru_units_split_available(void) { return CGRU_HAVE_UNIT_SPLIT; }

int cgru_units_pair_available(void) { return CGRU_HAVE_UNIT_SPLIT && CGRU_HAVE_HELPER; }

#if CGRU_HAVE_UNIT_SPLIT
size_t cgru_units_mail_floats(int parts, const int *edges)
{
    return (2 * units_mail_lines_f32(parts, edges) + 1) * sizeof(cgru_mail_line) / sizeof(float);
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
    p->status[part] = forward_units_f32(p->d, part, 2, p->edges, p->barrier, p->mail, p->x, p->W,
                                        p->U, p->bx, p->bh, p->h0, p->y, p->h_n,
                                        p->q ? &p->q[part] : NULL);
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

const char *cgru_blas_config(void)
{
#ifdef CGRU_OPENBLAS
    return CGRU_BLAS(openblas_get_config)();
#else
    return "system CBLAS";
#endif
}
