/* Compiler hints shared by the kernels compiled per instruction set (gates_f32.c, quant.c):
 * no-alias loops, forced inlining, and target regions, where functions are compiled for an
 * instruction set beyond the baseline and chosen at run time (never -march=native). */
#ifndef CGRU_TARGET_H
#define CGRU_TARGET_H

/* The rows a loop reads and writes never overlap: skip run-time alias checks. */
#if defined(__clang__)
#define CGRU_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define CGRU_IVDEP _Pragma("GCC ivdep")
#else
#define CGRU_IVDEP
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CGRU_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define CGRU_ALWAYS_INLINE __forceinline
#else
#define CGRU_ALWAYS_INLINE inline
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CGRU_X86_VARIANTS 1
/* Compile the next functions for an instruction set beyond the baseline (GCC and clang). */
#if defined(__clang__)
#define CGRU_TARGET_BEGIN(isa) _Pragma(CGRU_STR(clang attribute push(__attribute__((target(isa))), apply_to = function)))
#define CGRU_TARGET_END _Pragma("clang attribute pop")
#else
#define CGRU_TARGET_BEGIN(isa) _Pragma("GCC push_options") _Pragma(CGRU_STR(GCC target(isa)))
#define CGRU_TARGET_END _Pragma("GCC pop_options")
#endif
#define CGRU_STR_(x) #x
#define CGRU_STR(x) CGRU_STR_(x)
#endif

#endif
