// cgru GPU kernels: the fused GRU gate math of cgru/backends/cupy_ops.py.
//
// Compiled at run time by CuPy (NVRTC) with name_expressions "kernel<float>" and
// "kernel<double>", so this file includes nothing (NVRTC has no standard headers) and uses
// only built-in CUDA math. The algorithm mirrors the compiled CPU engine (src/cgru/gru_impl.h):
// the GEMMs run in cuBLAS (through CuPy) and these kernels do everything elementwise, one thread
// per (batch row, unit), with each row's time index and validity computed here from `lengths`
// (int32 (B,), or null meaning "all T"), so variable lengths and the reverse direction need no
// per-sequence copies.
//
// Layouts (row-major): proj (B, T, 3H) = x W without bias; U (H, 3H); gate blocks z, r, h.
// Training saves, per processing step s: saved_h (T, B, H) = the state before step s and
// saved_gates (T, B, 4H) = z, r, n, u_h with u_h = h_in U_h + b_hh (reset_after) or
// (r * h_in) U_h (reset_before); rows past their length save zeros. h_in = h * mask.
//
// Build switches:
//   CGRU_EXPLICIT_INSTANTIATION  explicit float/double instantiations (the nvcc compile check)
//   CGRU_EMULATION               compiled as host C++ by the CPU emulator of tests/cuda_emu
//
// Activation codes: act 0 tanh, 1 relu, 2 linear; ract 0 sigmoid, 1 hard_sigmoid.

#ifndef CGRU_EMULATION
#define CGRU_DEVICE __device__ __forceinline__
// Dynamic shared memory, declared as bytes so that float and double instantiations agree.
#define CGRU_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif

// ---------------------------------------------------------------------------------------------
// Scalar math

CGRU_DEVICE float cgru_exp(float v) { return expf(v); }
CGRU_DEVICE double cgru_exp(double v) { return exp(v); }
CGRU_DEVICE float cgru_tanh(float v) { return tanhf(v); }
CGRU_DEVICE double cgru_tanh(double v) { return tanh(v); }

template <typename T>
CGRU_DEVICE T cgru_ract(int kind, T v)
{
    if (kind == 0)
        return T(1) / (T(1) + cgru_exp(-v));
    v = (v + T(3)) / T(6);
    return v < T(0) ? T(0) : (v > T(1) ? T(1) : v);
}

// Derivative of the recurrent activation through its output y.
template <typename T>
CGRU_DEVICE T cgru_ract_grad(int kind, T y)
{
    if (kind == 0)
        return y * (T(1) - y);
    return (y > T(0) && y < T(1)) ? T(1) / T(6) : T(0);
}

template <typename T>
CGRU_DEVICE T cgru_act(int kind, T v)
{
    if (kind == 0)
        return cgru_tanh(v);
    if (kind == 1)
        return v > T(0) ? v : T(0);
    return v;
}

template <typename T>
CGRU_DEVICE T cgru_act_grad(int kind, T y)
{
    if (kind == 0)
        return T(1) - y * y;
    if (kind == 1)
        return y > T(0) ? T(1) : T(0);
    return T(1);
}

// Time index of row b at processing step s, or -1 when s is past the row's length.
CGRU_DEVICE int cgru_time_index(const int *lengths, int b, int time, int s, int reverse)
{
    const int len = lengths ? lengths[b] : time;
    if (s >= len)
        return -1;
    return reverse ? len - 1 - s : s;
}

// ---------------------------------------------------------------------------------------------
// Forward, one processing step s, per-step path (the GEMMs run in cuBLAS between launches).
// Grid: one thread per (b, j), i = b * H + j, B * H threads in all.

