"""Property tests (hypothesis, derandomized, bounded): random valid devices and random finite
updates never leave the elements' bounds and never produce NaN or inf, in every mode and in
the float dtypes tiles accept (float32, bfloat16, float16). Issue #16.

Each (family, dtype) compiles one jitted update; hypothesis then varies the device parameters
(pytree leaves, so no recompilation), the requested change and the keys.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aimcjax import devices as D
from aimcjax import pulse, tile

SHAPE = (6, 5)
EXAMPLES = 6
PROPERTY = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# The steepest gamma each dtype takes with bounds of ratio up to 2 (|w_min| / w_max, below):
# beyond it the nominal response overflows the dtype (checked by tile.init).
MAX_GAMMA = {jnp.float32: 20.0, jnp.bfloat16: 20.0, jnp.float16: 1.8}
DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]

unit = st.floats(0.0, 1.0, allow_nan=False)


def _device(family, dtype, p, noise="additive"):
    """A valid device of ``family`` from draws ``p`` in [0, 1] (variation up to large spreads).
    ``noise`` is static (part of the compiled program), so it is pinned per test case."""
    tau = 0.2 + 1.3 * p["tau"]
    common = dict(
        dw_min=10 ** (-3.5 + 2.5 * p["dw_min"]),
        dw_min_dtod=2.0 * p["dtod"],
        up_down_dtod=0.5 * p["updown"],
        w_max_dtod=1.5 * p["wmax"],
        w_min_dtod=1.5 * p["wmin"],
        dw_min_std=1.5 * p["std"],
        noise=noise,
    )
    asym = 0.9 * (2 * p["asym"] - 1)
    ratio = 0.5 + 1.5 * p["ratio"]  # |w_min| / w_max
    bounds = dict(w_max=tau, w_min=-tau * ratio)
    gamma = 0.1 + (MAX_GAMMA[dtype] - 0.1) * p["gamma"]
    if family == "ConstantStep":
        return D.ConstantStep(asymmetry=asym, **bounds, **common)
    if family == "SoftBounds":
        return D.SoftBounds(tau=tau, asymmetry=asym, **bounds, **common)
    if family == "Power":
        return D.Power(tau=tau, gamma=gamma, asymmetry=asym, **bounds, **common)
    if family == "Exponential":
        return D.Exponential(tau=tau, gamma=gamma, asymmetry=asym, **bounds, **common)
    up = np.sort(np.asarray([p["gamma"], p["tau"], 1.0], np.float32))[::-1] * 2
    return D.Piecewise(up=tuple(up), down=tuple(up[::-1]), **bounds, **common)


draws = st.fixed_dictionaries(
    dict.fromkeys(
        ("tau", "dw_min", "dtod", "updown", "wmax", "wmin", "std", "asym", "ratio", "gamma"), unit
    )
)
changes = st.lists(
    st.floats(-1.0, 1.0, allow_nan=False, width=32),
    min_size=SHAPE[0] * SHAPE[1],
    max_size=SHAPE[0] * SHAPE[1],
)
scales = st.sampled_from([1e-4, 1e-2, 1.0, 100.0])


def _in_bounds(t):
    w, lo, hi = (np.asarray(a, np.float64) for a in (t.w, t.w_min, t.w_max))
    return np.isfinite(w).all() and (w >= lo).all() and (w <= hi).all()


_UPDATES = {}
# tile.init under jit: compiled once per (family, dtype, zero_shift) instead of per example
# (the eager bisection of the zero-shift reference would recompile for every new device).
_init = jax.jit(tile.init, static_argnames=("shape", "zero_shift", "dtype"))


def _jitted(mode):
    if mode not in _UPDATES:
        if mode == "outer":
            _UPDATES[mode] = jax.jit(
                lambda t, d, x, dd, key: pulse.outer_update(
                    t, d, x, dd, 0.5, key, pulse.UpdateConfig(mode="outer", bl=15)
                )
            )
        else:
            _UPDATES[mode] = jax.jit(
                lambda t, d, dW, key, mode=mode: pulse.update(
                    t, d, dW, key, pulse.UpdateConfig(mode=mode, bl=15)
                )
            )
    return _UPDATES[mode]


# Every family in float32; the narrow dtypes with the families whose responses can overflow.
PULSE_CASES = (
    [
        (f, jnp.float32, "additive")
        for f in ("ConstantStep", "SoftBounds", "Power", "Exponential", "Piecewise")
    ]
    + [("Exponential", jnp.float32, "multiplicative")]
    + [(f, d, "additive") for f, d in (("Power", jnp.bfloat16), ("Exponential", jnp.float16))]
)


@pytest.mark.parametrize(
    "family, dtype, noise",
    PULSE_CASES,
    ids=[f"{f}-{jnp.dtype(d).name}-{n}" for f, d, n in PULSE_CASES],
)
def test_pulse_updates_stay_in_bounds_and_finite(family, dtype, noise):
    update = _jitted("pulse")

    @PROPERTY
    @given(p=draws, dW=changes, scale=scales, seed=st.integers(0, 2**16), zero_shift=st.booleans())
    def prop(p, dW, scale, seed, zero_shift):
        dev = _device(family, dtype, p, noise)
        t = _init(jax.random.PRNGKey(seed), dev, shape=SHAPE, zero_shift=zero_shift, dtype=dtype)
        assert _in_bounds(t) and np.isfinite(np.asarray(t.ref, np.float64)).all()
        change = jnp.asarray(np.reshape(dW, SHAPE) * scale, dtype)
        for step in range(2):
            t = update(t, dev, change * (1 - 2 * step), jax.random.PRNGKey(seed + step))
            assert _in_bounds(t), (dev, step)

    prop()


# "outer" runs the per-pulse loop (a long compilation): the family that overflows, in float32.
OTHER_CASES = [("expected", d, f) for d in DTYPES for f in ("Power", "Exponential")] + [
    ("outer", jnp.float32, "Exponential")
]


@pytest.mark.parametrize(
    "mode, dtype, family",
    OTHER_CASES,
    ids=[f"{m}-{jnp.dtype(d).name}-{f}" for m, d, f in OTHER_CASES],
)
def test_expected_and_outer_updates_stay_in_bounds_and_finite(mode, dtype, family):
    update = _jitted(mode)

    @PROPERTY
    @given(p=draws, dW=changes, scale=scales, seed=st.integers(0, 2**16))
    def prop(p, dW, scale, seed):
        dev = _device(family, dtype, p)
        t = _init(jax.random.PRNGKey(seed), dev, shape=SHAPE, zero_shift=True, dtype=dtype)
        a = jnp.asarray(np.reshape(dW, SHAPE) * scale, dtype)
        if mode == "outer":
            x, d = a.T[:2], a[:2]  # 2 samples: x (2, 6), d (2, 5)
            t = update(t, dev, x, d, jax.random.PRNGKey(seed))
        else:
            t = update(t, dev, a, jax.random.PRNGKey(seed))
        assert _in_bounds(t), dev

    prop()


@PROPERTY
@given(
    p=draws,
    w=st.lists(st.floats(-3.0, 3.0, allow_nan=False), min_size=8, max_size=8),
    family=st.sampled_from(["SoftBounds", "Power", "Exponential", "Piecewise", "ConstantStep"]),
)
def test_responses_are_finite_and_non_negative_everywhere(p, w, family):
    """q_plus, q_minus >= 0 and finite for any finite weight, inside or outside the bounds."""
    dev = _device(family, jnp.float32, p)
    qp, qm = dev.response(jnp.asarray(w, jnp.float32), dev.w_min, dev.w_max)
    for q in (np.asarray(qp), np.asarray(qm)):
        assert np.isfinite(q).all() and (q >= 0).all()
