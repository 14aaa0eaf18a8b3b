/* Instantiates gru_impl.h for float and double against the linked CBLAS. */
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "gru_kernels.h"
#include "blas.h"
#include "gates_f32.h"
#include "quant.h"
#include "target.h"

size_t cgru_grad_chunk_floats = (size_t)1 << 20;

#define REAL float
#define SUFFIX f32
#define GEMM CGRU_BLAS(cblas_sgemm)
#define GEMV CGRU_BLAS(cblas_sgemv)
#define EXP expf
#define TANH tanhf
#define FAST_GATES_FWD cgru_gates_fwd_f32
#define FAST_GATES_BWD cgru_gates_bwd_f32
#define FAST_VECMAT cgru_vecmat_f32
#define QUANT_GEMM cgru_quant_gemm
#define QUANT_GEMM_ROWS cgru_quant_gemm_rows
#define UNIT_SPLIT_HOOKS 1
#if CGRU_HAVE_PACKED_GEMM
#define PACKED_GEMM cgru_packed_gemm_f32
#define PACK cgru_pack_f32
#define PACKED_FLOATS cgru_packed_floats
#define PACKED_RECURRENT_FLOATS cgru_packed_recurrent_floats
#define PACK_RECURRENT cgru_pack_recurrent_f32
#endif
#include "gru_impl.h"
#undef FAST_GATES_FWD
#undef FAST_GATES_BWD
#undef FAST_VECMAT
#undef QUANT_GEMM
#undef QUANT_GEMM_ROWS
#undef UNIT_SPLIT_HOOKS
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
