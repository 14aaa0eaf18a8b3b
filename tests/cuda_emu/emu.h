// A CPU stand-in for the few CUDA features gru.cu uses, so its kernels run (slowly) as host
// C++ in the tests on machines without a GPU. Each CUDA thread is one host thread (cooperative
// launches: all blocks at once) or one iteration of a loop (normal launches, which must not
// call __syncthreads). Test-only; see launcher.cpp and fake_cupy.py.
#pragma once
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <thread>

struct emu_dim3 {
    unsigned int x = 1, y = 1, z = 1;
};
static thread_local emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
static thread_local std::barrier<> *emu_block_barrier = nullptr;
static thread_local unsigned char *emu_smem = nullptr;

#define __global__
#define __device__
#define __forceinline__ inline
#define CGRU_DEVICE inline
#define CGRU_DYNAMIC_SMEM(name) unsigned char *name = emu_smem
#define CGRU_SPIN_PAUSE() std::this_thread::yield()

inline void __syncthreads()
{
    if (!emu_block_barrier) {
        std::fprintf(stderr, "emu: __syncthreads() in a kernel launched without a block of threads\n");
        std::abort();
    }
    emu_block_barrier->arrive_and_wait();
}

inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

inline unsigned int atomicAdd(unsigned int *p, unsigned int v)
{
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}

inline unsigned int cgru_load_volatile(const unsigned int *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }

template <typename T>
inline T cgru_load_shared_state(const T *p)
{
    T v;
    __atomic_load(p, &v, __ATOMIC_SEQ_CST);
    return v;
}