// reset_after: u (B, 3H) = h_in U. Updates h in place, h_in = h * mask (when mask), y, saved.
template <typename T>
__global__ void cgru_fwd_step_after(const T *proj, const T *u, const T *bx, const T *bh, T *h,
                                    T *h_in, const T *mask, T *y, T *saved_h, T *saved_gates,
                                    const int *lengths, int B, int time, int H, int s,
                                    int reverse, int act, int ract)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)B * H)
        return;
    const int b = (int)(i / H), j = (int)(i % H);
    const long long G = 3LL * H;
    const T hp = h[i];
    if (saved_h)
        saved_h[(long long)s * B * H + i] = hp;
    T *sg = saved_gates ? saved_gates + ((long long)s * B + b) * 4 * H : 0;
    const int t = cgru_time_index(lengths, b, time, s, reverse);
    if (t < 0) {
        if (sg)
            sg[j] = sg[H + j] = sg[2 * H + j] = sg[3 * H + j] = T(0);
        return;
    }
    const T *a = proj + ((long long)b * time + t) * G;
    const T *ub = u + (long long)b * G;
    const T z = cgru_ract(ract, a[j] + bx[j] + ub[j] + bh[j]);
    const T r = cgru_ract(ract, a[H + j] + bx[H + j] + ub[H + j] + bh[H + j]);
    const T uh = ub[2 * H + j] + bh[2 * H + j];
    const T n = cgru_act(act, a[2 * H + j] + bx[2 * H + j] + r * uh);
    const T hn = n + z * (hp - n);
    h[i] = hn;
    if (h_in)
        h_in[i] = hn * mask[i];
    y[((long long)b * time + t) * H + j] = hn;
    if (sg) {
        sg[j] = z;
        sg[H + j] = r;
        sg[2 * H + j] = n;
        sg[3 * H + j] = uh;
    }
}

// reset_before, first half: uzr (B, 2H) = h_in U[:, :2H] on entry, z and r on exit;
// rh (B, H) = r * h_in, the left operand of the candidate GEMM (zero for finished rows).
template <typename T>
__global__ void cgru_fwd_step_before_zr(const T *proj, T *uzr, const T *bx, const T *h_in,
                                        T *rh, const int *lengths, int B, int time, int H,
                                        int s, int reverse, int ract)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)B * H)
        return;
    const int b = (int)(i / H), j = (int)(i % H);
    const int t = cgru_time_index(lengths, b, time, s, reverse);
    if (t < 0) {
        rh[i] = T(0);
        return;
    }
    const T *a = proj + ((long long)b * time + t) * (3LL * H);
    T *ub = uzr + (long long)b * 2 * H;
    const T z = cgru_ract(ract, a[j] + bx[j] + ub[j]);
    const T r = cgru_ract(ract, a[H + j] + bx[H + j] + ub[H + j]);
    ub[j] = z;
    ub[H + j] = r;
    rh[i] = r * h_in[i];
}

// reset_before, second half: uzr holds z, r; uh (B, H) = (r * h_in) U[:, 2H:].
template <typename T>
__global__ void cgru_fwd_step_before_n(const T *proj, const T *uzr, const T *uh, const T *bx,
                                       T *h, T *h_in, const T *mask, T *y, T *saved_h,
                                       T *saved_gates, const int *lengths, int B, int time,
                                       int H, int s, int reverse, int act)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)B * H)
        return;
    const int b = (int)(i / H), j = (int)(i % H);
    const T hp = h[i];
    if (saved_h)
        saved_h[(long long)s * B * H + i] = hp;
    T *sg = saved_gates ? saved_gates + ((long long)s * B + b) * 4 * H : 0;
    const int t = cgru_time_index(lengths, b, time, s, reverse);
    if (t < 0) {
        if (sg)
            sg[j] = sg[H + j] = sg[2 * H + j] = sg[3 * H + j] = T(0);
        return;
    }
    const T *a = proj + ((long long)b * time + t) * (3LL * H);
    const T z = uzr[(long long)b * 2 * H + j];
    const T r = uzr[(long long)b * 2 * H + H + j];
    const T u = uh[i];
    const T n = cgru_act(act, a[2 * H + j] + bx[2 * H + j] + u);
    const T hn = n + z * (hp - n);
    h[i] = hn;
    if (h_in)
        h_in[i] = hn * mask[i];
    y[((long long)b * time + t) * H + j] = hn;
    if (sg) {
        sg[j] = z;
        sg[H + j] = r;
        sg[2 * H + j] = n;
        sg[3 * H + j] = u;
    }
}

// ---------------------------------------------------------------------------------------------
// Backward, one processing step s (run for s = T-1 down to 0).
//
// dh (B, H) holds the gradient reaching the state after step s through the direct path;
// dh_rec (B, H) = (gradient of step s+1's recurrent product) U^T, or null at s = T-1: the
// gradient through h_in, so the total is dh + dh_rec * mask. Each kernel folds that sum in,
// leaves in dh the direct part for step s-1, and writes the gate gradients to d_proj
// (B, T, 3H, at the row's time index) and to the per-step recurrent gradients, which the caller
// turns into the next dh_rec with one GEMM. Finished rows pass the gradient through unchanged.

