"""The reduced-precision engine (bfloat16 and int8 weights): the NumPy reference of each mode's
numerics (cgru.backends.quantize) against independent definitions, and every compiled kernel
variant this CPU runs (plus the portable C one) against that reference.

Tolerances. bfloat16 products of two bfloat16 values are exact in float32, so a kernel's
product differs from the exactly summed one by float32 summation error only, at most
gamma(K) * sum_k |a_k b_k| with gamma(K) = K u / (1 - K u), u = 2^-24; int8 products are exact
integers with the same float32 epilogue, so they must agree bit for bit. The forward checks
each step from the kernel's own previous state (its output), so that float32-level
differences in the gate math do not compound over the sequence: each step may then differ by
the products' bound carried through the gates (at most 1 + |u_h| per unit of pre-activation
error) plus the float32 gate math's few ulps. With reset_after=False the product of r * h also
depends on r, computed by the kernel in float32 and by the reference in float64: an element of
r * h within a few float32 ulps of a rounding boundary of its mode may round the other way,
and those elements may add one quantum times their weights.
"""

import numpy as np
import pytest
from isas import supported_isas

import cgru
from cgru.backends import compiled_available
from cgru.backends.quantize import (
    QuantizedMatrix,
    bfloat16_values,
    quantize_gru,
    quantize_int8_columns,
    quantize_int8_rows,
    reference_forward,
    round_bfloat16,
)

requires_compiled = pytest.mark.skipif(not compiled_available(), reason="compiled engine not built")
MODES = ("bfloat16", "int8")
U32 = 2.0 ** -24  # float32 unit roundoff
GATE_MATH = 4e-6  # float32 gate math (the engine's exp/sigmoid/tanh: a few ulps) on |h| <= 1


@pytest.fixture
def isa_level(request):
    from cgru import _engine

    previous = _engine.get_isa()
    _engine.set_isa(request.param)
    yield request.param
    _engine.set_isa(previous)


def gamma(k):
    return k * U32 / (1 - k * U32)


# --------------------------------------------------------------------------------------------
# The NumPy reference against independent definitions
# --------------------------------------------------------------------------------------------


SPECIAL = np.array([0.0, -0.0, 1.0, -2.5, 1e-40, -1e-45, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan,
                    1.00390625, 1.01171875, 1.0 + 2 ** -8 + 2 ** -20], np.float32)


def test_bfloat16_rounding_is_round_to_nearest_even():
    """Against an independent bfloat16 type (ml_dtypes, or PyTorch's) on random values over the
    whole range, ties both ways, subnormals, overflow to infinity and NaN."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2 ** 32, 200_000, dtype=np.uint64).astype(np.uint32)
    values = np.concatenate([bits.view(np.float32), SPECIAL])
    got = round_bfloat16(values)
    try:
        import ml_dtypes

        with np.errstate(invalid="ignore"):
            expected = values.astype(ml_dtypes.bfloat16).view(np.uint16)
    except ImportError:
        torch = pytest.importorskip("torch")
        expected = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    nan = np.isnan(values)
    assert np.array_equal(got[~nan], expected[~nan])
    assert np.all(np.isnan(bfloat16_values(got[nan])))
    # ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and goes to the even one (1)
    assert bfloat16_values(round_bfloat16(np.float32(1.00390625))) == 1.0
    assert bfloat16_values(round_bfloat16(np.float32(1.01171875))) == 1.015625


def test_int8_weight_quantization_is_per_column_symmetric():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((37, 20)) * rng.uniform(0.01, 3, 20)
    w[:, 3] = 0.0
    q, scale = quantize_int8_columns(w)
    assert q.dtype == np.int8 and scale.dtype == np.float32 and scale.shape == (20,)
    assert np.abs(q.astype(int)).max() <= 127
    nonzero = np.arange(20) != 3
    assert np.all(np.abs(q[:, nonzero]).max(axis=0) == 127)  # each column's largest weight
    assert scale[3] == 0 and np.all(q[:, 3] == 0)
    np.testing.assert_allclose(scale[nonzero], np.abs(w[:, nonzero]).max(axis=0) / 127, rtol=1e-7)
    # nearest: the error of every weight is at most half a step of its column
    err = np.abs(q * scale.astype(np.float64) - w)
    assert np.all(err <= scale.astype(np.float64) / 2 * (1 + 1e-6) + 1e-12)
    with pytest.raises(ValueError, match="finite"):
        quantize_int8_columns(np.array([[np.nan]]))


def scalar_int8_row(a):
    """quant.h's row quantization, one value at a time in float32."""
    a = [np.float32(v) for v in a]
    if not all(np.isfinite(v) for v in a):
        return [0] * len(a), np.float32(np.nan)
    m = max(abs(v) for v in a)
    with np.errstate(over="ignore", divide="ignore"):
        inv = np.float32(127) / m if m > 0 else np.float32(0)
    if np.isinf(inv):
        inv = np.float32(0)
    q = [int(np.clip(np.rint(np.float32(v * inv)), -127, 127)) for v in a]
    return q, np.float32(m / np.float32(127))


