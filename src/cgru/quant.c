/* The bfloat16 and int8 weight products of quant.h: packing, the activation conversions, and
 * the product kernels per instruction set, chosen at run time with the float32 kernels
 * (cgru_set_isa calls cgru_quant_set_isa).
 *
 *   level         bfloat16 kernel                  int8 kernel
 *   generic       C                                C
 *   avx2          FMA, bfloat16 widened (ymm)      vpmaddwd on int16 (ymm)
 *   avx512        FMA, bfloat16 widened (zmm)      vpmaddwd on int16 (ymm)
 *   avx512_vnni   FMA, bfloat16 widened (zmm)      vpdpbusd (zmm)
 *   avx512_bf16   vdpbf16ps (zmm)                  vpdpbusd (zmm)
 *
 * Packed layout (the same for every kernel): column panels of 16; panel p holds, for each
 * group g of k (pairs for bfloat16, quadruples for int8), 64 bytes: column j's values of the
 * group's k side by side (a 32-bit word per column), zeros past K and N. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "target.h"

#ifdef CGRU_X86_VARIANTS
#include <immintrin.h>
#endif

/* What the kernels read as A, as each variant's conversion writes it. */
enum quant_format {
    FORMAT_BF16_F32 = 0, /* bfloat16 values held as float32 */
    FORMAT_BF16_U16 = 1, /* bfloat16 bits */
    FORMAT_INT8_S16 = 2, /* int8 values held as int16 */
    FORMAT_INT8_U8 = 3,  /* int8 values + 128, as uint8 */
};

/* Where a product's results go, and the int8 epilogue's operands. */
typedef struct {
    float *C;
    int ldc, accumulate;
    const int32_t *col_sum;
    const float *row_scale, *col_scale;
} quant_out;

static inline uint32_t quant_float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float quant_bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* float32 -> bfloat16 bits, round to nearest even; NaN stays NaN (quiet), infinities stay. */
static inline uint16_t quant_bf16_bits(float f)
{
    const uint32_t u = quant_float_bits(f);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : rounded);
}

static inline float quant_bf16_value(uint16_t bits) { return quant_bits_float((uint32_t)bits << 16); }

static inline int quant_group(int kind) { return kind == CGRU_QUANT_BF16 ? 2 : 4; }

typedef void (*quant_prep_fn)(int M, int K, int Kp, const float *const *rows, void *out, float *row_scale);
typedef void (*quant_gemm_fn)(int M, int N, int Kg, const void *A, size_t lda_bytes, const void *Bp,
                              const quant_out *o);

typedef struct {
    const char *name;
    quant_prep_fn prep;
    quant_gemm_fn gemm;
    size_t a_bytes; /* bytes per converted A element */
} quant_variant;

typedef struct {
    const char *isa;
    const quant_variant *bf16, *int8;
} quant_level;

/* ---------------------------------------------------------------------------------------- */
/* Portable C                                                                               */

#define QP_ISA generic
#include "quant_prep_impl.h"
#undef QP_ISA

static void gemm_bf16_generic(int M, int N, int Kg, const void *A, size_t lda_bytes, const void *Bp,
                              const quant_out *o)
{
    const int panels = (N + 15) / 16;
    const size_t lda = lda_bytes / sizeof(float);
    for (int i = 0; i < M; ++i) {
        const float *a = (const float *)A + (size_t)i * lda;
        float *c = o->C + (size_t)i * o->ldc;
        for (int p = 0; p < panels; ++p) {
            const uint32_t *b = (const uint32_t *)Bp + (size_t)p * Kg * 16;
            float acc[16] = {0};
            for (int kg = 0; kg < Kg; ++kg) {
                const float ae = a[2 * kg], ao = a[2 * kg + 1];
                for (int j = 0; j < 16; ++j) {
                    const uint32_t w = b[(size_t)kg * 16 + j];
                    acc[j] += ae * quant_bits_float(w << 16);
                    acc[j] += ao * quant_bits_float(w & 0xffff0000u);
                }
            }
            for (int j = 0; j < 16 && p * 16 + j < N; ++j)
                c[p * 16 + j] = (o->accumulate ? c[p * 16 + j] : 0.0f) + acc[j];
        }
    }
}

