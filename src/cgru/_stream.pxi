# Included by _engine.pyx: the streaming step of a chain of layers in one call (StreamStep), and
# the one-row float32 product that Dense layers on the compiled backend share with it.

from libc.stdlib cimport calloc, free
from libc.string cimport memset
from cpython.dict cimport PyDict_GetItem
from cpython.ref cimport PyObject, Py_XDECREF, Py_XINCREF

cdef extern from "gru_kernels.h" nogil:
    void cgru_matmul_f32(int trans_a, int trans_b, int M, int N, int K, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc)


def matmul_row(a, b):
    """a (1, K) times b (K, N), float32 C-contiguous numpy arrays, through the engine's one-row
    product: a new (1, N) float32 array. Dense layers on the compiled backend multiply a single
    row through it, as StreamStep's Dense stages do, so that both give the same bits."""
    if (not cnp.PyArray_CheckExact(a) or cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32
            or not cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_NDIM(a) != 2):
        raise TypeError("a must be a 2-D C-contiguous float32 numpy array")
    if (not cnp.PyArray_CheckExact(b) or cnp.PyArray_TYPE(b) != cnp.NPY_FLOAT32
            or not cnp.PyArray_IS_C_CONTIGUOUS(b) or cnp.PyArray_NDIM(b) != 2):
        raise TypeError("b must be a 2-D C-contiguous float32 numpy array")
    cdef Py_ssize_t K = cnp.PyArray_DIMS(b)[0], N = cnp.PyArray_DIMS(b)[1]
    if cnp.PyArray_DIMS(a)[0] != 1 or cnp.PyArray_DIMS(a)[1] != K:
        raise ValueError(f"a must have shape (1, {K}), got {a.shape}")
    if K > _INT_MAX or N > _INT_MAX:
        raise ValueError(f"b is too large for 32-bit indices: {b.shape}")
    cdef cnp.npy_intp shape[2]
    shape[0], shape[1] = 1, N
    out = cnp.PyArray_EMPTY(2, shape, cnp.NPY_FLOAT32, 0)
    cdef const float *ap = <const float *>cnp.PyArray_DATA(a)
    cdef const float *bp = <const float *>cnp.PyArray_DATA(b)
    cdef float *cp = <float *>cnp.PyArray_DATA(out)
    with nogil:
        cgru_matmul_f32(0, 0, 1, <int>N, <int>K, ap, <int>K, bp, <int>N, 0, cp, <int>N)
    return out


cdef enum:
    _GRU = 0
    _GRU_QUANTIZED = 1
    _DENSE = 2
    _DENSE_QUANTIZED = 3

#: The most stages a StreamStep takes.
STREAM_MAX_STAGES = 64


cdef struct _stage:
    int kind
    int inputs, outputs
    cgru_dims dims                # GRU: one step of one sequence
    const float *W                # GRU: the float32 weights; Dense: the float32 kernel
    const float *U
    const float *bx
    const float *bh
    cgru_qweights q               # GRU quantized
    const cgru_qmatrix *matrix    # Dense quantized
    const float *bias             # Dense, or NULL
    int relu                      # Dense: relu (else linear)
    int stateful                  # GRU: h is the layer's kept state (read per call)
    float *h                      # GRU: the state (this call's kept state, or zeroed scratch)
    float *y                      # this stage's output (scratch; the call's output for the last)


