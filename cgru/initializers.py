"""Weight initializers, by name or object, with Keras's formulas and defaults.

An initializer is called as ``init(shape, dtype="float32", rng=None)`` and returns a NumPy array.
Layers pass their own seeded generator as ``rng`` (a layer's ``seed=`` makes its weights
reproducible); an initializer given its own ``seed`` ignores ``rng`` and returns the same values
on every call, as Keras's seeded initializers do.

Names: ``"zeros"``, ``"ones"``, ``"constant"``, ``"random_normal"`` (``"normal"``),
``"random_uniform"`` (``"uniform"``), ``"truncated_normal"``, ``"glorot_uniform"``,
``"glorot_normal"``, ``"he_uniform"``, ``"he_normal"``, ``"lecun_uniform"``, ``"lecun_normal"``,
``"orthogonal"``, ``"identity"``; CamelCase class names work too.
"""

from __future__ import annotations

import math

import numpy as np

from .registry import BuiltinNames


def compute_fans(shape: tuple) -> tuple[int, int]:
    """Keras's fan-in and fan-out of a weight shape."""
    shape = tuple(int(d) for d in shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _check_shape(shape) -> tuple:
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        shape = (int(shape),)
    if any(d < 0 for d in shape):
        raise ValueError(f"shape must be non-negative, got {shape}")
    return shape


class Initializer:
    """Base class: subclasses implement :meth:`generate` and :meth:`get_config`."""

    def __init__(self, seed: int | None = None) -> None:
        from .config import check_seed

        self.seed = check_seed(seed)

    def __call__(self, shape, dtype=None, rng: np.random.Generator | None = None) -> np.ndarray:
        from .config import next_seed, standardize_dtype

        shape = _check_shape(shape)
        dtype = standardize_dtype(dtype)
        if self.seed is not None:
            rng = np.random.default_rng(self.seed)
        elif rng is None:
            rng = np.random.default_rng(next_seed())
        return np.ascontiguousarray(self.generate(shape, rng), dtype=dtype)

    def generate(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"seed": self.seed} if self.seed is not None else {}

    @classmethod
    def from_config(cls, config: dict) -> Initializer:
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Zeros(Initializer):
    """All zeros."""

    def __init__(self) -> None:
        super().__init__(None)

    def generate(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    """All ones."""

    def __init__(self) -> None:
        super().__init__(None)

    def generate(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    """Every entry equal to ``value``."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__(None)
        self.value = float(value)

    def generate(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    """Normal distribution (Keras defaults mean 0, stddev 0.05)."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def generate(self, shape, rng):
        return rng.normal(self.mean, self.stddev, shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class RandomUniform(Initializer):
    """Uniform distribution on [minval, maxval) (Keras defaults -0.05, 0.05)."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)
        if self.maxval < self.minval:
            raise ValueError(f"maxval ({maxval}) must be >= minval ({minval})")

    def generate(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


def _truncated_normal(rng: np.random.Generator, shape: tuple, mean: float, stddev: float) -> np.ndarray:
    """Normal samples redrawn until within two standard deviations of the mean."""
    out = rng.normal(0.0, 1.0, shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.normal(0.0, 1.0, int(bad.sum()))
        bad = np.abs(out) > 2
    return mean + stddev * out


class TruncatedNormal(Initializer):
    """Normal distribution truncated at two standard deviations (Keras defaults 0, 0.05)."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def generate(self, shape, rng):
        return _truncated_normal(rng, shape, self.mean, self.stddev)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class VarianceScaling(Initializer):
    """Keras's VarianceScaling: variance ``scale / fan`` (fan_in, fan_out or their average)."""

    MODES = ("fan_in", "fan_out", "fan_avg")
    DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "normal", "uniform")

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
    ) -> None:
        super().__init__(seed)
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        if distribution not in self.DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {self.DISTRIBUTIONS}, got {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def generate(self, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * scale)
            return rng.uniform(-limit, limit, shape)
        if self.distribution == "truncated_normal":
            # 0.879... is the standard deviation of the standard normal truncated to (-2, 2).
            return _truncated_normal(rng, shape, 0.0, math.sqrt(scale) / 0.87962566103423978)
        return rng.normal(0.0, math.sqrt(scale), shape)

    def get_config(self):
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            **super().get_config(),
        }


class _FixedVarianceScaling(VarianceScaling):
    _args: tuple = ()

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(*self._args, seed=seed)

    def get_config(self):
        return {"seed": self.seed} if self.seed is not None else {}


class GlorotUniform(_FixedVarianceScaling):
    """Uniform on ±sqrt(6 / (fan_in + fan_out)) (the Keras default for kernels)."""

    _args = (1.0, "fan_avg", "uniform")


class GlorotNormal(_FixedVarianceScaling):
    """Truncated normal with stddev sqrt(2 / (fan_in + fan_out))."""

    _args = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_FixedVarianceScaling):
    """Uniform on ±sqrt(6 / fan_in)."""

    _args = (2.0, "fan_in", "uniform")


class HeNormal(_FixedVarianceScaling):
    """Truncated normal with stddev sqrt(2 / fan_in)."""

    _args = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_FixedVarianceScaling):
    """Uniform on ±sqrt(3 / fan_in)."""

    _args = (1.0, "fan_in", "uniform")


