"""Splitting one op across threads (batch rows, Bidirectional directions) changes no result."""

import os
import sys
import threading

import numpy as np
import pytest
from threads import run_concurrently

import cgru
from cgru.backends import compiled_available, parallel

pytestmark = pytest.mark.skipif(not compiled_available(), reason="compiled engine not built")


@pytest.fixture
def always_split(monkeypatch):
    """Split every op, however small, over 3 threads; yields the sizes of the task lists run."""
    from cgru.backends import cpu_ops

    monkeypatch.setattr(parallel, "MIN_PARALLEL_FLOPS", 0.0)
    sizes = []

    def recording_run_all(tasks):
        sizes.append(len(tasks))
        return parallel.run_all(tasks)

    monkeypatch.setattr(cpu_ops, "run_all", recording_run_all)
    with cgru.num_threads(3):
        yield sizes


def run_gru(ops, rng, batch, **options):
    x = rng.standard_normal((batch, 6, 4)).astype(np.float32)
    kernel = rng.standard_normal((4, 15)).astype(np.float32)
    recurrent = rng.standard_normal((5, 15)).astype(np.float32) * 0.5
    bias = rng.standard_normal((2, 15)).astype(np.float32)
    h0 = rng.standard_normal((batch, 5)).astype(np.float32)
    y, h, cache = ops.gru_forward(x, kernel, recurrent, bias, h0=h0, training=True, **options)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grads = ops.gru_backward(dy, np.ones_like(h), cache)
    return [y, h, *grads]


@pytest.mark.parametrize("batch", [1, 2, 5, 7])
def test_split_batch_equals_single_piece(always_split, batch):
    ops = cgru.get_ops("cpu")
    lengths = np.arange(batch) % 7
    options = {"lengths": lengths, "reverse": True,
               "recurrent_mask": np.random.default_rng(0).random((batch, 5)).astype(np.float32)}
    split = run_gru(ops, np.random.default_rng(batch), batch, **options)
    assert max(always_split) == min(batch, 3)
    with cgru.num_threads(1):
        whole = run_gru(ops, np.random.default_rng(batch), batch, **options)
    for s, w in zip(split, whole):
        np.testing.assert_allclose(s, w, rtol=2e-6, atol=2e-6)
        assert s.shape == w.shape and s.dtype == w.dtype