cdef int _run_stages(_stage *stages, int count, const float *x, float *out,
                     void *quant_scratch) noexcept nogil:
    """Run the chain on one step of one sequence: x (inputs of the first stage) -> out (outputs
    of the last). The calls are those the layers' own inference makes (GRUInference._run, the
    engine's one-row product, QuantizedMatmul), so each stage computes the same bits."""
    cdef const float *a = x
    cdef float *y
    cdef _stage *s
    cdef int i, j, status
    for i in range(count):
        s = &stages[i]
        y = out if i == count - 1 else s.y
        if s.kind == _GRU or s.kind == _GRU_QUANTIZED:
            if not s.stateful:
                memset(s.h, 0, s.outputs * sizeof(float))
            if s.kind == _GRU:
                status = cgru_forward_f32(&s.dims, a, s.W, s.U, s.bx, s.bh, s.h, NULL, y, s.h, NULL, NULL)
            else:
                status = cgru_forward_quantized_f32(&s.dims, &s.q, a, s.bx, s.bh, s.h, y, s.h)
            if status:
                return status
        else:
            if s.kind == _DENSE:
                cgru_matmul_f32(0, 0, 1, s.outputs, s.inputs, a, s.inputs, s.W, s.outputs, 0, y, s.outputs)
            else:
                cgru_quant_gemm(s.matrix, 1, a, s.inputs, 0, y, s.outputs, quant_scratch)
            if s.bias != NULL:
                for j in range(s.outputs):
                    y[j] = y[j] + s.bias[j]
            if s.relu:  # as numpy.maximum(y, 0): NaN stays, -0.0 becomes 0.0
                for j in range(s.outputs):
                    if not (y[j] > 0 or y[j] != y[j]):
                        y[j] = 0
        a = y
    return 0


cdef bint _is_state(object h, Py_ssize_t units):
    """Whether h can be a GRU stage's kept state: a writable C-contiguous float32 (1, units)."""
    return (cnp.PyArray_CheckExact(h) and cnp.PyArray_TYPE(h) == cnp.NPY_FLOAT32
            and cnp.PyArray_IS_C_CONTIGUOUS(h) and cnp.PyArray_ISWRITEABLE(h)
            and cnp.PyArray_NDIM(h) == 2 and cnp.PyArray_DIMS(h)[0] == 1
            and cnp.PyArray_DIMS(h)[1] == units)


