"""Learning-rate schedules (cgru.optimizers.schedules) against Keras 3, and an optimizer's
learning rate: the value each step uses, reading and setting it, saving it with the model.

The Keras values come from tests/make_keras_golden_lr.py (tests/data/keras_lr.json).
"""

import json
import math

import numpy as np
import pytest
from paths import DATA, ROOT

import cgru
from cgru import GRU, Dense, Parameter, Sequential, optimizers
from cgru.optimizers import schedules

GOLDEN = json.loads((DATA / "keras_lr.json").read_text())
SCHEDULE_CASES = GOLDEN["schedules"]


def make(case: dict) -> schedules.LearningRateSchedule:
    return getattr(schedules, case["class_name"])(**case["kwargs"])


# ----------------------------------------------------------------------------- values
@pytest.mark.parametrize("name", list(SCHEDULE_CASES))
def test_schedule_values_match_keras(name):
    case = SCHEDULE_CASES[name]
    schedule = make(case)
    mine = np.array([schedule(step) for step in case["steps"]])
    assert all(isinstance(schedule(step), float) for step in case["steps"][:3])
    # Keras computes in float32 (where 1.5 ** 400 overflows): compare at its precision
    with np.errstate(over="ignore"):
        mine = mine.astype(np.float32)
    np.testing.assert_allclose(mine, case["values"], rtol=2e-6, atol=1e-12)


@pytest.mark.parametrize("name", list(SCHEDULE_CASES))
def test_schedule_on_an_array_of_steps_equals_each_step(name):
    schedule = make(SCHEDULE_CASES[name])
    steps = np.array(SCHEDULE_CASES[name]["steps"])
    values = schedule(steps)
    assert isinstance(values, np.ndarray) and values.shape == steps.shape
    np.testing.assert_array_equal(values, [schedule(int(s)) for s in steps])
    assert schedule(np.int64(7)) == schedule(7) == schedule(7.0)


def test_schedules_follow_their_formulas_in_float64():
    """Spot values from the documented formulas, in plain Python floats."""
    exp = schedules.ExponentialDecay(0.1, 10, 0.5, staircase=True)
    assert exp(25) == 0.1 * 0.5**2 and exp(9) == 0.1
    poly = schedules.PolynomialDecay(0.1, 8, end_learning_rate=0.001, power=2.0, cycle=True)
    assert poly(0) == pytest.approx(0.1, rel=1e-15)
    assert poly(8) == pytest.approx(0.001, rel=1e-15)  # the end of the first cycle
    assert poly(9) == pytest.approx(0.099 * (1 - 9 / 16) ** 2 + 0.001, rel=1e-15)
    cosine = schedules.CosineDecay(0.0, 20, alpha=0.1, warmup_target=0.1, warmup_steps=5)
    assert cosine(2) == pytest.approx(0.04, rel=1e-15)
    assert cosine(15) == pytest.approx(0.1 * (0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)) + 0.1), rel=1e-15)
    assert cosine(10_000) == pytest.approx(0.01, rel=1e-15)
    assert schedules.InverseTimeDecay(0.1, 5, 0.5, staircase=True)(9) == 0.1 / 1.5
    piecewise = schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [piecewise(s) for s in (10, 11, 20, 21)] == [1.0, 0.5, 0.5, 0.1]


# ----------------------------------------------------------------- arguments and config
@pytest.mark.parametrize("name", list(SCHEDULE_CASES))
def test_schedule_config_matches_keras(name):
    case = SCHEDULE_CASES[name]
    schedule = make(case)
    assert schedule.get_config() == case["config"]
    again = type(schedule).from_config(schedule.get_config())
    assert again.get_config() == case["config"]
    # Keras's serialized form (with its module and registered_name keys) reads the same
    assert schedules.deserialize(case["serialized"]).get_config() == case["config"]
    assert schedules.serialize(schedule) == {"class_name": case["class_name"], "config": case["config"]}


