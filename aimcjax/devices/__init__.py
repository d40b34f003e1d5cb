"""Response-function families of resistive elements.

A device says how much one pulse moves a weight ``w``: an up pulse adds
``dw_min * q_plus(w)`` and a down pulse subtracts ``dw_min * q_minus(w)`` [RF eq. 3].
Their mean and half difference,

    F(w) = (q_minus(w) + q_plus(w)) / 2,      G(w) = (q_minus(w) - q_plus(w)) / 2,

give the expected analog update ``w + dw*F(w) - |dw|*G(w)`` [RF eq. 5]; the zero of ``G`` is
the *symmetric point* towards which Analog SGD drifts.

Every device is an immutable pytree whose numeric fields are leaves, so stacking devices
(``jax.tree.map(lambda *a: jnp.stack(a), *devices)``) and ``jax.vmap`` over them is a sweep.
A new device is two jnp functions: see :class:`Custom`.

References:
  [RF] Wu, Xiao, Gokmen, Fagbohungbe, Chen. Analog In-memory Training on General Non-ideal
  Resistive Elements: The Impact of Response Functions. arXiv:2502.06309.
  [AIHWKIT] IBM Analog Hardware Acceleration Kit, ``PulsedDevice`` parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, dataclass_transform

import jax
import jax.numpy as jnp
import numpy as np

from aimcjax._typing import ArrayLike, DTypeLike

__all__ = [
    "NOISE_MODES",
    "ConstantStep",
    "Custom",
    "Device",
    "ExpStep",
    "Exponential",
    "Piecewise",
    "Power",
    "SoftBounds",
    "stack",
]

NOISE_MODES = ("additive", "multiplicative")
RANGE_NORMALIZATIONS = ("per_bound", "aihwkit")  # Power's choices, see Power

# Variation parameters shared by every family (aihwkit names where it has them).
VARIATION_FIELDS = (
    "dw_min_dtod",
    "up_down_dtod",
    "w_max_dtod",
    "w_min_dtod",
    "dw_min_std",
    "reference_std",
)


def _concrete(value: object) -> np.ndarray | None:
    """The value as a numpy array when it is known now (not a tracer or placeholder)."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, (int, float, np.ndarray, np.generic, jax.Array)):
        try:
            return np.asarray(value, dtype=np.float64)
        except Exception:  # e.g. a jax array that is not yet materialised
            return None
    return None


def _nonneg_power(base: jax.Array, exponent: ArrayLike) -> jax.Array:
    """base ** exponent for base >= 0 and exponent > 0. A traced exponent (a device passed
    into jit, a vmapped sweep over gamma) goes through exp(exponent * log(base)): XLA's
    general ``pow`` costs ~3x more on CPU (relative difference ~1e-6 in float32); a concrete
    one keeps ``**`` (integer and half powers take XLA's fast paths)."""
    if _concrete(exponent) is not None:
        return base**exponent
    return jnp.exp(exponent * jnp.log(base))  # log(0) = -inf -> 0 for exponent > 0


def _check(name: str, value: object, ok: Callable[[np.ndarray], np.ndarray], must: str) -> None:
    """Raise a ValueError naming ``name`` unless the (concrete) value is finite and ``ok``.

    Every numeric device parameter must be finite: an infinite step, range or spread turns the
    pulse arithmetic into ``inf - inf`` or ``0 * inf``, i.e. NaN weights."""
    arr = _concrete(value)
    if arr is None:
        return
    if np.isnan(arr).any():
        raise ValueError(f"{name} must not be NaN, got {value!r}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {value!r}")
    if not np.all(ok(arr)):
        raise ValueError(f"{name} must be {must}, got {value!r}")


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


# The largest response a pulse can see, per dtype: finfo.max / 16 leaves room for the sum
# q_minus + q_plus (F), a multiplicative noise factor and the gain without overflowing, and is
# still far beyond any response that moves a weight by less than its whole range (an element
# with such a response reaches its bound in one pulse either way).
_RESPONSE_HEADROOM = 16.0