def test_int8_row_quantization_matches_its_scalar_definition():
    rng = np.random.default_rng(2)
    rows = [rng.standard_normal(33).astype(np.float32) for _ in range(20)]
    rows += [np.zeros(5, np.float32), np.array([1e-38, -3e-38, 0], np.float32),
             np.array([1, np.nan, 2], np.float32), np.array([np.inf, 1], np.float32),
             np.array([0.5, 1.5, -0.5, 127 / 254], np.float32) * np.float32(254 / 127)]
    for row in rows:
        q, scale = quantize_int8_rows(row[None])
        q_ref, scale_ref = scalar_int8_row(row)
        assert q[0].tolist() == q_ref
        assert np.array_equal(scale[:1], np.array([scale_ref]), equal_nan=True)


@pytest.mark.parametrize("mode", MODES)
def test_reference_product_is_the_modes_definition(mode):
    """``a @ QuantizedMatrix`` against its definition written out in float64."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 40)).astype(np.float32)
    w = rng.standard_normal((40, 30)).astype(np.float32)
    matrix = QuantizedMatrix.from_float(mode, w)
    got = a.astype(np.float64) @ matrix
    if mode == "bfloat16":
        expected = bfloat16_values(round_bfloat16(a)).astype(np.float64) @ bfloat16_values(round_bfloat16(w))
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-13)
    else:
        q_w, s_w = quantize_int8_columns(w)
        for i in range(6):
            q_a, s_a = scalar_int8_row(a[i])
            sums = np.array(q_a, np.int64) @ q_w.astype(np.int64)
            expected = sums.astype(np.float32) * (np.float32(s_a) * s_w)
            assert np.array_equal(got[i], expected.astype(np.float64))
    assert matrix[:, 5:9].shape == (40, 4)
    np.testing.assert_array_equal(a.astype(np.float64) @ matrix[:, 5:9], got[:, 5:9])


def test_reference_forward_with_exact_weights_is_the_float_reference():
    """With weights and inputs that bfloat16 holds exactly and one step from a zero state, the
    quantized reference is the float64 NumPy backend's forward."""
    rng = np.random.default_rng(4)
    exact = lambda *shape: bfloat16_values(round_bfloat16(rng.standard_normal(shape)))  # noqa: E731
    w, u, b, x = exact(5, 12), exact(4, 12), rng.standard_normal((2, 12)), exact(3, 1, 5)
    weights = quantize_gru(w, u, b, mode="bfloat16")
    y, h_n = reference_forward(weights, x)
    b64 = b.astype(np.float32).astype(np.float64)  # the biases stay float32
    y_ref, h_ref, _ = cgru.get_ops("numpy").gru_forward(x.astype(np.float64), w.astype(np.float64),
                                                         u.astype(np.float64), b64)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n, h_ref, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Compiled kernels: activation conversion and products, every variant
# --------------------------------------------------------------------------------------------


