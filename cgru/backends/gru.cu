// cgru GPU kernels: the fused GRU gate math of cgru/backends/cupy_ops.py.
//
// Compiled at run time by CuPy (NVRTC) with name_expressions "kernel<float>" and
// "kernel<double>", so this file includes nothing (NVRTC has no standard headers) and uses
// only built-in CUDA math. The algorithm mirrors the compiled CPU engine (src/cgru/gru_impl.h):
// the GEMMs run in cuBLAS (through CuPy) and these kernels do everything elementwise, one thread
// per (batch row, unit), with each row's time index and validity computed here from `lengths`
// (int32 (B,), or null meaning "all T"), so variable lengths and the reverse direction need no
// per-sequence copies. The gate math of one unit is written once (cgru_gates_zr,
// cgru_state_update, cgru_bwd_step below) and shared by the per-step and the persistent kernels.
//
// Layouts (row-major): proj (B, T, 3H) = x W without bias; U (H, 3H); gate blocks z, r, h.
// Training saves, per processing step s: saved_h (T, B, H) = the state before step s and
// saved_gates (T, B, 4H) = z, r, n, u_h with u_h = h_in U_h + b_hh (reset_after) or
// (r * h_in) U_h (reset_before); rows past their length save zeros. h_in = h * mask.
//
// Build switches:
//   CGRU_EXPLICIT_INSTANTIATION  explicit float/double instantiations (the nvcc compile check)
//   CGRU_EMULATION               compiled as host C++ by the CPU emulator of tests/cuda_emu

#ifndef CGRU_EMULATION
#define CGRU_DEVICE __device__ __forceinline__
// Dynamic shared memory, declared as bytes so that float and double instantiations agree.
#define CGRU_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif

// ---------------------------------------------------------------------------------------------
// Activations: one table, keyed by the codes of cgru/backends/cuda_kernels.py (ACTIVATION_CODES,
// RECURRENT_ACTIVATION_CODES; the CPU engine uses the same numbers). Backward has only each
// activation's output y, so derivatives are written through y.
//
//   code               f(v)                       f' through y = f(v)
//   CGRU_TANH          tanh(v)                    1 - y^2
//   CGRU_RELU          max(v, 0)                  y > 0 ? 1 : 0
//   CGRU_LINEAR        v                          1
//   CGRU_SIGMOID       1 / (1 + exp(-v))          y (1 - y)
//   CGRU_HARD_SIGMOID  clip((v + 3) / 6, 0, 1)    0 < y < 1 ? 1/6 : 0

enum cgru_activation_code { CGRU_TANH = 0, CGRU_RELU = 1, CGRU_LINEAR = 2 };
enum cgru_recurrent_activation_code { CGRU_SIGMOID = 0, CGRU_HARD_SIGMOID = 1 };

CGRU_DEVICE float cgru_exp(float v) { return expf(v); }
CGRU_DEVICE double cgru_exp(double v) { return exp(v); }
CGRU_DEVICE float cgru_tanh(float v) { return tanhf(v); }
CGRU_DEVICE double cgru_tanh(double v) { return tanh(v); }

template <typename T>
CGRU_DEVICE T cgru_act(int code, T v)
{
    switch (code) {
    case CGRU_TANH:
        return cgru_tanh(v);
    case CGRU_RELU:
        return v > T(0) ? v : T(0);
    default:  // CGRU_LINEAR
        return v;
    }
}

template <typename T>
CGRU_DEVICE T cgru_act_grad(int code, T y)
{
    switch (code) {
    case CGRU_TANH:
        return T(1) - y * y;
    case CGRU_RELU:
        return y > T(0) ? T(1) : T(0);
    default:  // CGRU_LINEAR
        return T(1);
    }
}

template <typename T>
CGRU_DEVICE T cgru_ract(int code, T v)
{
    switch (code) {
    case CGRU_SIGMOID:
        return T(1) / (T(1) + cgru_exp(-v));
    default:  // CGRU_HARD_SIGMOID
        v = (v + T(3)) / T(6);
        return v < T(0) ? T(0) : (v > T(1) ? T(1) : v);
    }
}

template <typename T>
CGRU_DEVICE T cgru_ract_grad(int code, T y)
{
    switch (code) {
    case CGRU_SIGMOID:
        return y * (T(1) - y);
    default:  // CGRU_HARD_SIGMOID
        return (y > T(0) && y < T(1)) ? T(1) / T(6) : T(0);
    }
}