// reset_after: d_rec (T, B, 3H) = gradient of u = h_in U + b_h (zero rows stay zero).
template <typename T>
__global__ void cgru_bwd_step_after(const T *saved_h, const T *saved_gates, const T *mask,
                                    const T *dy, T *dh, const T *dh_rec, T *d_proj, T *d_rec,
                                    const int *lengths, int B, int time, int H, int s,
                                    int reverse, int act, int ract)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)B * H)
        return;
    const int b = (int)(i / H), j = (int)(i % H);
    T g = dh[i];
    if (dh_rec)
        g += mask ? dh_rec[i] * mask[i] : dh_rec[i];
    const int t = cgru_time_index(lengths, b, time, s, reverse);
    if (t < 0) {
        dh[i] = g;
        return;
    }
    if (dy)
        g += dy[((long long)b * time + t) * H + j];
    const T *sg = saved_gates + ((long long)s * B + b) * 4 * H;
    const T z = sg[j], r = sg[H + j], n = sg[2 * H + j], uh = sg[3 * H + j];
    const T hp = saved_h[(long long)s * B * H + i];
    const T dz = g * (hp - n) * cgru_ract_grad(ract, z);
    const T dn = g * (T(1) - z) * cgru_act_grad(act, n);
    const T dr = dn * uh * cgru_ract_grad(ract, r);
    T *dp = d_proj + ((long long)b * time + t) * (3LL * H);
    dp[j] = dz;
    dp[H + j] = dr;
    dp[2 * H + j] = dn;
    T *du = d_rec + ((long long)s * B + b) * (3LL * H);
    du[j] = dz;
    du[H + j] = dr;
    du[2 * H + j] = dn * r;
    dh[i] = g * z;
}

// reset_before, first half: d_zr (T, B, 2H) gets dz (the dr half is filled by the second
// half), d_n (T, B, H) gets dn, the gradient of (r * h_in) U_h.
template <typename T>
__global__ void cgru_bwd_step_before_1(const T *saved_h, const T *saved_gates, const T *mask,
                                       const T *dy, T *dh, const T *dh_rec, T *d_proj, T *d_zr,
                                       T *d_n, const int *lengths, int B, int time, int H,
                                       int s, int reverse, int act, int ract)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)B * H)
        return;
    const int b = (int)(i / H), j = (int)(i % H);
    T g = dh[i];
    if (dh_rec)
        g += mask ? dh_rec[i] * mask[i] : dh_rec[i];
    const int t = cgru_time_index(lengths, b, time, s, reverse);
    if (t < 0) {
        dh[i] = g;
        return;
    }
    if (dy)
        g += dy[((long long)b * time + t) * H + j];
    const T *sg = saved_gates + ((long long)s * B + b) * 4 * H;
    const T z = sg[j], n = sg[2 * H + j];
    const T hp = saved_h[(long long)s * B * H + i];
    const T dz = g * (hp - n) * cgru_ract_grad(ract, z);
    const T dn = g * (T(1) - z) * cgru_act_grad(act, n);
    T *dp = d_proj + ((long long)b * time + t) * (3LL * H);
    dp[j] = dz;
    dp[2 * H + j] = dn;
    d_zr[((long long)s * B + b) * 2 * H + j] = dz;
    d_n[(long long)s * B * H + i] = dn;
    dh[i] = g * z;
}

// reset_before, second half: d_rh (B, H) = d_n[s] U_h^T, the gradient of r * h_in.
template <typename T>
__global__ void cgru_bwd_step_before_2(const T *saved_h, const T *saved_gates, const T *mask,
                                       const T *d_rh, T *dh, T *d_proj, T *d_zr,
                                       const int *lengths, int B, int time, int H, int s,
                                       int reverse, int ract)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)B * H)
        return;
    const int b = (int)(i / H), j = (int)(i % H);
    const int t = cgru_time_index(lengths, b, time, s, reverse);
    if (t < 0)
        return;
    const T m = mask ? mask[i] : T(1);
    const T r = saved_gates[((long long)s * B + b) * 4 * H + H + j];
    const T hp = saved_h[(long long)s * B * H + i];
    const T drh = d_rh[i];
    const T dr = drh * hp * m * cgru_ract_grad(ract, r);
    d_proj[((long long)b * time + t) * (3LL * H) + H + j] = dr;
    d_zr[((long long)s * B + b) * 2 * H + H + j] = dr;
    dh[i] += drh * r * m;
}

