# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Cython driver of the compiled GRU engine (gru_kernels.c over CBLAS).

Checks every size against every other before any native code touches memory, then runs the
C kernels with the GIL released. Arrays are C-contiguous float32 or float64 (one dtype per call);
shapes use B = batch, T = time, I = input features, H = units.
"""

from libc.stdint cimport int64_t
from cython cimport floating

import numpy as np
cimport numpy as cnp

from .backends.activations import ACTIVATION_CODES, RECURRENT_ACTIVATION_CODES
from .backends.parallel import at_fork_in_child

cnp.import_array()

cdef extern from "gru_kernels.h" nogil:
    int CGRU_ENOMEM
    ctypedef struct cgru_dims:
        int batch, time, input, units
        int reset_after, reverse, activation, recurrent_activation
        const int64_t *lengths
    int cgru_forward_f32(const cgru_dims *d, const float *x, const float *W, const float *U,
                         const float *bx, const float *bh, const float *h0, const float *rmask,
                         float *y, float *h_n, float *saved_h, float *saved_gates)
    int cgru_forward_f64(const cgru_dims *d, const double *x, const double *W, const double *U,
                         const double *bx, const double *bh, const double *h0, const double *rmask,
                         double *y, double *h_n, double *saved_h, double *saved_gates)
    int cgru_backward_f32(const cgru_dims *d, const float *x, const float *W, const float *U,
                          const float *rmask, const float *saved_h, const float *saved_gates,
                          const float *dy, const float *dh_n, float *dx, float *dh0, float *dW,
                          float *dU, float *dbx, float *dbh)
    int cgru_backward_f64(const cgru_dims *d, const double *x, const double *W, const double *U,
                          const double *rmask, const double *saved_h, const double *saved_gates,
                          const double *dy, const double *dh_n, double *dx, double *dh0,
                          double *dW, double *dU, double *dbx, double *dbh)
    int cgru_units_split_available()
    int cgru_units_pair_available()
    int CGRU_EBUSY
    void cgru_call_begin()
    void cgru_call_end()
    int cgru_calls_running()
    void cgru_forget_threads()
    size_t cgru_grad_chunk_floats

cdef extern from "blas.h" nogil:
    void cgru_blas_set_threads(int n)
    int cgru_blas_get_threads()
    const char *cgru_blas_config()

cdef extern from "gates_f32.h" nogil:
    int cgru_isa_supported(const char *isa)
    int cgru_set_isa(const char *isa)
    const char *cgru_get_isa()
    void cgru_select_best_isa()
    void cgru_vector_math_f32(int which, const float *x, float *y, size_t n)

#: Instruction-set levels, each one's kernels runnable where the CPU has the next one's: the
#: float32 kernels are those of "avx512" in the two last, which differ in the reduced-precision
#: kernels (see quantized_kernels).
ISAS = ("generic", "avx2", "avx512", "avx512_vnni", "avx512_bf16")
#: Whether UnitSplitForward is available (it needs the compiler's atomic builtins).
UNIT_SPLIT = cgru_units_split_available() == 1
#: Whether UnitSplitForward.run_pair is available (it needs POSIX threads for its helper).
UNIT_PAIR = cgru_units_pair_available() == 1
#: Units per part of a UnitSplitForward is at least this (one vector register's worth).
UNIT_SPLIT_GRAIN = 16
VECTOR_FUNCTIONS = {"exp": 0, "sigmoid": 1, "tanh": 2}
_INT_MAX = 2**31 - 1


def isa_supported(str isa) -> bool:
    """Whether this CPU can run the kernels compiled for ``isa`` (see ISAS)."""
    return isa in ISAS and cgru_isa_supported(isa.encode()) == 1


def set_isa(str isa) -> None:
    """Use the kernels compiled for ``isa`` (tests use this to cover each variant)."""
    if isa not in ISAS:
        raise ValueError(f"isa must be one of {ISAS}, got {isa!r}")
    if cgru_set_isa(isa.encode()) != 0:
        raise ValueError(f"this CPU cannot run the {isa!r} kernels")


def get_isa() -> str:
    """Instruction-set level of the kernels in use."""
    return cgru_get_isa().decode()


def vector_math(str function, const float[::1] x):
    """The engine's vectorised float32 ``function`` ("exp", "sigmoid", "tanh") of x, for tests."""
    if function not in VECTOR_FUNCTIONS:
        raise ValueError(f"function must be one of {tuple(VECTOR_FUNCTIONS)}, got {function!r}")
    out = np.empty(x.shape[0], dtype=np.float32)
    cdef float[::1] y = out
    if x.shape[0]:
        cgru_vector_math_f32(VECTOR_FUNCTIONS[function], &x[0], &y[0], x.shape[0])
    return out


