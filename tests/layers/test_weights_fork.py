"""A process forked while another thread publishes new weights has each publication entirely or
not at all: never some of its arrays (cgru.layers.weights' fork hooks)."""

import os

import pytest
from isolated import run_isolated

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

TIMEOUT_S = 150
FORKS = 100

# Runs in a fresh interpreter: a thread publishes all-zero and all-one weights in turn, as fast
# as it can, while the main thread forks; each child reads the weights and exits 3 when they
# mix the two publications (a hang, should the hooks deadlock, fails the test instead).
SCENARIO = """
    import os, sys, threading
    import numpy as np
    import cgru
    from cgru.layers.weights import publish

    forks = int(sys.argv[1])
    model = cgru.Sequential([cgru.Dense(2, input_shape=(2,))], device="numpy")
    for _ in range(99):
        model.add(cgru.Dense(2))
    params = model.weights
    zeros = [np.zeros(p.shape, np.float32) for p in params]
    ones = [np.ones(p.shape, np.float32) for p in params]
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            publish(zip(params, zeros))
            publish(zip(params, ones))

    thread = threading.Thread(target=writer)
    thread.start()
    mixed = 0
    try:
        for _ in range(forks):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    values = {float(w.reshape(-1)[0]) for w in model.get_weights()}
                    whole = all(np.all(w == w.reshape(-1)[0]) for w in model.get_weights())
                    code = 0 if len(values) == 1 and whole else 3
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            if code not in (0, 3):
                sys.exit(f"a child failed with exit code {code}")
            mixed += code == 3
    finally:
        stop.set()
        thread.join()
    print(f"mixed {mixed} of {forks}")
"""


def test_forked_children_never_see_half_a_publication():
    out = run_isolated(SCENARIO, str(FORKS), timeout_s=TIMEOUT_S,
                       hang="forking while weights are published hung")
    assert out.strip() == f"mixed 0 of {FORKS}"