/* The int8 epilogue of quant.h for an exact sum. */
static inline float quant_dequantize(int32_t sum, float row_scale, float col_scale)
{
    return (float)sum * (row_scale * col_scale);
}

static void gemm_int8_generic(int M, int N, int Kg, const void *A, size_t lda_bytes, const void *Bp,
                              const quant_out *o)
{
    const int panels = (N + 15) / 16;
    const size_t lda = lda_bytes / sizeof(int16_t);
    for (int i = 0; i < M; ++i) {
        const int16_t *a = (const int16_t *)A + (size_t)i * lda;
        float *c = o->C + (size_t)i * o->ldc;
        for (int p = 0; p < panels; ++p) {
            const int8_t *b = (const int8_t *)Bp + (size_t)p * Kg * 64;
            int32_t acc[16] = {0};
            for (int kg = 0; kg < Kg; ++kg)
                for (int j = 0; j < 16; ++j)
                    for (int e = 0; e < 4; ++e)
                        acc[j] += a[4 * kg + e] * b[(size_t)kg * 64 + 4 * j + e];
            for (int j = 0; j < 16 && p * 16 + j < N; ++j) {
                const float v = quant_dequantize(acc[j], o->row_scale[i], o->col_scale[p * 16 + j]);
                c[p * 16 + j] = o->accumulate ? c[p * 16 + j] + v : v;
            }
        }
    }
}

static const quant_variant bf16_generic = {"generic (C)", prep_bf16_f32_generic, gemm_bf16_generic, sizeof(float)};
static const quant_variant int8_generic = {"generic (C)", prep_int8_s16_generic, gemm_int8_generic, sizeof(int16_t)};

/* ---------------------------------------------------------------------------------------- */
/* x86-64 variants                                                                          */

#ifdef CGRU_X86_VARIANTS
CGRU_TARGET_BEGIN("avx2,fma")
#define QP_ISA avx2
#include "quant_prep_impl.h"
#undef QP_ISA
#define QF_ISA avx2
#define QF_VW 8
#define QF_MR 4
#define QF_TP 1
#include "quant_bf16_fma_impl.h"
#undef QF_ISA
#undef QF_VW
#undef QF_MR
#undef QF_TP

/* int8 with vpmaddwd: a 16-byte piece of a panel row (4 columns x 4 k) widened to int16 and
 * multiplied by the row's 4 activations (int16) gives, per column, two partial sums (k 0-1 and
 * k 2-3) in adjacent 32-bit lanes, added together at the end. */
static CGRU_ALWAYS_INLINE void int8_tile_avx2(const int mr, int Kg, const int16_t *A, size_t lda,
                                              const int8_t *bp, int i0, int p, int N, const quant_out *o)
{
    __m256i acc[2][4];
    for (int i = 0; i < mr; ++i)
        for (int q = 0; q < 4; ++q)
            acc[i][q] = _mm256_setzero_si256();
    const int16_t *a = A + (size_t)i0 * lda;
    for (int kg = 0; kg < Kg; ++kg) {
        __m256i b[4];
        for (int q = 0; q < 4; ++q)
            b[q] = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)(bp + (size_t)kg * 64 + 16 * q)));
        for (int i = 0; i < mr; ++i) {
            int64_t group;
            memcpy(&group, a + (size_t)i * lda + 4 * kg, sizeof group);
            const __m256i ai = _mm256_set1_epi64x(group);
            for (int q = 0; q < 4; ++q)
                acc[i][q] = _mm256_add_epi32(acc[i][q], _mm256_madd_epi16(ai, b[q]));
        }
    }
    for (int i = 0; i < mr; ++i) {
        const int row = i0 + i;
        float *c = o->C + (size_t)row * o->ldc;
        const __m256 row_scale = _mm256_set1_ps(o->row_scale[row]);
        for (int h = 0; h < 2; ++h) { /* columns 8h .. 8h + 7 of the panel */
            const int col = p * 16 + 8 * h;
            if (col >= N)
                break;
            const __m256i pairs = _mm256_hadd_epi32(acc[i][2 * h], acc[i][2 * h + 1]);
            const __m256 sums = _mm256_cvtepi32_ps(_mm256_permute4x64_epi64(pairs, 0xd8));
            if (col + 8 <= N) {
                const __m256 scale = _mm256_mul_ps(row_scale, _mm256_loadu_ps(o->col_scale + col));
                __m256 v = _mm256_mul_ps(sums, scale);
                if (o->accumulate)
                    v = _mm256_add_ps(v, _mm256_loadu_ps(c + col));
                _mm256_storeu_ps(c + col, v);
            } else {
                float tail[8];
                _mm256_storeu_ps(tail, sums);
                for (int j = 0; col + j < N; ++j) {
                    const float v = tail[j] * (o->row_scale[row] * o->col_scale[col + j]);
                    c[col + j] = o->accumulate ? c[col + j] + v : v;
                }
            }
        }
    }
}