@requires_compiled
@pytest.mark.parametrize("isa_level", supported_isas(), indirect=True)
@pytest.mark.parametrize("mode", MODES)
def test_activation_conversion_matches_reference(isa_level, mode):
    from cgru import _engine

    rng = np.random.default_rng(5)
    a = rng.standard_normal((70, 37)).astype(np.float32) * rng.uniform(0.001, 100, (70, 1)).astype(np.float32)
    a[0] = 0
    a[1, 3] = np.nan
    a[2, 0] = -np.inf
    a[3] = 1e-39
    a[4, :] = np.concatenate([[127], np.arange(36) - 17.5])  # 127 / m = 1: ties at every .5
    a[5, :4] = SPECIAL[:4]
    values, scales = _engine.quantized_activations(mode, a)
    if mode == "bfloat16":
        assert scales is None
        np.testing.assert_array_equal(values.view(np.uint32) >> 16, round_bfloat16(a).astype(np.uint32))
    else:
        q, row_scale = quantize_int8_rows(a)
        np.testing.assert_array_equal(values, q.astype(np.float32))
        np.testing.assert_array_equal(scales, row_scale)  # NaN rows included


PRODUCT_SHAPES = [(1, 1, 1), (1, 2, 15), (1, 256, 768), (1, 33, 100), (2, 3, 16), (7, 5, 17), (9, 31, 48),
                  (8, 64, 50), (65, 257, 33), (130, 64, 96)]


@requires_compiled
@pytest.mark.parametrize("isa_level", supported_isas(), indirect=True)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("m,k,n", PRODUCT_SHAPES)
def test_product_matches_reference(isa_level, mode, m, k, n):
    """Every kernel variant's product (register tiles, partial tiles and panels, the row kernel
    for one row, odd K) against the reference: bfloat16 within float32 summation error, int8
    bit for bit."""
    from cgru import _engine

    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    matrix = QuantizedMatrix.from_float(mode, w)
    got = _engine.quantized_matmul(mode, a, matrix.values, matrix.scale)
    if mode == "bfloat16":
        exact = a.astype(np.float64) @ matrix
        assert np.all(np.abs(got - exact) <= product_bound(mode, a.astype(np.float64), matrix) + 1e-30)
    else:
        np.testing.assert_array_equal(got, a @ matrix)


@requires_compiled
def test_product_propagates_nan_rows():
    from cgru import _engine

    a = np.ones((3, 4), np.float32)
    a[1, 2] = np.nan
    w = np.ones((4, 5), np.float32)
    for mode in MODES:
        m = QuantizedMatrix.from_float(mode, w)
        got = _engine.quantized_matmul(mode, a, m.values, m.scale)
        assert np.all(np.isnan(got[1])) and np.all(np.isfinite(got[[0, 2]])), mode


# --------------------------------------------------------------------------------------------
# Compiled forward, every variant
# --------------------------------------------------------------------------------------------


def step_inputs(weights, x_t, h):
    """What one step's products take: x_t and h (B, I) and (B, H) float64, plus, for
    reset_after=False, r * h as the reference computes it (else None)."""
    if weights.reset_after:
        return None
    from cgru.backends.numpy_ops import activate

    H = weights.units
    a = (x_t @ weights.kernel)[:, H:2 * H] + weights.input_bias[H:2 * H]
    r = activate(weights.recurrent_activation, a + (h @ weights.recurrent_kernel[:, :2 * H])[:, H:])
    return r * h


def product_bound(mode, a, matrix):
    """Per row and column: how far the kernel's product of a (rows, K) may be from the
    reference's (float32 summation of the exact bfloat16 products; int8 exact)."""
    if mode == "int8":
        return np.zeros((a.shape[0], matrix.shape[1]))
    rounded = np.abs(bfloat16_values(round_bfloat16(a)).astype(np.float64))
    return gamma(a.shape[1]) * (rounded @ np.abs(matrix.dequantized().astype(np.float64)))


