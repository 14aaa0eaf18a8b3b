# Included by _engine.pyx: inference through bfloat16 or int8 weights (quant.h). The weights
# arrive already quantized (cgru/backends/quantize.py is the one place that rounds them); this
# layer checks them, packs them once and runs the float32 recurrence over them.

from libc.stdint cimport int32_t

cdef extern from "quant.h" nogil:
    int CGRU_QUANT_BF16
    int CGRU_QUANT_INT8
    int CGRU_QUANT_INT8_MAX_K
    ctypedef struct cgru_qmatrix:
        int kind, K, N
        const void *packed
        const float *col_scale
        const int32_t *col_sum
    ctypedef struct cgru_qweights:
        cgru_qmatrix kernel, recurrent, recurrent_h
    size_t cgru_quant_packed_bytes(int kind, int K, int N)
    size_t cgru_quant_col_sum_count(int N)
    void cgru_quant_pack(int kind, int K, int N, const void *src, size_t ld, void *packed,
                         int32_t *col_sum)
    void cgru_quant_pack_units(int kind, int K, int H, int u0, int n, const void *src, size_t ld,
                               void *packed, int32_t *col_sum)
    size_t cgru_quant_scratch_bytes(int max_k)
    void cgru_quant_gemm(const cgru_qmatrix *B, int M, const float *A, int lda, int accumulate,
                         float *C, int ldc, void *scratch)
    const char *cgru_quant_kernel_name(int kind)
    void cgru_quant_convert(int kind, int M, int K, const float *A, float *out, float *row_scale,
                            void *scratch)

cdef extern from "gru_kernels.h" nogil:
    void *cgru_workspace(size_t bytes)
    void *cgru_align64(void *p)
    int cgru_forward_quantized_f32(const cgru_dims *d, const cgru_qweights *q, const float *x,
                                   const float *bx, const float *bh, const float *h0, float *y,
                                   float *h_n)
    int cgru_forward_units_pair_quantized_f32(const cgru_dims *d, int split, float *mail,
                                              const cgru_qweights *q, const float *x,
                                              const float *bx, const float *bh, const float *h0,
                                              float *y, float *h_n)

#: The reduced-precision weight forms: the dtype of their stored weights.
QUANTIZED_MODES = {"bfloat16": np.uint16, "int8": np.int8}
_QUANT_KINDS = {"bfloat16": CGRU_QUANT_BF16, "int8": CGRU_QUANT_INT8}
#: int8: the most input features or units (the products' int32 sums cannot overflow below it).
INT8_MAX_SIZE = CGRU_QUANT_INT8_MAX_K


def quantized_kernels() -> dict:
    """Which kernel computes each reduced-precision mode's products now (set_isa chooses)."""
    return {mode: cgru_quant_kernel_name(kind).decode() for mode, kind in _QUANT_KINDS.items()}


cdef object _aligned_bytes(size_t nbytes):
    """A zeroed uint8 array of nbytes whose data starts on a 64-byte boundary."""
    buffer = np.zeros(nbytes + 64, np.uint8)
    start = (-buffer.ctypes.data) % 64
    return buffer[start:start + nbytes]


cdef class _PackedMatrix:
    """One quantized matrix packed for the kernels, with the memory it points into: made by
    _pack_columns or _pack_units."""

    cdef cgru_qmatrix matrix
    cdef object packed, col_scale, col_sum

    cdef int32_t *_allocate(self, int kind, int K, int N, object col_scale) except? NULL:
        """Memory for a (K, N) matrix; returns where its column sums go (int8), else NULL."""
        self.packed = _aligned_bytes(cgru_quant_packed_bytes(kind, K, N))
        self.matrix.kind, self.matrix.K, self.matrix.N = kind, K, N
        self.matrix.packed = <const void *><size_t>self.packed.ctypes.data
        self.matrix.col_scale = NULL
        self.matrix.col_sum = NULL
        if kind != CGRU_QUANT_INT8:
            return NULL
        self.col_scale = np.ascontiguousarray(col_scale, dtype=np.float32)
        self.col_sum = np.zeros(cgru_quant_col_sum_count(N), np.int32)
        self.matrix.col_scale = <const float *><size_t>self.col_scale.ctypes.data
        self.matrix.col_sum = <const int32_t *><size_t>self.col_sum.ctypes.data
        return <int32_t *><size_t>self.col_sum.ctypes.data


