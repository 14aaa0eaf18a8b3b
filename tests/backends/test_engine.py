"""The GRU ops: compiled engine vs the NumPy reference, finite differences, an independent
float64 loop for reset_after=False, edge cases, bad input and thread safety."""

import itertools
import zlib

import numpy as np
import pytest
from finite_differences import numeric_gradient
from isas import supported_isas
from threads import run_concurrently

import cgru
from cgru.backends import compiled_available
from cgru.validation import to_host

requires_compiled = pytest.mark.skipif(not compiled_available(), reason="compiled engine not built")


def random_problem(rng, batch, time, features, units, *, reset_after=True, lengths=False, mask=False,
                   dtype=np.float64, scale=0.6):
    x = rng.standard_normal((batch, time, features)).astype(dtype)
    kernel = (rng.standard_normal((features, 3 * units)) * scale).astype(dtype)
    recurrent = (rng.standard_normal((units, 3 * units)) * scale).astype(dtype)
    bias = rng.standard_normal((2, 3 * units) if reset_after else (3 * units,)).astype(dtype)
    kwargs = {
        "h0": rng.standard_normal((batch, units)).astype(dtype),
        "lengths": rng.integers(0, time + 1, batch) if lengths else None,
        "recurrent_mask": (rng.random((batch, units)) < 0.7).astype(dtype) / 0.7 if mask else None,
        "reset_after": reset_after,
    }
    return (x, kernel, recurrent, bias), kwargs


def forward_backward(ops, args, kwargs, dy, dh):
    y, h, cache = ops.gru_forward(*args, training=True, **kwargs)
    grads = ops.gru_backward(dy, dh, cache)
    return [to_host(y), to_host(h), *(to_host(g) for g in grads)]


CONFIGS = list(itertools.product(
    [True, False],  # reset_after
    [False, True],  # reverse
    [False, True],  # lengths
    [False, True],  # recurrent mask
    [("tanh", "sigmoid"), ("relu", "hard_sigmoid"), ("linear", "sigmoid")],
    [1, 4],  # batch (1 takes the GEMV path)
))


@requires_compiled
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reset_after,reverse,lengths,mask,acts,batch", CONFIGS)
def test_compiled_matches_reference(dtype, reset_after, reverse, lengths, mask, acts, batch):
    # a seed fixed by the configuration (hash() of strings changes with every interpreter)
    rng = np.random.default_rng(zlib.crc32(repr((reset_after, reverse, lengths, mask, acts, batch)).encode()))
    args, kwargs = random_problem(rng, batch, 6, 5, 7, reset_after=reset_after, lengths=lengths,
                                  mask=mask, dtype=dtype)
    kwargs.update(reverse=reverse, activation=acts[0], recurrent_activation=acts[1])
    dy = rng.standard_normal((batch, 6, 7)).astype(dtype)
    dh = rng.standard_normal((batch, 7)).astype(dtype)
    expected = forward_backward(cgru.get_ops("numpy"), args, kwargs, dy, dh)
    got = forward_backward(cgru.get_ops("cpu"), args, kwargs, dy, dh)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    names = ["y", "h_n", "dx", "dh0", "dkernel", "drecurrent_kernel", "dbias"]
    for name, e, g in zip(names, expected, got):
        assert g.dtype == dtype, name
        np.testing.assert_allclose(g, e, rtol=tol, atol=tol * max(1, np.abs(e).max()), err_msg=name)


@requires_compiled
@pytest.mark.parametrize("steps_per_chunk", [1, 3])
@pytest.mark.parametrize("reset_after,reverse,lengths,mask", list(itertools.product([True, False], repeat=4)))
def test_backward_in_chunks_of_steps_matches_reference(steps_per_chunk, reset_after, reverse, lengths, mask):
    """The recurrent weight gradient folded in every few steps (as for long sequences and big
    batches) equals the float64 reference; 7 steps in chunks of 3 leave a short last chunk."""
    from cgru import _engine

    batch, time, units = 3, 7, 5
    config = (steps_per_chunk, reset_after, reverse, lengths, mask)
    rng = np.random.default_rng(zlib.crc32(repr(config).encode()))
    args, kwargs = random_problem(rng, batch, time, 4, units, reset_after=reset_after, lengths=lengths,
                                  mask=mask)
    kwargs.update(reverse=reverse)
    dy = rng.standard_normal((batch, time, units))
    dh = rng.standard_normal((batch, units))
    expected = forward_backward(cgru.get_ops("numpy"), args, kwargs, dy, dh)
    old = _engine.set_grad_chunk_floats(steps_per_chunk * batch * 3 * units - 1)  # chunk = floats // row + 1
    try:
        got = forward_backward(cgru.get_ops("cpu"), args, kwargs, dy, dh)
    finally:
        _engine.set_grad_chunk_floats(old)
    names = ["y", "h_n", "dx", "dh0", "dkernel", "drecurrent_kernel", "dbias"]
    for name, e, g in zip(names, expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12 * max(1, np.abs(e).max()), err_msg=name)
    with pytest.raises(ValueError, match="floats must be >= 1"):
        _engine.set_grad_chunk_floats(0)