def _finite_response(q: ArrayLike) -> jax.Array:
    """``q`` capped at ``finfo(dtype).max / 16``: a response that overflows (a steep
    Exponential or Power element whose sampled bound came out narrow) stays finite, so a
    zero-gain element times it is 0, not NaN. A no-op for every response below the cap."""
    q = jnp.asarray(q)
    if not jnp.issubdtype(q.dtype, jnp.floating):
        return q
    return jnp.minimum(q, jnp.asarray(float(jnp.finfo(q.dtype).max) / _RESPONSE_HEADROOM, q.dtype))


def response_cap(dtype: DTypeLike) -> float:
    """The largest response a ``dtype`` tile represents faithfully (``finfo.max / 16``)."""
    return float(jnp.finfo(dtype).max) / _RESPONSE_HEADROOM


def check_response_range(device: Device, dtype: DTypeLike = jnp.float32) -> None:
    """The device's responses at its nominal bounds and at 0, evaluated in ``dtype``, must be
    finite and below :func:`response_cap`: a steeper nominal device would be computed with
    overflowing intermediates (an Exponential's e^{gamma (1 + |w_min|/w_max)}; from gamma ~ 43
    in float32 and ~ 4.5 in float16 with symmetric bounds). Only the sampled extremes of
    device-to-device variation may reach the cap. Checked when the parameters are known now.

    Raises:
      ValueError: naming the steepness parameter (``gamma``) where the family has one.
    """
    leaves = [device.w_min, device.w_max] + ([device.gamma] if hasattr(device, "gamma") else [])
    concrete = [_concrete(v) for v in leaves]
    if any(c is None or np.ndim(c) for c in concrete):
        return  # traced or batched: each member was checked on its own
    # Concrete parameters: evaluate now even when called while tracing (tile.init under jit).
    with jax.ensure_compile_time_eval():
        lo, hi = jnp.asarray(device.w_min, dtype), jnp.asarray(device.w_max, dtype)
        w = jnp.stack([lo, jnp.zeros((), dtype), hi])
        q = np.asarray(jnp.stack(device.response(w, lo, hi)), np.float64)
    cap = response_cap(dtype)
    if np.all(np.isfinite(q)) and np.all(q < cap):
        return
    name = jnp.dtype(dtype).name
    what = (
        f"gamma={device.gamma!r} is too steep"
        if hasattr(device, "gamma")
        else "the responses are too large"
    )
    raise ValueError(
        f"{what} for a {name} tile: computing its response at the bounds overflows "
        f"{name} (the cap is {cap:.3g}; lower gamma, use a wider dtype or make the "
        "bounds more symmetric)"
    )