cdef _PackedMatrix _pack_columns(int kind, values, Py_ssize_t column, Py_ssize_t columns, col_scale):
    """Columns [column, column + columns) of values (K, N), C-contiguous."""
    cdef _PackedMatrix m = _PackedMatrix.__new__(_PackedMatrix)
    cdef Py_ssize_t K = values.shape[0], ld = values.shape[1]
    scale = None if col_scale is None else col_scale[column:column + columns]
    cdef int32_t *sums = m._allocate(kind, <int>K, <int>columns, scale)
    cdef size_t src = values.ctypes.data + column * values.itemsize
    with nogil:
        cgru_quant_pack(kind, <int>K, <int>columns, <const void *>src, ld,
                        <void *><size_t>m.matrix.packed, sums)
    return m


cdef _PackedMatrix _pack_units(int kind, values, Py_ssize_t H, Py_ssize_t u0, Py_ssize_t n, col_scale):
    """The columns of units [u0, u0 + n) of a GRU weight matrix values (K, 3H): z, r, h blocks."""
    cdef _PackedMatrix m = _PackedMatrix.__new__(_PackedMatrix)
    cdef Py_ssize_t K = values.shape[0]
    scale = None if col_scale is None else np.concatenate([col_scale[g * H + u0:g * H + u0 + n] for g in range(3)])
    cdef int32_t *sums = m._allocate(kind, <int>K, <int>(3 * n), scale)
    cdef size_t src = values.ctypes.data
    with nogil:
        cgru_quant_pack_units(kind, <int>K, <int>H, <int>u0, <int>n, <const void *>src, 3 * H,
                              <void *><size_t>m.matrix.packed, sums)
    return m


cdef void _check_quantized(str name, object a, object dtype, tuple shape) except *:
    if type(a) is not np.ndarray or not a.flags.c_contiguous:
        raise TypeError(f"{name} must be a C-contiguous numpy array")
    if a.dtype != dtype:
        raise TypeError(f"{name} must be {np.dtype(dtype).name}, got {a.dtype}")
    _check_dim(name, a.shape, shape)