def flip_allowance(mode, a, matrix, ulps=8):
    """Per row and column: one quantum times the weight for each element of a within `ulps`
    float32 spacings of a rounding boundary of the mode (a computed in float64 here, in float32
    by the kernel)."""
    a32 = a.astype(np.float32)
    weights = np.abs(matrix.dequantized().astype(np.float64))
    if mode == "bfloat16":
        bits = a32.view(np.uint32).astype(np.int64)
        low = bits & 0xFFFF  # distance below the next bfloat16, in float32 spacings
        near = np.abs(low - 0x8000) <= ulps
        quantum = bfloat16_values((bits >> 16).astype(np.uint16)) * 2.0 ** -7
        return (near * np.abs(quantum)) @ weights
    m = np.abs(a32).max(axis=1, keepdims=True).astype(np.float64)
    q_scaled = a32 * (127 / np.where(m > 0, m, 1))
    # a few float32 ulps of a (and of the row's largest |a|) move a * 127 / m by at most that
    # many ulps of 127
    near = np.abs(q_scaled - np.floor(q_scaled) - 0.5) <= ulps * 127 * U32 * 2
    return (near * (m / 127)) @ weights


def check_step_by_step(weights, x, h0, lengths, y, h_n, gate_math=GATE_MATH):
    """Every step of the kernel's output y (B, T, H), from its own state before that step,
    against the reference step, within the bounds of the module docstring; rows past their
    length zero; h_n the last valid state."""
    B, T, _ = x.shape
    H = weights.units
    L = np.full(B, T) if lengths is None else np.asarray(lengths)
    h_prev = h0.astype(np.float64)
    for s in range(T):
        rows = np.flatnonzero(s < L)
        if rows.size == 0:
            break
        t = L[rows] - 1 - s if weights.reverse else np.full(rows.size, s)
        x_t, h = x[rows, t].astype(np.float64), h_prev[rows]
        expected, _ = reference_forward(weights, x_t[:, None, :], h)
        got = y[rows, t]
        bound = product_bound(weights.mode, x_t, weights.kernel) + product_bound(
            weights.mode, h, weights.recurrent_kernel)
        rh = step_inputs(weights, x_t, h)
        if rh is not None:
            u_h = weights.recurrent_kernel[:, 2 * H:]
            bound[:, 2 * H:] += product_bound(weights.mode, rh, u_h) + flip_allowance(weights.mode, rh, u_h)
            u_n = np.abs(rh @ u_h)
        else:
            u_n = np.abs((h @ weights.recurrent_kernel)[:, 2 * H:] + weights.recurrent_bias[2 * H:])
        # per row: a pre-activation error e moves h by at most (1 + |u_h|) e
        tol = (bound.max(axis=1) * (1 + u_n.max(axis=1)))[:, None] * 2 + gate_math
        assert np.all(np.abs(got - expected[:, 0]) <= tol), (s, float(np.abs(got - expected[:, 0]).max()))
        h_prev[rows] = got
    for b in range(B):  # past each sequence's length: zeros
        assert np.all(y[b, L[b]:] == 0)
    np.testing.assert_array_equal(h_n, h_prev.astype(np.float32))


FORWARD_CASES = [  # batch, time, features, units, lengths
    (1, 9, 1, 5, False),
    (1, 12, 7, 64, True),
    (3, 8, 9, 37, True),
    (8, 6, 16, 16, False),
    (13, 5, 33, 50, True),
]


def quantized_problem(rng, batch, time, features, units, lengths, reset_after, reverse,
                      activation="tanh", recurrent_activation="sigmoid"):
    scale = 1 / np.sqrt(units)  # the initialisers' scale
    w = rng.uniform(-scale, scale, (features, 3 * units)).astype(np.float32) * 2
    u = rng.uniform(-scale, scale, (units, 3 * units)).astype(np.float32) * 2
    b = rng.uniform(-0.5, 0.5, (2, 3 * units) if reset_after else (3 * units,)).astype(np.float32)
    x = rng.standard_normal((batch, time, features)).astype(np.float32)
    h0 = rng.uniform(-0.9, 0.9, (batch, units)).astype(np.float32)
    lens = rng.integers(0, time + 1, batch) if lengths else None
    options = dict(reverse=reverse, reset_after=reset_after, activation=activation,
                   recurrent_activation=recurrent_activation)
    return (w, u, b, options), x, h0, lens