class LecunNormal(_FixedVarianceScaling):
    """Truncated normal with stddev sqrt(1 / fan_in)."""

    _args = (1.0, "fan_in", "truncated_normal")


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain`` (the Keras default for recurrent kernels).

    The shape is flattened to (prod(shape[:-1]), shape[-1]); the result is the Q factor of a
    normal matrix with the signs fixed by R's diagonal, as Keras does.
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.gain = float(gain)

    def generate(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(f"the orthogonal initializer needs a shape of rank >= 2, got {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = rng.normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only)."""

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__(None)
        self.gain = float(gain)

    def generate(self, shape, rng):
        if len(shape) != 2:
            raise ValueError(f"the identity initializer needs a 2-D shape, got {shape}")
        return self.gain * np.eye(*shape)

    def get_config(self):
        return {"gain": self.gain}


_BUILTIN_CLASSES = (
    Zeros,
    Ones,
    Constant,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunUniform,
    LecunNormal,
    Orthogonal,
    Identity,
)
_ALIASES = {
    "zeros": Zeros,
    "zero": Zeros,
    "ones": Ones,
    "one": Ones,
    "constant": Constant,
    "random_normal": RandomNormal,
    "normal": RandomNormal,
    "random_uniform": RandomUniform,
    "uniform": RandomUniform,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "lecun_uniform": LecunUniform,
    "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal,
    "identity": Identity,
}


_NAMES = BuiltinNames("initializer", _BUILTIN_CLASSES, _ALIASES)


def get(identifier) -> Initializer:
    """An initializer from a name, a ``{"class_name", "config"}`` dict or an instance."""
    if isinstance(identifier, Initializer):
        return identifier
    initializer = _NAMES.instance(identifier)
    if initializer is None:
        raise TypeError(f"initializer must be a name, a config dict or an Initializer, got {identifier!r}")
    return initializer


def serialize(initializer: Initializer) -> dict | str:
    """JSON-able description of an initializer (its name when it has no arguments)."""
    config = initializer.get_config()
    return {"class_name": type(initializer).__name__, "config": config}


# Keras-style function aliases: cgru.initializers.glorot_uniform() etc.
zeros, ones, constant = Zeros, Ones, Constant
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
glorot_uniform, glorot_normal, he_uniform, he_normal = GlorotUniform, GlorotNormal, HeUniform, HeNormal
lecun_uniform, lecun_normal, orthogonal, identity = LecunUniform, LecunNormal, Orthogonal, Identity