cdef class QuantizedGRUInference(GRUInference):
    """GRUInference over bfloat16 or int8 weights: one GRU direction, float32 in and out.

    mode "bfloat16": kernel (I, 3H) and recurrent_kernel (H, 3H) hold bfloat16 bits (uint16).
    mode "int8": kernel and recurrent_kernel hold int8 values in -127..127, with one float32
    scale per output column in kernel_scale and recurrent_scale (3H,), I and H at most
    INT8_MAX_SIZE. input_bias and recurrent_bias: float32 (3H,). The numerics of each mode are
    quant.h's; cgru.backends.quantize rounds the weights and is the NumPy reference. The
    weights are packed here, once; ``forward``, ``step`` and ``step_state`` are GRUInference's,
    float32. With ``split`` (and reset_after, at least 2 * UNIT_SPLIT_GRAIN units and a helper
    thread in this build), each half of the units' columns is also packed on its own for
    ``run_pair``, and ``split`` becomes where the halves meet (0 otherwise).
    """

    cdef readonly str mode
    cdef readonly object kernel_scale, recurrent_scale
    cdef readonly int split
    cdef cgru_qweights q
    cdef cgru_qweights halves[2]
    cdef list matrices

    def __init__(self, str mode, kernel, recurrent_kernel, input_bias, recurrent_bias,
                 bint reverse, bint reset_after, str activation, str recurrent_activation,
                 kernel_scale=None, recurrent_scale=None, bint split=True):
        if mode not in QUANTIZED_MODES:
            raise ValueError(f"mode must be one of {tuple(QUANTIZED_MODES)}, got {mode!r}")
        dtype, kind = QUANTIZED_MODES[mode], _QUANT_KINDS[mode]
        if type(recurrent_kernel) is not np.ndarray or recurrent_kernel.ndim != 2:
            raise TypeError("recurrent_kernel must be a 2-D numpy array")
        if type(kernel) is not np.ndarray or kernel.ndim != 2:
            raise TypeError("kernel must be a 2-D numpy array")
        H, I = recurrent_kernel.shape[0], kernel.shape[0]
        _check_quantized("recurrent_kernel", recurrent_kernel, dtype, (H, 3 * H))
        _check_quantized("kernel", kernel, dtype, (I, 3 * H))
        _check_quantized("input_bias", input_bias, np.float32, (3 * H,))
        _check_quantized("recurrent_bias", recurrent_bias, np.float32, (3 * H,))
        if mode == "int8":
            _check_quantized("kernel_scale", kernel_scale, np.float32, (3 * H,))
            _check_quantized("recurrent_scale", recurrent_scale, np.float32, (3 * H,))
            if max(I, H) > INT8_MAX_SIZE:
                raise ValueError(f"int8 weights take at most {INT8_MAX_SIZE} input features and units, "
                                 f"got {I} and {H}")
        elif kernel_scale is not None or recurrent_scale is not None:
            raise ValueError("kernel_scale and recurrent_scale are for mode 'int8' only")
        self._set_sizes(I, H, np.float32, reverse, reset_after, activation, recurrent_activation)
        self.mode = mode
        self.kernel, self.recurrent_kernel = kernel, recurrent_kernel
        self.kernel_scale, self.recurrent_scale = kernel_scale, recurrent_scale
        self.input_bias, self.recurrent_bias = input_bias, recurrent_bias
        self.bx = <const void *><size_t>input_bias.ctypes.data
        self.bh = <const void *><size_t>recurrent_bias.ctypes.data
        kernel_matrix = _pack_columns(kind, kernel, 0, 3 * H, kernel_scale)
        if reset_after:
            recurrent = _pack_columns(kind, recurrent_kernel, 0, 3 * H, recurrent_scale)
            recurrent_h = recurrent
        else:  # z and r first, then the h block, whose product takes r * h
            recurrent = _pack_columns(kind, recurrent_kernel, 0, 2 * H, recurrent_scale)
            recurrent_h = _pack_columns(kind, recurrent_kernel, 2 * H, H, recurrent_scale)
        self.matrices = [kernel_matrix, recurrent, recurrent_h]
        self.q.kernel = kernel_matrix.matrix
        self.q.recurrent = recurrent.matrix
        self.q.recurrent_h = recurrent_h.matrix
        grains = H // UNIT_SPLIT_GRAIN
        self.split = UNIT_SPLIT_GRAIN * (grains // 2) if split and reset_after and UNIT_PAIR and grains >= 2 else 0
        if self.split:
            for part, (u0, u1) in enumerate([(0, self.split), (self.split, H)]):
                w = _pack_units(kind, kernel, H, u0, u1 - u0, kernel_scale)
                u = _pack_units(kind, recurrent_kernel, H, u0, u1 - u0, recurrent_scale)
                self.matrices += [w, u]
                self.halves[part].kernel = w.matrix
                self.halves[part].recurrent = u.matrix
                self.halves[part].recurrent_h = u.matrix

    def run_pair(self, x, h, lengths=None):
        """``forward`` of one sequence (x (1, T, I), h (1, H), lengths None or (1,)) with its
        units shared by this thread and the engine's helper thread, as UnitSplitForward.run_pair
        (GIL released): returns y (1, T, H), or None, having run nothing, when the helper is busy
        with another caller's split or other engine calls are running."""
        if not self.split:
            raise RuntimeError("these weights have no unit split (reset_after=False, too few units, "
                               "or no helper thread in this build)")
        if not cnp.PyArray_CheckExact(x) or cnp.PyArray_TYPE(x) != cnp.NPY_FLOAT32 or not cnp.PyArray_IS_C_CONTIGUOUS(x):
            raise TypeError("x must be a C-contiguous float32 numpy array")
        if (not cnp.PyArray_CheckExact(h) or cnp.PyArray_TYPE(h) != cnp.NPY_FLOAT32
                or not cnp.PyArray_IS_C_CONTIGUOUS(h) or not cnp.PyArray_ISWRITEABLE(h)):
            raise TypeError("h must be a writable C-contiguous float32 numpy array")
        if x.ndim != 3 or x.shape[0] != 1 or x.shape[2] != self.input_size:
            raise ValueError(f"x must have shape (1, time, {self.input_size}), got {x.shape}")
        _check_dim("h", h.shape, (1, self.units))
        cdef Py_ssize_t T = x.shape[1]
        check_sizes(1, T, self.input_size, self.units)
        if lengths is not None:
            lengths = np.array(lengths, dtype=np.int64, copy=True)  # both parts read it
        cdef cgru_dims d = self.dims
        d.batch, d.time = 1, <int>T
        d.lengths = _lengths_ptr(lengths, 1, T)
        out = np.zeros((1, T, self.units), np.float32) if lengths is not None else np.empty((1, T, self.units), np.float32)
        if T == 0:
            return out
        cdef int edges[3]
        edges[0], edges[1], edges[2] = 0, self.split, <int>self.units
        mail = np.zeros(cgru_units_mail_floats(2, edges), np.float32)
        cdef float *mp = <float *><size_t>mail.ctypes.data
        cdef const float *xp = <const float *>cnp.PyArray_DATA(x)
        cdef float *hp = <float *>cnp.PyArray_DATA(h)
        cdef float *yp = <float *>cnp.PyArray_DATA(out)
        cdef int status
        with nogil:
            status = cgru_forward_units_pair_quantized_f32(&d, self.split, mp, self.halves, xp,
                                                           <const float *>self.bx, <const float *>self.bh,
                                                           hp, yp, hp)
        if status == CGRU_EBUSY:
            return None
        if status == CGRU_ENOMEM:
            raise MemoryError("cgru: out of memory in QuantizedGRUInference.run_pair")
        return out

    @property
    def kernels(self) -> str:
        """The kernel that computes this mode's products now (see quantized_kernels)."""
        return cgru_quant_kernel_name(_QUANT_KINDS[self.mode]).decode()

    cdef int _run(self, const cgru_dims *d, const void *xp, void *hp, void *yp) noexcept nogil:
        return cgru_forward_quantized_f32(d, &self.q, <const float *>xp, <const float *>self.bx,
                                          <const float *>self.bh, <const float *>hp, <float *>yp,
                                          <float *>hp)


def quantized_matmul(str mode, a, b, col_scale=None):
    """a (M, K) float32 times the quantized b (K, N) (uint16 bfloat16 bits, or int8 with
    col_scale (N,) float32) through the kernel in use, as the forward computes its products:
    a (M, N) float32 array (b packed for this one product; QuantizedMatmul keeps it packed). For
    tests and benchmarks."""
    return QuantizedMatmul(mode, b, col_scale).matmul(np.ascontiguousarray(a, dtype=np.float32))


cdef class QuantizedMatmul:
    """A quantized weight matrix (K, N) packed once for repeated products, float32 in and out:
    ``a @ matrix`` (or ``matmul(a)``) with a (M, K) float32 gives (M, N) float32 through the
    kernel in use, as ``quantized_matmul`` computes it. mode "bfloat16": values are bfloat16
    bits (uint16); "int8": int8 values in -127..127 with col_scale (N,) float32 (K at most
    INT8_MAX_SIZE). Dense layers of a quantized model multiply through it."""

    __array_ufunc__ = None  # a NumPy array @ this defers to __rmatmul__

    cdef readonly str mode
    cdef readonly object values, col_scale
    cdef readonly Py_ssize_t rows, columns
    cdef _PackedMatrix packed
    cdef size_t scratch_bytes

    def __init__(self, str mode, values, col_scale=None):
        if mode not in QUANTIZED_MODES:
            raise ValueError(f"mode must be one of {tuple(QUANTIZED_MODES)}, got {mode!r}")
        if type(values) is not np.ndarray or values.ndim != 2:
            raise TypeError("values must be a 2-D numpy array")
        cdef Py_ssize_t K = values.shape[0], N = values.shape[1]
        _check_quantized("values", values, QUANTIZED_MODES[mode], (K, N))
        if mode == "int8":
            _check_quantized("col_scale", col_scale, np.float32, (N,))
            if K > INT8_MAX_SIZE:
                raise ValueError(f"int8 products take K at most {INT8_MAX_SIZE}, got {K}")
        elif col_scale is not None:
            raise ValueError("col_scale is for mode 'int8' only")
        if K < 1 or N < 1 or K > _INT_MAX // 4 or N > _INT_MAX // 4:
            raise ValueError(f"values must have between 1 and {_INT_MAX // 4} rows and columns, got {(K, N)}")
        self.mode, self.values, self.col_scale = mode, values, col_scale
        self.rows, self.columns = K, N
        self.packed = _pack_columns(_QUANT_KINDS[mode], values, 0, N, col_scale)
        self.scratch_bytes = cgru_quant_scratch_bytes(<int>K)

    @property
    def shape(self) -> tuple:
        return (self.rows, self.columns)

    def matmul(self, a):
        """a (M, K) float32, C-contiguous, times this matrix: a new (M, N) float32 array."""
        if (not cnp.PyArray_CheckExact(a) or cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32
                or not cnp.PyArray_IS_C_CONTIGUOUS(a)):
            raise TypeError("a must be a C-contiguous float32 numpy array")
        if cnp.PyArray_NDIM(a) != 2 or cnp.PyArray_DIMS(a)[1] != self.rows:
            raise ValueError(f"a must have shape (rows, {self.rows}), got {a.shape}")
        cdef Py_ssize_t M = cnp.PyArray_DIMS(a)[0]
        if M > _INT_MAX // max(self.rows, self.columns):
            raise ValueError(f"a has too many rows for 32-bit indices: {M}")
        cdef cnp.npy_intp shape[2]
        shape[0], shape[1] = M, self.columns
        out = cnp.PyArray_EMPTY(2, shape, cnp.NPY_FLOAT32, 0)
        if M == 0:
            return out
        cdef const float *ap = <const float *>cnp.PyArray_DATA(a)
        cdef float *cp = <float *>cnp.PyArray_DATA(out)
        cdef const cgru_qmatrix *m = &self.packed.matrix
        cdef void *scratch
        with nogil:
            scratch = cgru_workspace(self.scratch_bytes + 64)  # this thread's, free between calls
            if scratch != NULL:
                cgru_quant_gemm(m, <int>M, ap, <int>self.rows, 0, cp, <int>self.columns,
                                cgru_align64(scratch))
        if scratch == NULL:
            raise MemoryError("cgru: out of memory in QuantizedMatmul.matmul")
        return out

    def __rmatmul__(self, a):
        return self.matmul(np.ascontiguousarray(a, dtype=np.float32))


def quantized_activations(str mode, a):
    """The activations a (M, K) float32 as the kernel in use converts them for its products:
    (values (M, K) float32, row scales (M,) float32 or None). bfloat16: the rounded values;
    int8: the integers -127..127 and each row's scale. For tests."""
    if mode not in QUANTIZED_MODES:
        raise ValueError(f"mode must be one of {tuple(QUANTIZED_MODES)}, got {mode!r}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] < 1:
        raise ValueError(f"a must have shape (rows, K >= 1), got {a.shape}")
    cdef Py_ssize_t M = a.shape[0], K = a.shape[1]
    values = np.empty((M, K), np.float32)
    scales = np.empty(M, np.float32)
    scratch = _aligned_bytes(cgru_quant_scratch_bytes(<int>K))
    if M:
        cgru_quant_convert(_QUANT_KINDS[mode], <int>M, <int>K, <const float *><size_t>a.ctypes.data,
                           <float *><size_t>values.ctypes.data, <float *><size_t>scales.ctypes.data,
                           <void *><size_t>scratch.ctypes.data)
    return values, (scales if mode == "int8" else None)