cgru_select_best_isa()


def set_grad_chunk_floats(size_t floats) -> int:
    """Set how many floats of the recurrent-product gradient the backward keeps between two
    recurrent weight-gradient GEMMs (tests lower it to cover the chunking); returns the old
    value. Not for use while another thread runs a backward pass."""
    if floats < 1:
        raise ValueError(f"floats must be >= 1, got {floats}")
    global cgru_grad_chunk_floats
    old = cgru_grad_chunk_floats
    cgru_grad_chunk_floats = floats
    return old


def calls_running() -> int:
    """How many forward and backward calls of the engine are running now, in every thread (a
    unit split starts only when none is: its two halves wait for each other every step, so a
    third thread on the cores stalls both)."""
    return cgru_calls_running()


def forget_threads() -> None:
    """In a forked child only: forget the parent's other threads (the calls they were running,
    the helper thread), which the child does not have. Run by the package's fork hook."""
    cgru_forget_threads()


at_fork_in_child(forget_threads)


class running_call:
    """Counts as a running engine call while entered (for tests of the unit split's check)."""

    def __enter__(self):
        cgru_call_begin()
        return self

    def __exit__(self, *exc):
        cgru_call_end()
        return False


def blas_config() -> str:
    """The linked BLAS's own description (OpenBLAS: version, kernel, threading)."""
    return cgru_blas_config().decode("utf-8", "replace")


def blas_get_threads() -> int:
    """Threads the linked BLAS uses (0 when it cannot say)."""
    return cgru_blas_get_threads()


def blas_set_threads(int n) -> None:
    """Set the linked BLAS's thread count (n >= 1)."""
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    cgru_blas_set_threads(n)


cdef void _check_dim(object name, object got, object expected) except *:
    if tuple(got) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {tuple(got)}")


cdef void _check_weights(tuple kernel, tuple recurrent_kernel, tuple input_bias,
                         tuple recurrent_bias, Py_ssize_t I, Py_ssize_t H) except *:
    """The weight shapes (given as tuples) for I input features and H units."""
    _check_dim("recurrent_kernel", recurrent_kernel, (H, 3 * H))
    _check_dim("kernel", kernel, (I, 3 * H))
    if input_bias is not None:
        _check_dim("input_bias", input_bias, (3 * H,))
        _check_dim("recurrent_bias", recurrent_bias, (3 * H,))


def check_sizes(batch, time, features, units) -> None:
    """Refuse (ValueError) sizes the C code cannot index with its 32-bit ints: more than
    2^31 - 1 values in a time-major array of batch * time rows of max(features, 4 * units), or
    more than (2^31 - 1) / 4 features or units. Exact (Python integers). With no time steps
    nothing is computed, so then the batch is not limited."""
    if units < 1:
        raise ValueError(f"units must be >= 1, got {units}")
    if features < 1:
        raise ValueError("x must have at least one feature")
    if batch * time * max(features, 4 * units) > _INT_MAX or max(features, units) * 4 > _INT_MAX:
        raise ValueError(f"problem too large for the engine's 32-bit indices: x ({batch}, {time}, "
                         f"{features}) with {units} units (at most {_INT_MAX} values per time-major "
                         f"array and {_INT_MAX // 4} features or units)")