@requires_compiled
@pytest.mark.parametrize("isa_level", supported_isas(), indirect=True)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch,time,features,units,lengths", FORWARD_CASES)
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
def test_forward_matches_reference_step_by_step(isa_level, mode, batch, time, features, units, lengths,
                                                 reset_after, reverse):
    rng = np.random.default_rng(batch * 100 + units + 7 * reset_after + 3 * reverse)
    (w, u, b, options), x, h0, lens = quantized_problem(rng, batch, time, features, units, lengths,
                                                        reset_after, reverse)
    prepared = cgru.get_ops("cpu").prepare_gru_quantized(w, u, b, mode=mode, **options)
    assert prepared.mode == mode and prepared.dtype == np.float32
    h = h0.copy()
    y = prepared.forward(x, h, lens)
    check_step_by_step(prepared.weights, x, h0, lens, y, h)


@requires_compiled
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("activation,recurrent_activation", [("relu", "hard_sigmoid"), ("linear", "sigmoid")])
@pytest.mark.parametrize("reset_after", [True, False])
def test_forward_other_activations(mode, activation, recurrent_activation, reset_after):
    rng = np.random.default_rng(11)
    (w, u, b, options), x, h0, lens = quantized_problem(
        rng, 4, 7, 6, 21, True, reset_after, False, activation, recurrent_activation)
    prepared = cgru.get_ops("cpu").prepare_gru_quantized(w, u, b, mode=mode, **options)
    h = np.clip(h0, 0, None)
    h_start = h.copy()
    y = prepared.forward(x, h, lens)
    # relu / linear states are not bounded by 1: the float32 rounding grows with them
    check_step_by_step(prepared.weights, x, h_start, lens, y, h,
                       gate_math=GATE_MATH * max(1.0, float(np.abs(y).max())))


@requires_compiled
@pytest.mark.parametrize("mode", MODES)
def test_streaming_entries_equal_forward(mode):
    """step / step_state (the one-step streaming entries) give forward's bits."""
    rng = np.random.default_rng(12)
    (w, u, b, options), x, h0, _ = quantized_problem(rng, 1, 6, 5, 40, False, True, False)
    prepared = cgru.get_ops("cpu").prepare_gru_quantized(w, u, b, mode=mode, **options)
    h_seq = h0.copy()
    y = prepared.forward(x, h_seq)
    h = h0.copy()
    for t in range(6):
        out = prepared.step_state(np.ascontiguousarray(x[:, t:t + 1]), h)
        assert out.shape == (1, 40)
        np.testing.assert_array_equal(out[0], y[0, t])
    np.testing.assert_array_equal(h, h_seq)
    h2 = h0.copy()
    np.testing.assert_array_equal(prepared.forward(np.ascontiguousarray(x[:, :1]), h2), y[:, :1])


@requires_compiled
@pytest.mark.parametrize("mode", MODES)
def test_batch_pieces_on_two_threads_equal_one_thread(mode):
    """Rows are independent (each quantizes its own activations): splitting a batch over the
    threads gives the same bits."""
    rng = np.random.default_rng(13)
    (w, u, b, options), x, h0, lens = quantized_problem(rng, 32, 40, 64, 96, True, True, True)
    prepared = cgru.get_ops("cpu").prepare_gru_quantized(w, u, b, mode=mode, **options)
    previous = cgru.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            cgru.set_num_threads(threads)
            h = h0.copy()
            results.append((prepared.forward(x, h, lens), h))
    finally:
        cgru.set_num_threads(previous)
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


