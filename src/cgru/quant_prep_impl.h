/* The activation conversions of quant.h (bfloat16 rounding, int8 row quantization), written
 * once and included by quant.c per instruction set, which defines QP_ISA (the name suffix).
 * Each converts M rows of K floats (rows[i], or zeros where rows[i] is NULL) into M rows of Kp
 * elements (K values, then zeros up to the padded Kp) in one of the formats the kernels read
 * (enum quant_format in quant.c). */

#define QP_CAT_(a, b) a##_##b
#define QP_CAT(a, b) QP_CAT_(a, b)

static CGRU_ALWAYS_INLINE void QP_CAT(prep_rows, QP_ISA)(const int format, int M, int K, int Kp,
                                                         const float *const *rows,
                                                         void *restrict out, float *restrict row_scale)
{
    for (int i = 0; i < M; ++i) {
        const float *restrict a = rows[i];
        const size_t o = (size_t)i * Kp;
        if (!a) { /* a row of zeros */
            if (format == FORMAT_BF16_F32)
                memset((float *)out + o, 0, Kp * sizeof(float));
            else if (format == FORMAT_BF16_U16 || format == FORMAT_INT8_S16)
                memset((uint16_t *)out + o, 0, Kp * sizeof(uint16_t));
            else
                memset((uint8_t *)out + o, 128, Kp);
            if (format == FORMAT_INT8_S16 || format == FORMAT_INT8_U8)
                row_scale[i] = 0.0f;
            continue;
        }
        if (format == FORMAT_BF16_F32 || format == FORMAT_BF16_U16) {
            float *restrict of = (float *)out + o;
            uint16_t *restrict ou = (uint16_t *)out + o;
            CGRU_IVDEP
            for (int k = 0; k < K; ++k) {
                const uint16_t bits = quant_bf16_bits(a[k]);
                if (format == FORMAT_BF16_F32)
                    of[k] = quant_bf16_value(bits);
                else
                    ou[k] = bits;
            }
            for (int k = K; k < Kp; ++k) {
                if (format == FORMAT_BF16_F32)
                    of[k] = 0.0f;
                else
                    ou[k] = 0;
            }
            continue;
        }
        /* int8: the largest |a_k| through the bits of |a_k|, which order as the values do;
         * above those of infinity means NaN */
        uint32_t top = 0;
        for (int k = 0; k < K; ++k) {
            const uint32_t b = quant_float_bits(a[k]) & 0x7fffffffu;
            top = b > top ? b : top;
        }
        const float m = quant_bits_float(top);
        const int finite = top < 0x7f800000u;
        float inv = finite && top ? 127.0f / m : 0.0f;
        inv = inv < INFINITY ? inv : 0.0f; /* m below 127 / FLT_MAX: a row of zeros */
        row_scale[i] = finite ? m / 127.0f : NAN;
        int16_t *restrict os = (int16_t *)out + o;
        uint8_t *restrict ou = (uint8_t *)out + o;
        CGRU_IVDEP
        for (int k = 0; k < K; ++k) {
            float q = rintf(a[k] * inv);
            q = q > 127.0f ? 127.0f : (q < -127.0f ? -127.0f : q);
            q = finite ? q : 0.0f;
            if (format == FORMAT_INT8_S16)
                os[k] = (int16_t)q;
            else
                ou[k] = (uint8_t)((int)q + 128);
        }
        for (int k = K; k < Kp; ++k) {
            if (format == FORMAT_INT8_S16)
                os[k] = 0;
            else
                ou[k] = 128;
        }
    }
}

#define QP_FORMAT(name, format)                                                                  \
    static inline void QP_CAT(name, QP_ISA)(int M, int K, int Kp, const float *const *rows,     \
                                             void *out, float *row_scale)                       \
    {                                                                                            \
        QP_CAT(prep_rows, QP_ISA)(format, M, K, Kp, rows, out, row_scale);                       \
    }
QP_FORMAT(prep_bf16_f32, FORMAT_BF16_F32)
QP_FORMAT(prep_bf16_u16, FORMAT_BF16_U16)
QP_FORMAT(prep_int8_s16, FORMAT_INT8_S16)
QP_FORMAT(prep_int8_u8, FORMAT_INT8_U8)
#undef QP_FORMAT
#undef QP_CAT
#undef QP_CAT_