cdef cgru_dims _dims(tuple x_shape, Py_ssize_t units, object lengths, bint reverse,
                     bint reset_after, str activation, str recurrent_activation) except *:
    """The dimensions for the C code, once check_sizes has accepted them. A call with no time
    steps never reaches the C code (its callers return first: the final state is the initial
    one), so its batch, which may exceed an int, is given as 0."""
    cdef cgru_dims d
    batch, time, features = x_shape
    check_sizes(batch, time, features, units)
    if activation not in ACTIVATION_CODES:
        raise ValueError(f"activation must be one of {tuple(ACTIVATION_CODES)}, got {activation!r}")
    if recurrent_activation not in RECURRENT_ACTIVATION_CODES:
        raise ValueError(f"recurrent_activation must be one of "
                         f"{tuple(RECURRENT_ACTIVATION_CODES)}, got {recurrent_activation!r}")
    d.batch = <int>batch if time > 0 else 0
    d.time = <int>time
    d.input = <int>features
    d.units = <int>units
    d.reset_after = reset_after
    d.reverse = reverse
    d.activation = ACTIVATION_CODES[activation]
    d.recurrent_activation = RECURRENT_ACTIVATION_CODES[recurrent_activation]
    d.lengths = NULL
    return d


cdef const int64_t *_lengths_ptr(const int64_t[::1] lengths, Py_ssize_t batch, Py_ssize_t time) except? NULL:
    cdef Py_ssize_t b
    if lengths is None:
        return NULL
    if lengths.shape[0] != batch:
        raise ValueError(f"lengths must have shape ({batch},), got ({lengths.shape[0]},)")
    for b in range(batch):
        if lengths[b] < 0 or lengths[b] > time:
            raise ValueError(f"lengths must be in 0..{time}, got {lengths[b]} at index {b}")
    if batch == 0:
        return NULL
    return &lengths[0]


def gru_forward(const floating[:, :, ::1] x, const floating[:, ::1] kernel,
                const floating[:, ::1] recurrent_kernel, const floating[::1] input_bias,
                const floating[::1] recurrent_bias, const floating[:, ::1] h0,
                const int64_t[::1] lengths, const floating[:, ::1] recurrent_mask,
                bint reverse, bint reset_after, str activation, str recurrent_activation,
                bint training, tuple out=None, tuple saved=None):
    """Forward pass; returns (y (B,T,H), h_n (B,H), saved_h (T,B,H) or None, saved_gates (T,B,4H) or None).

    input_bias/recurrent_bias: (3H,) each; lengths: int64 (B,) or None; recurrent_mask: (B,H) or None.
    ``out`` (y, h_n) and, when training, ``saved`` (saved_h, saved_gates): C-contiguous writable
    arrays of x's dtype to fill instead of new ones (y is zeroed first when lengths are given).
    """
    cdef Py_ssize_t B = x.shape[0], T = x.shape[1], I = x.shape[2], H = recurrent_kernel.shape[0]
    _check_weights((kernel.shape[0], kernel.shape[1]), (recurrent_kernel.shape[0], recurrent_kernel.shape[1]),
                   (input_bias.shape[0],), (recurrent_bias.shape[0],), I, H)
    _check_dim("h0", (h0.shape[0], h0.shape[1]), (B, H))
    if recurrent_mask is not None:
        _check_dim("recurrent_mask", (recurrent_mask.shape[0], recurrent_mask.shape[1]), (B, H))
    cdef cgru_dims d = _dims((B, T, I), H, lengths, reverse, reset_after, activation, recurrent_activation)
    d.lengths = _lengths_ptr(lengths, B, T)
    dtype = np.float32 if floating is float else np.float64
    if out is None:
        y_arr = np.zeros((B, T, H), dtype=dtype) if lengths is not None else np.empty((B, T, H), dtype=dtype)
        h_arr = np.empty((B, H), dtype=dtype)
    else:
        y_arr, h_arr = out
    cdef floating[:, :, ::1] y = y_arr
    cdef floating[:, ::1] h_n = h_arr
    if out is not None:
        _check_dim("out[0] (y)", (y.shape[0], y.shape[1], y.shape[2]), (B, T, H))
        _check_dim("out[1] (h_n)", (h_n.shape[0], h_n.shape[1]), (B, H))
        if lengths is not None:
            y[...] = 0
    saved_h_arr = saved_gates_arr = None
    cdef floating *sh = NULL
    cdef floating *sg = NULL
    cdef floating[:, :, ::1] sh_view, sg_view
    if training:
        if saved is None:
            saved_h_arr = np.empty((T, B, H), dtype=dtype)
            saved_gates_arr = np.empty((T, B, 4 * H), dtype=dtype)
        else:
            saved_h_arr, saved_gates_arr = saved
        sh_view = saved_h_arr
        sg_view = saved_gates_arr
        _check_dim("saved[0] (saved_h)", (sh_view.shape[0], sh_view.shape[1], sh_view.shape[2]), (T, B, H))
        _check_dim("saved[1] (saved_gates)", (sg_view.shape[0], sg_view.shape[1], sg_view.shape[2]),
                   (T, B, 4 * H))
        if T > 0 and B > 0:
            sh = &sh_view[0, 0, 0]
            sg = &sg_view[0, 0, 0]
    if B == 0 or T == 0:
        h_n[...] = h0
        return y_arr, h_arr, saved_h_arr, saved_gates_arr
    cdef const floating *xp = &x[0, 0, 0]
    cdef const floating *mp = &recurrent_mask[0, 0] if recurrent_mask is not None else NULL
    cdef floating *yp = &y[0, 0, 0]
    cdef int status
    with nogil:
        cgru_call_begin()
        if floating is float:
            status = cgru_forward_f32(&d, xp, &kernel[0, 0], &recurrent_kernel[0, 0], &input_bias[0],
                                      &recurrent_bias[0], &h0[0, 0], mp, yp, &h_n[0, 0], sh, sg)
        else:
            status = cgru_forward_f64(&d, xp, &kernel[0, 0], &recurrent_kernel[0, 0], &input_bias[0],
                                      &recurrent_bias[0], &h0[0, 0], mp, yp, &h_n[0, 0], sh, sg)
        cgru_call_end()
    if status == CGRU_ENOMEM:
        raise MemoryError("cgru: out of memory in gru_forward")
    return y_arr, h_arr, saved_h_arr, saved_gates_arr