@requires_compiled
@pytest.mark.parametrize("isa_level", supported_isas(), indirect=True)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("units,lengths,reverse", [(75, False, False), (64, True, True), (100, True, False)])
def test_unit_split_matches_reference_step_by_step(isa_level, mode, units, lengths, reverse):
    """One sequence's units shared by this thread and the helper (run_pair): each half packs
    its own columns and multiplies by the whole state once the other half has arrived."""
    rng = np.random.default_rng(units + 1000 * reverse)
    (w, u, b, options), x, h0, lens = quantized_problem(rng, 1, 23, 19, units, lengths, True, reverse)
    prepared = cgru.get_ops("cpu").prepare_gru_quantized(w, u, b, mode=mode, **options)
    assert prepared.inference.split == 16 * (units // 16 // 2)
    h = h0.copy()
    y = prepared.inference.run_pair(x, h, lens)
    assert y is not None
    check_step_by_step(prepared.weights, x, h0, lens, y, h)
    if mode == "int8":  # the same integer products and epilogue as one thread: the same bits
        h_one = h0.copy()
        np.testing.assert_array_equal(prepared.inference.forward(x, h_one, lens), y)
        np.testing.assert_array_equal(h_one, h)


@requires_compiled
def test_unit_split_is_taken_when_it_pays_and_declined_when_busy():
    from cgru import _engine

    rng = np.random.default_rng(15)
    (w, u, b, options), x, h0, _ = quantized_problem(rng, 1, 80, 8, 96, False, True, False)
    prepared = cgru.get_ops("cpu").prepare_gru_quantized(w, u, b, mode="int8", **options)
    if not prepared.inference.split:
        pytest.skip("no helper thread in this build")
    calls = []
    original = type(prepared)._unit_split

    def spy(self, *args):
        calls.append(original(self, *args))
        return calls[-1]

    previous = cgru.get_num_threads()
    try:
        cgru.set_num_threads(2)
        type(prepared)._unit_split = spy
        h = h0.copy()
        y = prepared.forward(x, h)
    finally:
        type(prepared)._unit_split = original
        cgru.set_num_threads(previous)
    from cgru.runtime import available_cores

    if available_cores() >= 2:
        assert calls and calls[0] is y  # the split ran
    with _engine.running_call():  # another engine call on the cores: the halves would stall
        assert prepared.inference.run_pair(x, h0.copy()) is None
    no_split = cgru.get_ops("cpu").prepare_gru_quantized(w, u, mode="int8", reset_after=False)
    assert no_split.inference.split == 0
    with pytest.raises(RuntimeError, match="no unit split"):
        no_split.inference.run_pair(x, h0.copy())
    small = cgru.get_ops("cpu").prepare_gru_quantized(w[:, :96], u[:32, :96], mode="int8")
    assert small.inference.split == 0  # a 32-unit split never pays: its halves are not packed


@requires_compiled
def test_unit_split_refuses_sizes_past_32_bit_indices_as_the_engine_does():
    """run_pair checks its sizes with the engine's one size check (check_sizes): a time-major
    array of T rows of 4 * units values must stay within 2^31 - 1 values."""
    rng = np.random.default_rng(16)
    (w, u, b, options), _, h0, _ = quantized_problem(rng, 1, 2, 1, 64, False, True, False)
    prepared = cgru.get_ops("cpu").prepare_gru_quantized(w, u, b, mode="int8", **options)
    if not prepared.inference.split:
        pytest.skip("no helper thread in this build")
    steps = (2**31 - 1) // (4 * 64) + 1
    x = np.zeros((1, steps, 1), np.float32)  # 34 MB, never written: calloc's pages stay shared
    with pytest.raises(ValueError, match="too large for the engine's 32-bit indices"):
        prepared.inference.run_pair(x, h0.copy())


# Error against float32 of a model at the initialisers' scale (Keras: glorot uniform kernel,
# orthogonal recurrent kernel, zero biases), inputs N(0, 1), over 100 steps; measured on the
# benchmark shapes in bench/NOTES.md: bfloat16 2e-3 to 4e-3, int8 7e-3 to 1.3e-2.
ERROR_BOUND = {"bfloat16": 1e-2, "int8": 3e-2}


@requires_compiled
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reset_after", [True, False])
def test_error_against_float32_is_within_the_stated_bound(mode, reset_after):
    rng = np.random.default_rng(14)
    features, units = 32, 64
    limit = np.sqrt(6 / (features + 3 * units))
    w = rng.uniform(-limit, limit, (features, 3 * units))
    u = np.linalg.qr(rng.standard_normal((3 * units, 3 * units)))[0][:units]
    b = np.zeros((2, 3 * units) if reset_after else 3 * units)
    x = rng.standard_normal((8, 100, features))
    y32, _, _ = cgru.get_ops("numpy").gru_forward(x, w, u, b, reset_after=reset_after)
    prepared = cgru.get_ops("cpu").prepare_gru_quantized(w.astype(np.float32), u.astype(np.float32), b,
                                                          mode=mode, reset_after=reset_after)
    y = prepared.forward(x.astype(np.float32), np.zeros((8, units), np.float32))
    error = np.abs(y - y32).max()
    assert error <= ERROR_BOUND[mode], error
    assert error > 1e-5  # the weights are quantized: this is not the float32 engine


# --------------------------------------------------------------------------------------------
# Dispatch and argument checks
# --------------------------------------------------------------------------------------------


@requires_compiled
def test_levels_and_kernel_names():
    from cgru import _engine

    assert _engine.ISAS[-2:] == ("avx512_vnni", "avx512_bf16")
    previous = _engine.get_isa()
    try:
        _engine.set_isa("generic")
        assert _engine.quantized_kernels() == {"bfloat16": "generic (C)", "int8": "generic (C)"}
        for isa in supported_isas():
            _engine.set_isa(isa)
            assert _engine.get_isa() == isa
            names = _engine.quantized_kernels()
            assert names["bfloat16"].startswith(isa if isa != "avx512_vnni" else "avx512")
    finally:
        _engine.set_isa(previous)
    for isa in ("avx512_vnni", "avx512_bf16"):
        if not _engine.isa_supported(isa):
            with pytest.raises(ValueError, match="cannot run"):
                _engine.set_isa(isa)


@requires_compiled
def test_bad_arguments_are_refused():
    from cgru import _engine

    ops = cgru.get_ops("cpu")
    w, u = np.zeros((3, 12), np.float32), np.zeros((4, 12), np.float32)
    with pytest.raises(ValueError, match="mode must be one of"):
        ops.prepare_gru_quantized(w, u, mode="float16")
    with pytest.raises(ValueError, match="recurrent_kernel must have shape"):
        ops.prepare_gru_quantized(w, np.zeros((4, 11)), mode="int8")
    b16 = np.zeros((3, 12), np.uint16)
    zeros = np.zeros(12, np.float32)
    with pytest.raises(TypeError, match="kernel must be uint16"):
        _engine.QuantizedGRUInference("bfloat16", w, np.zeros((4, 12), np.uint16), zeros, zeros,
                                      False, True, "tanh", "sigmoid")
    with pytest.raises(TypeError, match="kernel_scale must be a C-contiguous"):
        _engine.QuantizedGRUInference("int8", b16.astype(np.int8), np.zeros((4, 12), np.int8), zeros,
                                      zeros, False, True, "tanh", "sigmoid")
    with pytest.raises(ValueError, match="for mode 'int8' only"):
        _engine.QuantizedGRUInference("bfloat16", b16, np.zeros((4, 12), np.uint16), zeros, zeros,
                                      False, True, "tanh", "sigmoid", zeros)
    big = _engine.INT8_MAX_SIZE + 1
    with pytest.raises(ValueError, match="at most"):
        _engine.QuantizedGRUInference("int8", np.zeros((big, 12), np.int8), np.zeros((4, 12), np.int8),
                                      zeros, zeros, False, True, "tanh", "sigmoid", zeros, zeros)
    prepared = ops.prepare_gru_quantized(w, u, mode="bfloat16")
    with pytest.raises(ValueError, match="x must have shape"):
        prepared.forward(np.zeros((2, 3, 4), np.float32), np.zeros((2, 4), np.float32))
    with pytest.raises(NotImplementedError, match="no reduced-precision kernels"):
        cgru.backends.base.Ops().prepare_gru_quantized(w, u, mode="int8")  # e.g. a plugin backend