static void gemm_int8_avx2(int M, int N, int Kg, const void *A, size_t lda_bytes, const void *Bp,
                           const quant_out *o)
{
    const int panels = (N + 15) / 16;
    const size_t lda = lda_bytes / sizeof(int16_t);
    for (int p = 0; p < panels; ++p) {
        const int8_t *bp = (const int8_t *)Bp + (size_t)p * Kg * 64;
        int i0 = 0;
        for (; i0 + 2 <= M; i0 += 2)
            int8_tile_avx2(2, Kg, A, lda, bp, i0, p, N, o);
        if (i0 < M)
            int8_tile_avx2(1, Kg, A, lda, bp, i0, p, N, o);
    }
}
CGRU_TARGET_END

CGRU_TARGET_BEGIN("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")
#define QP_ISA avx512
#include "quant_prep_impl.h"
#undef QP_ISA
#define QF_ISA avx512
#define QF_VW 16
#define QF_MR 8
#define QF_TP 2
#include "quant_bf16_fma_impl.h"
#undef QF_ISA
#undef QF_VW
#undef QF_MR
#undef QF_TP
CGRU_TARGET_END

CGRU_TARGET_BEGIN("avx512f,avx512dq,avx512bw,avx512vl,avx512vnni,avx2,fma")
/* int32 lanes as a plain vector type: with __m512i (64-bit lanes) accumulators GCC 12 kept the
 * tile's accumulators in memory, storing each one every iteration */
typedef int32_t quant_v16si __attribute__((vector_size(64)));
#define QD_NAME vnni
#define QD_ACC quant_v16si
#define QD_DOT(acc, a, b) ((quant_v16si)_mm512_dpbusd_epi32((__m512i)(acc), a, b))
#define QD_INT8 1
#define QD_MR 8
#define QD_TP 3
#include "quant_dot512_impl.h"
#undef QD_NAME
#undef QD_ACC
#undef QD_DOT
#undef QD_INT8
CGRU_TARGET_END

CGRU_TARGET_BEGIN("avx512f,avx512dq,avx512bw,avx512vl,avx512vnni,avx512bf16,avx2,fma")
#define QD_NAME dpbf16
#define QD_ACC __m512
#define QD_DOT(acc, a, b) _mm512_dpbf16_ps(acc, (__m512bh)(a), (__m512bh)(b))
#define QD_INT8 0
#include "quant_dot512_impl.h"
#undef QD_NAME
#undef QD_ACC
#undef QD_DOT
#undef QD_INT8
#undef QD_MR
#undef QD_TP
CGRU_TARGET_END

static const quant_variant bf16_avx2 = {"avx2 (fma)", prep_bf16_f32_avx2, gemm_bf16_avx2, sizeof(float)};
static const quant_variant bf16_avx512 = {"avx512 (fma)", prep_bf16_f32_avx512, gemm_bf16_avx512, sizeof(float)};
static const quant_variant bf16_dpbf16 = {"avx512_bf16 (vdpbf16ps)", prep_bf16_u16_avx512, gemm_dpbf16, sizeof(uint16_t)};
static const quant_variant int8_avx2 = {"avx2 (vpmaddwd)", prep_int8_s16_avx2, gemm_int8_avx2, sizeof(int16_t)};
static const quant_variant int8_vnni = {"avx512_vnni (vpdpbusd)", prep_int8_u8_avx512, gemm_vnni, sizeof(uint8_t)};
#endif