// ---------------------------------------------------------------------------------------------
// Persistent forward for small batches: one cooperative launch runs every time step.
//
// Block k owns units [k * jb, k * jb + jl) with jb = ceil(H / gridDim.x) and keeps their
// columns of U (all three gates) in shared memory for the whole sequence; per step it computes
// the recurrent products of its units for every batch row from the full state (read from
// global memory into shared memory), applies the gates and writes its units of the next state.
// A grid-wide barrier separates the steps (two per step for reset_before, which needs r of every
// unit before the candidate product). The state is double-buffered in hbuf (2, B, H): hbuf[0]
// holds h0 on entry and the final state ends in hbuf[T % 2].
//
// The grid barrier is written here instead of taken from cooperative_groups because NVRTC
// ships no cooperative_groups.h (it lives in the CUDA toolkit, which a pip-installed CuPy does
// not require); it is the usual arrival counter with a flipping top bit, valid only under a
// cooperative launch (all blocks co-resident), which the caller guarantees. sync[0] is the
// counter (zero on entry), sync[1] a status word: 1 = grid too small for jcap, 2 = shared
// memory too small (the kernel then returns at once, uniformly, without touching outputs).

#ifndef CGRU_EMULATION
CGRU_DEVICE unsigned int cgru_load_volatile(const unsigned int *p)
{
    return *(const volatile unsigned int *)p;
}

// Loads of data written by other blocks during this launch: volatile, so never served from
// a stale L1 line.
template <typename T>
CGRU_DEVICE T cgru_load_shared_state(const T *p)
{
    return *(const volatile T *)p;
}

#define CGRU_SPIN_PAUSE()
#endif

CGRU_DEVICE void cgru_grid_barrier(unsigned int *counter)
{
    __syncthreads();
    if (threadIdx.x == 0) {
        // Every block adds 1 except block 0, which adds 2^31 - (blocks - 1): the total per
        // barrier is 2^31, so the top bit flips exactly when the last block arrives.
        const unsigned int add = blockIdx.x == 0 ? 0x80000000u - (gridDim.x - 1u) : 1u;
        __threadfence();
        const unsigned int old = atomicAdd(counter, add);
        while (((old ^ cgru_load_volatile(counter)) & 0x80000000u) == 0u)
            CGRU_SPIN_PAUSE();
        __threadfence();
    }
    __syncthreads();
}

// us[b][g * jcap + jj] = sum_k hs[b][k] * Us[g * jcap + jj][k] for gates g in [g0, g1), jj < jl.
// Each output is split over S threads writing partial sums to red, then summed in a fixed
// order (deterministic). Ends with __syncthreads. Every thread of the block must call it.
template <typename T>
CGRU_DEVICE void cgru_block_dots(const T *Us, const T *hs, T *us, T *red, int B, int H, int jl,
                                 int jcap, int g0, int g1)
{
    const int nt = blockDim.x, tid = threadIdx.x;
    const int per_row = (g1 - g0) * jl;
    const int nout = B * per_row;
    if (nout > 0) {
        int S = nt / nout;
        if (S < 1)
            S = 1;
        for (int idx = tid; idx < nout * S; idx += nt) {
            const int o = idx / S, sl = idx % S;
            const int b = o / per_row, c = o % per_row;
            const int col = (g0 + c / jl) * jcap + c % jl;
            const T *hrow = hs + (long long)b * H;
            const T *ucol = Us + (long long)col * H;
            T acc = T(0);
            for (int k = sl; k < H; k += S)
                acc += hrow[k] * ucol[k];
            red[idx] = acc;
        }
        __syncthreads();
        for (int o = tid; o < nout; o += nt) {
            T acc = T(0);
            for (int sl = 0; sl < S; ++sl)
                acc += red[o * S + sl];
            const int b = o / per_row, c = o % per_row;
            us[(long long)b * 3 * jcap + (g0 + c / jl) * jcap + c % jl] = acc;
        }
    }
    __syncthreads();
}