def test_defaults_are_keras_defaults():
    by_class = {c["class_name"]: c for c in SCHEDULE_CASES.values() if len(c["kwargs"]) <= 2}
    assert schedules.PolynomialDecay(0.1, 10).get_config() == by_class["PolynomialDecay"]["config"]
    assert schedules.CosineDecay(0.1, 20).get_config() == by_class["CosineDecay"]["config"]
    assert schedules.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1]).name == "PiecewiseConstant"


@pytest.mark.parametrize("case", GOLDEN["schedule_errors"], ids=lambda c: c["class_name"])
def test_refused_arguments_raise_keras_errors(case):
    with pytest.raises(ValueError) as info:
        getattr(schedules, case["class_name"])(**case["kwargs"])
    assert str(info.value) == case["error"]


@pytest.mark.parametrize(
    "build, error",
    [
        (lambda: schedules.ExponentialDecay("0.1", 10, 0.5), TypeError),
        (lambda: schedules.ExponentialDecay(0.1, 10, None), TypeError),
        (lambda: schedules.ExponentialDecay(0.1, True, 0.5), TypeError),
        (lambda: schedules.ExponentialDecay(0.1, float("nan"), 0.5), ValueError),
        (lambda: schedules.ExponentialDecay(0.1, 10, 0.5, staircase="yes"), TypeError),
        (lambda: schedules.PolynomialDecay(0.1, 10, cycle=1), TypeError),
        (lambda: schedules.PiecewiseConstantDecay([20, 10], [1.0, 0.5, 0.1]), ValueError),
        (lambda: schedules.PiecewiseConstantDecay([], [1.0]), ValueError),
        (lambda: schedules.PiecewiseConstantDecay(10, [1.0, 0.5]), TypeError),
        (lambda: schedules.PiecewiseConstantDecay([10], [1.0, "x"]), TypeError),
        (lambda: schedules.CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=-1), ValueError),
        (lambda: schedules.CosineDecay(0.1, 10, warmup_target="high"), TypeError),
        (lambda: schedules.InverseTimeDecay(0.1, 10, 0.5, name=3), TypeError),
    ],
)
def test_bad_arguments_raise_clear_errors(build, error):
    with pytest.raises(error):
        build()


def test_bad_steps_raise_type_error():
    schedule = schedules.ExponentialDecay(0.1, 10, 0.5)
    for step in ("3", None, True, [1, "a"]):
        with pytest.raises(TypeError, match="step count"):
            schedule(step)


def test_base_class_asks_subclasses_for_call_and_config():
    base = schedules.LearningRateSchedule()
    with pytest.raises(NotImplementedError, match="__call__"):
        base(0)
    with pytest.raises(NotImplementedError, match="get_config"):
        base.get_config()


# ------------------------------------------------------------------ optimizer steps
def sgd_steps(learning_rate, grads, w0=1.0):
    """The weight after SGD steps with ``grads`` through ``optimizers.SGD(learning_rate)``."""
    p = Parameter("w", np.array([w0]))
    opt = optimizers.SGD(learning_rate)
    for g in grads:
        opt.apply_gradients([(np.array([g]), p)])
    return float(p.value[0]), opt


def test_each_step_uses_the_schedule_at_the_steps_taken_before_it():
    schedule = schedules.PiecewiseConstantDecay([0, 1, 2], [0.5, 0.25, 0.125, 0.0625])
    grads = [1.0, 2.0, 3.0, 4.0, 5.0]
    w, opt = sgd_steps(schedule, grads)
    expected = 1.0 - sum(schedule(k) * g for k, g in enumerate(grads))  # step k at schedule(k)
    assert w == expected
    assert opt.iterations == len(grads)
    assert opt.learning_rate == np.float32(schedule(len(grads)))