// ---------------------------------------------------------------------------------------------
// Addressing one unit at one processing step

// What every launch shares: lengths (B,) or null, the sizes, the processing step s, direction.
struct cgru_step_dims {
    const int *lengths;
    int B, time, H, s, reverse;
};

// Time index of row b at step d.s, or -1 when d.s is past the row's length.
CGRU_DEVICE int cgru_time_index(const cgru_step_dims &d, int b)
{
    const int len = d.lengths ? d.lengths[b] : d.time;
    if (d.s >= len)
        return -1;
    return d.reverse ? len - 1 - d.s : d.s;
}

// The flat index i = b * H + j of this thread in the per-step kernels' grid of B * H threads,
// with its row b and unit j; false for the threads past the end.
CGRU_DEVICE bool cgru_thread_unit(const cgru_step_dims &d, long long &i, int &b, int &j)
{
    i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)d.B * d.H)
        return false;
    b = (int)(i / d.H);
    j = (int)(i % d.H);
    return true;
}

// Unit j of row b at step d.s as a forward kernel sees it: its time index and where it reads and
// writes. Null pointers stand for what the caller does not read or write.
template <typename T>
struct cgru_unit {
    int H, j;
    int t;       // the row's time index, -1 once the step is past the row's length
    const T *a;  // proj (B, T, 3H) at (b, t): x W of the gate blocks z, r, h (null when t < 0)
    T *y;        // y (B, T, H) at (b, t) (null when t < 0)
    T *sh;       // saved_h (T, B, H) at (s, b)
    T *sg;       // saved_gates (T, B, 4H) at (s, b)
};

template <typename T>
CGRU_DEVICE cgru_unit<T> cgru_unit_at(const cgru_step_dims &d, int b, int j, const T *proj, T *y,
                                      T *saved_h, T *saved_gates)
{
    cgru_unit<T> u;
    u.H = d.H;
    u.j = j;
    u.t = cgru_time_index(d, b);
    const long long bt = (long long)b * d.time + u.t;  // (b, t) of (B, T)
    const long long sb = (long long)d.s * d.B + b;     // (s, b) of (T, B)
    u.a = u.t < 0 ? 0 : proj + bt * 3 * d.H;
    u.y = (u.t < 0 || !y) ? 0 : y + bt * d.H;
    u.sh = saved_h ? saved_h + sb * d.H : 0;
    u.sg = saved_gates ? saved_gates + sb * 4 * d.H : 0;
    return u;
}

// ---------------------------------------------------------------------------------------------
// The GRU step of one unit (the math of cgru/backends/numpy_ops.py), used by every forward kernel

// Training keeps the state before each step (backward reads it back): saves hp, returns it.
template <typename T>
CGRU_DEVICE T cgru_save_state(const cgru_unit<T> &u, T hp)
{
    if (u.sh)
        u.sh[u.j] = hp;
    return hp;
}

// Training also keeps the step's gates z, r, n, u_h.
template <typename T>
CGRU_DEVICE void cgru_save_gates(const cgru_unit<T> &u, T z, T r, T n, T uh)
{
    if (u.sg) {
        u.sg[u.j] = z;
        u.sg[u.H + u.j] = r;
        u.sg[2 * u.H + u.j] = n;
        u.sg[3 * u.H + u.j] = uh;
    }
}

// A row past its length: the state hp passes through unchanged; training saves zero gates.
template <typename T>
CGRU_DEVICE T cgru_finished_step(const cgru_unit<T> &u, T hp)
{
    cgru_save_gates(u, T(0), T(0), T(0), T(0));
    return hp;
}

// Update and reset gates: z = ract(x W_z + b_xz + uz [+ b_hz]) and r likewise, from the
// recurrent products uz, ur of h_in U; bh (reset_after's recurrent bias) may be null.
template <typename T>
CGRU_DEVICE void cgru_gates_zr(int ract, const cgru_unit<T> &u, const T *bx, const T *bh, T uz,
                               T ur, T &z, T &r)
{
    const int H = u.H, j = u.j;
    T vz = u.a[j] + bx[j] + uz;
    T vr = u.a[H + j] + bx[H + j] + ur;
    if (bh) {
        vz += bh[j];
        vr += bh[H + j];
    }
    z = cgru_ract(ract, vz);
    r = cgru_ract(ract, vr);
}