@requires_compiled
@pytest.mark.parametrize("shape", [(3, 40, 16, 32), (2, 9, 64, 130), (17, 3, 1, 5)])
def test_compiled_matches_reference_larger(shape, rng):
    batch, time, features, units = shape
    args, kwargs = random_problem(rng, batch, time, features, units, lengths=True, dtype=np.float32)
    dy = rng.standard_normal((batch, time, units)).astype(np.float32)
    expected = forward_backward(cgru.get_ops("numpy"), args, kwargs, dy, None)
    got = forward_backward(cgru.get_ops("cpu"), args, kwargs, dy, None)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4 * max(1, np.abs(e).max()))


@pytest.mark.parametrize("reset_after,reverse,acts", [
    (True, False, ("tanh", "sigmoid")),
    (True, True, ("tanh", "hard_sigmoid")),
    (False, False, ("tanh", "sigmoid")),
    (False, True, ("linear", "sigmoid")),
])
def test_finite_difference_gradients(ops, rng, reset_after, reverse, acts):
    args, kwargs = random_problem(rng, 3, 4, 3, 4, reset_after=reset_after, lengths=True, mask=True)
    kwargs["lengths"] = np.array([4, 2, 0])
    kwargs.update(reverse=reverse, activation=acts[0], recurrent_activation=acts[1])
    x, kernel, recurrent, bias = args
    h0 = kwargs.pop("h0")
    dy = rng.standard_normal((3, 4, 4))
    dh = rng.standard_normal((3, 4))

    def loss():
        y, h, _ = ops.gru_forward(x, kernel, recurrent, bias, h0=h0, **kwargs)
        return float(np.sum(to_host(y) * dy) + np.sum(to_host(h) * dh))

    _, _, cache = ops.gru_forward(x, kernel, recurrent, bias, h0=h0, training=True, **kwargs)
    grads = ops.gru_backward(dy, dh, cache)
    checks = [("x", x, grads.dx), ("h0", h0, grads.dh0), ("kernel", kernel, grads.dkernel),
              ("recurrent_kernel", recurrent, grads.drecurrent_kernel), ("bias", bias, grads.dbias)]
    for name, array, analytic in checks:
        np.testing.assert_allclose(to_host(analytic), numeric_gradient(loss, array), rtol=1e-5, atol=1e-7,
                                   err_msg=name)


def cho_gru_loop(x, kernel, recurrent, bias, h0):
    """reset_after=False written out one sequence, one step and one unit block at a time."""
    units = recurrent.shape[0]
    blocks = lambda m: (m[..., :units], m[..., units:2 * units], m[..., 2 * units:])  # noqa: E731
    W_z, W_r, W_h = blocks(kernel)
    U_z, U_r, U_h = blocks(recurrent)
    b_z, b_r, b_h = blocks(bias)
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    ys, finals = [], []
    for seq, h in zip(x, h0):
        out = []
        for x_t in seq:
            z = sigmoid(x_t @ W_z + b_z + h @ U_z)
            r = sigmoid(x_t @ W_r + b_r + h @ U_r)
            candidate = np.tanh(x_t @ W_h + b_h + (r * h) @ U_h)
            h = z * h + (1 - z) * candidate
            out.append(h)
        ys.append(out)
        finals.append(h)
    return np.array(ys), np.array(finals)


def test_reset_before_matches_independent_loop(ops, rng):
    args, kwargs = random_problem(rng, 3, 8, 4, 5, reset_after=False)
    y, h, _ = ops.gru_forward(*args, h0=kwargs["h0"], reset_after=False)
    y_ref, h_ref = cho_gru_loop(*args, kwargs["h0"])
    np.testing.assert_allclose(to_host(y), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_host(h), h_ref, rtol=1e-12, atol=1e-12)