template <typename T>
__global__ void cgru_fwd_persistent(const T *proj, const T *U, const T *bx, const T *bh,
                                    T *hbuf, T *rh, const T *mask, T *y, T *saved_h,
                                    T *saved_gates, const int *lengths, unsigned int *sync,
                                    int B, int time, int H, int reverse, int reset_after,
                                    int act, int ract, int jcap, long long smem_elems)
{
    CGRU_DYNAMIC_SMEM(smem_raw);
    T *smem = reinterpret_cast<T *>(smem_raw);
    const int nt = blockDim.x, tid = threadIdx.x;
    const long long G = 3LL * H;
    const int ncol = 3 * jcap;
    const int jb = (int)((H + gridDim.x - 1) / gridDim.x);
    const long long red_elems = nt > B * ncol ? nt : B * ncol;
    const long long needed = (long long)ncol * H + (long long)B * H + (long long)B * ncol + red_elems;
    // Uniform checks (same values in every block): return before any barrier.
    if (jb > jcap || needed > smem_elems) {
        if (blockIdx.x == 0 && tid == 0)
            sync[1] = jb > jcap ? 1u : 2u;
        return;
    }
    const int j0 = (int)blockIdx.x * jb;
    int jl = H - j0;
    if (jl > jb)
        jl = jb;
    if (jl < 0)
        jl = 0;
    T *Us = smem;                          // [3 * jcap][H]
    T *hs = Us + (long long)ncol * H;      // [B][H]: h_in, or r * h_in in reset_before's 2nd phase
    T *us = hs + (long long)B * H;         // [B][3 * jcap]: recurrent products, then z, r
    T *red = us + (long long)B * ncol;     // partial sums of cgru_block_dots

    for (long long idx = tid; idx < 3LL * jl * H; idx += nt) {
        const int k = (int)(idx / (3 * jl)), c = (int)(idx % (3 * jl));
        const int g = c / jl, jj = c % jl;
        Us[(long long)(g * jcap + jj) * H + k] = U[(long long)k * G + (long long)g * H + j0 + jj];
    }
    __syncthreads();

    for (int s = 0; s < time; ++s) {
        const T *hcur = hbuf + (long long)(s & 1) * B * H;
        T *hnext = hbuf + (long long)((s + 1) & 1) * B * H;
        for (long long idx = tid; idx < (long long)B * H; idx += nt) {
            const T v = cgru_load_shared_state(hcur + idx);
            hs[idx] = mask ? v * mask[idx] : v;
        }
        __syncthreads();
        cgru_block_dots(Us, hs, us, red, B, H, jl, jcap, 0, reset_after ? 3 : 2);
        if (reset_after) {
            for (int idx = tid; idx < B * jl; idx += nt) {
                const int b = idx / jl, jj = idx % jl, j = j0 + jj;
                const long long i = (long long)b * H + j;
                const T hp = cgru_load_shared_state(hcur + i);
                if (saved_h)
                    saved_h[(long long)s * B * H + i] = hp;
                T *sg = saved_gates ? saved_gates + ((long long)s * B + b) * 4 * H : 0;
                const int t = cgru_time_index(lengths, b, time, s, reverse);
                if (t < 0) {
                    hnext[i] = hp;
                    if (sg)
                        sg[j] = sg[H + j] = sg[2 * H + j] = sg[3 * H + j] = T(0);
                    continue;
                }
                const T *a = proj + ((long long)b * time + t) * G;
                const T *ub = us + (long long)b * ncol;
                const T z = cgru_ract(ract, a[j] + bx[j] + ub[jj] + bh[j]);
                const T r = cgru_ract(ract, a[H + j] + bx[H + j] + ub[jcap + jj] + bh[H + j]);
                const T uh = ub[2 * jcap + jj] + bh[2 * H + j];
                const T n = cgru_act(act, a[2 * H + j] + bx[2 * H + j] + r * uh);
                const T hn = n + z * (hp - n);
                hnext[i] = hn;
                y[((long long)b * time + t) * H + j] = hn;
                if (sg) {
                    sg[j] = z;
                    sg[H + j] = r;
                    sg[2 * H + j] = n;
                    sg[3 * H + j] = uh;
                }
            }
        } else {
            for (int idx = tid; idx < B * jl; idx += nt) {
                const int b = idx / jl, jj = idx % jl, j = j0 + jj;
                const long long i = (long long)b * H + j;
                const int t = cgru_time_index(lengths, b, time, s, reverse);
                if (t < 0) {
                    rh[i] = T(0);
                    continue;
                }
                const T *a = proj + ((long long)b * time + t) * G;
                T *ub = us + (long long)b * ncol;
                const T z = cgru_ract(ract, a[j] + bx[j] + ub[jj]);
                const T r = cgru_ract(ract, a[H + j] + bx[H + j] + ub[jcap + jj]);
                ub[jj] = z;
                ub[jcap + jj] = r;
                rh[i] = r * hs[i];
            }
            cgru_grid_barrier(sync);
            for (long long idx = tid; idx < (long long)B * H; idx += nt)
                hs[idx] = cgru_load_shared_state(rh + idx);
            __syncthreads();
            cgru_block_dots(Us, hs, us, red, B, H, jl, jcap, 2, 3);
            for (int idx = tid; idx < B * jl; idx += nt) {
                const int b = idx / jl, jj = idx % jl, j = j0 + jj;
                const long long i = (long long)b * H + j;
                const T hp = cgru_load_shared_state(hcur + i);
                if (saved_h)
                    saved_h[(long long)s * B * H + i] = hp;
                T *sg = saved_gates ? saved_gates + ((long long)s * B + b) * 4 * H : 0;
                const int t = cgru_time_index(lengths, b, time, s, reverse);
                if (t < 0) {
                    hnext[i] = hp;
                    if (sg)
                        sg[j] = sg[H + j] = sg[2 * H + j] = sg[3 * H + j] = T(0);
                    continue;
                }
                const T *a = proj + ((long long)b * time + t) * G;
                const T *ub = us + (long long)b * ncol;
                const T z = ub[jj], r = ub[jcap + jj], u = ub[2 * jcap + jj];
                const T n = cgru_act(act, a[2 * H + j] + bx[2 * H + j] + u);
                const T hn = n + z * (hp - n);
                hnext[i] = hn;
                y[((long long)b * time + t) * H + j] = hn;
                if (sg) {
                    sg[j] = z;
                    sg[H + j] = r;
                    sg[2 * H + j] = n;
                    sg[3 * H + j] = u;
                }
            }
        }
        cgru_grid_barrier(sync);
    }
}

