/* The GRU's gate math, written once: the activations (the codes of gru_kernels.h) and, for one
 * batch row of H units, the forward and backward of each gate form. Gate blocks z, r, h;
 * a = x W, u = h_in U (the recurrent product, h_in = h times the recurrent mask):
 *
 *   z = ract(a_z + bx_z + u_z + bh_z)        r = ract(a_r + bx_r + u_r + bh_r)
 *   reset_after=1   n = act(a_h + bx_h + r * (u_h + bh_h))        u_h = h_in U_h
 *   reset_after=0   n = act(a_h + bx_h + u_h)                     u_h = (r * h_in) U_h, bh = 0
 *   h' = n + z * (h - n)
 *
 * Training saves, per row, z, r, n and u_h (+ bh_h for reset_after) in a row of 4H ("gates").
 * Backward, with g = dh' (+ dy): the input-projection gradient dp (3H), the recurrent-product
 * gradient du (3H) and dh <- g * z, the direct path to the previous state.
 *
 * Included by gru_impl.h once per precision (libm's exp and tanh; the activations chosen at run
 * time) and by gates_f32_impl.h once per instruction set (vmath.h's vectorisable exp and tanh;
 * called with the default activations as constants, so that each row inlines into a branch-free
 * loop the compiler vectorises). The includer defines:
 *   GM_REAL   float or double
 *   GM_NAME   the name suffix of this instantiation
 *   GM_EXP, GM_TANH   exp and tanh of GM_REAL
 * and calls this instantiation's functions by their names with that suffix (fwd_after_f32).
 * Each gate block gets its own restrict pointer, so that every access is unit-stride in j. */

#define GM_CAT_(a, b) a##_##b
#define GM_CAT(a, b) GM_CAT_(a, b)
#define GM(name) GM_CAT(name, GM_NAME)

static inline GM_REAL GM(sigmoid)(GM_REAL v) { return 1 / (1 + GM_EXP(-v)); }

/* The recurrent activation (enum cgru_recurrent_activation) and its derivative at output y. */
static inline GM_REAL GM(recurrent_act)(int kind, GM_REAL v)
{
    if (kind == CGRU_SIGMOID)
        return GM(sigmoid)(v);
    v = (v + 3) / 6; /* hard_sigmoid: Keras 3's relu6(v + 3) / 6 */
    return v < 0 ? 0 : (v > 1 ? 1 : v);
}

static inline GM_REAL GM(recurrent_act_grad)(int kind, GM_REAL y)
{
    if (kind == CGRU_SIGMOID)
        return y * (1 - y);
    return (y > 0 && y < 1) ? (GM_REAL)1 / 6 : 0;
}

/* The activation (enum cgru_activation) and its derivative at output y. */
static inline GM_REAL GM(act)(int kind, GM_REAL v)
{
    if (kind == CGRU_TANH)
        return GM_TANH(v);
    if (kind == CGRU_RELU)
        return v > 0 ? v : 0;
    return v;
}

static inline GM_REAL GM(act_grad)(int kind, GM_REAL y)
{
    if (kind == CGRU_TANH)
        return 1 - y * y;
    if (kind == CGRU_RELU)
        return y > 0 ? 1 : 0;
    return 1;
}

/* Where a row of saved gates (4H) keeps z, r, n and u_h: gates may be NULL when !save. */
typedef struct {
    GM_REAL *restrict z, *restrict r, *restrict n, *restrict uh;
} GM(saved);

static CGRU_ALWAYS_INLINE GM(saved) GM(saved_row)(const int save, int H, GM_REAL *gates)
{
    GM(saved) g = {gates, gates + (save ? H : 0), gates + (save ? 2 * H : 0), gates + (save ? 3 * H : 0)};
    return g;
}