def test_every_optimizer_takes_a_schedule():
    schedule = schedules.ExponentialDecay(0.1, 1, 0.5)
    for cls in (optimizers.SGD, optimizers.Adam, optimizers.AdamW, optimizers.RMSprop):
        p_schedule, p_fixed = Parameter("a", np.ones(3)), Parameter("b", np.ones(3))
        with_schedule, fixed = cls(learning_rate=schedule), cls(learning_rate=0.1)
        g = np.array([0.5, -1.0, 2.0])
        with_schedule.apply_gradients([(g, p_schedule)])
        fixed.apply_gradients([(g, p_fixed)])
        np.testing.assert_array_equal(p_schedule.value, p_fixed.value)  # step 0: 0.1 both
        with_schedule.apply_gradients([(g, p_schedule)])
        assert with_schedule.learning_rate == np.float32(0.025)


def test_function_learning_rates_with_or_without_the_step():
    w_step, _ = sgd_steps(lambda step: 0.1 * (step + 1), [1.0, 1.0])
    assert w_step == pytest.approx(1.0 - 0.1 - 0.2, rel=1e-15)
    w_none, opt = sgd_steps(lambda: 0.25, [1.0])  # Keras 3 calls such functions without arguments
    assert w_none == 0.75 and opt.learning_rate == 0.25
    with pytest.raises(TypeError, match="step count"):
        optimizers.SGD(lambda a, b: 0.1)


@pytest.mark.filterwarnings("ignore:invalid value encountered in power")
def test_a_non_finite_learning_rate_stops_the_step_before_any_change():
    p = Parameter("w", np.ones(2))
    opt = optimizers.SGD(schedules.ExponentialDecay(0.1, 2, -0.5))  # (-0.5) ** 0.5 is NaN
    opt.apply_gradients([(np.ones(2), p)])  # step 0: 0.1
    with pytest.raises(ValueError, match="learning rate for step 1"):
        opt.apply_gradients([(np.ones(2), p)])
    np.testing.assert_array_equal(p.value, [0.9, 0.9])
    assert opt.iterations == 1
    bad = optimizers.SGD(lambda step: "fast")
    with pytest.raises(TypeError, match="not a number"):
        bad.apply_gradients([(np.ones(2), p)])


# --------------------------------------------------------------- reading and setting
def test_learning_rate_reads_as_keras_float_variable():
    opt = optimizers.Adam()
    lr = opt.learning_rate
    assert lr == 0.001 and lr.dtype == np.float32
    assert float(lr) == float(np.float32(0.001))  # what Keras's variable holds
    cgru.set_floatx("float64")
    try:
        assert opt.learning_rate.dtype == np.float64 and float(opt.learning_rate) == 0.001
    finally:
        cgru.set_floatx("float32")