def gru_backward(const floating[:, :, ::1] x, const floating[:, ::1] kernel,
                 const floating[:, ::1] recurrent_kernel, const floating[:, ::1] recurrent_mask,
                 const floating[:, :, ::1] saved_h, const floating[:, :, ::1] saved_gates,
                 const floating[:, :, ::1] dy, const floating[:, ::1] dh_n,
                 const int64_t[::1] lengths, bint reverse, bint reset_after, str activation,
                 str recurrent_activation, bint input_grad=True):
    """Backward pass; returns (dx (B,T,I), dh0 (B,H), dW (I,3H), dU (H,3H), dbx (3H,), dbh (3H,)).

    dbh is zero when reset_after is False. dy (B,T,H) and dh_n (B,H) may be None (zero).
    dx is None when ``input_grad`` is False (its product is then skipped).
    """
    cdef Py_ssize_t B = x.shape[0], T = x.shape[1], I = x.shape[2], H = recurrent_kernel.shape[0]
    _check_weights((kernel.shape[0], kernel.shape[1]), (recurrent_kernel.shape[0], recurrent_kernel.shape[1]),
                   None, None, I, H)
    _check_dim("saved_h", (saved_h.shape[0], saved_h.shape[1], saved_h.shape[2]), (T, B, H))
    _check_dim("saved_gates", (saved_gates.shape[0], saved_gates.shape[1], saved_gates.shape[2]), (T, B, 4 * H))
    if recurrent_mask is not None:
        _check_dim("recurrent_mask", (recurrent_mask.shape[0], recurrent_mask.shape[1]), (B, H))
    if dy is not None:
        _check_dim("dy", (dy.shape[0], dy.shape[1], dy.shape[2]), (B, T, H))
    if dh_n is not None:
        _check_dim("dh_n", (dh_n.shape[0], dh_n.shape[1]), (B, H))
    cdef cgru_dims d = _dims((B, T, I), H, lengths, reverse, reset_after, activation, recurrent_activation)
    d.lengths = _lengths_ptr(lengths, B, T)
    dtype = np.float32 if floating is float else np.float64
    dx_arr = np.zeros((B, T, I), dtype=dtype) if input_grad else None
    dh0_arr = np.zeros((B, H), dtype=dtype)
    dW_arr = np.zeros((I, 3 * H), dtype=dtype)
    dU_arr = np.zeros((H, 3 * H), dtype=dtype)
    dbx_arr = np.zeros(3 * H, dtype=dtype)
    dbh_arr = np.zeros(3 * H, dtype=dtype)
    if B == 0 or T == 0:
        if dh_n is not None:
            dh0_arr[...] = np.asarray(dh_n)
        return dx_arr, dh0_arr, dW_arr, dU_arr, dbx_arr, dbh_arr
    cdef floating[:, :, ::1] dx
    cdef floating *dxp = NULL
    if input_grad:
        dx = dx_arr
        dxp = &dx[0, 0, 0]
    cdef floating[:, ::1] dh0 = dh0_arr, dW = dW_arr, dU = dU_arr
    cdef floating[::1] dbx = dbx_arr, dbh = dbh_arr
    cdef const floating *mp = &recurrent_mask[0, 0] if recurrent_mask is not None else NULL
    cdef const floating *dyp = &dy[0, 0, 0] if dy is not None else NULL
    cdef const floating *dhp = &dh_n[0, 0] if dh_n is not None else NULL
    cdef int status
    with nogil:
        cgru_call_begin()
        if floating is float:
            status = cgru_backward_f32(&d, &x[0, 0, 0], &kernel[0, 0], &recurrent_kernel[0, 0], mp,
                                       &saved_h[0, 0, 0], &saved_gates[0, 0, 0], dyp, dhp,
                                       dxp, &dh0[0, 0], &dW[0, 0], &dU[0, 0], &dbx[0], &dbh[0])
        else:
            status = cgru_backward_f64(&d, &x[0, 0, 0], &kernel[0, 0], &recurrent_kernel[0, 0], mp,
                                       &saved_h[0, 0, 0], &saved_gates[0, 0, 0], dyp, dhp,
                                       dxp, &dh0[0, 0], &dW[0, 0], &dU[0, 0], &dbx[0], &dbh[0])
        cgru_call_end()
    if status == CGRU_ENOMEM:
        raise MemoryError("cgru: out of memory in gru_backward")
    return dx_arr, dh0_arr, dW_arr, dU_arr, dbx_arr, dbh_arr


