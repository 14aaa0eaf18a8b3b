/* The CBLAS in use. Built against scipy-openblas32 by default, whose symbols carry the
 * prefix given by CGRU_BLAS_PREFIX (scipy_); a system CBLAS has no prefix. */
#ifndef CGRU_BLAS_H
#define CGRU_BLAS_H

#include <cblas.h>

#define CGRU_CAT_(a, b) a##b
#define CGRU_CAT(a, b) CGRU_CAT_(a, b)
#ifdef CGRU_BLAS_PREFIX
#define CGRU_BLAS(name) CGRU_CAT(CGRU_BLAS_PREFIX, name)
#else
#define CGRU_BLAS(name) name
#endif

/* BLAS threads (0 where the linked BLAS has no setter) and a description of the BLAS. */
void cgru_blas_set_threads(int n);
int cgru_blas_get_threads(void);
const char *cgru_blas_config(void);

#endif