/* The state update of unit j, h' = n + z (h - n), into h and out; its gates saved when `save`. */
static CGRU_ALWAYS_INLINE void GM(new_state)(const int save, int j, GM_REAL z, GM_REAL r, GM_REAL n,
                                             GM_REAL uh, GM_REAL *restrict h, GM_REAL *restrict out,
                                             GM(saved) g)
{
    GM_REAL hn = n + z * (h[j] - n);
    out[j] = hn;
    h[j] = hn;
    if (save) {
        g.z[j] = z;
        g.r[j] = r;
        g.n[j] = n;
        g.uh[j] = uh;
    }
}

/* Forward, reset_after=1: the new state into h and out; z, r, n, u_h into gates when `save`
 * (gates may be NULL otherwise). */
static CGRU_ALWAYS_INLINE void GM(fwd_after)(const int ra, const int ac, const int save, int H,
                                             const GM_REAL *restrict a, const GM_REAL *restrict u,
                                             const GM_REAL *restrict bx, const GM_REAL *restrict bh,
                                             GM_REAL *restrict h, GM_REAL *restrict out,
                                             GM_REAL *restrict gates)
{
    const GM_REAL *restrict az = a, *restrict ar = a + H, *restrict an = a + 2 * H;
    const GM_REAL *restrict uz = u, *restrict ur = u + H, *restrict un = u + 2 * H;
    const GM_REAL *restrict bxz = bx, *restrict bxr = bx + H, *restrict bxn = bx + 2 * H;
    const GM_REAL *restrict bhz = bh, *restrict bhr = bh + H, *restrict bhn = bh + 2 * H;
    const GM(saved) g = GM(saved_row)(save, H, gates);
    CGRU_IVDEP
    for (int j = 0; j < H; ++j) {
        GM_REAL z = GM(recurrent_act)(ra, az[j] + bxz[j] + uz[j] + bhz[j]);
        GM_REAL r = GM(recurrent_act)(ra, ar[j] + bxr[j] + ur[j] + bhr[j]);
        GM_REAL uh = un[j] + bhn[j];
        GM(new_state)(save, j, z, r, GM(act)(ac, an[j] + bxn[j] + r * uh), uh, h, out, g);
    }
}

/* Forward, reset_after=0, before the product of r * h_in: z and r in place of u's first two
 * blocks (u holds h_in U_z, h_in U_r there), and rh = r * h_in. */
static CGRU_ALWAYS_INLINE void GM(fwd_before_zr)(const int ra, int H, const GM_REAL *restrict a,
                                                 GM_REAL *restrict u, const GM_REAL *restrict bx,
                                                 const GM_REAL *restrict h_in, GM_REAL *restrict rh)
{
    const GM_REAL *restrict az = a, *restrict ar = a + H;
    const GM_REAL *restrict bxz = bx, *restrict bxr = bx + H;
    GM_REAL *restrict uz = u, *restrict ur = u + H;
    CGRU_IVDEP
    for (int j = 0; j < H; ++j) {
        GM_REAL z = GM(recurrent_act)(ra, az[j] + bxz[j] + uz[j]);
        GM_REAL r = GM(recurrent_act)(ra, ar[j] + bxr[j] + ur[j]);
        uz[j] = z;
        ur[j] = r;
        rh[j] = r * h_in[j];
    }
}

/* Forward, reset_after=0, after it: u holds z, r and u_h = (r * h_in) U_h. */
static CGRU_ALWAYS_INLINE void GM(fwd_before_n)(const int ac, const int save, int H,
                                                const GM_REAL *restrict a, const GM_REAL *restrict u,
                                                const GM_REAL *restrict bx, GM_REAL *restrict h,
                                                GM_REAL *restrict out, GM_REAL *restrict gates)
{
    const GM_REAL *restrict an = a + 2 * H, *restrict bxn = bx + 2 * H;
    const GM_REAL *restrict uz = u, *restrict ur = u + H, *restrict un = u + 2 * H;
    const GM(saved) g = GM(saved_row)(save, H, gates);
    CGRU_IVDEP
    for (int j = 0; j < H; ++j)
        GM(new_state)(save, j, uz[j], ur[j], GM(act)(ac, an[j] + bxn[j] + un[j]), un[j], h, out, g);
}

/* Backward, reset_after=1, of the step that started from hp with the saved gates sg; dy may be
 * NULL when !has_dy. */