def test_setting_a_float_on_a_schedule_raises_keras_type_error():
    opt = optimizers.SGD(schedules.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(TypeError) as info:
        opt.learning_rate = 0.1
    assert GOLDEN["lr_setter"]["float_on_schedule"] in str(info.value)
    assert isinstance(opt._learning_rate, schedules.ExponentialDecay)
    fn = optimizers.SGD(lambda step: 0.1)
    with pytest.raises(TypeError, match="not settable"):
        fn.learning_rate = 0.2


def test_setting_a_schedule_or_float_replaces_the_learning_rate():
    p = Parameter("w", np.array([1.0]))
    opt = optimizers.SGD(0.5)
    opt.learning_rate = 0.25
    opt.apply_gradients([(np.array([1.0]), p)])
    assert float(p.value[0]) == 0.75
    schedule = schedules.PiecewiseConstantDecay([0], [1.0, 0.125])
    opt.learning_rate = schedule  # a float optimizer takes a schedule, from its current step
    assert opt.learning_rate == 0.125
    opt.apply_gradients([(np.array([1.0]), p)])
    assert float(p.value[0]) == 0.625
    fixed = optimizers.SGD(0.5)
    bad_values = ((-0.1, ValueError), (float("nan"), ValueError), ("fast", TypeError), (None, TypeError))
    for bad, error in bad_values:
        with pytest.raises(error, match="learning_rate"):
            fixed.learning_rate = bad
    assert fixed.learning_rate == 0.5


# ------------------------------------------------------------------------- save/load
def model_with(optimizer) -> Sequential:
    model = Sequential([GRU(3, input_shape=(4, 2)), Dense(1)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


@pytest.mark.parametrize("name", ["cosine_warmup_alpha", "polynomial_cycle", "piecewise_float_boundaries"])
def test_schedules_survive_save_and_load(name, tmp_path):
    case = SCHEDULE_CASES[name]
    model = model_with(optimizers.Adam(learning_rate=make(case), beta_1=0.8))
    model.save(tmp_path / "m.npz")
    loaded = cgru.load_model(tmp_path / "m.npz")
    schedule = loaded.optimizer._learning_rate
    assert type(schedule) is getattr(schedules, case["class_name"])
    assert schedule.get_config() == case["config"]
    assert loaded.optimizer.beta_1 == 0.8
    np.testing.assert_array_equal(schedule(np.arange(50)), make(case)(np.arange(50)))


@schedules.register_schedule(name="tests.InverseSqrt")
class InverseSqrt(schedules.LearningRateSchedule):
    def __init__(self, scale, warmup=1):
        self.scale, self.warmup = scale, warmup

    def __call__(self, step):
        return self.scale / math.sqrt(max(step, self.warmup))

    def get_config(self):
        return {"scale": self.scale, "warmup": self.warmup}


class Unregistered(InverseSqrt):
    pass


class WithoutConfig(schedules.LearningRateSchedule):
    def __call__(self, step):
        return 0.1


def test_a_registered_user_schedule_survives_save_and_load(tmp_path):
    model = model_with(optimizers.SGD(InverseSqrt(0.5, warmup=4)))
    model.save(tmp_path / "m.npz")
    loaded = cgru.load_model(tmp_path / "m.npz")
    schedule = loaded.optimizer._learning_rate
    assert isinstance(schedule, InverseSqrt) and schedule.get_config() == {"scale": 0.5, "warmup": 4}
    registry = schedules.SCHEDULES.classes
    saved = registry.pop("tests.InverseSqrt")
    try:
        with pytest.raises(ValueError, match="unknown schedule class 'tests.InverseSqrt'"):
            cgru.load_model(tmp_path / "m.npz")
    finally:
        registry["tests.InverseSqrt"] = saved


def test_schedules_that_cannot_be_saved_say_why(tmp_path):
    with pytest.raises(ValueError, match="register_schedule"):
        model_with(optimizers.SGD(Unregistered(0.5))).save(tmp_path / "a.npz")
    schedules.register_schedule(WithoutConfig, name="tests.WithoutConfig")
    with pytest.raises(TypeError, match="get_config"):
        model_with(optimizers.SGD(WithoutConfig())).save(tmp_path / "b.npz")
    with pytest.raises(TypeError, match="LearningRateSchedule"):
        model_with(optimizers.SGD(lambda step: 0.1)).save(tmp_path / "c.npz")
    assert not list(tmp_path.iterdir())


def test_schedule_names_are_protected_like_layer_names():
    with pytest.raises(ValueError, match="built-in schedule"):

        @schedules.register_schedule(name="CosineDecay")
        class MyCosine(schedules.LearningRateSchedule):
            pass

    with pytest.raises(TypeError, match="LearningRateSchedule"):
        schedules.register_schedule(Dense)


def test_optimizer_config_round_trips_a_schedule():
    opt = optimizers.RMSprop(learning_rate=schedules.InverseTimeDecay(0.1, 5, 0.5), rho=0.8)
    spec = optimizers.serialize(opt)
    json.dumps(spec)
    again = optimizers.get(spec)
    assert isinstance(again, optimizers.RMSprop) and again.rho == 0.8
    assert again._learning_rate.get_config() == opt._learning_rate.get_config()
    assert again.learning_rate == opt.learning_rate


def test_the_readme_example_runs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Learning-rate control", 1)[1].split("\n### ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md (learning-rate control)", "exec"), namespace)
    optimizer = namespace["model"].optimizer
    assert isinstance(optimizer._learning_rate, schedules.CosineDecay)
    assert optimizer.learning_rate == np.float32(1e-4)