def test_pieces_rules(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_PARALLEL_FLOPS", 100.0)
    with cgru.num_threads(4):
        assert parallel.pieces(10, 1000.0) == 4
        assert parallel.pieces(3, 1000.0) == 3
        assert parallel.pieces(1, 1000.0) == 1
        assert parallel.pieces(10, 10.0) == 1
        inner = parallel.run_all([lambda: parallel.pieces(10, 1000.0)] * 3)
        assert inner == [1, 1, 1]  # nothing splits again inside a piece
    with cgru.num_threads(1):
        assert parallel.pieces(10, 1000.0) == 1
    assert parallel.row_bounds(7, 3) == [(0, 2), (2, 4), (4, 7)]


def test_forward_plan_tries_the_split_first_then_cuts_the_rows(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_PARALLEL_FLOPS", 100.0)
    with cgru.num_threads(3):
        assert parallel.forward_plan(7, 1000.0, lambda: "split") == ("split", [])
        assert parallel.forward_plan(7, 1000.0, lambda: None) == (None, [(0, 2), (2, 4), (4, 7)])
        assert parallel.forward_plan(7, 1000.0, None) == (None, [(0, 2), (2, 4), (4, 7)])
        assert parallel.forward_plan(7, 10.0, None) == (None, [(0, 7)])  # too small to cut
    with cgru.num_threads(1):
        assert parallel.forward_plan(7, 1000.0, None) == (None, [(0, 7)])


def test_the_thread_count_has_one_home():
    from cgru import runtime

    for name in ("set_num_threads", "get_num_threads", "num_threads", "available_cores"):
        assert getattr(cgru, name, getattr(runtime, name)) is getattr(parallel, name)
        assert getattr(runtime, name) is getattr(parallel, name)
    with cgru.num_threads(3):
        assert parallel.get_num_threads() == 3
    assert parallel.get_num_threads() == cgru.get_num_threads()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_resets_run_in_the_child_through_the_one_hook():
    """Resets registered with parallel.at_fork_in_child run in a forked child (never in the
    parent), and the package registers exactly one hook with os.register_at_fork."""
    import re
    from pathlib import Path

    ran = []
    parallel.at_fork_in_child(lambda: ran.append(os.getpid()))
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what ran, then leave without running pytest's exit
            os.write(write, b"1" if ran == [os.getpid()] else b"0")
            os._exit(0)
        os.close(write)
        assert os.read(read, 1) == b"1"
        os.waitpid(pid, 0)
        os.close(read)
    finally:
        parallel._fork_resets.pop()
    assert ran == []
    package = Path(cgru.__file__).parent
    hooks = [str(p.relative_to(package)) for p in package.rglob("*.py")
             for _ in re.finditer(r"\bregister_at_fork\(", p.read_text())]
    assert hooks == [str(Path("backends", "parallel.py"))]


def test_errors_in_pieces_are_raised_after_all_finish():
    finished = threading.Event()

    def slow():
        finished.wait(0.05)
        finished.set()
        return 1

    def broken():
        raise RuntimeError("piece failed")

    with cgru.num_threads(2), pytest.raises(RuntimeError, match="piece failed"):
        parallel.run_all([broken, slow])
    assert finished.is_set()


def test_prepared_forward_splits_rows_in_place(always_split):
    ops = cgru.get_ops("cpu")
    rng = np.random.default_rng(3)
    kernel, recurrent = rng.standard_normal((4, 15)), rng.standard_normal((5, 15)) * 0.5
    prepared = ops.prepare_gru(kernel.astype(np.float32), recurrent.astype(np.float32))
    x = rng.standard_normal((5, 6, 4)).astype(np.float32)
    h = np.zeros((5, 5), np.float32)
    y = prepared.forward(x, h, [6, 1, 0, 3, 6])
    assert always_split == [3]
    with cgru.num_threads(1):
        expected_y, expected_h, _ = ops.gru_forward(x, kernel, recurrent, None, lengths=[6, 1, 0, 3, 6])
    np.testing.assert_allclose(y, expected_y, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(h, expected_h, rtol=1e-6, atol=1e-6)


def test_bidirectional_model_trains_identically_in_parallel(always_split):
    def build():
        model = cgru.Sequential([
            cgru.Bidirectional(cgru.GRU(6, return_sequences=True), input_shape=(5, 3)),
            cgru.Bidirectional(cgru.GRU(4)),
            cgru.Dense(2),
        ])
        model.compile(optimizer="adam", loss="mse")
        return model

    initial = build().get_weights()

    def train():
        model = build()
        model.set_weights(initial)
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((16, 5, 3)), rng.standard_normal((16, 2))
        model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0, lengths=rng.integers(1, 6, 16))
        return model.get_weights()

    parallel_weights = train()
    assert 2 in always_split  # the directions ran as a pair
    with cgru.num_threads(1):
        serial_weights = train()
    for p, s in zip(parallel_weights, serial_weights):
        np.testing.assert_allclose(p, s, rtol=1e-5, atol=1e-6)


# -- one sequence, its units shared over threads (UnitSplitForward) ---------------------------

requires_unit_split = pytest.mark.skipif(
    not compiled_available() or not getattr(__import__("cgru._engine"). _engine, "UNIT_SPLIT", False),
    reason="unit splitting needs the compiler's atomic builtins")


def single_sequence(rng, time, features, units, scale=None):
    scale = 1 / np.sqrt(units) if scale is None else scale
    x = rng.standard_normal((1, time, features)).astype(np.float32)
    kernel = (rng.standard_normal((features, 3 * units)) * scale).astype(np.float32)
    recurrent = (rng.standard_normal((units, 3 * units)) * scale).astype(np.float32)
    bias = (rng.standard_normal((2, 3 * units)) * 0.3).astype(np.float32)
    h0 = rng.standard_normal((1, units)).astype(np.float32)
    return x, kernel, recurrent, bias, h0


def run_unit_split(parts, x, kernel, recurrent, bias, h0, lengths=None, reverse=False,
                   activation="tanh", recurrent_activation="sigmoid"):
    from cgru import _engine

    split = _engine.UnitSplitForward(x, kernel, recurrent, bias[0], bias[1], h0, lengths, reverse,
                                     activation, recurrent_activation, parts)
    threads = [threading.Thread(target=split.run, args=(part,)) for part in range(1, parts)]
    for thread in threads:  # every part must run at once: one thread each
        thread.start()
    split.run(0)
    for thread in threads:
        thread.join()
    return split.y, split.h_n


@requires_unit_split
@pytest.mark.parametrize("units,parts", [(32, 2), (40, 2), (100, 3), (256, 2), (67, 4)])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("length", [None, 0, 5])
def test_unit_split_matches_reference(units, parts, reverse, length):
    rng = np.random.default_rng(units + parts)
    x, kernel, recurrent, bias, h0 = single_sequence(rng, 9, 7, units)
    lengths = None if length is None else np.array([length])
    y, h = run_unit_split(parts, x, kernel, recurrent, bias, h0, lengths, reverse)
    ry, rh, _ = cgru.get_ops("numpy").gru_forward(
        *(a.astype(np.float64) for a in (x, kernel, recurrent, bias)), h0=h0.astype(np.float64),
        lengths=lengths, reverse=reverse)
    np.testing.assert_allclose(y, ry, atol=2e-6)
    np.testing.assert_allclose(h, rh, atol=2e-6)
    assert y.dtype == np.float32 and y.shape == (1, 9, units) and h.shape == (1, units)


@requires_unit_split
@pytest.mark.parametrize("activation,recurrent_activation", [("relu", "hard_sigmoid"), ("linear", "sigmoid")])
def test_unit_split_other_activations(activation, recurrent_activation):
    rng = np.random.default_rng(3)
    x, kernel, recurrent, bias, h0 = single_sequence(rng, 6, 5, 48, scale=0.1)
    y, h = run_unit_split(3, x, kernel, recurrent, bias, h0, None, False, activation, recurrent_activation)
    ry, rh, _ = cgru.get_ops("numpy").gru_forward(
        x, kernel, recurrent, bias, h0=h0, activation=activation, recurrent_activation=recurrent_activation)
    np.testing.assert_allclose(y, ry, atol=2e-6)
    np.testing.assert_allclose(h, rh, atol=2e-6)


@requires_unit_split
def test_unit_split_checks_its_arguments():
    from cgru import _engine

    rng = np.random.default_rng(0)
    x, kernel, recurrent, bias, h0 = single_sequence(rng, 4, 3, 32)
    make = lambda **kw: _engine.UnitSplitForward(  # noqa: E731
        kw.get("x", x), kw.get("kernel", kernel), recurrent, bias[0], bias[1], kw.get("h0", h0),
        kw.get("lengths"), False, "tanh", "sigmoid", kw.get("parts", 2))
    with pytest.raises(ValueError, match="batch 1"):
        make(x=np.concatenate([x, x]))
    with pytest.raises(ValueError, match="parts must be in 2..2"):
        make(parts=3)
    with pytest.raises(ValueError, match="kernel must have shape"):
        make(kernel=kernel[:, :-1].copy())
    with pytest.raises(ValueError, match="h0 must have shape"):
        make(h0=np.zeros((1, 31), np.float32))
    with pytest.raises(ValueError, match="lengths must be in 0..4"):
        make(lengths=np.array([5]))
    with pytest.raises(ValueError, match="dtype mismatch"):
        make(x=x.astype(np.float64))
    split = make()
    with pytest.raises(ValueError, match="part must be in 0..1"):
        split.run(2)
    split.h_n[...] = -7  # nothing ran: the result arrays are untouched by the refusals
    parallel.run_all([lambda: split.run(0), lambda: split.run(1)])
    with pytest.raises(ValueError, match="already run"):
        split.run(0)
    lengths = np.array([3])
    kept = make(lengths=lengths)
    lengths[0] = 99  # checked at construction and kept: a later change cannot reach the parts
    parallel.run_all([lambda: kept.run(0), lambda: kept.run(1)])
    ry, _, _ = cgru.get_ops("numpy").gru_forward(x, kernel, recurrent, bias, h0=h0, lengths=np.array([3]))
    np.testing.assert_allclose(kept.y, ry, atol=2e-6)


requires_unit_pair = pytest.mark.skipif(
    not compiled_available() or not getattr(__import__("cgru._engine")._engine, "UNIT_PAIR", False),
    reason="the engine's helper thread needs POSIX threads")


def reference_forward(x, kernel, recurrent, bias, h0, lengths=None, reverse=False):
    """float64 NumPy reference: (y, h_n)."""
    y, h, _ = cgru.get_ops("numpy").gru_forward(
        *(a.astype(np.float64) for a in (x, kernel, recurrent, bias)), h0=h0.astype(np.float64),
        lengths=lengths, reverse=reverse)
    return y, h


def run_pair(x, kernel, recurrent, bias, h0, lengths=None, reverse=False):
    from cgru import _engine

    split = _engine.UnitSplitForward(x, kernel, recurrent, bias[0], bias[1], h0, lengths, reverse,
                                     "tanh", "sigmoid", 2)
    assert split.run_pair()  # nothing else uses the helper here
    return split.y, split.h_n


@requires_unit_pair
@pytest.mark.parametrize("units", [32, 40, 64, 256])  # 40: the second half (24) fills no whole panel
@pytest.mark.parametrize("time,length", [(9, None), (9, 5), (9, 1), (9, 0), (1, None), (0, None)])
@pytest.mark.parametrize("reverse", [False, True])
def test_unit_pair_on_the_helper_thread_matches_reference(units, time, length, reverse):
    rng = np.random.default_rng(units + 10 * time)
    x, kernel, recurrent, bias, h0 = single_sequence(rng, time, 7, units)
    lengths = None if length is None else np.array([length])
    y, h = run_pair(x, kernel, recurrent, bias, h0, lengths, reverse)
    ry, rh = reference_forward(x, kernel, recurrent, bias, h0, lengths, reverse)
    np.testing.assert_allclose(y, ry, atol=2e-6)
    np.testing.assert_allclose(h, rh, atol=2e-6)


@requires_unit_pair
@pytest.mark.parametrize("isa", ["generic", "avx2"])
def test_unit_pair_without_the_packed_kernel(isa):
    """Where the CPU has no packed kernel the halves multiply by their gathered U columns."""
    from cgru import _engine

    if not _engine.isa_supported(isa):
        pytest.skip(f"this CPU cannot run {isa}")
    rng = np.random.default_rng(2)
    x, kernel, recurrent, bias, h0 = single_sequence(rng, 12, 5, 67)
    before = _engine.get_isa()
    _engine.set_isa(isa)
    try:
        y, h = run_pair(x, kernel, recurrent, bias, h0)
    finally:
        _engine.set_isa(before)
    ry, rh = reference_forward(x, kernel, recurrent, bias, h0)
    np.testing.assert_allclose(y, ry, atol=2e-6)
    np.testing.assert_allclose(h, rh, atol=2e-6)


@requires_unit_pair
def test_unit_pair_callers_share_the_helper_one_at_a_time():
    """Threads racing for the one helper thread: each call either runs both halves (and is
    right) or is turned away having run nothing; none waits on another."""
    from cgru import _engine

    rng = np.random.default_rng(4)
    problems = [single_sequence(rng, 40, 6, 64) for _ in range(3)]
    expected = [reference_forward(*p) for p in problems]
    outcomes = []

    def caller(index):
        for _ in range(60):
            x, kernel, recurrent, bias, h0 = problems[index]
            split = _engine.UnitSplitForward(x, kernel, recurrent, bias[0], bias[1], h0, None, False,
                                             "tanh", "sigmoid", 2)
            ran = split.run_pair()
            outcomes.append(ran)
            if ran:
                np.testing.assert_allclose(split.y, expected[index][0], atol=2e-6)
            else:
                assert not split.run_pair() or np.allclose(split.y, expected[index][0], atol=2e-6)

    run_concurrently(caller, 3)
    assert any(outcomes)


@requires_unit_pair
def test_unit_pair_declines_while_other_engine_calls_run():
    """The halves of a split wait for each other every step, so with another engine call on the
    cores they would stall: run_pair then declines, having run nothing, and ops.gru_forward runs
    the sequence on one thread; once the other call has ended the pair runs again."""
    from cgru import _engine
    from cgru.backends import cpu_ops

    rng = np.random.default_rng(11)
    x, kernel, recurrent, bias, h0 = single_sequence(rng, 200, 6, 64)  # long enough to split
    ry, rh = reference_forward(x, kernel, recurrent, bias, h0)
    ops = cgru.get_ops("cpu")
    args = (ops.engine, x, kernel, recurrent, bias[0], bias[1], h0, None, False, "tanh", "sigmoid")
    assert _engine.calls_running() == 0
    with _engine.running_call(), cgru.num_threads(2):
        assert _engine.calls_running() == 1
        split = _engine.UnitSplitForward(x, kernel, recurrent, bias[0], bias[1], h0, None, False,
                                         "tanh", "sigmoid", 2)
        assert not split.run_pair()
        assert cpu_ops.unit_split(*args) is None
        y, h, _ = ops.gru_forward(x, kernel, recurrent, bias, h0=h0)
        np.testing.assert_allclose(y, ry, atol=2e-6)
        np.testing.assert_allclose(h, rh, atol=2e-6)
    assert _engine.calls_running() == 0
    with cgru.num_threads(2):
        assert cpu_ops.unit_split(*args) is not None


@requires_unit_pair
def test_single_sequence_is_not_split_while_another_caller_is_in_an_op(monkeypatch):
    """ops.gru_forward and a prepared call split a single sequence only when no other thread is
    inside a forward or backward op (between its engine calls as well as in them); every op
    leaves the count of callers as it found it, also when it raises."""
    from cgru.backends import cpu_ops

    calls = []
    original = cpu_ops.unit_split
    monkeypatch.setattr(cpu_ops, "unit_split", lambda *a: calls.append(original(*a)) or calls[-1])
    rng = np.random.default_rng(13)
    x, kernel, recurrent, bias, h0 = single_sequence(rng, 200, 6, 64)
    ry, rh = reference_forward(x, kernel, recurrent, bias, h0)
    ops = cgru.get_ops("cpu")
    prepared = ops.prepare_gru(kernel, recurrent, bias)
    with cgru.num_threads(2):
        monkeypatch.setattr(parallel, "CALLERS", [None])  # another thread is inside an op
        y, h, _ = ops.gru_forward(x, kernel, recurrent, bias, h0=h0)
        state = h0.copy()
        prepared_y = prepared.forward(x, state)
        assert calls == [None, None] and parallel.CALLERS == [None]
        monkeypatch.setattr(parallel, "CALLERS", [])
        ops.gru_forward(x, kernel, recurrent, bias, h0=h0)
        assert calls[-1] is not None
    for out, final in ((y, h), (prepared_y, state)):
        np.testing.assert_allclose(out, ry, atol=2e-6)
        np.testing.assert_allclose(final, rh, atol=2e-6)
    _, _, cache = ops.gru_forward(x, kernel, recurrent, bias, h0=h0, training=True)
    ops.gru_backward(np.ones_like(y), None, cache)
    with pytest.raises(ValueError):
        ops.gru_backward(np.ones((1, 3, 64), np.float32), None, cache)
    with pytest.raises(ValueError):
        prepared.forward(x[..., :2], h0.copy())
    assert parallel.CALLERS == []


@requires_unit_split
def test_engine_calls_are_counted_while_they_run():
    """Forward, backward and the prepared calls count as running engine calls exactly while
    they run, also when they raise."""
    from cgru import _engine

    rng = np.random.default_rng(12)
    ops = cgru.get_ops("cpu")
    x, kernel, recurrent, bias, h0 = single_sequence(rng, 20000, 8, 256)
    seen = []
    thread = threading.Thread(target=lambda: ops.gru_forward(x, kernel, recurrent, bias, h0=h0))
    with cgru.num_threads(1):  # one long call on one thread (~0.1-0.3 s)
        thread.start()
        while thread.is_alive() and not seen:
            if _engine.calls_running() == 1:
                seen.append(True)
        thread.join()
    assert seen, "the running forward was never counted"
    assert _engine.calls_running() == 0
    small = single_sequence(rng, 5, 3, 16)
    _, _, cache = ops.gru_forward(*small[:4], h0=small[4], training=True)
    ops.gru_backward(np.ones((1, 5, 16), np.float32), None, cache)
    prepared = ops.prepare_gru(*small[1:4])
    state = small[4].copy()
    prepared.forward(small[0], state)
    prepared.step_state(np.ascontiguousarray(small[0][:, :1]), state)
    with pytest.raises(ValueError):
        prepared.forward(small[0][..., :2], state)
    assert _engine.calls_running() == 0


def _helper_cpus():
    """The CPUs the engine's helper thread may run on (Linux: it is named cgru-helper)."""
    import glob

    for comm in glob.glob("/proc/self/task/*/comm"):
        with open(comm) as f:
            if f.read().strip() != "cgru-helper":
                continue
        with open(comm[: -len("comm")] + "status") as f:
            for line in f:
                if line.startswith("Cpus_allowed_list:"):
                    cpus = set()
                    for part in line.split(":", 1)[1].strip().split(","):
                        lo, _, hi = part.partition("-")
                        cpus.update(range(int(lo), int(hi or lo) + 1))
                    return cpus
    raise AssertionError("no cgru-helper thread")


@requires_unit_pair
@pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two CPUs")
def test_unit_pair_keeps_the_helper_off_the_callers_cpu():
    """The two halves wait for each other every step, so the helper must not share its caller's
    CPU (a thread woken by another tends to be placed on the waker's CPU): each call moves it
    off the CPU the caller runs on."""
    rng = np.random.default_rng(14)
    problem = single_sequence(rng, 20, 4, 48)
    expected = reference_forward(*problem)
    outcomes = []

    def pinned_call(cpu):
        os.sched_setaffinity(0, {cpu})  # this thread only
        y, _ = run_pair(*problem)
        outcomes.append((cpu, _helper_cpus(), float(np.abs(y - expected[0]).max())))

    for cpu in sorted(os.sched_getaffinity(0))[:2] * 2:
        thread = threading.Thread(target=pinned_call, args=(cpu,))
        thread.start()
        thread.join(timeout=60)
    assert len(outcomes) == 4
    for cpu, helper_cpus, error in outcomes:
        assert cpu not in helper_cpus and helper_cpus, (cpu, helper_cpus)
        assert error < 2e-6


@requires_unit_split
def test_single_sequence_ops_and_models_share_units_across_threads(monkeypatch):
    """ops.gru_forward and a model's prepared call on one long sequence both take the unit split
    (when threads and work allow) and give the single-thread result."""
    from cgru.backends import cpu_ops

    calls = []
    original = cpu_ops.unit_split
    monkeypatch.setattr(cpu_ops, "unit_split", lambda *a: calls.append(original(*a)) or calls[-1])
    rng = np.random.default_rng(5)
    x, kernel, recurrent, bias, h0 = single_sequence(rng, 64, 16, 128)
    ops = cgru.get_ops("cpu")
    with cgru.num_threads(2):
        y, h, _ = ops.gru_forward(x, kernel, recurrent, bias, h0=h0)
        model = cgru.Sequential([cgru.GRU(128, return_sequences=True, input_shape=(64, 16))])
        model.set_weights([kernel, recurrent, bias])
        model_y = model(x)
    assert [c is not None for c in calls] == [True, True]
    with cgru.num_threads(1):
        y1, h1, _ = ops.gru_forward(x, kernel, recurrent, bias, h0=h0)
        model_y1 = model(x)
    np.testing.assert_allclose(y, y1, atol=2e-6)
    np.testing.assert_allclose(h, h1, atol=2e-6)
    np.testing.assert_allclose(model_y, model_y1, atol=2e-6)


@requires_unit_split
def test_unit_split_is_declined_on_one_core_and_bad_states_are_reported(monkeypatch):
    """With one core available the halves would spin against each other: one thread runs it.
    A state the prepared call cannot update in place is refused as on the one-thread path."""
    from cgru.backends import cpu_ops

    rng = np.random.default_rng(9)
    x, kernel, recurrent, bias, h0 = single_sequence(rng, 64, 16, 128)
    args = (cgru.get_ops("cpu").engine, x, kernel, recurrent, bias[0], bias[1], h0, None, False,
            "tanh", "sigmoid")
    with cgru.num_threads(2):
        assert cpu_ops.unit_split(*args) is not None
        monkeypatch.setattr(parallel, "available_cores", lambda: 1)
        assert cpu_ops.unit_split(*args) is None
        monkeypatch.undo()
        prepared = cgru.get_ops("cpu").prepare_gru(kernel, recurrent, bias)
        for bad in (h0.astype(np.float64), np.zeros((1, 128), np.float32)):
            bad.flags.writeable = bad.dtype == np.float64
            with pytest.raises(TypeError, match="h must be a writable"):
                prepared.forward(x, bad)
        with pytest.raises(TypeError, match="h must be a writable C-contiguous float32"):
            prepared.forward(x, np.zeros((1, 256), np.float32)[:, ::2])
        with pytest.raises(ValueError, match=r"x must have shape \(batch, time, 16\), got \(1, 64, 15\)"):
            prepared.forward(x[:, :, :15].copy(), np.zeros((1, 128), np.float32))
