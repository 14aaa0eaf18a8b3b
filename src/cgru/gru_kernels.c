/* Instantiates gru_impl.h for float and double against the linked CBLAS. */
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "gru_kernels.h"
#include "blas.h"
#include "gates_f32.h"

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
#include "gru_impl.h"
#undef FAST_GATES
#undef FAST_VECMAT
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

const char *cgru_blas_config(void)
{
#ifdef CGRU_OPENBLAS
    return CGRU_BLAS(openblas_get_config)();
#else
    return "system CBLAS";
#endif
}
