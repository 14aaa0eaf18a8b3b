/* The linked BLAS's thread count and description (blas.h). */
#include "blas.h"

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
