/* Run-time selected float32 gate passes (see gates_f32.c). */
#ifndef CGRU_GATES_F32_H
#define CGRU_GATES_F32_H

#include <stddef.h>

typedef void (*cgru_gates_fwd_f32_fn)(int H, const float *a, const float *u, const float *bx,
                                      const float *bh, float *h, float *out, float *gates);
typedef void (*cgru_gates_bwd_f32_fn)(int H, const float *hp, const float *sg, const float *dy,
                                      float *dp, float *du, float *dh);

typedef void (*cgru_vecmat_f32_fn)(int K, int N, const float *a, const float *B, int ldb,
                                   float beta, float *c);

/* The packed kernel is written with the GCC/clang vector extensions and compiled for AVX2 and
 * AVX-512, where it was measured against OpenBLAS; on other CPUs and compilers (MSVC, arm64)
 * cgru_packed_gemm_f32 is NULL and the engine uses BLAS for the per-step products. */
#ifndef CGRU_HAVE_PACKED_GEMM /* predefine it as 0 to build without (as with MSVC) */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define CGRU_HAVE_PACKED_GEMM 1
#else
#define CGRU_HAVE_PACKED_GEMM 0
#endif
#endif

/* C (M, N) = A (M, K) Bp (+ C when accumulate), Bp packed by cgru_pack_f32 (see
 * packed_f32_impl.h for the layout). A has row stride lda, C row stride ldc. */
typedef void (*cgru_packed_gemm_f32_fn)(int M, int N, int K, const float *A, int lda,
                                        const float *Bp, int accumulate, float *C, int ldc);

#define CGRU_PANEL 16 /* columns per panel of a packed operand */

/* Floats a packed (K, N) operand takes, and packing one: B[k, j] = src[k * sk + j * sj]
 * (sk = row stride and sj = 1 packs a row-major matrix; sk = 1, sj = row stride packs its
 * transpose). Bp should be 64-byte aligned for speed. */
size_t cgru_packed_floats(int K, int N);
void cgru_pack_f32(int K, int N, const float *src, size_t sk, size_t sj, float *Bp);

/* The recurrent kernel U (H, 3H) packed for the per-step products of the float32 forward
 * (which packs it into its scratch memory once per call): all its columns (reset_after), or
 * its z, r columns and then its h columns. How many floats it takes, and packing it. */
size_t cgru_packed_recurrent_floats(int H, int reset_after);
void cgru_pack_recurrent_f32(int H, int reset_after, const float *U, float *out);

extern cgru_gates_fwd_f32_fn cgru_gates_fwd_f32;
#if CGRU_HAVE_PACKED_GEMM
extern cgru_packed_gemm_f32_fn cgru_packed_gemm_f32; /* NULL when the CPU has no variant */
#endif
extern cgru_vecmat_f32_fn cgru_vecmat_f32;
extern cgru_gates_bwd_f32_fn cgru_gates_bwd_f32;

/* Instruction-set variants: "generic", "avx2", "avx512", and "avx512_vnni" and "avx512_bf16",
 * which run the avx512 float32 kernels and differ in the reduced-precision ones (quant.h). */
int cgru_isa_supported(const char *isa);
int cgru_set_isa(const char *isa); /* 0 on success, -1 when this CPU cannot run it */
const char *cgru_get_isa(void);
void cgru_select_best_isa(void);

/* Test hook: which = 0 exp, 1 sigmoid, 2 tanh, through the vectorised float32 math. */
void cgru_vector_math_f32(int which, const float *x, float *y, size_t n);

#endif