static CGRU_ALWAYS_INLINE void GM(bwd_after)(const int ra, const int ac, const int has_dy, int H,
                                             const GM_REAL *restrict hp, const GM_REAL *restrict sg,
                                             const GM_REAL *restrict dy, GM_REAL *restrict dp,
                                             GM_REAL *restrict du, GM_REAL *restrict dh)
{
    const GM_REAL *restrict sz = sg, *restrict sr = sg + H, *restrict sn = sg + 2 * H, *restrict su = sg + 3 * H;
    GM_REAL *restrict dpz = dp, *restrict dpr = dp + H, *restrict dpn = dp + 2 * H;
    GM_REAL *restrict duz = du, *restrict dur = du + H, *restrict dun = du + 2 * H;
    CGRU_IVDEP
    for (int j = 0; j < H; ++j) {
        GM_REAL z = sz[j], r = sr[j], n = sn[j], uh = su[j];
        GM_REAL g = has_dy ? dh[j] + dy[j] : dh[j];
        GM_REAL dz = g * (hp[j] - n) * GM(recurrent_act_grad)(ra, z);
        GM_REAL dn = g * (1 - z) * GM(act_grad)(ac, n);
        GM_REAL dr = dn * uh * GM(recurrent_act_grad)(ra, r);
        dpz[j] = dz;
        dpr[j] = dr;
        dpn[j] = dn;
        duz[j] = dz;
        dur[j] = dr;
        dun[j] = dn * r;
        dh[j] = g * z;
    }
}

/* Backward, reset_after=0, first part: everything but the reset gate, whose gradient needs
 * d(r * h_in) = dn U_h^T (bwd_before_r): dp and du get dz and dn. */
static CGRU_ALWAYS_INLINE void GM(bwd_before_zn)(const int ra, const int ac, const int has_dy, int H,
                                                 const GM_REAL *restrict hp, const GM_REAL *restrict sg,
                                                 const GM_REAL *restrict dy, GM_REAL *restrict dp,
                                                 GM_REAL *restrict du, GM_REAL *restrict dh)
{
    const GM_REAL *restrict sz = sg, *restrict sn = sg + 2 * H;
    GM_REAL *restrict dpz = dp, *restrict dpn = dp + 2 * H;
    GM_REAL *restrict duz = du, *restrict dun = du + 2 * H;
    CGRU_IVDEP
    for (int j = 0; j < H; ++j) {
        GM_REAL z = sz[j], n = sn[j];
        GM_REAL g = has_dy ? dh[j] + dy[j] : dh[j];
        GM_REAL dz = g * (hp[j] - n) * GM(recurrent_act_grad)(ra, z);
        GM_REAL dn = g * (1 - z) * GM(act_grad)(ac, n);
        dpz[j] = dz;
        dpn[j] = dn;
        duz[j] = dz;
        dun[j] = dn;
        dh[j] = g * z;
    }
}

/* Backward, reset_after=0, second part, from drh = d(r * h_in): the reset gate's gradient into
 * dp and du, and the path through r * h_in into dh. mask: the row's recurrent mask, or NULL. */
static CGRU_ALWAYS_INLINE void GM(bwd_before_r)(const int ra, int H, const GM_REAL *restrict hp,
                                                const GM_REAL *restrict sg, const GM_REAL *restrict mask,
                                                const GM_REAL *restrict drh, GM_REAL *restrict dp,
                                                GM_REAL *restrict du, GM_REAL *restrict dh)
{
    const GM_REAL *restrict sr = sg + H;
    GM_REAL *restrict dpr = dp + H, *restrict dur = du + H;
    CGRU_IVDEP
    for (int j = 0; j < H; ++j) {
        GM_REAL m = mask ? mask[j] : 1, r = sr[j];
        GM_REAL dr = drh[j] * hp[j] * m * GM(recurrent_act_grad)(ra, r);
        dpr[j] = dr;
        dur[j] = dr;
        dh[j] += drh[j] * r * m;
    }
}