static const quant_level levels[] = {
    {"generic", &bf16_generic, &int8_generic},
#ifdef CGRU_X86_VARIANTS
    {"avx2", &bf16_avx2, &int8_avx2},
    {"avx512", &bf16_avx512, &int8_avx2},
    {"avx512_vnni", &bf16_avx512, &int8_vnni},
    {"avx512_bf16", &bf16_dpbf16, &int8_vnni},
#endif
};

static const quant_level *current = &levels[0];

int cgru_quant_set_isa(const char *isa)
{
    for (size_t i = 0; i < sizeof levels / sizeof *levels; ++i)
        if (strcmp(levels[i].isa, isa) == 0) {
            current = &levels[i];
            return 0;
        }
    return -1;
}

const char *cgru_quant_kernel_name(int kind)
{
    const quant_level *level = current;
    return kind == CGRU_QUANT_BF16 ? level->bf16->name : level->int8->name;
}

/* ---------------------------------------------------------------------------------------- */
/* Packing and the product                                                                  */

static inline int quant_groups(int kind, int K) { return (K + quant_group(kind) - 1) / quant_group(kind); }

size_t cgru_quant_packed_bytes(int kind, int K, int N)
{
    return (size_t)((N + 15) / 16) * (size_t)quant_groups(kind, K) * 64;
}

size_t cgru_quant_col_sum_count(int N) { return (size_t)((N + 15) / 16) * 16; }

/* cgru_quant_pack of the matrix whose column c is src's column (c / n) * stride + c % n. */
static void quant_pack_blocks(int kind, int K, int N, int n, size_t stride, const void *src, size_t ld,
                              void *packed, int32_t *col_sum)
{
    const int panels = (N + 15) / 16, group = quant_group(kind), Kg = quant_groups(kind, K);
    for (int p = 0; p < panels; ++p)
        for (int j = 0; j < 16; ++j) {
            const int col = p * 16 + j;
            const size_t from = col < N ? (size_t)(col / n) * stride + (size_t)(col % n) : 0;
            int32_t sum = 0;
            for (int kg = 0; kg < Kg; ++kg)
                for (int e = 0; e < group; ++e) {
                    const int k = kg * group + e;
                    const int inside = col < N && k < K;
                    const size_t at = (((size_t)p * Kg + kg) * 16 + j) * group + e;
                    if (kind == CGRU_QUANT_BF16) {
                        ((uint16_t *)packed)[at] = inside ? ((const uint16_t *)src)[(size_t)k * ld + from] : 0;
                    } else {
                        const int8_t v = inside ? ((const int8_t *)src)[(size_t)k * ld + from] : 0;
                        ((int8_t *)packed)[at] = v;
                        sum += v;
                    }
                }
            if (kind == CGRU_QUANT_INT8 && col_sum)
                col_sum[col] = sum;
        }
}

void cgru_quant_pack(int kind, int K, int N, const void *src, size_t ld, void *packed, int32_t *col_sum)
{
    quant_pack_blocks(kind, K, N, N > 0 ? N : 1, 0, src, ld, packed, col_sum);
}

void cgru_quant_pack_units(int kind, int K, int H, int u0, int n, const void *src, size_t ld,
                           void *packed, int32_t *col_sum)
{
    const size_t offset = (size_t)u0 * (kind == CGRU_QUANT_BF16 ? sizeof(uint16_t) : sizeof(int8_t));
    quant_pack_blocks(kind, K, 3 * n, n, (size_t)H, (const char *)src + offset, ld, packed, col_sum);
}

/* Rows of A converted at a time: a block stays in cache while every panel passes over it. */
#define QUANT_BLOCK_ROWS 64

static size_t quant_scratch_layout(int max_k, size_t *a_offset)
{
    const size_t padded = (size_t)((max_k + 3) / 4) * 4;
    *a_offset = 64 * ((QUANT_BLOCK_ROWS * sizeof(float) + 63) / 64);
    return *a_offset + QUANT_BLOCK_ROWS * padded * sizeof(float);
}