def test_lengths_semantics(ops, rng):
    """Padded rows with lengths equal each sequence run alone, unpadded; zero length keeps h0."""
    args, kwargs = random_problem(rng, 4, 6, 3, 5)
    x, kernel, recurrent, bias = args
    h0 = kwargs["h0"]
    lengths = np.array([6, 3, 0, 1])
    for reverse in (False, True):
        y, h, _ = ops.gru_forward(x, kernel, recurrent, bias, h0=h0, lengths=lengths, reverse=reverse)
        y, h = to_host(y), to_host(h)
        for b, n in enumerate(lengths):
            y_alone, h_alone, _ = ops.gru_forward(x[b:b + 1, :n], kernel, recurrent, bias, h0=h0[b:b + 1],
                                                  reverse=reverse)
            np.testing.assert_allclose(y[b, :n], to_host(y_alone)[0], rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(y[b, n:], 0)
            np.testing.assert_allclose(h[b], to_host(h_alone)[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(h[2], h0[2])


def test_reverse_without_lengths_is_flipped_forward(ops, rng):
    args, kwargs = random_problem(rng, 2, 5, 3, 4)
    x = args[0]
    y_rev, h_rev, _ = ops.gru_forward(*args, h0=kwargs["h0"], reverse=True)
    y_fwd, h_fwd, _ = ops.gru_forward(np.ascontiguousarray(x[:, ::-1]), *args[1:], h0=kwargs["h0"])
    np.testing.assert_allclose(to_host(y_rev), to_host(y_fwd)[:, ::-1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_host(h_rev), to_host(h_fwd), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch,time", [(0, 4), (3, 0), (0, 0)])
def test_empty_batch_or_time(ops, rng, batch, time):
    x = np.zeros((batch, time, 3), np.float32)
    kernel, recurrent = rng.standard_normal((3, 6)), rng.standard_normal((2, 6))
    h0 = rng.standard_normal((batch, 2)).astype(np.float32)
    y, h, cache = ops.gru_forward(x, kernel, recurrent, None, h0=h0, training=True)
    assert to_host(y).shape == (batch, time, 2)
    np.testing.assert_array_equal(to_host(h), h0)
    grads = ops.gru_backward(np.ones((batch, time, 2)), np.ones((batch, 2)), cache)
    np.testing.assert_array_equal(to_host(grads.dh0), np.ones((batch, 2)))
    np.testing.assert_array_equal(to_host(grads.dkernel), 0)
    assert grads.dbias is None


def test_no_bias_equals_zero_bias(ops, rng):
    args, kwargs = random_problem(rng, 2, 4, 3, 4)
    x, kernel, recurrent, _ = args
    y1, _, _ = ops.gru_forward(x, kernel, recurrent, None)
    y2, _, _ = ops.gru_forward(x, kernel, recurrent, np.zeros((2, 12)))
    np.testing.assert_array_equal(to_host(y1), to_host(y2))


def test_dtype_and_layout_conversion(ops, rng):
    """float32 stays float32, ints become float32, non-contiguous input gives the same answer."""
    args, kwargs = random_problem(rng, 3, 5, 4, 6, dtype=np.float32)
    x, kernel, recurrent, bias = args
    y, h, _ = ops.gru_forward(x, kernel, recurrent, bias)
    assert to_host(y).dtype == np.float32 and to_host(h).dtype == np.float32
    wide = np.zeros((3, 10, 8), np.float32)
    wide[:, ::2, ::2] = x
    y_strided, _, _ = ops.gru_forward(wide[:, ::2, ::2], kernel, recurrent, bias)
    np.testing.assert_array_equal(to_host(y_strided), to_host(y))
    time_major = np.ascontiguousarray(x.transpose(1, 0, 2))
    y_view, _, _ = ops.gru_forward(time_major.transpose(1, 0, 2), kernel, recurrent, bias)
    np.testing.assert_array_equal(to_host(y_view), to_host(y))
    y_int, _, _ = ops.gru_forward(np.ones((1, 2, 4), np.int64), kernel, recurrent, bias)
    assert to_host(y_int).dtype == np.float32
    y64, _, _ = ops.gru_forward(x.astype(np.float64), kernel, recurrent, bias)
    assert to_host(y64).dtype == np.float64
    np.testing.assert_allclose(to_host(y64), to_host(y), rtol=1e-5, atol=1e-5)


GOOD = {"x": np.zeros((2, 3, 4)), "kernel": np.zeros((4, 15)), "recurrent_kernel": np.zeros((5, 15)),
        "bias": np.zeros((2, 15))}

BAD_INPUTS = [
    ({"x": np.zeros((3, 4))}, {}, ValueError, "x must be 3-D"),
    ({"x": np.zeros((2, 3, 4), dtype=object)}, {}, TypeError, "x must be a numeric array"),
    ({"x": [["a"]]}, {}, TypeError, "x must be a numeric array"),
    ({"x": None}, {}, TypeError, "x must be an array"),
    ({"kernel": np.zeros((3, 15))}, {}, ValueError, r"kernel must have shape .* = \(4, 15\)"),
    ({"recurrent_kernel": np.zeros((5, 14))}, {}, ValueError, r"recurrent_kernel must have shape \(units"),
    ({"recurrent_kernel": np.zeros((0, 0))}, {}, ValueError, "at least one unit"),
    ({"bias": np.zeros(15)}, {}, ValueError, r"bias must have shape \(2, 15\) when reset_after=True"),
    ({}, {"reset_after": False}, ValueError, r"bias must have shape \(15,\) when reset_after=False"),
    ({}, {"h0": np.zeros((2, 4))}, ValueError, r"h0 must have shape \(batch, units\) = \(2, 5\)"),
    ({}, {"lengths": [3]}, ValueError, r"lengths must have one entry per sequence: expected shape \(2,\)"),
    ({}, {"lengths": [3, 4]}, ValueError, r"lengths must be in 0..3"),
    ({}, {"lengths": [-1, 2]}, ValueError, r"lengths must be in 0..3"),
    ({}, {"lengths": [1.5, 2]}, TypeError, "lengths must be integers"),
    ({}, {"lengths": ["a", "b"]}, TypeError, "lengths must be integers"),
    ({}, {"lengths": [[1, 2]]}, ValueError, "lengths must have one entry per sequence"),
    ({}, {"activation": "gelu"}, ValueError, "activation must be one of"),
    ({}, {"recurrent_activation": "tanh"}, ValueError, "recurrent_activation must be one of"),
    ({}, {"recurrent_mask": np.ones((2, 3))}, ValueError, r"recurrent_mask must have shape \(batch, units\)"),
]


@pytest.mark.parametrize("arrays,options,error,message", BAD_INPUTS)
def test_bad_input_is_rejected(ops, arrays, options, error, message):
    merged = {**GOOD, **arrays}
    with pytest.raises(error, match=message):
        ops.gru_forward(merged["x"], merged["kernel"], merged["recurrent_kernel"], merged["bias"], **options)


def test_bad_upstream_gradients_are_rejected(ops, rng):
    args, kwargs = random_problem(rng, 2, 3, 4, 5)
    _, _, cache = ops.gru_forward(*args, training=True, **kwargs)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 5\)"):
        ops.gru_backward(np.zeros((2, 3, 4)), None, cache)
    with pytest.raises(ValueError, match=r"dh_n must have shape \(2, 5\)"):
        ops.gru_backward(None, np.zeros(5), cache)
    with pytest.raises(TypeError, match="dy must be a numeric array"):
        ops.gru_backward(np.array([["x"]]), None, cache)


def test_float_lengths_with_integral_values_are_accepted(ops, rng):
    args, kwargs = random_problem(rng, 2, 3, 4, 5)
    y1, _, _ = ops.gru_forward(*args, lengths=np.array([3.0, 1.0]))
    y2, _, _ = ops.gru_forward(*args, lengths=[3, 1])
    np.testing.assert_array_equal(to_host(y1), to_host(y2))


@requires_compiled
def test_native_driver_checks_sizes():
    """The Cython layer checks every size itself, even when called directly."""
    from cgru import _engine

    f = np.float32
    x, W, U = np.zeros((2, 3, 4), f), np.zeros((4, 15), f), np.zeros((5, 15), f)
    b, h0 = np.zeros(15, f), np.zeros((2, 5), f)
    ok = (x, W, U, b, b, h0, None, None, False, True, "tanh", "sigmoid", False)
    _engine.gru_forward(*ok)
    cases = [
        (1, np.zeros((4, 12), f), "kernel"), (2, np.zeros((5, 12), f), "recurrent_kernel"),
        (3, np.zeros(14, f), "input_bias"), (5, np.zeros((3, 5), f), "h0"),
        (6, np.array([3, 4]), "lengths"), (6, np.array([1]), "lengths"),
        (7, np.zeros((2, 4), f), "recurrent_mask"),
    ]
    for position, value, name in cases:
        args = list(ok)
        args[position] = value
        with pytest.raises(ValueError, match=name):
            _engine.gru_forward(*args)
    with pytest.raises(ValueError, match="activation"):
        _engine.gru_forward(*ok[:10], "gelu", "sigmoid", False)
    y, h, sh, sg = _engine.gru_forward(*ok[:12], True)
    with pytest.raises(ValueError, match="saved_gates"):
        _engine.gru_backward(x, W, U, None, sh, sg[:, :, :10].copy(), None, None, None, False, True,
                             "tanh", "sigmoid")
    with pytest.raises(ValueError, match="dy"):
        _engine.gru_backward(x, W, U, None, sh, sg, np.zeros((2, 3, 4), f), None, None, False, True,
                             "tanh", "sigmoid")


@requires_compiled
def test_size_check_is_exact_and_spares_calls_without_time_steps():
    """Sizes are checked in exact arithmetic, never wrapped or truncated to the C code's ints:
    a batch * time * width past 2^31 - 1 is refused with a ValueError (also when the product
    overflows 64 bits), and with no time steps, where nothing is computed, any batch is
    accepted."""
    from cgru import _engine

    limit = 2**31 - 1
    _engine.check_sizes(limit // 64, 1, 8, 16)  # rows of max(8, 4 * 16) = 64 values
    with pytest.raises(ValueError, match="too large"):
        _engine.check_sizes(limit // 64 + 1, 1, 8, 16)
    for batch, time in [(2**32 + 3, 1), (1, 2**31), (2**40, 2**40), (2**33, 2**33)]:
        with pytest.raises(ValueError, match="too large"):
            _engine.check_sizes(batch, time, 1, 1)
    with pytest.raises(ValueError, match="too large"):
        _engine.check_sizes(1, 1, 2**29, 1)  # weights' columns
    for batch in (2**31, 2**32 + 3, 2**62):
        _engine.check_sizes(batch, 0, 8, 16)


@requires_compiled
def test_no_time_steps_give_the_initial_state_on_every_entry_point(rng):
    """With T = 0 the final state is the initial one and the output is empty, whichever way
    the engine is called, even into output arrays holding garbage."""
    from cgru import _engine

    x = np.zeros((5, 0, 3), np.float32)
    kernel = rng.standard_normal((3, 96)).astype(np.float32)
    recurrent = rng.standard_normal((32, 96)).astype(np.float32)
    bias = rng.standard_normal((2, 96)).astype(np.float32)
    h0 = rng.standard_normal((5, 32)).astype(np.float32)
    out = (np.full((5, 0, 32), np.nan, np.float32), np.full((5, 32), np.nan, np.float32))
    y, h, _, _ = _engine.gru_forward(x, kernel, recurrent, bias[0], bias[1], h0, None, None, False, True,
                                     "tanh", "sigmoid", False, out)
    assert y.shape == (5, 0, 32)
    np.testing.assert_array_equal(h, h0)
    state = h0.copy()
    inference = _engine.GRUInference(kernel, recurrent, bias[0], bias[1], False, True, "tanh", "sigmoid")
    assert inference.forward(x, state).shape == (5, 0, 32)
    np.testing.assert_array_equal(state, h0)
    if _engine.UNIT_PAIR:
        split = _engine.UnitSplitForward(x[:1], kernel, recurrent, bias[0], bias[1], h0[:1], None, False,
                                         "tanh", "sigmoid", 2)
        assert split.run_pair()
        np.testing.assert_array_equal(split.h_n, h0[:1])


@requires_compiled
def test_concurrent_calls_on_shared_weights(rng):
    ops = cgru.get_ops("cpu")
    problems = [random_problem(rng, 3, 20, 8, 16, lengths=True, dtype=np.float32) for _ in range(8)]
    serial = [to_host(ops.gru_forward(*a, **k)[0]) for a, k in problems]
    shared_weights = problems[0][0][1:]
    serial_shared = [to_host(ops.gru_forward(a[0], *shared_weights, **k)[0]) for a, k in problems]
    results = {}

    def work(i):
        for _ in range(20):
            a, k = problems[i]
            results[i] = to_host(ops.gru_forward(a[0], *shared_weights, **k)[0])

    run_concurrently(work, len(problems))
    for i in range(len(problems)):
        np.testing.assert_array_equal(results[i], serial_shared[i])
    assert len(serial) == len(problems)


def as_float64(args, kwargs):
    cast = lambda v: v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype == np.float32 else v  # noqa: E731
    return [cast(a) for a in args], {k: cast(v) for k, v in kwargs.items()}


@pytest.mark.parametrize("isa", supported_isas())
@pytest.mark.parametrize("batch,units,lengths",
                         [(1, 64, False), (1, 37, False), (5, 33, True), (8, 128, True), (13, 50, True)])
@pytest.mark.parametrize("reset_after", [True, False])
def test_every_instruction_set_variant_matches_reference(isa, batch, units, lengths, reset_after):
    """The float32 gate passes and per-step products (packed recurrent kernel, batch-1 product)
    are compiled per instruction set: each one's error against a float64 reference stays of the
    order of the float32 reference's own error. The sizes leave partial register tiles and
    partial column panels."""
    from cgru import _engine

    rng = np.random.default_rng(units)
    # weights at the scale initialisers give, so that rounding is not amplified chaotically
    args, kwargs = random_problem(rng, batch, 7, 9, units, lengths=lengths, dtype=np.float32,
                                  scale=2 / np.sqrt(units), reset_after=reset_after)
    dy = rng.standard_normal((batch, 7, units)).astype(np.float32)
    reference = cgru.get_ops("numpy")
    exact = forward_backward(reference, *as_float64(args, kwargs), dy.astype(np.float64), None)
    rounded = forward_backward(reference, args, kwargs, dy, None)
    previous = _engine.get_isa()
    _engine.set_isa(isa)
    try:
        assert _engine.get_isa() == isa
        got = forward_backward(cgru.get_ops("cpu"), args, kwargs, dy, None)
    finally:
        _engine.set_isa(previous)
    for name, e, r, g in zip(["y", "h_n", "dx", "dh0", "dW", "dU", "db"], exact, rounded, got):
        scale = np.abs(e).max()
        reference_error = np.abs(r - e).max() / scale
        assert np.abs(g - e).max() / scale <= 5 * reference_error + 1e-6, name


@requires_compiled
def test_unsupported_isa_is_refused():
    from cgru import _engine

    with pytest.raises(ValueError, match="isa must be one of"):
        _engine.set_isa("sse9")


@requires_compiled
@pytest.mark.parametrize("function,reference", [
    ("exp", lambda x: np.exp(np.clip(x, -87, 88))),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    ("tanh", np.tanh),
])
def test_vectorised_math_accuracy_over_whole_range(function, reference):
    """The engine's own float32 exp/sigmoid/tanh: within a few ulps everywhere, saturating
    correctly, and NaN-propagating."""
    from cgru import _engine

    x = np.concatenate([np.linspace(-120, 120, 1_000_001), np.geomspace(1e-30, 1, 2001),
                        -np.geomspace(1e-30, 1, 2001), [0.0, -0.0]]).astype(np.float32)
    got = _engine.vector_math(function, x).astype(np.float64)
    expected = reference(x.astype(np.float64))
    normal = np.abs(expected) > np.finfo(np.float32).tiny
    relative = np.abs(got - expected)[normal] / np.abs(expected)[normal]
    assert relative.max() < 4e-7, x[normal][relative.argmax()]
    assert np.all(np.abs(got - expected)[~normal] < 1e-37)
    special = _engine.vector_math(function, np.array([np.nan, np.inf, -np.inf], np.float32))
    assert np.isnan(special[0])
    if function == "tanh":
        np.testing.assert_array_equal(special[1:], [1, -1])
    if function == "sigmoid":
        assert special[1] == 1 and 0 <= special[2] < 1e-37


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reset_after,reverse", [(True, False), (True, True), (False, False)])
def test_prepared_gru_matches_forward(ops, rng, dtype, reset_after, reverse):
    args, kwargs = random_problem(rng, 3, 6, 4, 5, reset_after=reset_after, dtype=dtype)
    x, kernel, recurrent, bias = args
    h0 = kwargs["h0"]
    lengths = np.array([6, 2, 0])
    expected_y, expected_h, _ = ops.gru_forward(*args, h0=h0, lengths=lengths, reverse=reverse,
                                                reset_after=reset_after)
    prepared = ops.prepare_gru(kernel, recurrent, bias, reverse=reverse, reset_after=reset_after)
    h = h0.copy()
    y = prepared.forward(x, h, lengths)
    np.testing.assert_allclose(to_host(y), to_host(expected_y), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h, to_host(expected_h), rtol=1e-6, atol=1e-6)


def test_prepared_gru_streams_one_step_at_a_time(ops, rng):
    """Feeding one step per call, carrying the state in place, equals one call on the sequence."""
    args, kwargs = random_problem(rng, 2, 9, 3, 6, dtype=np.float32)
    x = args[0]
    full_y, full_h, _ = ops.gru_forward(*args)
    prepared = ops.prepare_gru(*args[1:])
    h = np.zeros((2, 6), np.float32)
    steps = [to_host(prepared.forward(x[:, t:t + 1], h))[:, 0] for t in range(9)]
    np.testing.assert_allclose(np.stack(steps, axis=1), to_host(full_y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, to_host(full_h), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prepared_gru_step_state_returns_the_new_state(ops, rng, dtype):
    """step_state (the stateful streaming call) runs one step of one sequence: h becomes the new
    state and a (1, H) array of its own holds it, equal to forward's output; anything else is
    declined with None and nothing run (always, on a backend without such a path)."""
    args, _ = random_problem(rng, 1, 3, 4, 5, dtype=dtype)
    prepared = ops.prepare_gru(*args[1:])
    x = np.ascontiguousarray(args[0][:, :1])
    h0 = rng.standard_normal((1, 5)).astype(dtype)
    expected_h = h0.copy()
    expected = to_host(prepared.forward(x, expected_h))[:, 0]
    declined = [
        (args[0], h0),  # three steps
        (np.concatenate([x, x]), np.concatenate([h0, h0])),  # two sequences
        (x.astype(np.float32 if dtype == np.float64 else np.float64), h0),  # another dtype
        (np.zeros((1, 1, 8), dtype)[..., ::2], h0),  # not contiguous
        (x[0], h0),  # no batch axis
        (x, np.concatenate([h0, h0])),  # a state for two sequences
    ]
    for x_in, h_in in declined:
        h = h_in.copy()
        assert prepared.step_state(x_in, h) is None
        np.testing.assert_array_equal(h, h_in)
    h = h0.copy()
    out = prepared.step_state(x, h)
    if out is None:  # the backend has no lean path: forward serves
        np.testing.assert_array_equal(h, h0)
        return
    out = to_host(out)
    assert out.shape == (1, 5) and out.dtype == dtype and not np.shares_memory(out, h)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(h, expected_h)


def test_prepared_gru_rejects_bad_input(ops, rng):
    args, _ = random_problem(rng, 2, 3, 4, 5, dtype=np.float32)
    with pytest.raises(ValueError, match="recurrent_kernel must have shape"):
        ops.prepare_gru(args[1], args[2][:, :10], args[3])
    with pytest.raises(ValueError, match="activation must be one of"):
        ops.prepare_gru(*args[1:], activation="gelu")
    prepared = ops.prepare_gru(*args[1:])
    h = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match="x must"):
        prepared.forward(np.zeros((2, 3, 7), np.float32), h)
    with pytest.raises(ValueError, match="h"):
        prepared.forward(args[0], np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="lengths"):
        prepared.forward(args[0], h, [1, 9])
    one_step = np.ascontiguousarray(args[0][:1, :1])
    state = np.zeros((1, 5), np.float32)
    state.flags.writeable = False  # the state is updated in place: a read-only one is refused
    for x_in in (one_step, args[0]):
        with pytest.raises(TypeError, match="h must be a writable"):
            prepared.forward(x_in, state)
    with pytest.raises(TypeError, match="h must be"):
        prepared.forward(one_step, np.zeros((1, 5), np.float64))
    with pytest.raises(ValueError, match="h must have shape"):
        prepared.forward(one_step, np.zeros((1, 4), np.float32))
    assert not state.any()


@requires_compiled
def test_engine_forward_fills_a_given_output(rng):
    """GRUInference.forward(out=...) writes y into the caller's array (the rows of one output
    that parallel pieces share), zeroing it first when lengths are given."""
    from cgru import _engine

    args, _ = random_problem(rng, 3, 4, 2, 5, dtype=np.float32)
    x, kernel, recurrent, bias = args
    inference = _engine.GRUInference(kernel, recurrent, bias[0].copy(), bias[1].copy(), False, True,
                                     "tanh", "sigmoid")
    lengths = np.array([4, 2, 0])
    expected = inference.forward(x, np.zeros((3, 5), np.float32), lengths)
    out = np.full((3, 4, 5), np.nan, np.float32)
    assert inference.forward(x, np.zeros((3, 5), np.float32), lengths, out) is out
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(TypeError, match="out must be"):
        inference.forward(x, np.zeros((3, 5), np.float32), None, np.zeros((3, 4, 5)))
    with pytest.raises(ValueError, match="out must have shape"):
        inference.forward(x, np.zeros((3, 5), np.float32), None, np.zeros((3, 4, 6), np.float32))


def test_prepared_gru_converts_what_the_streaming_path_declines(ops, rng):
    """A one-step input of another dtype, or not contiguous, takes the converting path and gives
    the same result as a float32 contiguous one."""
    args, _ = random_problem(rng, 1, 4, 6, 8, dtype=np.float32)
    prepared = ops.prepare_gru(*args[1:])
    step = np.ascontiguousarray(args[0][:, :1])
    expected_h = np.zeros((1, 8), np.float32)
    expected = to_host(prepared.forward(step, expected_h))
    wide = np.zeros((1, 1, 12), np.float32)
    wide[..., ::2] = step
    for x_in in (step.astype(np.float64), wide[..., ::2], step.tolist()):
        h = np.zeros((1, 8), np.float32)
        np.testing.assert_array_equal(to_host(prepared.forward(x_in, h)), expected)
        np.testing.assert_array_equal(h, expected_h)


def test_backward_without_input_gradient(ops, rng):
    """input_grad=False skips dx and leaves every other gradient as it was."""
    args, kwargs = random_problem(rng, 3, 5, 4, 6, lengths=True, dtype=np.float32)
    _, _, cache = ops.gru_forward(*args, training=True, **kwargs)
    dy = rng.standard_normal((3, 5, 6)).astype(np.float32)
    full = ops.gru_backward(dy, None, cache)
    partial = ops.gru_backward(dy, None, cache, input_grad=False)
    assert partial.dx is None and full.dx is not None
    for name in ("dh0", "dkernel", "drecurrent_kernel", "dbias"):
        np.testing.assert_array_equal(to_host(getattr(partial, name)), to_host(getattr(full, name)))


@requires_compiled
def test_vectorised_math_of_nan_is_nan_and_spares_its_neighbours():
    """NaN of either sign among ordinary values, in the vectorised loop's body and its tail,
    gives NaN, and the other lanes are what they are without it. (The exponent of NaN must not
    be converted to an integer: that is undefined, and the sanitizer build aborts on it.)"""
    from cgru import _engine

    x = np.linspace(-100, 100, 67).astype(np.float32)
    nan = np.zeros_like(x, dtype=bool)
    nan[::5], nan[3::7] = True, True
    with_nan = x.copy()
    with_nan[::5] = np.nan
    with_nan[3::7] = np.copysign(np.float32(np.nan), np.float32(-1))
    for function in ("exp", "sigmoid", "tanh"):
        got = _engine.vector_math(function, with_nan)
        assert np.isnan(got[nan]).all(), function
        np.testing.assert_array_equal(got[~nan], _engine.vector_math(function, x)[~nan])


@requires_compiled
@pytest.mark.parametrize("isa", supported_isas())
@pytest.mark.parametrize("reset_after", [True, False])
def test_nan_input_through_predict_matches_the_reference(isa, reset_after):
    """NaN in x reaches the outputs of predict and of a call exactly where the NumPy reference
    puts it (from the NaN step on, in that sequence only), on every instruction-set variant of
    the gate passes."""
    from cgru import _engine

    rng = np.random.default_rng(31)
    model = cgru.Sequential([cgru.layers.GRU(40, return_sequences=True, reset_after=reset_after, seed=4,
                                             input_shape=(None, 6))])
    x = rng.standard_normal((3, 9, 6)).astype(np.float32)
    x[1, 4, 2] = np.nan
    expected = model.to("numpy").predict(x, verbose=0)
    model.to("cpu")
    previous = _engine.get_isa()
    _engine.set_isa(isa)
    try:
        outputs = [model.predict(x, verbose=0), to_host(model(x))]
    finally:
        _engine.set_isa(previous)
    assert np.isnan(expected[1, 4:]).all() and not np.isnan(np.delete(expected, 1, axis=0)).any()
    for got in outputs:
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got, expected, atol=2e-5)
