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

extern cgru_gates_fwd_f32_fn cgru_gates_fwd_f32;
extern cgru_vecmat_f32_fn cgru_vecmat_f32;
extern cgru_gates_bwd_f32_fn cgru_gates_bwd_f32;

/* Instruction-set variants: "generic", "avx2", "avx512". */
int cgru_isa_supported(const char *isa);
int cgru_set_isa(const char *isa); /* 0 on success, -1 when this CPU cannot run it */
const char *cgru_get_isa(void);
void cgru_select_best_isa(void);

/* Test hook: which = 0 exp, 1 sigmoid, 2 tanh, through the vectorised float32 math. */
void cgru_vector_math_f32(int which, const float *x, float *y, size_t n);

#endif
