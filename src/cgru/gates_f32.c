/* The float32 gate passes compiled for several instruction sets, chosen at run time from the
 * CPU's features (never -march=native: the extension must run on any x86-64 or arm64 CPU). */
#include <stddef.h>
#include <string.h>

#include "gates_f32.h"
#include "gru_kernels.h"
#include "vmath.h"
#include "target.h"
#include "quant.h"

#define ISA generic
#include "gates_f32_impl.h"
#undef ISA

#ifdef CGRU_X86_VARIANTS
CGRU_TARGET_BEGIN("avx2,fma")
#define ISA avx2
#include "gates_f32_impl.h"
#if CGRU_HAVE_PACKED_GEMM
#define VW 8
#define MR 6
#define TP 1
#include "packed_f32_impl.h"
#endif
#undef ISA
CGRU_TARGET_END

CGRU_TARGET_BEGIN("avx512f,avx512dq,avx2,fma")
#define ISA avx512
#include "gates_f32_impl.h"
#if CGRU_HAVE_PACKED_GEMM
#define VW 16
#define MR 8
#define TP 3
#include "packed_f32_impl.h"
#endif
#undef ISA
CGRU_TARGET_END
#endif

cgru_gates_fwd_f32_fn cgru_gates_fwd_f32 = cgru_gates_fwd_f32_generic;
cgru_gates_bwd_f32_fn cgru_gates_bwd_f32 = cgru_gates_bwd_f32_generic;
cgru_vecmat_f32_fn cgru_vecmat_f32 = cgru_vecmat_f32_generic;
#if CGRU_HAVE_PACKED_GEMM
cgru_packed_gemm_f32_fn cgru_packed_gemm_f32 = NULL;
#endif
static const char *current_isa = "generic";

int cgru_isa_supported(const char *isa)
{
    if (strcmp(isa, "generic") == 0)
        return 1;
#ifdef CGRU_X86_VARIANTS
    __builtin_cpu_init();
    if (strcmp(isa, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                       __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(isa, "avx512") == 0)
        return avx512;
    /* the levels of the reduced-precision kernels (quant.c), with the avx512 float32 kernels */
    const int vnni = avx512 && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                     __builtin_cpu_supports("avx512vnni");
    if (strcmp(isa, "avx512_vnni") == 0)
        return vnni;
    if (strcmp(isa, "avx512_bf16") == 0)
        return vnni && __builtin_cpu_supports("avx512bf16");
#endif
    return 0;
}

int cgru_set_isa(const char *isa)
{
    if (!cgru_isa_supported(isa))
        return -1;
    if (strcmp(isa, "generic") == 0) {
        cgru_gates_fwd_f32 = cgru_gates_fwd_f32_generic;
        cgru_gates_bwd_f32 = cgru_gates_bwd_f32_generic;
        cgru_vecmat_f32 = cgru_vecmat_f32_generic;
#if CGRU_HAVE_PACKED_GEMM
        cgru_packed_gemm_f32 = NULL;
#endif
        current_isa = "generic";
    }
#ifdef CGRU_X86_VARIANTS
    else if (strcmp(isa, "avx2") == 0) {
        cgru_gates_fwd_f32 = cgru_gates_fwd_f32_avx2;
        cgru_gates_bwd_f32 = cgru_gates_bwd_f32_avx2;
        cgru_vecmat_f32 = cgru_vecmat_f32_avx2;
#if CGRU_HAVE_PACKED_GEMM
        cgru_packed_gemm_f32 = cgru_packed_gemm_f32_avx2;
#endif
        current_isa = "avx2";
    } else { /* avx512 and the levels above it, which differ in quant.c only */
        static const char *const avx512_levels[] = {"avx512", "avx512_vnni", "avx512_bf16"};
        cgru_gates_fwd_f32 = cgru_gates_fwd_f32_avx512;
        cgru_gates_bwd_f32 = cgru_gates_bwd_f32_avx512;
        cgru_vecmat_f32 = cgru_vecmat_f32_avx512;
#if CGRU_HAVE_PACKED_GEMM
        cgru_packed_gemm_f32 = cgru_packed_gemm_f32_avx512;
#endif
        for (size_t i = 0; i < sizeof avx512_levels / sizeof *avx512_levels; ++i)
            if (strcmp(isa, avx512_levels[i]) == 0)
                current_isa = avx512_levels[i];
    }
#endif
    cgru_quant_set_isa(isa);
    return 0;
}

const char *cgru_get_isa(void) { return current_isa; }

size_t cgru_packed_floats(int K, int N)
{
    return (size_t)((N + CGRU_PANEL - 1) / CGRU_PANEL) * CGRU_PANEL * (K > 0 ? K : 0);
}

void cgru_pack_f32(int K, int N, const float *src, size_t sk, size_t sj, float *Bp)
{
    const int panels = (N + CGRU_PANEL - 1) / CGRU_PANEL;
    for (int p = 0; p < panels; ++p) {
        float *panel = Bp + (size_t)p * K * CGRU_PANEL;
        if (sj == 1) { /* row-major source: copy row pieces */
            for (int k = 0; k < K; ++k)
                for (int j = 0; j < CGRU_PANEL; ++j) {
                    const int col = p * CGRU_PANEL + j;
                    panel[(size_t)k * CGRU_PANEL + j] = col < N ? src[(size_t)k * sk + col] : 0.0f;
                }
        } else { /* transposed source: read each column's run along k */
            for (int j = 0; j < CGRU_PANEL; ++j) {
                const int col = p * CGRU_PANEL + j;
                for (int k = 0; k < K; ++k)
                    panel[(size_t)k * CGRU_PANEL + j] = col < N ? src[(size_t)k * sk + (size_t)col * sj] : 0.0f;
            }
        }
    }
}

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

void cgru_select_best_isa(void)
{
    static const char *const preference[] = {"avx512_bf16", "avx512_vnni", "avx512", "avx2", "generic"};
    for (size_t i = 0; i < sizeof preference / sizeof *preference; ++i)
        if (cgru_set_isa(preference[i]) == 0)
            return;
}

void cgru_vector_math_f32(int which, const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        y[i] = which == 0 ? cgru_vexpf(x[i]) : (which == 1 ? sigmoid_generic(x[i]) : cgru_vtanhf(x[i]));
}
