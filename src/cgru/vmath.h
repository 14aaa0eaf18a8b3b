/* Branch-free float32 exp and tanh that compilers vectorise (no libm calls); gate_math.h builds
 * the sigmoid on this exp.
 *
 * expf: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r and
 * 2^n built in the exponent bits. Inputs are clamped to [-87, 88], so results stay finite
 * and normal; sigmoid and tanh saturate exactly where float32 does.
 * tanh: 1 - 2 / (1 + e^{2|x|}) with the sign restored, and an odd Taylor polynomial for
 * |x| < 0.25 where that form would cancel. Accuracy (tested over the whole range): a few
 * float32 ulps relative for exp and the sigmoid built on it, and for tanh. NaN propagates. */
#ifndef CGRU_VMATH_H
#define CGRU_VMATH_H

#include <stdint.h>
#include <string.h>

static inline float cgru_vexpf(float x)
{
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float rounded = x * log2e + round_magic; /* its low mantissa bits hold 2^22 + n */
    float n = rounded - round_magic;
    float r = x - n * ln2_hi - n * ln2_lo;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    /* 2^n from rounded's bits in unsigned arithmetic, with no conversion of a float to an
     * integer (undefined for NaN, which the clamp keeps): n is in -126..127, so n + 127 is the
     * biased exponent, 1..254. For NaN the scale is meaningless, and p, already NaN, carries the
     * NaN out. */
    uint32_t bits;
    memcpy(&bits, &rounded, sizeof bits);
    bits = (bits - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float cgru_vtanhf(float x)
{
    float ax = x < 0 ? -x : x;
    float large = 1.0f - 2.0f / (1.0f + cgru_vexpf(2.0f * ax));
    float x2 = x * x;
    /* tanh x = x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835 - 1382x^11/155925 */
    float small = -1382.0f / 155925.0f;
    small = small * x2 + 62.0f / 2835.0f;
    small = small * x2 - 17.0f / 315.0f;
    small = small * x2 + 2.0f / 15.0f;
    small = small * x2 - 1.0f / 3.0f;
    small = small * x2 * x + x;
    float signed_large = x < 0 ? -large : large;
    return ax < 0.25f ? small : (x != x ? x : signed_large);
}

#endif
