"""aihwkit 1.2.0's update rules as "outer" mode follows them (issue 15 B): the saturation of
the pulse probabilities, each family's update granularity, Power's whole-range form and the
ExpStep family, each against a numpy transcription of aihwkit's C++ or a hand computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aimcjax import devices as D
from aimcjax import pulse as P
from aimcjax import tile as T
from aimcjax.app import specs
from aimcjax.pulse import loop, trains

OUTER = P.UpdateConfig(mode="outer")


# -- saturation: aihwkit clips the probabilities, it does not rescale d --------------------------


def _aihwkit_probabilities(x, d, lr, g, bl, um=True, ublm=True):
    """numpy transcription of PulsedUpdateMetaParameter::calculateBlAB (fixed_BL) and
    ::performUpdateManagement, then the bit test ``PP > uniform`` (p above 1 always fires)."""
    x_max, d_max = np.abs(x).max(), np.abs(d).max()
    BL = bl
    A = B = np.sqrt(lr / (g * BL))
    x_val, d_val = x_max, d_max
    k_val = lr * x_val * d_val / g
    if ublm:
        BL = min(int(np.ceil(k_val)), bl)
        A = B = np.sqrt(lr / (g * BL))
    if um:
        if k_val > bl:
            d_val *= bl / k_val
        A *= np.sqrt(x_val / d_val)
        B *= np.sqrt(d_val / x_val)
    return np.minimum(np.abs(x) * B, 1), np.minimum(np.abs(d) * A, 1), BL


@pytest.mark.parametrize(
    "lr,um,ublm",
    [
        (0.01, True, True),  # k = 9: below saturation
        (1.0, True, True),  # k = 900 > 31: saturated
        (1.0, False, True),  # no balancing: both sides clip
        (1.0, True, False),  # fixed BL 31
        (0.002, False, False),
    ],
)
def test_probabilities_follow_aihwkit(lr, um, ublm):
    x = np.array([0.9, -0.45, 0.1, 0.0, 0.3], np.float32)
    d = np.array([1.0, -0.2, 0.015, -0.004], np.float32)
    cfg = P.UpdateConfig(mode="outer", bl=31, update_management=um, update_bl_management=ublm)
    p_x, p_d, bl = trains._pulse_probabilities(
        jnp.asarray(x), jnp.asarray(d), jnp.float32(lr), 1e-3, cfg
    )
    want_x, want_d, want_bl = _aihwkit_probabilities(
        x.astype(np.float64), d.astype(np.float64), lr, 1e-3, 31, um, ublm
    )
    assert int(bl) == want_bl
    np.testing.assert_allclose(p_x, want_x, rtol=2e-6)
    np.testing.assert_allclose(p_d, want_d, rtol=2e-6)


def test_saturation_by_hand():
    # k = 1 * 1 * 2 / 1e-3 = 2000 > BL = 31: p_x = |x| / max|x| (the largest x fires in every
    # slot), p_d = min(1, |d| k / (max|d| BL)) = min(1, |d| * 1000 / 31).
    x = jnp.array([1.0, 0.5, -0.2])
    d = jnp.array([2.0, -1.0, 0.01, -0.005])
    p_x, p_d, bl = trains._pulse_probabilities(x, d, jnp.float32(1.0), 1e-3, OUTER)
    assert int(bl) == 31
    np.testing.assert_allclose(p_x, [1.0, 0.5, 0.2], rtol=1e-6)
    np.testing.assert_allclose(p_d, [1.0, 1.0, 10 / 31, 5 / 31], rtol=1e-5)


def test_saturated_sample_keeps_small_entries_exact():
    """Only the large d entries saturate: the others keep E[n_ij] = lr |x_j d_i| / dw_min,
    the saturated ones get BL |x_j| / max|x|; means within 5 standard errors."""
    x = jnp.array([1.0, 0.5, -0.2])
    d = jnp.array([2.0, -1.0, 0.01, -0.005])
    lr, dw_min = 1.0, 1e-3
    keys = jax.random.split(jax.random.PRNGKey(7), 1500)
    n = np.asarray(
        jax.jit(jax.vmap(lambda k: trains._sample_pulse_counts(x, d, lr, dw_min, k, OUTER)))(keys)
    )
    want = np.empty((3, 4))
    want[:, :2] = 31 * np.abs(np.asarray(x))[:, None]
    want[:, 2:] = lr * np.abs(np.outer(x, d[2:])) / dw_min
    mean, se = np.abs(n).mean(0), np.abs(n).std(0) / np.sqrt(len(keys))
    assert (np.abs(mean - want) <= 5 * se + 1e-9).all(), (mean, want)
    np.testing.assert_array_equal(np.sign(n.sum(0)), -np.sign(np.outer(x, d)))


# -- update granularity, one rule per family -----------------------------------------------------


@pytest.mark.parametrize(
    "dev,want",
    [
        (D.ConstantStep(dw_min=2e-3, asymmetry=0.3), 2e-3),
        (D.SoftBounds(dw_min=2e-3, asymmetry=-0.2), 2e-3),
        # aimcjax Power(dw_min=x) is PowStep(dw_min=x 2^g), whose granularity is x 2^g 0.5^g = x
        (D.Power(dw_min=2e-3, gamma=2.0), 2e-3),
        (D.Power(dw_min=2e-3, gamma=0.5, range_normalization="aihwkit"), 2e-3),
        (D.Exponential(dw_min=2e-3, gamma=3.0), 2e-3),
        (D.Piecewise(up=[2.0, 1.5, 0.8], down=[0.8, 1.5, 2.0], dw_min=2e-3), 2e-3 * 1.5),
        (D.Piecewise(up=[2.0, 1.5, 0.8, 0.4], down=[0.4, 0.8, 1.5, 2.0], dw_min=2e-3), 2e-3 * 0.8),
        (D.Piecewise(up=[2.0, 0.5], down=[0.5, 2.0], dw_min=2e-3), 2e-3 * 0.5),
        # ExpStep: dw_min (1 - up_down) (1 - A_down exp(-gamma_down b))
        (D.ExpStep(dw_min=2e-3), 2e-3 * (1 - 0.36833 * np.exp(-12.78785 * 0.2425))),
        (
            D.ExpStep(dw_min=2e-3, up_down=0.25, A_down=0.5, gamma_down=2.0, b=0.1),
            2e-3 * 0.75 * (1 - 0.5 * np.exp(-0.2)),
        ),
        (
            D.ExpStep(dw_min=2e-3, up_down=-0.25, A_down=0.5, gamma_down=2.0, b=0.1),
            2e-3 * (1 - 0.5 * np.exp(-0.2)),
        ),
        (D.ExpStep(dw_min=2e-3, A_down=2.0, b=0.0), 2e-3),  # zero step at w = 0: dw_min
    ],
)
def test_update_granularity_per_family(dev, want):
    np.testing.assert_allclose(float(dev.update_granularity()), want, rtol=1e-6)


def test_update_granularity_of_stacked_devices():
    devs = [
        D.Piecewise(up=[u, 1.0, 0.5], down=[0.5, 1.0, u], dw_min=m)
        for u, m in ((2.0, 1e-3), (3.0, 2e-3))
    ]
    np.testing.assert_allclose(D.stack(devs).update_granularity(), [1e-3, 2e-3], rtol=1e-6)
    exp = D.stack([D.ExpStep(b=0.1), D.ExpStep(b=0.3)])
    np.testing.assert_allclose(
        exp.update_granularity(),
        [float(D.ExpStep(b=b).update_granularity()) for b in (0.1, 0.3)],
        rtol=1e-6,
    )


def test_outer_mode_balances_with_the_device_granularity():
    """A Piecewise device whose step is half of dw_min everywhere has granularity dw_min/2:
    "outer" mode then fires twice the pulses of a dw_min device, so the mean change is
    -lr x^T d, as for a constant step (with dw_min it would be half of that)."""
    dev = D.Piecewise(up=[0.5, 0.5, 0.5], down=[0.5, 0.5, 0.5], w_min=-1.0, w_max=1.0, dw_min=2e-3)
    t = T.init(0, dev, (4, 3))
    x = jnp.array([[1.0, -0.5, 0.25, 0.0], [0.3, 0.6, -0.9, 0.1]])
    d = jnp.array([[0.2, -0.1, 0.05], [-0.3, 0.15, 0.02]])
    lr = 0.02
    keys = jax.random.split(jax.random.PRNGKey(1), 1000)
    moved = jax.jit(jax.vmap(lambda k: P.outer_update(t, dev, x, d, lr, k, OUTER).w))(keys) - t.w
    want = -lr * x.T @ d
    se = np.asarray(moved.std(0)) / np.sqrt(len(keys))
    err = np.abs(np.asarray(moved.mean(0) - want))
    assert (err <= 5 * se + 1e-9).all(), (err, se)


# -- Power: aihwkit's whole-range normalisation ---------------------------------------------------


def _powstep_step(w, lo, hi, gamma, dw_min_hw, up):
    """numpy transcription of aihwkit's PowStep update_once (noise-free)."""
    rng = hi - lo
    if up:
        return min(max(w + dw_min_hw * ((hi - w) / rng) ** gamma, lo), hi)
    return min(max(w - dw_min_hw * ((w - lo) / rng) ** gamma, lo), hi)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_power_aihwkit_form_is_powstep(gamma):
    """Power(dw_min=x, "aihwkit") pulses exactly as PowStep(dw_min=x 2^gamma) on elements with
    their own (uneven) bounds: 30 up then 30 down pulses, element by element."""
    dev = D.Power(dw_min=5e-3, gamma=gamma, range_normalization="aihwkit", w_min=-0.6, w_max=0.6)
    lo = jnp.array([[-0.3, -0.6, -0.9]])
    hi = jnp.array([[0.9, 0.6, 0.35]])
    t = T.Tile(
        w=jnp.array([[0.1, -0.2, 0.3]]),
        ref=jnp.zeros((1, 3)),
        gain_up=jnp.ones((1, 3)),
        gain_down=jnp.ones((1, 3)),
        w_min=lo,
        w_max=hi,
    )
    up = P.apply(t, dev, jnp.full((1, 3), 30, jnp.int32), 0)
    down = P.apply(up, dev, jnp.full((1, 3), -30, jnp.int32), 0)
    for j in range(3):
        w = float(t.w[0, j])
        for s in [True] * 30:
            w = _powstep_step(w, float(lo[0, j]), float(hi[0, j]), gamma, 5e-3 * 2**gamma, s)
        np.testing.assert_allclose(float(up.w[0, j]), w, rtol=1e-5)
        for s in [False] * 30:
            w = _powstep_step(w, float(lo[0, j]), float(hi[0, j]), gamma, 5e-3 * 2**gamma, s)
        np.testing.assert_allclose(float(down.w[0, j]), w, rtol=1e-5, atol=1e-7)


