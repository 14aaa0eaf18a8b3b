/* Reduced-precision weight products of the inference forward: weights stored in bfloat16 or
 * int8, activations and accumulation as each kind defines below, results in float32. The
 * recurrence around them (state, gate math, lengths, direction) is the float32 forward's own
 * (cgru_forward_quantized_f32 in gru_kernels.h).
 *
 * Numerics, the same in every instruction-set variant (cgru/backends/quantize.py is the NumPy
 * reference of both):
 *
 * CGRU_QUANT_BF16: the weights are bfloat16 values (rounded to nearest even from float32 by the
 *   caller). Each product's activations (x_t for the input projection, h or r*h for the
 *   recurrent one) are rounded to bfloat16 the same way, row by row; the products of two
 *   bfloat16 values are exact in float32, and they are summed in float32 in an order each
 *   variant chooses (vdpbf16ps also treats bfloat16 subnormals as zero and flushes subnormal
 *   sums, below 1.2e-38). So every variant differs from the exactly summed products by float32
 *   summation error only.
 *
 * CGRU_QUANT_INT8: the weights are int8 q[k, j] in -127..127 with one float32 scale per output
 *   column, w[k, j] ~ q[k, j] * col_scale[j]. Each row a of the activations is quantized on the
 *   fly with its own scale, in float32: m = max |a_k|, q_k = rint(a_k * (127 / m)) (round
 *   half to even; 0 for every k when m is 0 or 127 / m overflows, and the row's scale NaN when
 *   a has a NaN or an infinity), row_scale = m / 127. The integer products are summed exactly
 *   in int32, and c[j] = (float)sum * (row_scale * col_scale[j]): the same bits in every
 *   variant. K is at most CGRU_QUANT_INT8_MAX_K, so that the int32 sums cannot overflow.
 */
#ifndef CGRU_QUANT_H
#define CGRU_QUANT_H

#include <stddef.h>
#include <stdint.h>

#define CGRU_QUANT_BF16 1
#define CGRU_QUANT_INT8 2
#define CGRU_QUANT_INT8_MAX_K 65535

/* One weight matrix B (K, N), packed by cgru_quant_pack into column panels of 16 and groups
 * of k (2 for bfloat16, 4 for int8) the way every variant reads it, so that the variant in use
 * may change between calls (cgru_set_isa). */
typedef struct cgru_qmatrix {
    int kind;                /* CGRU_QUANT_BF16 or CGRU_QUANT_INT8 */
    int K, N;
    const void *packed;      /* cgru_quant_packed_bytes(kind, K, N) bytes, 64-byte aligned */
    const float *col_scale;  /* int8: (N,) */
    const int32_t *col_sum;  /* int8: (panels * 16,) sums of each column's q (0 past N) */
} cgru_qmatrix;

/* One GRU direction's weights: the kernel W (I, 3H), and the recurrent kernel U (H, 3H) as
 * all its columns (reset_after) or as its z, r columns (H, 2H) and its h columns (H, H). */
typedef struct cgru_qweights {
    cgru_qmatrix kernel, recurrent, recurrent_h;
} cgru_qweights;

/* Bytes of a packed (K, N) matrix, and packing one: src holds K rows of N values (uint16
 * bfloat16 bits, or int8), row stride ld elements. col_sum (int8 only, may be NULL for
 * bfloat16) receives the column sums. */
size_t cgru_quant_packed_bytes(int kind, int K, int N);
size_t cgru_quant_col_sum_count(int N);
void cgru_quant_pack(int kind, int K, int N, const void *src, size_t ld, void *packed,
                     int32_t *col_sum);

/* cgru_quant_pack of the (K, 3n) matrix of units [u0, u0 + n) of a GRU weight matrix src
 * (K, 3H): its columns u0.. of the z, r and h blocks, side by side (a unit-split part's). */
void cgru_quant_pack_units(int kind, int K, int H, int u0, int n, const void *src, size_t ld,
                           void *packed, int32_t *col_sum);

/* Scratch that cgru_quant_gemm needs for a K of at most max_k (any M): it converts the
 * activations a block of rows at a time. */
size_t cgru_quant_scratch_bytes(int max_k);

/* C (M, N) = A (M, K) B, or C += A B when accumulate, with A float32 (row stride lda, C row
 * stride ldc) converted as B's kind defines; scratch: cgru_quant_scratch_bytes(K) bytes,
 * 64-byte aligned. */
void cgru_quant_gemm(const cgru_qmatrix *B, int M, const float *A, int lda, int accumulate,
                     float *C, int ldc, void *scratch);

/* cgru_quant_gemm with A's rows given one by one (rows[i], M of them; NULL: a row of zeros). */
void cgru_quant_gemm_rows(const cgru_qmatrix *B, int M, const float *const *rows, int accumulate,
                          float *C, int ldc, void *scratch);

/* Instruction-set variants (the levels of cgru_set_isa, which calls this): "generic",
 * "avx2", "avx512", "avx512_vnni", "avx512_bf16". Returns -1 for a name it does not know. */
int cgru_quant_set_isa(const char *isa);
/* Which kernel computes each kind now, e.g. "avx512_bf16 (vdpbf16ps)". */
const char *cgru_quant_kernel_name(int kind);

/* The activation conversion of the kernel in use on its own, for tests: M rows of K floats
 * (row stride K) as the kernels see them, written as floats to out (M, K): bfloat16 values, or
 * the int8 values with each row's scale in row_scale (M,). scratch as for cgru_quant_gemm. */
void cgru_quant_convert(int kind, int M, int K, const float *A, float *out, float *row_scale,
                        void *scratch);

#endif