// The state update once the gates are known, for both gate forms: the candidate
// n = act(x W_h + b_xh + c) with c = r * u_h for reset_after (u_h = h_in U_h + b_hh) and c = u_h
// for reset_before (u_h = (r * h_in) U_h), then h = n + z (hp - n). Writes h to y, saves the
// gates for training and returns h.
template <typename T>
CGRU_DEVICE T cgru_state_update(int act, int reset_after, const cgru_unit<T> &u, const T *bx,
                                T hp, T z, T r, T uh)
{
    const int H = u.H, j = u.j;
    const T n = cgru_act(act, u.a[2 * H + j] + bx[2 * H + j] + (reset_after ? r * uh : uh));
    const T h = n + z * (hp - n);
    u.y[j] = h;
    cgru_save_gates(u, z, r, n, uh);
    return h;
}

// reset_after, a whole step of a running row (t >= 0): uz, ur, uh point at the unit's recurrent
// products h_in U (without bias) of the three gate blocks. Returns the new state.
template <typename T>
CGRU_DEVICE T cgru_step_after(int act, int ract, const cgru_unit<T> &u, const T *bx, const T *bh,
                              T hp, const T *uz, const T *ur, const T *uh)
{
    T z, r;
    cgru_gates_zr(ract, u, bx, bh, *uz, *ur, z, r);
    return cgru_state_update(act, 1, u, bx, hp, z, r, *uh + bh[2 * u.H + u.j]);
}

// reset_before, first half: z and r replace their recurrent products *uz, *ur; returns r * h_in,
// the unit's left operand of the candidate product (zero for a finished row).
template <typename T>
CGRU_DEVICE T cgru_step_before_zr(int ract, const cgru_unit<T> &u, const T *bx, T *uz, T *ur,
                                  const T *h_in)
{
    if (u.t < 0)
        return T(0);
    T z, r;
    cgru_gates_zr(ract, u, bx, (const T *)0, *uz, *ur, z, r);
    *uz = z;
    *ur = r;
    return r * *h_in;
}

// reset_before, second half of a running row: z, r from the first half, uh = (r * h_in) U_h.
template <typename T>
CGRU_DEVICE T cgru_step_before_n(int act, const cgru_unit<T> &u, const T *bx, T hp, const T *z,
                                 const T *r, const T *uh)
{
    return cgru_state_update(act, 0, u, bx, hp, *z, *r, *uh);
}

// The frame of the per-step forward kernels, which keep the state in h (B, H) and, with a
// recurrent mask, h_in = h * mask: this thread's unit, the state before the step (saved for
// training), a finished row passed through, else the new state update(unit, hp, i, b) stored.
template <typename T, typename Update>
CGRU_DEVICE void cgru_fwd_step(const cgru_step_dims &d, const T *proj, T *h, T *h_in,
                               const T *mask, T *y, T *saved_h, T *saved_gates, Update update)
{
    long long i;
    int b, j;
    if (!cgru_thread_unit(d, i, b, j))
        return;
    const cgru_unit<T> un = cgru_unit_at(d, b, j, proj, y, saved_h, saved_gates);
    const T hp = cgru_save_state(un, h[i]);
    if (un.t < 0) {
        cgru_finished_step(un, hp);
        return;
    }
    const T hn = update(un, hp, i, b);
    h[i] = hn;
    if (h_in)
        h_in[i] = hn * mask[i];
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
    const cgru_step_dims d = {lengths, B, time, H, s, reverse};
    cgru_fwd_step(d, proj, h, h_in, mask, y, saved_h, saved_gates,
                  [&](const cgru_unit<T> &un, T hp, long long, int b) {
                      const T *ub = u + (long long)b * 3 * H + un.j;
                      return cgru_step_after(act, ract, un, bx, bh, hp, ub, ub + H, ub + 2 * H);
                  });
}

// reset_before, first half: uzr (B, 2H) = h_in U[:, :2H] on entry, z and r on exit;
// rh (B, H) = r * h_in, the left operand of the candidate GEMM (zero for finished rows).
template <typename T>
__global__ void cgru_fwd_step_before_zr(const T *proj, T *uzr, const T *bx, const T *h_in,
                                        T *rh, const int *lengths, int B, int time, int H,
                                        int s, int reverse, int ract)
{
    const cgru_step_dims d = {lengths, B, time, H, s, reverse};
    long long i;
    int b, j;
    if (!cgru_thread_unit(d, i, b, j))
        return;
    const cgru_unit<T> un = cgru_unit_at(d, b, j, proj, (T *)0, (T *)0, (T *)0);
    T *ub = uzr + (long long)b * 2 * H + j;
    rh[i] = cgru_step_before_zr(ract, un, bx, ub, ub + H, h_in + i);
}