#ifdef CGRU_EXPLICIT_INSTANTIATION
#define CGRU_INSTANTIATE(T)                                                                      \
    template __global__ void cgru_fwd_step_after<T>(const T *, const T *, const T *, const T *,  \
                                                    T *, T *, const T *, T *, T *, T *,          \
                                                    const int *, int, int, int, int, int, int,   \
                                                    int);                                        \
    template __global__ void cgru_fwd_step_before_zr<T>(const T *, T *, const T *, const T *,    \
                                                        T *, const int *, int, int, int, int,    \
                                                        int, int);                               \
    template __global__ void cgru_fwd_step_before_n<T>(const T *, const T *, const T *,          \
                                                       const T *, T *, T *, const T *, T *, T *, \
                                                       T *, const int *, int, int, int, int,     \
                                                       int, int);                                \
    template __global__ void cgru_bwd_step_after<T>(const T *, const T *, const T *, const T *,  \
                                                    T *, const T *, T *, T *, const int *, int,  \
                                                    int, int, int, int, int, int);               \
    template __global__ void cgru_bwd_step_before_1<T>(const T *, const T *, const T *,          \
                                                       const T *, T *, const T *, T *, T *, T *, \
                                                       const int *, int, int, int, int, int,     \
                                                       int, int);                                \
    template __global__ void cgru_bwd_step_before_2<T>(const T *, const T *, const T *,          \
                                                       const T *, T *, T *, T *, const int *,    \
                                                       int, int, int, int, int, int);            \
    template __global__ void cgru_fwd_persistent<T>(const T *, const T *, const T *, const T *,  \
                                                    T *, T *, const T *, T *, T *, T *,          \
                                                    const int *, unsigned int *, int, int, int,  \
                                                    int, int, int, int, int, long long);
CGRU_INSTANTIATE(float)
CGRU_INSTANTIATE(double)
#undef CGRU_INSTANTIATE
#endif