cdef class GRUInference:
    """One GRU direction's weights, checked and bound once, for repeated inference calls.

    kernel (I, 3H), recurrent_kernel (H, 3H), input_bias and recurrent_bias (3H,): C-contiguous
    arrays of one dtype (float32 or float64). ``forward`` costs one small allocation (the output)
    and no re-validation of the weights, which is what one-step streaming needs.
    """

    cdef readonly object kernel, recurrent_kernel, input_bias, recurrent_bias, dtype
    cdef readonly Py_ssize_t input_size, units
    cdef Py_ssize_t max_rows  # batch * time rows of at most this fit the engine's ints
    cdef cgru_dims dims
    cdef bint single
    cdef int typenum
    # Data pointers of the four arrays above, which this object keeps alive (and which numpy
    # cannot reallocate while referenced here).
    cdef const void *W
    cdef const void *U
    cdef const void *bx
    cdef const void *bh

    def __init__(self, kernel, recurrent_kernel, input_bias, recurrent_bias, bint reverse,
                 bint reset_after, str activation, str recurrent_activation):
        arrays = (kernel, recurrent_kernel, input_bias, recurrent_bias)
        names = ("kernel", "recurrent_kernel", "input_bias", "recurrent_bias")
        for name, a in zip(names, arrays):
            if type(a) is not np.ndarray or not a.flags.c_contiguous:
                raise TypeError(f"{name} must be a C-contiguous numpy array")
            if a.dtype != kernel.dtype or a.dtype not in (np.float32, np.float64):
                raise TypeError(f"{name} must be float32 or float64 like kernel, got {a.dtype}")
        H = recurrent_kernel.shape[0] if recurrent_kernel.ndim == 2 else 0
        I = kernel.shape[0] if kernel.ndim == 2 else 0
        _check_weights(kernel.shape, recurrent_kernel.shape, input_bias.shape, recurrent_bias.shape, I, H)
        self._set_sizes(I, H, kernel.dtype, reverse, reset_after, activation, recurrent_activation)
        self.kernel, self.recurrent_kernel = kernel, recurrent_kernel
        self.input_bias, self.recurrent_bias = input_bias, recurrent_bias
        if self.single:
            _bind_pointers[float](self, kernel, recurrent_kernel, input_bias, recurrent_bias)
        else:
            _bind_pointers[double](self, kernel, recurrent_kernel, input_bias, recurrent_bias)

    cdef _set_sizes(self, Py_ssize_t I, Py_ssize_t H, dtype, bint reverse, bint reset_after,
                    str activation, str recurrent_activation):
        """The direction's sizes, options and dtype, and the most rows a call takes before
        check_sizes must look at it."""
        self.dims = _dims((1, 1, I), H, None, reverse, reset_after, activation, recurrent_activation)
        self.dtype = np.dtype(dtype)
        self.single = self.dtype == np.float32
        self.typenum = cnp.NPY_FLOAT32 if self.single else cnp.NPY_FLOAT64
        self.input_size, self.units = I, H
        self.max_rows = _INT_MAX // max(I, 4 * H)

    def forward(self, x, h, lengths=None, out=None):
        """Run over x (B, T, I) from state h (B, H), which is overwritten with the final state.

        x must be a C-contiguous array of the weights' dtype and h a writable one; lengths is
        None or an int64 (B,) array in 0..T. Returns y (B, T, H): ``out`` when given (a writable
        C-contiguous array of that shape and dtype, e.g. some rows of a larger output), else a
        new array.

        This is the per-call cost of one-step streaming, so it checks the arrays through
        NumPy's C API rather than acquiring buffers.
        """
        return self._forward(x, h, lengths, False, out)

    def step(self, x, h):
        """The streaming call: ``forward(x, h)`` when x is a C-contiguous array of the weights'
        dtype holding at most one time step of one sequence, else None (nothing is run)."""
        if (not cnp.PyArray_CheckExact(x) or cnp.PyArray_TYPE(x) != self.typenum
                or not cnp.PyArray_IS_C_CONTIGUOUS(x) or cnp.PyArray_NDIM(x) != 3):
            return None
        cdef cnp.npy_intp *xs = cnp.PyArray_DIMS(x)
        if xs[0] * xs[1] > 1:
            return None
        return self._forward(x, h, None)

    def step_state(self, x, h):
        """The stateful streaming call: one time step of one sequence, x (1, 1, I) and h (1, H)
        as ``step`` takes them. h is overwritten with the new state, and the step's output,
        which is that state, is returned as a new (1, H) array. None (nothing is run) when x is
        not one C-contiguous step of one sequence in the weights' dtype or h is not a 2-D
        array with one row; an h that is otherwise unfit raises as in ``forward``."""
        if (not cnp.PyArray_CheckExact(x) or cnp.PyArray_TYPE(x) != self.typenum
                or not cnp.PyArray_IS_C_CONTIGUOUS(x) or cnp.PyArray_NDIM(x) != 3
                or not cnp.PyArray_CheckExact(h) or cnp.PyArray_NDIM(h) != 2):
            return None
        cdef cnp.npy_intp *xs = cnp.PyArray_DIMS(x)
        if xs[0] != 1 or xs[1] != 1 or cnp.PyArray_DIMS(h)[0] != 1:
            return None
        return self._forward(x, h, None, True)

    cdef object _forward(self, x, h, lengths, bint one_step_state=False, out=None):
        """forward(); with one_step_state (T must be 1) the output is shaped (B, H)."""
        cdef int typenum = self.typenum
        if not cnp.PyArray_CheckExact(x) or cnp.PyArray_TYPE(x) != typenum or not cnp.PyArray_IS_C_CONTIGUOUS(x):
            raise TypeError(f"x must be a C-contiguous {self.dtype} numpy array")
        if (not cnp.PyArray_CheckExact(h) or cnp.PyArray_TYPE(h) != typenum
                or not cnp.PyArray_IS_C_CONTIGUOUS(h) or not cnp.PyArray_ISWRITEABLE(h)):
            raise TypeError(f"h must be a writable C-contiguous {self.dtype} numpy array")
        cdef cnp.npy_intp *xs = cnp.PyArray_DIMS(x)
        cdef cnp.npy_intp *hs = cnp.PyArray_DIMS(h)
        if cnp.PyArray_NDIM(x) != 3 or xs[2] != self.input_size:
            raise ValueError(f"x must have shape (batch, time, {self.input_size}), got {x.shape}")
        cdef Py_ssize_t B = xs[0], T = xs[1], H = self.units
        if cnp.PyArray_NDIM(h) != 2 or hs[0] != B or hs[1] != H:
            raise ValueError(f"h must have shape {(B, H)}, got {h.shape}")
        # check_sizes without Python integers: rows first, so that B * T cannot overflow
        if T > 0 and (B > self.max_rows or T > self.max_rows or B * T > self.max_rows):
            check_sizes(B, T, self.input_size, H)
        cdef const int64_t *lengths_ptr = _lengths_ptr(lengths, B, T)
        cdef cnp.npy_intp shape[3]
        shape[0], shape[1], shape[2] = B, T, H
        if out is not None:
            if (not cnp.PyArray_CheckExact(out) or cnp.PyArray_TYPE(out) != typenum
                    or not cnp.PyArray_IS_C_CONTIGUOUS(out) or not cnp.PyArray_ISWRITEABLE(out)):
                raise TypeError(f"out must be a writable C-contiguous {self.dtype} numpy array")
            _check_dim("out", out.shape, (B, T, H))
            if lengths is not None:
                out[...] = 0
        elif one_step_state:  # y (B, 1, H) held as (B, H): the same memory
            shape[1] = H
            out = cnp.PyArray_EMPTY(2, shape, typenum, 0)
        elif lengths is not None:
            out = cnp.PyArray_ZEROS(3, shape, typenum, 0)
        else:
            out = cnp.PyArray_EMPTY(3, shape, typenum, 0)
        if B == 0 or T == 0:
            return out  # h, the final state, is the initial one
        cdef cgru_dims d = self.dims
        d.batch, d.time, d.lengths = <int>B, <int>T, lengths_ptr
        cdef const void *xp = cnp.PyArray_DATA(x)
        cdef void *hp = cnp.PyArray_DATA(h)
        cdef void *yp = cnp.PyArray_DATA(out)
        cdef int status
        with nogil:
            cgru_call_begin()
            status = self._run(&d, xp, hp, yp)
            cgru_call_end()
        if status == CGRU_ENOMEM:
            raise MemoryError("cgru: out of memory in GRUInference.forward")
        return out

    cdef int _run(self, const cgru_dims *d, const void *xp, void *hp, void *yp) noexcept nogil:
        """The engine's forward from state hp (overwritten) into yp: what subclasses change."""
        if self.single:
            return cgru_forward_f32(d, <const float *>xp, <const float *>self.W,
                                    <const float *>self.U, <const float *>self.bx,
                                    <const float *>self.bh, <const float *>hp, NULL,
                                    <float *>yp, <float *>hp, NULL, NULL)
        return cgru_forward_f64(d, <const double *>xp, <const double *>self.W,
                                <const double *>self.U, <const double *>self.bx,
                                <const double *>self.bh, <const double *>hp, NULL,
                                <double *>yp, <double *>hp, NULL, NULL)


cdef void _bind_pointers(GRUInference g, const floating[:, ::1] W, const floating[:, ::1] U,
                         const floating[::1] bx, const floating[::1] bh):
    g.W, g.U, g.bx, g.bh = &W[0, 0], &U[0, 0], &bx[0], &bh[0]


include "_unit_split.pxi"
include "_quantized.pxi"
include "_stream.pxi"