size_t cgru_quant_scratch_bytes(int max_k)
{
    size_t a_offset;
    return quant_scratch_layout(max_k, &a_offset);
}

/* The product of rows A[i] (or A + i * lda when rows is NULL; a NULL row is zeros). */
static void quant_gemm(const cgru_qmatrix *B, int M, const float *const *rows, const float *A, int lda,
                       int accumulate, float *C, int ldc, void *scratch)
{
    const quant_level *level = current; /* read once: set_isa may change it */
    const quant_variant *v = B->kind == CGRU_QUANT_BF16 ? level->bf16 : level->int8;
    const int Kg = quant_groups(B->kind, B->K), Kp = Kg * quant_group(B->kind);
    size_t a_offset;
    quant_scratch_layout(B->K, &a_offset);
    float *row_scale = scratch;
    void *a = (char *)scratch + a_offset;
    quant_out o = {C, ldc, accumulate, B->col_sum, row_scale, B->col_scale};
    const float *block[QUANT_BLOCK_ROWS];
    for (int i0 = 0; i0 < M; i0 += QUANT_BLOCK_ROWS) {
        const int m = M - i0 < QUANT_BLOCK_ROWS ? M - i0 : QUANT_BLOCK_ROWS;
        for (int i = 0; i < m; ++i)
            block[i] = rows ? rows[i0 + i] : A + (size_t)(i0 + i) * lda;
        v->prep(m, B->K, Kp, block, a, row_scale);
        o.C = C + (size_t)i0 * ldc;
        v->gemm(m, B->N, Kg, a, (size_t)Kp * v->a_bytes, B->packed, &o);
    }
}

void cgru_quant_gemm(const cgru_qmatrix *B, int M, const float *A, int lda, int accumulate, float *C,
                     int ldc, void *scratch)
{
    quant_gemm(B, M, NULL, A, lda, accumulate, C, ldc, scratch);
}

void cgru_quant_gemm_rows(const cgru_qmatrix *B, int M, const float *const *rows, int accumulate,
                          float *C, int ldc, void *scratch)
{
    quant_gemm(B, M, rows, NULL, 0, accumulate, C, ldc, scratch);
}

void cgru_quant_convert(int kind, int M, int K, const float *A, float *out, float *row_scale,
                        void *scratch)
{
    const quant_level *level = current;
    const quant_variant *v = kind == CGRU_QUANT_BF16 ? level->bf16 : level->int8;
    const int Kp = quant_groups(kind, K) * quant_group(kind);
    size_t a_offset;
    quant_scratch_layout(K, &a_offset);
    float *scales = scratch;
    const char *a = (const char *)scratch + a_offset;
    const float *block[QUANT_BLOCK_ROWS];
    for (int i0 = 0; i0 < M; i0 += QUANT_BLOCK_ROWS) {
        const int m = M - i0 < QUANT_BLOCK_ROWS ? M - i0 : QUANT_BLOCK_ROWS;
        for (int i = 0; i < m; ++i)
            block[i] = A + (size_t)(i0 + i) * K;
        v->prep(m, K, Kp, block, (void *)a, scales);
        for (int i = 0; i < m; ++i) {
            float *row = out + (size_t)(i0 + i) * K;
            for (int k = 0; k < K; ++k) {
                const size_t at = (size_t)i * Kp + k;
                if (kind == CGRU_QUANT_BF16 && v->a_bytes == sizeof(uint16_t))
                    row[k] = quant_bf16_value(((const uint16_t *)a)[at]);
                else if (kind == CGRU_QUANT_BF16)
                    row[k] = ((const float *)a)[at];
                else if (v->a_bytes == sizeof(int16_t))
                    row[k] = ((const int16_t *)a)[at];
                else
                    row[k] = (float)((int)((const uint8_t *)a)[at] - 128);
            }
            if (kind == CGRU_QUANT_INT8)
                row_scale[i0 + i] = scales[i];
        }
    }
}
