# Included by _engine.pyx: one float32 sequence's units shared by several threads (unit_split.c).

cdef extern from "gru_kernels.h" nogil:
    ctypedef struct cgru_barrier:
        int parts
    void cgru_barrier_init(cgru_barrier *b, int parts)
    enum: CGRU_BARRIER_MAX_PARTS
    size_t cgru_units_mail_floats(int parts, const int *edges)
    int cgru_forward_units_f32(const cgru_dims *d, int part, int parts, const int *edges,
                               cgru_barrier *barrier, float *mail, const float *x, const float *W,
                               const float *U, const float *bx, const float *bh, const float *h0,
                               float *y, float *h_n)
    int cgru_forward_units_pair_f32(const cgru_dims *d, int split, float *mail, const float *x,
                                    const float *W, const float *U, const float *bx,
                                    const float *bh, const float *h0, float *y, float *h_n)


cdef class UnitSplitForward:
    """One float32 batch-1 inference forward pass, split by units over ``parts`` threads.

    For a single sequence there are no batch rows to share out, so the threads share the units:
    each computes the gate columns of its range of units (its slice of the recurrent kernel
    stays in its core's cache) and each step's new state passes between the threads through a
    mailbox of cache lines, where the others wait for it spinning. Construct it (all arguments
    are checked here), then either call ``run_pair()`` (two parts: this thread and the engine's
    helper thread) or ``run(part)`` for every part in 0..parts-1, each on its own thread and
    all at once: a part that is never run leaves the others waiting. Afterwards ``y``
    (1, T, H) and ``h_n`` (1, H) hold the result.

    x (1, T, I), kernel (I, 3H), recurrent_kernel (H, 3H), biases (3H,), h0 (1, H): float32,
    C-contiguous; lengths None or int64 (1,); reset_after=True semantics, no recurrent mask;
    2 <= parts <= min(H // UNIT_SPLIT_GRAIN, 16).
    """

    cdef readonly object y, h_n
    cdef readonly int parts
    cdef const float[:, :, ::1] x
    cdef const float[:, ::1] kernel, recurrent_kernel, h0
    cdef const float[::1] input_bias, recurrent_bias
    cdef const int64_t[::1] lengths
    cdef float[::1] mail
    cdef int edges[CGRU_BARRIER_MAX_PARTS + 1]
    cdef float[:, :, ::1] y_view
    cdef float[:, ::1] h_view
    cdef cgru_dims dims
    cdef cgru_barrier barrier
    cdef list started

    def __init__(self, const float[:, :, ::1] x, const float[:, ::1] kernel,
                 const float[:, ::1] recurrent_kernel, const float[::1] input_bias,
                 const float[::1] recurrent_bias, const float[:, ::1] h0,
                 object lengths, bint reverse, str activation,
                 str recurrent_activation, int parts):
        if not UNIT_SPLIT:
            raise RuntimeError("UnitSplitForward is not available in this build")
        if lengths is not None:  # a copy: the parts read it after this check, and must agree
            lengths = np.array(lengths, copy=True)
            self.lengths = lengths
        cdef Py_ssize_t B = x.shape[0], T = x.shape[1], I = x.shape[2], H = recurrent_kernel.shape[0]
        if B != 1:
            raise ValueError(f"x must hold one sequence (batch 1), got batch {B}")
        _check_weights((kernel.shape[0], kernel.shape[1]), (recurrent_kernel.shape[0], recurrent_kernel.shape[1]),
                       (input_bias.shape[0],), (recurrent_bias.shape[0],), I, H)
        _check_dim("h0", (h0.shape[0], h0.shape[1]), (1, H))
        most = min(H // UNIT_SPLIT_GRAIN, CGRU_BARRIER_MAX_PARTS)
        if parts < 2 or parts > most:
            raise ValueError(f"parts must be in 2..{most} for {H} units, got {parts}")
        self.dims = _dims((B, T, I), H, lengths, reverse, True, activation, recurrent_activation)
        self.dims.lengths = _lengths_ptr(lengths, B, T)
        self.x, self.kernel, self.recurrent_kernel, self.h0 = x, kernel, recurrent_kernel, h0
        self.input_bias, self.recurrent_bias = input_bias, recurrent_bias
        self.y = np.zeros((1, T, H), np.float32) if lengths is not None else np.empty((1, T, H), np.float32)
        self.h_n = np.empty((1, H), np.float32)
        self.y_view, self.h_view = self.y, self.h_n
        self.parts = parts
        grains = H // UNIT_SPLIT_GRAIN
        for k in range(parts):
            self.edges[k] = UNIT_SPLIT_GRAIN * (grains * k // parts)
        self.edges[parts] = H
        self.mail = np.zeros(cgru_units_mail_floats(parts, self.edges), np.float32)
        self.started = [False] * parts
        cgru_barrier_init(&self.barrier, parts)

    def run(self, int part):
        """Run this thread's part (GIL released); returns when the whole pass is done."""
        if part < 0 or part >= self.parts:
            raise ValueError(f"part must be in 0..{self.parts - 1}, got {part}")
        if self.started[part]:
            raise ValueError(f"part {part} has already run")
        self.started[part] = True
        cdef int status = 0
        if self.x.shape[1] == 0:
            self.h_view[...] = self.h0
            return
        with nogil:
            status = cgru_forward_units_f32(&self.dims, part, self.parts, self.edges, &self.barrier,
                                            &self.mail[0], &self.x[0, 0, 0], &self.kernel[0, 0],
                                            &self.recurrent_kernel[0, 0], &self.input_bias[0],
                                            &self.recurrent_bias[0], &self.h0[0, 0],
                                            &self.y_view[0, 0, 0], &self.h_view[0, 0])
        if status == CGRU_ENOMEM:
            raise MemoryError("cgru: out of memory in UnitSplitForward")

    def run_pair(self):
        """Run both parts of a two-part split at once, part 0 on this thread and part 1 on
        the engine's helper thread (GIL released); returns True when done, or False, having run
        nothing, when the helper is busy with another caller's split or other engine calls are
        running (``calls_running()``)."""
        if self.parts != 2:
            raise ValueError(f"run_pair needs a split into 2 parts, got {self.parts}")
        if not UNIT_PAIR:
            raise RuntimeError("UnitSplitForward.run_pair is not available in this build")
        if any(self.started):
            raise ValueError("a part of this split has already run")
        self.started = [True, True]  # before the GIL is released: no other call may join in
        if self.x.shape[1] == 0:
            self.h_view[...] = self.h0
            return True
        cdef int status = 0
        with nogil:
            status = cgru_forward_units_pair_f32(&self.dims, self.edges[1], &self.mail[0], &self.x[0, 0, 0],
                                                 &self.kernel[0, 0], &self.recurrent_kernel[0, 0],
                                                 &self.input_bias[0], &self.recurrent_bias[0],
                                                 &self.h0[0, 0], &self.y_view[0, 0, 0], &self.h_view[0, 0])
        if status == CGRU_EBUSY:
            self.started = [False, False]
            return False
        if status == CGRU_ENOMEM:
            raise MemoryError("cgru: out of memory in UnitSplitForward")
        return True