cdef class StreamStep:
    """One time step of one sequence through a chain of GRU and Dense layers in one call (the
    GIL released once), for the stateful streaming ``model(x)`` call.

    ``stages``: a list, in order, of
      ("gru", inference, owner)   a GRUInference (float32) or QuantizedGRUInference; ``owner``
                                  is the stateful layer whose ``_state`` attribute holds the
                                  kept state, read at every call, or None (the step starts
                                  from zeros);
      ("dense", kernel, bias, relu)  kernel (K, N) float32 or a QuantizedMatmul, bias (N,)
                                  float32 or None, relu a bool (else linear);
    each taking the previous one's outputs. ``output_shape``: the shape of what a call returns
    ((1, N) or (1, 1, N)). ``changes`` and ``version``: a call runs only while
    ``changes.count == version`` (no weight published since the stages were bound).
    ``follow``: None, or (registry, ops) for a model that follows the current backend: a call
    runs only while ``registry._instances.get(registry._current) is ops`` (read through the
    registry module's dict). ``guards``: (object, attribute name) pairs, the settings the stages
    were bound for: a call runs only while each attribute still holds the very object it held
    here.

    ``step(x)`` with x a C-contiguous float32 (1, 1, I) numpy array runs the chain and returns
    a new array, each GRU stage's kept state updated in place as the layer's own streaming call
    updates it; it returns None, having run nothing, for any other x, when the weights changed,
    the backend is another, a kept state is missing or not one row, or another thread is in
    this object's call: the caller then takes its general path.
    """

    cdef _stage *stages
    cdef int count
    cdef list keep
    cdef tuple owners               # (stage index, the owner layer's __dict__) per stateful stage
    cdef tuple guards               # (an object's __dict__, attribute name, the value bound)
    cdef PyObject **held            # the kept states a running call computes on (references)
    cdef object changes, ops
    cdef dict registry, instances   # the backend registry module's __dict__ and _instances, or None
    cdef Py_ssize_t version
    cdef readonly Py_ssize_t inputs
    cdef int out_ndim
    cdef cnp.npy_intp out_shape[3]
    cdef object scratch
    cdef void *quant_scratch
    cdef bint busy

    def __cinit__(self):
        self.stages = NULL
        self.held = NULL

    def __dealloc__(self):
        free(self.stages)
        free(self.held)

    def __init__(self, list stages, tuple output_shape, changes, Py_ssize_t version, follow=None,
                 guards=()):
        cdef int n = len(stages)
        if n < 1 or n > STREAM_MAX_STAGES:
            raise ValueError(f"a StreamStep takes 1 to {STREAM_MAX_STAGES} stages, got {n}")
        if len(output_shape) not in (2, 3) or output_shape[0] != 1 or (len(output_shape) == 3 and output_shape[1] != 1):
            raise ValueError(f"output_shape must be (1, N) or (1, 1, N), got {output_shape}")
        self.stages = <_stage *>calloc(n, sizeof(_stage))
        if self.stages == NULL:
            raise MemoryError()
        self.keep = []
        owners = []
        cdef _stage *s
        cdef Py_ssize_t floats = 0, quant_bytes = 0, previous = -1
        cdef GRUInference gru
        cdef QuantizedGRUInference qgru
        cdef QuantizedMatmul qm
        cdef Py_ssize_t i
        for i in range(n):
            spec = stages[i]
            s = &self.stages[i]
            kind = spec[0]
            if kind == "gru":
                _, inference, owner = spec
                if isinstance(inference, QuantizedGRUInference):
                    qgru = inference
                    s.kind, s.q = _GRU_QUANTIZED, qgru.q
                elif isinstance(inference, GRUInference) and (<GRUInference>inference).single:
                    s.kind = _GRU
                else:
                    raise TypeError(f"stage {i}: a GRU stage takes a float32 GRUInference or a "
                                    f"QuantizedGRUInference, got {type(inference).__name__}")
                gru = inference
                s.W, s.U = <const float *>gru.W, <const float *>gru.U
                s.bx, s.bh = <const float *>gru.bx, <const float *>gru.bh
                s.dims = gru.dims
                s.dims.batch, s.dims.time, s.dims.lengths = 1, 1, NULL
                s.inputs, s.outputs = <int>gru.input_size, <int>gru.units
                s.stateful = owner is not None
                if owner is not None:
                    owners.append((i, vars(owner)))  # the attribute read at each call: _state
                else:
                    floats += s.outputs  # its zeroed state
                self.keep.append(inference)
            elif kind == "dense":
                _, kernel, bias, relu = spec
                if isinstance(kernel, QuantizedMatmul):
                    qm = kernel
                    s.kind, s.matrix = _DENSE_QUANTIZED, &qm.packed.matrix
                    s.inputs, s.outputs = <int>qm.rows, <int>qm.columns
                    quant_bytes = max(quant_bytes, <Py_ssize_t>qm.scratch_bytes)
                else:
                    if (type(kernel) is not np.ndarray or kernel.dtype != np.float32 or kernel.ndim != 2
                            or not kernel.flags.c_contiguous or 0 in kernel.shape):
                        raise TypeError(f"stage {i}: a Dense kernel must be a non-empty C-contiguous "
                                        "float32 (K, N) array or a QuantizedMatmul")
                    if max(kernel.shape) > _INT_MAX:
                        raise ValueError(f"stage {i}: kernel too large for 32-bit indices: {kernel.shape}")
                    s.kind, s.W = _DENSE, <const float *><size_t>kernel.ctypes.data
                    s.inputs, s.outputs = kernel.shape
                if bias is not None:
                    if (type(bias) is not np.ndarray or bias.dtype != np.float32 or not bias.flags.c_contiguous
                            or bias.shape != (s.outputs,)):
                        raise TypeError(f"stage {i}: a Dense bias must be a C-contiguous float32 "
                                        f"({s.outputs},) array")
                    s.bias = <const float *><size_t>bias.ctypes.data
                s.relu = bool(relu)
                self.keep += [kernel, bias]
            else:
                raise ValueError(f"stage {i}: unknown kind {kind!r} (expected 'gru' or 'dense')")
            if previous >= 0 and s.inputs != previous:
                raise ValueError(f"stage {i} takes {s.inputs} inputs, but stage {i - 1} gives {previous}")
            previous = s.outputs
            if i < n - 1:
                floats += s.outputs
        if output_shape[len(output_shape) - 1] != previous:
            raise ValueError(f"output_shape {output_shape} does not end with the last stage's {previous} outputs")
        self.count = n
        self.inputs = self.stages[0].inputs
        self.out_ndim = len(output_shape)
        for i in range(self.out_ndim):
            self.out_shape[i] = output_shape[i]
        self.scratch = _aligned_bytes(floats * sizeof(float) + quant_bytes + 64)
        cdef float *base = <float *><size_t>self.scratch.ctypes.data
        self.quant_scratch = cgru_align64(base + floats) if quant_bytes else NULL
        for i in range(n):
            s = &self.stages[i]
            if i < n - 1:
                s.y, base = base, base + s.outputs
            if (s.kind == _GRU or s.kind == _GRU_QUANTIZED) and not s.stateful:
                s.h, base = base, base + s.outputs
        self.owners = tuple(owners)
        self.held = <PyObject **>calloc(len(owners) + 1, sizeof(PyObject *))
        if self.held == NULL:
            raise MemoryError()
        self.guards = tuple((vars(obj), name, getattr(obj, name)) for obj, name in guards)
        self.changes, self.version = changes, version
        if follow is not None:
            self.registry, self.ops = vars(follow[0]), follow[1]
            self.instances = self.registry["_instances"]  # one dict, updated in place

    def step(self, x):
        if (not cnp.PyArray_CheckExact(x) or cnp.PyArray_TYPE(x) != cnp.NPY_FLOAT32
                or not cnp.PyArray_IS_C_CONTIGUOUS(x) or cnp.PyArray_NDIM(x) != 3):
            return None
        cdef cnp.npy_intp *xs = cnp.PyArray_DIMS(x)
        if xs[0] != 1 or xs[1] != 1 or xs[2] != self.inputs:
            return None
        if self.busy or self.changes.count != self.version:
            return None
        if self.registry is not None and self.instances.get(self.registry.get("_current")) is not self.ops:
            return None
        cdef tuple guard
        for guard in self.guards:
            if PyDict_GetItem(<dict>guard[0], guard[1]) is not <PyObject *>guard[2]:
                return None
        self.busy = True  # no Python code ran since the check: another thread cannot be here too
        try:
            return self._step(x)
        finally:
            self.busy = False

    cdef object _step(self, x):
        cdef Py_ssize_t k, n = len(self.owners)
        cdef _stage *s
        cdef tuple owner
        for k in range(n):
            owner = <tuple>self.owners[k]
            state = (<dict>owner[1]).get("_state")
            s = &self.stages[<Py_ssize_t>owner[0]]
            if not _is_state(state, s.outputs):
                self._release(k)
                return None
            Py_XINCREF(<PyObject *>state)  # held until the call ends, whatever another thread sets
            self.held[k] = <PyObject *>state
            s.h = <float *>cnp.PyArray_DATA(state)
        out = cnp.PyArray_EMPTY(self.out_ndim, self.out_shape, cnp.NPY_FLOAT32, 0)
        cdef const float *xp = <const float *>cnp.PyArray_DATA(x)
        cdef float *op = <float *>cnp.PyArray_DATA(out)
        cdef int status
        with nogil:
            cgru_call_begin()
            status = _run_stages(self.stages, self.count, xp, op, self.quant_scratch)
            cgru_call_end()
        self._release(n)
        if status == CGRU_ENOMEM:
            raise MemoryError("cgru: out of memory in StreamStep.step")
        return out

    cdef void _release(self, Py_ssize_t n):
        """Let go of the first n held states."""
        cdef Py_ssize_t k
        for k in range(n):
            Py_XDECREF(self.held[k])
            self.held[k] = NULL



def model_call(self, x, lengths=None, training=False):
    """The low-overhead inference call: returns the output as a backend array.

    ``training=True`` applies dropout. With stateful GRU layers each call continues from the
    state the previous call left. (``Sequential.__call__``, compiled where the engine is built:
    the compiled streaming step when the model has one and it takes ``x``, else the lean or
    checked path of ``Sequential._call_lean``.)
    """
    fast = self._fast
    if fast is not None and lengths is None and training is False:
        step = (<tuple>fast)[0]
        if step is not None:
            y = step(x)
            if y is not None:
                return y
    return self._call_lean(x, lengths, training)