def _as_leaf(value: Any) -> Any:
    """Python numbers become float leaves; arrays (and tracers) pass through."""
    if isinstance(value, bool):
        raise TypeError(f"expected a number, got bool {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    return value


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Device:
    """Base of all device families.

    Subclasses are frozen dataclasses registered as pytrees; they implement
    ``response(w, w_min, w_max) -> (q_plus, q_minus)`` evaluated against given (per-element)
    bounds, and may override ``symmetric_point`` with a closed form.
    """

    # Fields that are static (part of the treedef) rather than leaves.
    _static: ClassVar[tuple[str, ...]] = ("noise",)

    # Variation parameters every family carries (keyword-only, see _VARIATION_DOC).
    dw_min_dtod: Any = 0.0
    up_down_dtod: Any = 0.0
    w_max_dtod: Any = 0.0
    w_min_dtod: Any = 0.0
    dw_min_std: Any = 0.0
    reference_std: Any = 0.0
    noise: str = "additive"

    if TYPE_CHECKING:  # every family has these fields (declared per family, with its defaults)
        dw_min: Any
        w_min: Any
        w_max: Any

    def __repr__(self) -> str:
        # The family's own parameters first; variation parameters only where set.
        shared = {f.name for f in dataclasses.fields(Device)}
        own = [f.name for f in dataclasses.fields(self) if f.name not in shared]
        varied = [
            n
            for n in VARIATION_FIELDS
            if _concrete(getattr(self, n)) is None or np.any(_concrete(getattr(self, n)) != 0)
        ]
        noise = ["noise"] if self.noise != "additive" else []
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in own + varied + noise)})"

    # -- public API ---------------------------------------------------------------------------
    def response(
        self, w: ArrayLike, w_min: ArrayLike, w_max: ArrayLike
    ) -> tuple[jax.Array, jax.Array]:
        """``(q_plus, q_minus)`` at ``w`` for an element with bounds ``[w_min, w_max]``."""
        raise NotImplementedError

    def q_plus(self, w: ArrayLike) -> jax.Array:
        """Response to an up pulse (>= 0), relative to ``dw_min``."""
        return self.response(w, self.w_min, self.w_max)[0]

    def q_minus(self, w: ArrayLike) -> jax.Array:
        """Response to a down pulse (>= 0), relative to ``dw_min``."""
        return self.response(w, self.w_min, self.w_max)[1]

    def F(self, w: ArrayLike) -> jax.Array:
        """Symmetric component (q_minus + q_plus) / 2 [RF eq. 4]."""
        qp, qm = self.response(w, self.w_min, self.w_max)
        return (qm + qp) / 2

    def G(self, w: ArrayLike) -> jax.Array:
        """Asymmetric component (q_minus - q_plus) / 2 [RF eq. 4]."""
        qp, qm = self.response(w, self.w_min, self.w_max)
        return (qm - qp) / 2

    def expected_update(self, w: ArrayLike, dw: ArrayLike) -> jax.Array:
        """Expected analog update ``w + dw*F(w) - |dw|*G(w)`` [RF eq. 5], clipped to bounds."""
        w = jnp.asarray(w)
        new = w + dw * self.F(w) - jnp.abs(dw) * self.G(w)
        return jnp.clip(new, self.w_min, self.w_max)

    def symmetric_point(self) -> jax.Array:
        """The weight w* with G(w*) = 0, found by bisection over [w_min, w_max]."""
        return symmetric_point_bisect(self, 1.0, 1.0, self.w_min, self.w_max)

    def update_granularity(self) -> jax.Array | float:
        """The weight change one pulse is counted as when "outer" mode balances the x and d
        pulse probabilities (aihwkit's ``calcWeightGranularity``): ``dw_min`` here, the step
        at w = 0 with symmetric bounds; :class:`Piecewise` and :class:`ExpStep` differ."""
        return self.dw_min

    def replace(self, **changes: Any) -> Device:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    # -- validation shared by all families ------------------------------------------------------
    def _validate_common(self) -> None:
        _check("dw_min", self.dw_min, lambda a: a > 0, "> 0")
        _check("w_min", self.w_min, lambda a: a < 0, "< 0 (bounds must straddle 0)")
        _check("w_max", self.w_max, lambda a: a > 0, "> 0 (bounds must straddle 0)")
        for name in VARIATION_FIELDS:
            _check(name, getattr(self, name), lambda a: a >= 0, ">= 0")
        if self.noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {self.noise!r}")

    def _finish_init(self) -> None:
        for f in dataclasses.fields(self):
            if f.name not in self._static:
                value = getattr(self, f.name)
                if value is not None and not callable(value):
                    object.__setattr__(self, f.name, _as_leaf(value))
        self._validate_common()