// reset_before, second half: uzr holds z, r; uh (B, H) = (r * h_in) U[:, 2H:].
template <typename T>
__global__ void cgru_fwd_step_before_n(const T *proj, const T *uzr, const T *uh, const T *bx,
                                       T *h, T *h_in, const T *mask, T *y, T *saved_h,
                                       T *saved_gates, const int *lengths, int B, int time,
                                       int H, int s, int reverse, int act)
{
    const cgru_step_dims d = {lengths, B, time, H, s, reverse};
    cgru_fwd_step(d, proj, h, h_in, mask, y, saved_h, saved_gates,
                  [&](const cgru_unit<T> &un, T hp, long long i, int b) {
                      const T *zr = uzr + (long long)b * 2 * H + un.j;
                      return cgru_step_before_n(act, un, bx, hp, zr, zr + H, uh + i);
                  });
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

// What both gate forms' backward share for unit j of a running row at step s.
template <typename T>
struct cgru_unit_grad {
    const T *sg;  // saved_gates at (s, b): z, r, n, u_h
    T *dp;        // d_proj at (b, t)
    T dz, dn;     // gradients of the pre-activations of z and n
};

// The frame of the first backward kernel of both gate forms: folds the state gradient
// g = dh + dh_rec * mask (+ dy at the row's time), writes dz and dn to d_proj and g z (the direct
// part for step s-1) to dh, then lets finish(q, b, j) write the form's own gradients; a
// finished row only gets g in dh.
template <typename T, typename Finish>
CGRU_DEVICE void cgru_bwd_step(int act, int ract, const cgru_step_dims &d, const T *saved_h,
                               const T *saved_gates, const T *mask, const T *dy, T *dh,
                               const T *dh_rec, T *d_proj, Finish finish)
{
    long long i;
    int b, j;
    if (!cgru_thread_unit(d, i, b, j))
        return;
    T g = dh[i];
    if (dh_rec)
        g += mask ? dh_rec[i] * mask[i] : dh_rec[i];
    const int t = cgru_time_index(d, b);
    if (t < 0) {
        dh[i] = g;
        return;
    }
    const long long bt = (long long)b * d.time + t;
    if (dy)
        g += dy[bt * d.H + j];
    cgru_unit_grad<T> q;
    q.sg = saved_gates + ((long long)d.s * d.B + b) * 4 * d.H;
    const T z = q.sg[j], n = q.sg[2 * d.H + j];
    const T hp = saved_h[(long long)d.s * d.B * d.H + i];
    q.dz = g * (hp - n) * cgru_ract_grad(ract, z);
    q.dn = g * (T(1) - z) * cgru_act_grad(act, n);
    q.dp = d_proj + bt * 3 * d.H;
    q.dp[j] = q.dz;
    q.dp[2 * d.H + j] = q.dn;
    finish(q, b, j);
    dh[i] = g * z;
}

// reset_after: d_rec (T, B, 3H) = gradient of u = h_in U + b_h (zero rows stay zero).
template <typename T>
__global__ void cgru_bwd_step_after(const T *saved_h, const T *saved_gates, const T *mask,
                                    const T *dy, T *dh, const T *dh_rec, T *d_proj, T *d_rec,
                                    const int *lengths, int B, int time, int H, int s,
                                    int reverse, int act, int ract)
{
    const cgru_step_dims d = {lengths, B, time, H, s, reverse};
    cgru_bwd_step(act, ract, d, saved_h, saved_gates, mask, dy, dh, dh_rec, d_proj,
                  [&](const cgru_unit_grad<T> &q, int b, int j) {
                      const T r = q.sg[H + j], uh = q.sg[3 * H + j];
                      const T dr = q.dn * uh * cgru_ract_grad(ract, r);
                      q.dp[H + j] = dr;
                      T *du = d_rec + ((long long)s * B + b) * (3LL * H);
                      du[j] = q.dz;
                      du[H + j] = dr;
                      du[2 * H + j] = q.dn * r;
                  });
}

// reset_before, first half: d_zr (T, B, 2H) gets dz (the dr half is filled by the second
// half), d_n (T, B, H) gets dn, the gradient of (r * h_in) U_h.
template <typename T>
__global__ void cgru_bwd_step_before_1(const T *saved_h, const T *saved_gates, const T *mask,
                                       const T *dy, T *dh, const T *dh_rec, T *d_proj, T *d_zr,
                                       T *d_n, const int *lengths, int B, int time, int H,
                                       int s, int reverse, int act, int ract)
{
    const cgru_step_dims d = {lengths, B, time, H, s, reverse};
    cgru_bwd_step(act, ract, d, saved_h, saved_gates, mask, dy, dh, dh_rec, d_proj,
                  [&](const cgru_unit_grad<T> &q, int b, int j) {
                      const long long sb = (long long)s * B + b;  // (s, b) of (T, B)
                      d_zr[sb * 2 * H + j] = q.dz;
                      d_n[sb * H + j] = q.dn;
                  });
}

// reset_before, second half: d_rh (B, H) = d_n[s] U_h^T, the gradient of r * h_in.
template <typename T>
__global__ void cgru_bwd_step_before_2(const T *saved_h, const T *saved_gates, const T *mask,
                                       const T *d_rh, T *dh, T *d_proj, T *d_zr,
                                       const int *lengths, int B, int time, int H, int s,
                                       int reverse, int ract)
{
    const cgru_step_dims d = {lengths, B, time, H, s, reverse};
    long long i;
    int b, j;
    if (!cgru_thread_unit(d, i, b, j))
        return;
    const int t = cgru_time_index(d, b);
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

    cgru_step_dims d = {lengths, B, time, H, 0, reverse};
    for (int s = 0; s < time; ++s) {
        d.s = s;
        const T *hcur = hbuf + (long long)(s & 1) * B * H;
        T *hnext = hbuf + (long long)((s + 1) & 1) * B * H;
        for (long long idx = tid; idx < (long long)B * H; idx += nt) {
            const T v = cgru_load_shared_state(hcur + idx);
            hs[idx] = mask ? v * mask[idx] : v;
        }
        __syncthreads();
        cgru_block_dots(Us, hs, us, red, B, H, jl, jcap, 0, reset_after ? 3 : 2);
        if (!reset_after) {
            // First half: z and r of the block's units, then r * h_in of every unit in rh.
            for (int idx = tid; idx < B * jl; idx += nt) {
                const int b = idx / jl, jj = idx % jl, j = j0 + jj;
                const long long i = (long long)b * H + j;
                const cgru_unit<T> un = cgru_unit_at(d, b, j, proj, (T *)0, (T *)0, (T *)0);
                T *ub = us + (long long)b * ncol + jj;
                rh[i] = cgru_step_before_zr(ract, un, bx, ub, ub + jcap, hs + i);
            }
            cgru_grid_barrier(sync);
            for (long long idx = tid; idx < (long long)B * H; idx += nt)
                hs[idx] = cgru_load_shared_state(rh + idx);
            __syncthreads();
            cgru_block_dots(Us, hs, us, red, B, H, jl, jcap, 2, 3);
        }
        for (int idx = tid; idx < B * jl; idx += nt) {
            const int b = idx / jl, jj = idx % jl, j = j0 + jj;
            const long long i = (long long)b * H + j;
            const cgru_unit<T> un = cgru_unit_at(d, b, j, proj, y, saved_h, saved_gates);
            const T hp = cgru_save_state(un, cgru_load_shared_state(hcur + i));
            const T *ub = us + (long long)b * ncol + jj;
            if (un.t < 0)
                hnext[i] = cgru_finished_step(un, hp);
            else if (reset_after)
                hnext[i] = cgru_step_after(act, ract, un, bx, bh, hp, ub, ub + jcap, ub + 2 * jcap);
            else
                hnext[i] = cgru_step_before_n(act, un, bx, hp, ub, ub + jcap, ub + 2 * jcap);
        }
        cgru_grid_barrier(sync);
    }
}

#ifdef CGRU_EXPLICIT_INSTANTIATION
// Every kernel for float and double, instantiated by taking its address (the nvcc compile check).
template <typename T>
void cgru_instantiate_kernels()
{
    const void *kernels[] = {
        (const void *)cgru_fwd_step_after<T>,    (const void *)cgru_fwd_step_before_zr<T>,
        (const void *)cgru_fwd_step_before_n<T>, (const void *)cgru_bwd_step_after<T>,
        (const void *)cgru_bwd_step_before_1<T>, (const void *)cgru_bwd_step_before_2<T>,
        (const void *)cgru_fwd_persistent<T>,
    };
    (void)kernels;
}
template void cgru_instantiate_kernels<float>();
template void cgru_instantiate_kernels<double>();
#endif