def test_power_forms_agree_on_symmetric_bounds():
    w = jnp.linspace(-0.7, 0.7, 29)
    a = D.Power(gamma=1.7, asymmetry=0.2, tau=0.6)
    b = a.replace(range_normalization="aihwkit")
    np.testing.assert_allclose(
        a.response(w, -0.6, 0.6), b.response(w, -0.6, 0.6), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(float(a.symmetric_point()), float(b.symmetric_point()), rtol=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_power_aihwkit_form_equilibrium_is_each_bound_midpoint(gamma):
    """With bound variation, alternating up/down pulses drive each element of the "aihwkit"
    form to its own bound midpoint (and the "per_bound" form to 0): noise-free, 600 pairs of
    pulses of dw_min 0.01 from w = 0; the fixed point of a pair lies within one step of it."""
    key = jax.random.PRNGKey(3)
    base = dict(tau=0.6, gamma=gamma, dw_min=0.01, w_max_dtod=0.3, w_min_dtod=0.3)
    for form, target in (
        ("aihwkit", lambda t: (t.w_min + t.w_max) / 2),
        ("per_bound", lambda t: 0 * t.w),
    ):
        dev = D.Power(range_normalization=form, **base)
        t = T.init(key, dev, (6, 5))
        ones = jnp.ones(t.w.shape, jnp.int32)
        pair = jax.jit(lambda t, _: (P.apply(P.apply(t, dev, ones, 0), dev, -ones, 0), None))
        end, _ = jax.lax.scan(pair, t, None, length=600)
        np.testing.assert_allclose(end.w, target(t), atol=0.01)
        # the bisection (zero shift) finds the same point
        np.testing.assert_allclose(
            D.symmetric_point_bisect(dev, 1.0, 1.0, t.w_min, t.w_max), target(t), atol=1e-5
        )
    assert float(jnp.abs((t.w_min + t.w_max) / 2).max()) > 0.05  # the midpoints do differ from 0


def test_power_aihwkit_form_in_the_pulse_loop_is_two_sided():
    dev = D.Power(tau=0.6, gamma=2.0, asymmetry=0.3, range_normalization="aihwkit")
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    lo = -0.6 * (1 + 0.3 * jax.random.uniform(k1, (20, 10)))
    hi = 0.6 * (1 + 0.3 * jax.random.uniform(k2, (20, 10)))
    w = jax.random.uniform(k3, (20, 10), minval=-0.8, maxval=0.8)
    up = (jnp.arange(10) % 2 == 0) * jnp.ones((20, 10), bool)
    qp, qm = dev.response(w, lo, hi)
    np.testing.assert_allclose(
        loop._directed_response(dev, up, lo, hi)(w), jnp.where(up, qp, qm), rtol=1e-6
    )


# -- ExpStep -----------------------------------------------------------------------------------


def _expstep_step(w, lo, hi, p, up):
    """numpy transcription of aihwkit's ExpStep update_once (noise-free, up_down folded into
    the scales as in PulsedRPUDevice::populate)."""
    u = p["up_down"]
    scale_up = (1 + min(u, 0)) * p["dw_min"]
    scale_down = (1 - max(u, 0)) * p["dw_min"]
    z = 2 * w / (hi - lo) * p["a"] + p["b"]
    if up:
        w += max(1 - p["A_up"] * np.exp(p["gamma_up"] * z), 0) * scale_up
    else:
        w -= max(1 - p["A_down"] * np.exp(p["gamma_down"] * -z), 0) * scale_down
    return min(max(w, lo), hi)


@pytest.mark.parametrize(
    "params",
    [
        dict(),  # aihwkit's defaults
        dict(
            A_up=-1.18445,
            A_down=-0.081404,
            gamma_up=5.0,
            gamma_down=5.0,
            a=-0.5,
            b=-0.5,
            up_down=0.259359,
            w_min=-1.0,
            w_max=1.0,
            dw_min=0.00135,
        ),  # aihwkit's ReRamESPresetDevice fit
        dict(
            A_up=0.3,
            A_down=0.3,
            gamma_up=2.0,
            gamma_down=2.0,
            a=1.0,
            b=0.0,
            up_down=-0.2,
            dw_min=0.02,
        ),
    ],
)
def test_expstep_pulses_follow_aihwkit(params):
    dev = D.ExpStep(**params)
    p = {
        f: float(getattr(dev, f))
        for f in ("A_up", "A_down", "gamma_up", "gamma_down", "a", "b", "up_down", "dw_min")
    }
    lo = jnp.array([[-0.5, float(dev.w_min), -0.9]])
    hi = jnp.array([[0.7, float(dev.w_max), 0.4]])
    t = T.Tile(
        w=jnp.array([[0.2, -0.3, 0.0]]),
        ref=jnp.zeros((1, 3)),
        gain_up=jnp.ones((1, 3)),
        gain_down=jnp.ones((1, 3)),
        w_min=lo,
        w_max=hi,
    )
    seq = [40, -70, 25]
    got, ws = t, []
    for n in seq:
        got = P.apply(got, dev, jnp.full((1, 3), n, jnp.int32), 0)
        ws.append(np.asarray(got.w[0]))
    for j in range(3):
        w = float(t.w[0, j])
        for i, n in enumerate(seq):
            for _ in range(abs(n)):
                w = _expstep_step(w, float(lo[0, j]), float(hi[0, j]), p, n > 0)
            np.testing.assert_allclose(ws[i][j], w, rtol=1e-4, atol=1e-6)


def test_expstep_response_by_hand_and_bounds():
    dev = D.ExpStep(
        A_up=0.5, A_down=0.25, gamma_up=2.0, gamma_down=4.0, a=0.5, b=0.1, w_min=-1.0, w_max=1.0
    )
    qp, qm = dev.response(jnp.array([-1.0, 0.0, 0.5]), -1.0, 1.0)
    z = np.array([-0.4, 0.1, 0.35])  # 2 * 0.5 * w / 2 + 0.1
    np.testing.assert_allclose(qp, np.maximum(1 - 0.5 * np.exp(2 * z), 0), rtol=1e-6)
    np.testing.assert_allclose(qm, np.maximum(1 - 0.25 * np.exp(-4 * z), 0), rtol=1e-6)
    # the up step vanishes where 1 = A_up exp(gamma_up z): many pulses stop short of w_max there
    # and never leave the bounds (noisy pulses included)
    noisy = dev.replace(dw_min=0.05, dw_min_std=0.5, noise="multiplicative")
    t = T.init(0, noisy, (8, 8), w0=0.0)
    n = jnp.concatenate([jnp.full((4, 8), 200), jnp.full((4, 8), -200)]).astype(jnp.int32)
    moved = jax.jit(P.apply)(t, noisy, n, 1).w
    up, down = moved[:4], moved[4:]
    stop = (np.log(1 / 0.5) / 2 - 0.1) / 0.5  # z = ln 2 / 2 = 0.5 w + 0.1 -> w = 0.493
    assert float(up.max()) <= 1.0 and float(down.min()) >= -1.0
    assert abs(float(up.mean()) - stop) < 0.05


def test_expstep_fits_the_library():
    devs = D.stack([D.ExpStep(b=b, noise="multiplicative") for b in (0.1, 0.2)])
    assert jax.vmap(lambda d: d.symmetric_point())(devs).shape == (2,)
    dev = specs.parse("expstep:A_up=0.01,gamma_up=5,noise=multiplicative")
    assert isinstance(dev, D.ExpStep) and float(dev.A_up) == 0.01 and dev.noise == "multiplicative"
    assert specs.parse("power:gamma=2,range_normalization=aihwkit").range_normalization == "aihwkit"


@pytest.mark.parametrize(
    "make,arg",
    [
        (lambda: D.Power(range_normalization="whole"), "range_normalization"),
        (lambda: D.ExpStep(up_down=1.0), "up_down"),
        (lambda: D.ExpStep(a=float("nan")), "a"),
        (lambda: D.ExpStep(gamma_up=float("inf")), "gamma_up"),
    ],
)
def test_bad_parameters_are_named(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()