def symmetric_point_bisect(
    device: Device,
    gain_up: jax.Array | float,
    gain_down: jax.Array | float,
    w_min: ArrayLike,
    w_max: ArrayLike,
    iters: int = 64,
) -> jax.Array:
    """Zero of ``gain_down*q_minus(w) - gain_up*q_plus(w)`` on [w_min, w_max], elementwise.

    Where G has no sign change the result is the bound the drift leads to; where G is zero
    everywhere (a symmetric constant step) it is the midpoint of the range.
    """
    lo = jnp.asarray(w_min) * jnp.ones_like(jnp.asarray(gain_up) * 1.0)
    hi = jnp.asarray(w_max) * jnp.ones_like(lo)

    def g(w: jax.Array) -> jax.Array:
        qp, qm = device.response(w, w_min, w_max)
        return gain_down * qm - gain_up * qp

    def body(_: jax.Array, bounds: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        lo, hi = bounds
        mid = (lo + hi) / 2
        gm = g(mid)
        # G > 0 above the symmetric point (down pulses win there), so move towards it.
        lo = jnp.where(gm < 0, mid, jnp.where(gm == 0, mid, lo))
        hi = jnp.where(gm > 0, mid, jnp.where(gm == 0, mid, hi))
        return lo, hi

    lo, hi = jax.lax.fori_loop(0, iters, body, (lo, hi))
    return jnp.asarray((lo + hi) / 2)


_D = TypeVar("_D", bound=Device)


@dataclass_transform(kw_only_default=True, frozen_default=True, eq_default=False)
def _device(cls: type[_D]) -> type[_D]:
    """Make ``cls`` a frozen dataclass and a pytree (numeric fields are leaves)."""
    cls = dataclasses.dataclass(frozen=True, eq=False, repr=False, kw_only=True)(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    static = [n for n in names if n in cls._static]
    data = [n for n in names if n not in cls._static]

    def flatten_with_keys(obj: _D) -> tuple[list[tuple[Any, Any]], tuple[Any, ...]]:
        children = [(jax.tree_util.GetAttrKey(n), getattr(obj, n)) for n in data]
        return children, tuple(getattr(obj, n) for n in static)

    def unflatten(aux: tuple[Any, ...], children: Any) -> _D:
        obj = object.__new__(cls)
        for n, v in zip(data, children):
            object.__setattr__(obj, n, v)
        for n, v in zip(static, aux):
            object.__setattr__(obj, n, v)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten)
    return cls


_VARIATION_DOC = """
    Variation parameters (all default 0, the clean model of the theory):
      dw_min_dtod: device-to-device spread of each element's step gain (relative std).
      up_down_dtod: device-to-device spread of each element's up/down gain imbalance.
      w_max_dtod, w_min_dtod: device-to-device spread of the bounds (relative std).
      dw_min_std: cycle-to-cycle noise sigma_c per pulse.
      noise: "additive" [RF eq. 26] dw_min*(q(w) + sigma_c*xi) or "multiplicative"
        [AIHWKIT] dw_min*q(w)*(1 + sigma_c*xi).
      reference_std: std of the error of the zero-shift reference (weight units).
"""


@_device
class ConstantStep(Device):
    """Constant step device: q_plus = 1 + c, q_minus = 1 - c.

    With ``asymmetry=0`` (default) G is identically 0 and every point is symmetric; the
    symmetric point is then reported as the middle of the range (0 for symmetric bounds).
    """

    dw_min: Any = 1e-3
    w_min: Any = -1.0
    w_max: Any = 1.0
    asymmetry: Any = 0.0

    __doc__ = (__doc__ or "") + _VARIATION_DOC

    def __post_init__(self) -> None:
        self._finish_init()
        _check("asymmetry", self.asymmetry, lambda a: np.abs(a) < 1, "in (-1, 1)")

    def response(
        self, w: ArrayLike, w_min: ArrayLike, w_max: ArrayLike
    ) -> tuple[jax.Array, jax.Array]:
        one = jnp.ones_like(jnp.asarray(w) * 1.0)
        return (1 + self.asymmetry) * one, (1 - self.asymmetry) * one


@dataclasses.dataclass(frozen=True, eq=False, repr=False, kw_only=True)
class _TauFamily(Device):
    """Families whose range defaults to [-tau, tau] and whose up/down imbalance is ``asymmetry``
    (a ``gamma`` field, where a family has one, must be > 0)."""

    tau: Any = 0.6
    asymmetry: Any = 0.0
    dw_min: Any = 1e-3
    w_min: Any = None
    w_max: Any = None

    def __post_init__(self) -> None:
        _check("tau", self.tau, lambda a: a > 0, "> 0")
        if hasattr(self, "gamma"):
            _check("gamma", self.gamma, lambda a: a > 0, "> 0")
        _check("asymmetry", self.asymmetry, lambda a: np.abs(a) < 1, "in (-1, 1)")
        _default_bounds(self)
        self._finish_init()
        check_response_range(self, jnp.float32)


@_device
class SoftBounds(_TauFamily):
    """Linear (soft-bounds) response: q_plus = (1+c)(1 - w/w_max), q_minus = (1-c)(1 - w/w_min).

    With symmetric bounds ``±tau`` the symmetric point is ``c*tau`` [RF §3].
    """

    __doc__ = (__doc__ or "") + _VARIATION_DOC

    def response(
        self, w: ArrayLike, w_min: ArrayLike, w_max: ArrayLike
    ) -> tuple[jax.Array, jax.Array]:
        c = self.asymmetry
        qp = (1 + c) * jnp.maximum(1 - w / w_max, 0)
        qm = (1 - c) * jnp.maximum(1 - w / w_min, 0)
        return qp, qm

    def symmetric_point(self) -> jax.Array:
        # (1-c)(1 + w/a) = (1+c)(1 - w/b) with a = |w_min|, b = w_max.
        c, a, b = self.asymmetry, -self.w_min, self.w_max
        return 2 * c / ((1 - c) / a + (1 + c) / b)


@_device
class Power(_TauFamily):
    """Power response: q_plus = (1+c)(1 - w/w_max)^gamma, q_minus = (1-c)(1 - w/w_min)^gamma.

    ``range_normalization`` says what the distance to a bound is measured against:
      "per_bound" (default): each direction against its own bound, as above [RF]; with
        bound variation every element keeps its symmetric point at 0 (for c = 0), and
        ``Power(gamma=1)`` is :class:`SoftBounds` (whose aihwkit form also uses each
        element's own bounds).
      "aihwkit": against the element's whole range, as aihwkit's PowStepDevice:
        q_plus = (1+c)(2 (w_max - w)/(w_max - w_min))^gamma,
        q_minus = (1-c)(2 (w - w_min)/(w_max - w_min))^gamma;
        the symmetric point (c = 0) is each element's bound midpoint. With symmetric bounds
        both forms are equal; aimcjax ``Power(dw_min=x, range_normalization="aihwkit")`` is
        aihwkit ``PowStepDevice(dw_min=x * 2**gamma)`` also under bound variation.
    """

    gamma: Any = 1.0
    range_normalization: str = "per_bound"

    _static: ClassVar[tuple[str, ...]] = ("noise", "range_normalization")

    __doc__ = (__doc__ or "") + _VARIATION_DOC

    def __post_init__(self) -> None:
        _check_choice("range_normalization", self.range_normalization, RANGE_NORMALIZATIONS)
        super().__post_init__()

    def response(
        self, w: ArrayLike, w_min: ArrayLike, w_max: ArrayLike
    ) -> tuple[jax.Array, jax.Array]:
        c = self.asymmetry
        if self.range_normalization == "aihwkit":
            span = (w_max - w_min) / 2
            up, down = (w_max - w) / span, (w - w_min) / span
        else:
            up, down = 1 - w / w_max, 1 - w / w_min
        qp = (1 + c) * _nonneg_power(jnp.maximum(up, 0), self.gamma)
        qm = (1 - c) * _nonneg_power(jnp.maximum(down, 0), self.gamma)
        return _finite_response(qp), _finite_response(qm)

    def symmetric_point(self) -> jax.Array:
        # ((1+c)/(1-c))^(1/gamma) = (distance to w_min) / (distance to w_max), each distance
        # in the form's units: linear in w.
        c, a, b = self.asymmetry, -self.w_min, self.w_max
        r = ((1 + c) / (1 - c)) ** (1 / self.gamma)
        if self.range_normalization == "aihwkit":
            return (r * b - a) / (1 + r)
        return (r - 1) / (1 / a + r / b)


@_device
class Exponential(_TauFamily):
    """Exponential response [RF §5]:

    q_plus = (1+c)(e^{gamma(1 - w/w_max)} - 1)/(e^gamma - 1),
    q_minus = (1-c)(e^{gamma(1 - w/w_min)} - 1)/(e^gamma - 1).
    The symmetric point is 0 for c = 0 and symmetric bounds; otherwise found by bisection.
    """

    gamma: Any = 1.0

    __doc__ = (__doc__ or "") + _VARIATION_DOC

    def response(
        self, w: ArrayLike, w_min: ArrayLike, w_max: ArrayLike
    ) -> tuple[jax.Array, jax.Array]:
        c, g = self.asymmetry, self.gamma
        norm = jnp.expm1(g)
        qp = (1 + c) * jnp.expm1(g * jnp.maximum(1 - w / w_max, 0)) / norm
        qm = (1 - c) * jnp.expm1(g * jnp.maximum(1 - w / w_min, 0)) / norm
        return _finite_response(qp), _finite_response(qm)

    def symmetric_point(self) -> jax.Array:
        symmetric = (jnp.asarray(self.asymmetry) == 0) & (
            jnp.asarray(self.w_min) == -jnp.asarray(self.w_max)
        )
        return jnp.where(symmetric, 0.0, super().symmetric_point())


@_device
class Piecewise(Device):
    """Piecewise-linear response: node values ``up``/``down`` spaced evenly over [w_min, w_max].

    Like aihwkit's PiecewiseStepDevice; node values must be >= 0, ``up`` non-increasing and
    ``down`` non-decreasing in w (a physical device saturates towards its bounds).
    """

    up: Any = (1.0, 1.0)
    down: Any = (1.0, 1.0)
    w_min: Any = -1.0
    w_max: Any = 1.0
    dw_min: Any = 1e-3

    __doc__ = (__doc__ or "") + _VARIATION_DOC

    def __post_init__(self) -> None:
        for name in ("up", "down"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, np.asarray(value, dtype=np.float32))
            arr = _concrete(getattr(self, name))
            if arr is None:
                continue
            if arr.ndim < 1 or arr.shape[-1] < 2:
                raise ValueError(f"{name} needs at least 2 node values, got shape {arr.shape}")
            if not np.isfinite(arr).all() or (arr < 0).any():
                raise ValueError(f"{name} node values must be finite and >= 0, got {arr}")
            steps = np.diff(arr, axis=-1)
            if name == "up" and (steps > 0).any():
                raise ValueError(f"up must be non-increasing in w (monotone nodes), got {arr}")
            if name == "down" and (steps < 0).any():
                raise ValueError(f"down must be non-decreasing in w (monotone nodes), got {arr}")
        up, down = _concrete(self.up), _concrete(self.down)
        if up is not None and down is not None and up.shape != down.shape:
            raise ValueError(
                f"up and down need the same number of nodes, got {up.shape} and {down.shape}"
            )
        self._finish_init()

    def response(
        self, w: ArrayLike, w_min: ArrayLike, w_max: ArrayLike
    ) -> tuple[jax.Array, jax.Array]:
        up = jnp.asarray(self.up)
        down = jnp.asarray(self.down)
        n = up.shape[-1]
        pos = jnp.clip((w - w_min) / (w_max - w_min), 0.0, 1.0) * (n - 1)
        i0 = jnp.clip(jnp.floor(pos), 0, n - 2).astype(jnp.int32)
        frac = pos - i0

        def interp(nodes: jax.Array) -> jax.Array:
            return nodes[i0] * (1 - frac) + nodes[i0 + 1] * frac

        return interp(up), interp(down)

    def update_granularity(self) -> jax.Array:
        """aihwkit's PiecewiseStep granularity: ``dw_min`` times the up node at index n // 2
        (the middle node for odd n, the upper of the two middle ones for even n)."""
        up = jnp.asarray(self.up)
        return self.dw_min * up[..., up.shape[-1] // 2]


@_device
class ExpStep(Device):
    """aihwkit's ExpStepDevice: a step that falls off exponentially in w (CMOS-like, fitted
    to ReRAM and PCM data). With z = 2 a w / (w_max - w_min) + b (per-element bounds):

        q_plus  = (1 + min(up_down, 0)) * max(1 - A_up   * exp( gamma_up   * z), 0)
        q_minus = (1 - max(up_down, 0)) * max(1 - A_down * exp(-gamma_down * z), 0)

    Parameters have aihwkit's names and defaults (A_up, A_down, gamma_up, gamma_down, a, b,
    up_down: aihwkit reduces one direction by |up_down|). aihwkit's multiplicative noise is
    ``noise="multiplicative"``; its complex noise (``dw_min_std_add/_slope``) and write noise
    are not modelled.

    Example:
      >>> dev = ExpStep(dw_min=1e-3, noise="multiplicative")
      >>> qp, qm = dev.response(0.0, dev.w_min, dev.w_max)
      >>> round(float(qp), 4), round(float(qm), 4)
      (0.9834, 0.9834)
    """

    dw_min: Any = 1e-3
    w_min: Any = -0.6
    w_max: Any = 0.6
    A_up: Any = 0.00081
    A_down: Any = 0.36833
    gamma_up: Any = 12.44625
    gamma_down: Any = 12.78785
    a: Any = 0.244
    b: Any = 0.2425
    up_down: Any = 0.0

    __doc__ = (__doc__ or "") + _VARIATION_DOC

    def __post_init__(self) -> None:
        self._finish_init()
        for name in ("A_up", "A_down", "gamma_up", "gamma_down", "a", "b"):
            _check(name, getattr(self, name), np.isfinite, "finite")
        _check("up_down", self.up_down, lambda v: np.abs(v) < 1, "in (-1, 1)")
        check_response_range(self, jnp.float32)

    def _scales(self) -> tuple[jax.Array, jax.Array]:
        return 1 + jnp.minimum(self.up_down, 0), 1 - jnp.maximum(self.up_down, 0)

    def response(
        self, w: ArrayLike, w_min: ArrayLike, w_max: ArrayLike
    ) -> tuple[jax.Array, jax.Array]:
        z = 2 * self.a * w / (w_max - w_min) + self.b
        scale_up, scale_down = self._scales()
        qp = scale_up * jnp.maximum(1 - self.A_up * jnp.exp(self.gamma_up * z), 0)
        qm = scale_down * jnp.maximum(1 - self.A_down * jnp.exp(-self.gamma_down * z), 0)
        return _finite_response(qp), _finite_response(qm)

    def update_granularity(self) -> jax.Array:
        """aihwkit's ExpStep granularity: the mean of the down step and the down step (sic,
        aihwkit 1.2.0) at w = 0, i.e. ``dw_min`` times q_minus(0); ``dw_min`` where that is 0."""
        g = (
            self.dw_min
            * self._scales()[1]
            * jnp.maximum(1 - self.A_down * jnp.exp(-self.gamma_down * self.b), 0)
        )
        return jnp.where(g > 0, g, self.dw_min)


@_device
class Custom(Device):
    """A device from two jnp functions of ``w``: ``Custom(q_plus=f, q_minus=g)``.

    Example:
      >>> dev = Custom(q_plus=lambda w: 1 - w, q_minus=lambda w: 1 + w)
      >>> float(dev.symmetric_point())
      0.0
    """

    q_plus_fn: Callable[[jax.Array], ArrayLike] = None  # type: ignore[assignment]  # set by __init__
    q_minus_fn: Callable[[jax.Array], ArrayLike] = None  # type: ignore[assignment]
    w_min: Any = -1.0
    w_max: Any = 1.0
    dw_min: Any = 1e-3

    _static: ClassVar[tuple[str, ...]] = ("noise", "q_plus_fn", "q_minus_fn")

    def __init__(
        self,
        q_plus: Callable[[jax.Array], ArrayLike],
        q_minus: Callable[[jax.Array], ArrayLike],
        *,
        w_min: ArrayLike = -1.0,
        w_max: ArrayLike = 1.0,
        dw_min: ArrayLike = 1e-3,
        dw_min_dtod: ArrayLike = 0.0,
        up_down_dtod: ArrayLike = 0.0,
        w_max_dtod: ArrayLike = 0.0,
        w_min_dtod: ArrayLike = 0.0,
        dw_min_std: ArrayLike = 0.0,
        reference_std: ArrayLike = 0.0,
        noise: str = "additive",
    ) -> None:
        for name, fn in (("q_plus", q_plus), ("q_minus", q_minus)):
            if not callable(fn):
                raise TypeError(f"{name} must be a callable of w, got {type(fn).__name__}")
        values = dict(
            q_plus_fn=q_plus,
            q_minus_fn=q_minus,
            w_min=w_min,
            w_max=w_max,
            dw_min=dw_min,
            dw_min_dtod=dw_min_dtod,
            up_down_dtod=up_down_dtod,
            w_max_dtod=w_max_dtod,
            w_min_dtod=w_min_dtod,
            dw_min_std=dw_min_std,
            reference_std=reference_std,
            noise=noise,
        )
        for k, v in values.items():
            object.__setattr__(self, k, v)
        self._finish_init()
        _check_custom_responses(self)

    def response(
        self, w: ArrayLike, w_min: ArrayLike, w_max: ArrayLike
    ) -> tuple[jax.Array, jax.Array]:
        w = jnp.asarray(w)
        return jnp.asarray(self.q_plus_fn(w)), jnp.asarray(self.q_minus_fn(w))

    def replace(self, **changes: Any) -> Custom:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["q_plus"] = values.pop("q_plus_fn")
        values["q_minus"] = values.pop("q_minus_fn")
        values.update(changes)
        return Custom(**values)


CUSTOM_GRID_POINTS = 65  # weights at which a Custom device's functions are checked


def _check_custom_responses(dev: Custom) -> None:
    """Evaluate ``q_plus`` and ``q_minus`` on an even float32 grid over [w_min, w_max]
    (when the bounds are concrete): each must return one finite value >= 0 per weight. A
    negative response would move a weight against the pulse's direction, a NaN or inf
    response poisons the weights; both are caught here rather than in the middle of a run."""
    lo, hi = _concrete(dev.w_min), _concrete(dev.w_max)
    if lo is None or hi is None or lo.ndim or hi.ndim:
        return
    w = jnp.linspace(float(lo), float(hi), CUSTOM_GRID_POINTS, dtype=jnp.float32)
    for name, fn in (("q_plus", dev.q_plus_fn), ("q_minus", dev.q_minus_fn)):
        try:
            q = np.asarray(jnp.broadcast_to(jnp.asarray(fn(w)), w.shape), np.float64)
        except Exception as e:  # the user's function: any failure is a bad argument
            raise ValueError(
                f"{name} must map a jnp array of weights elementwise to responses; "
                f"on {CUSTOM_GRID_POINTS} weights in [{float(lo):g}, {float(hi):g}] "
                f"it raised {type(e).__name__}: {e}"
            ) from None
        bad = ~np.isfinite(q) | (q < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"{name} must be finite and >= 0 on [w_min, w_max] (a negative "
                f"response writes against the pulse's direction); "
                f"{name}({float(w[i]):g}) = {q[i]:g}"
            )


def _default_bounds(dev: _TauFamily) -> None:
    if dev.w_min is None:
        object.__setattr__(dev, "w_min", -_as_leaf(dev.tau))
    if dev.w_max is None:
        object.__setattr__(dev, "w_max", _as_leaf(dev.tau))


def stack(devices: Iterable[_D]) -> _D:
    """Stack devices of one family into one batched device for ``jax.vmap``.

    Example:
      >>> devs = stack([Power(tau=t, gamma=g) for t in (0.6, 0.8) for g in (0.5, 1.0)])
      >>> jax.vmap(lambda d: d.symmetric_point())(devs).shape
      (4,)
    """
    devices = list(devices)
    if not devices:
        raise ValueError("devices must not be empty")
    kinds = {type(d) for d in devices}
    if len(kinds) != 1:
        raise TypeError(
            f"devices must share one family to be stacked, got {sorted(k.__name__ for k in kinds)}"
        )
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *devices)
