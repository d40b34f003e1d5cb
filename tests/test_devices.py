"""Response-function families: closed forms, symmetric points, pytree behaviour, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aimcjax import devices as D
from aimcjax.devices import presets

W = np.linspace(-0.55, 0.55, 23)


def test_soft_bounds_closed_forms():
    tau, c = 0.6, 0.2
    dev = D.SoftBounds(tau=tau, asymmetry=c)
    qp, qm = (1 + c) * (1 - W / tau), (1 - c) * (1 + W / tau)
    np.testing.assert_allclose(dev.q_plus(W), qp, rtol=1e-6)
    np.testing.assert_allclose(dev.q_minus(W), qm, rtol=1e-6)
    # F = 1 - c w/tau, G = -c + w/tau by hand.
    np.testing.assert_allclose(dev.F(W), 1 - c * W / tau, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dev.G(W), -c + W / tau, rtol=1e-6, atol=1e-7)
    assert dev.symmetric_point() == pytest.approx(c * tau)


def test_soft_bounds_asymmetric_bounds_symmetric_point():
    dev = D.SoftBounds(asymmetry=0.3, w_min=-0.5, w_max=1.0)
    ws = dev.symmetric_point()
    # by hand: (1-c)(1 + w/0.5) = (1+c)(1 - w/1)  =>  w = 2c / ((1-c)/0.5 + (1+c)/1)
    assert ws == pytest.approx(0.6 / (0.7 / 0.5 + 1.3))
    assert abs(float(dev.G(ws))) < 1e-6


@pytest.mark.parametrize("gamma,c", [(0.5, 0.0), (2.0, 0.0), (2.0, 0.3), (3.0, -0.2)])
def test_power_closed_form_and_bisection(gamma, c):
    tau = 0.7
    dev = D.Power(tau=tau, gamma=gamma, asymmetry=c)
    np.testing.assert_allclose(dev.q_plus(W), (1 + c) * (1 - W / tau) ** gamma, rtol=1e-5)
    np.testing.assert_allclose(dev.q_minus(W), (1 - c) * (1 + W / tau) ** gamma, rtol=1e-5)
    r = ((1 + c) / (1 - c)) ** (1 / gamma)
    assert dev.symmetric_point() == pytest.approx(tau * (r - 1) / (1 + r), abs=1e-7)
    bisect = D.symmetric_point_bisect(dev, 1.0, 1.0, dev.w_min, dev.w_max)
    assert float(bisect) == pytest.approx(float(dev.symmetric_point()), abs=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 3.0])
def test_power_response_with_traced_gamma_matches_concrete(gamma):
    # A device passed into jit (or a vmapped sweep over gamma) has a traced gamma, which
    # takes the exp(gamma log x) path; it must agree with ** up to float32 rounding,
    # including at the bounds (base 0 -> response 0).
    dev = D.Power(tau=0.6, gamma=gamma, asymmetry=0.1)
    w = jnp.asarray(np.concatenate([np.linspace(-0.6, 0.6, 41), [0.6, -0.6]]), jnp.float32)
    traced = jax.jit(lambda d, w: d.response(w, d.w_min, d.w_max))(dev, w)
    concrete = dev.response(w, dev.w_min, dev.w_max)
    for got, want in zip(traced, concrete):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)
    assert float(traced[0][-2]) == 0.0 and float(traced[1][-1]) == 0.0


def test_exponential_closed_forms():
    tau, gamma, c = 0.6, 2.0, 0.25
    dev = D.Exponential(tau=tau, gamma=gamma, asymmetry=c)
    norm = np.expm1(gamma)
    np.testing.assert_allclose(
        dev.q_plus(W), (1 + c) * np.expm1(gamma * (1 - W / tau)) / norm, rtol=1e-5
    )
    np.testing.assert_allclose(
        dev.q_minus(W), (1 - c) * np.expm1(gamma * (1 + W / tau)) / norm, rtol=1e-5
    )
    # symmetric: the bisection root makes G vanish and lies where hand algebra puts it
    ws = float(dev.symmetric_point())
    assert abs(float(dev.G(ws))) < 1e-5
    lhs = (1 + c) * np.expm1(gamma * (1 - ws / tau))
    rhs = (1 - c) * np.expm1(gamma * (1 + ws / tau))
    assert lhs == pytest.approx(rhs, rel=1e-5)
    assert float(D.Exponential(tau=tau, gamma=gamma).symmetric_point()) == 0.0


def test_constant_step():
    dev = D.ConstantStep()
    np.testing.assert_array_equal(dev.F(W), np.ones_like(W))
    np.testing.assert_array_equal(dev.G(W), np.zeros_like(W))
    assert float(dev.symmetric_point()) == 0.0
    # an asymmetric constant step drifts to a bound: its "symmetric point" is that bound
    assert float(D.ConstantStep(asymmetry=0.1).symmetric_point()) == pytest.approx(1.0)


def test_piecewise_interpolates_nodes():
    dev = D.Piecewise(up=[3.0, 1.0], down=[0.0, 2.0], w_min=-1.0, w_max=1.0)
    # q_plus = 2 - w, q_minus = 1 + w; G = 0 at w = 0.5
    np.testing.assert_allclose(dev.q_plus(W), 2 - W, rtol=1e-6)
    np.testing.assert_allclose(dev.q_minus(W), 1 + W, rtol=1e-6)
    assert float(dev.symmetric_point()) == pytest.approx(0.5, abs=1e-6)
    three = D.Piecewise(up=[2.0, 1.0, 0.0], down=[0.0, 1.0, 2.0])
    np.testing.assert_allclose(three.q_plus(np.array([-0.5, 0.5])), [1.5, 0.5], rtol=1e-6)


def test_expected_update_is_rf_eq5():
    dev = D.Power(tau=0.6, gamma=2.0, asymmetry=0.1)
    w = jnp.array([0.1, 0.1, -0.3])
    dw = jnp.array([0.01, -0.01, 0.02])
    want = np.where(dw > 0, w + dw * dev.q_plus(w), w + dw * dev.q_minus(w))
    np.testing.assert_allclose(dev.expected_update(w, dw), want, rtol=1e-6)
    # clipped to the bounds
    assert float(dev.expected_update(0.5, 10.0)) == pytest.approx(0.6)  # 0.5 + 10*1.1/36 > 0.6


def test_custom_lambdas_jit_and_vmap():
    dev = D.Custom(q_plus=lambda w: 1 - w, q_minus=lambda w: 1 + w)
    f = jax.jit(lambda d, w: (d.F(w), d.G(w), d.symmetric_point()))
    F, G, ws = f(dev, jnp.array([0.5, -0.5]))
    np.testing.assert_allclose(F, [1, 1])
    np.testing.assert_allclose(G, [0.5, -0.5])
    assert float(ws) == 0.0
    # w_min = -0.8: q_minus = 0.8 + w must stay >= 0 on the range (checked at construction).
    shifted = D.Custom(q_plus=lambda w: 1.2 - w, q_minus=lambda w: 0.8 + w, w_min=-0.8, w_max=1.0)
    assert float(jax.jit(lambda d: d.symmetric_point())(shifted)) == pytest.approx(0.2, abs=1e-6)
    # w_max <= 1: q_plus = 1 - w must stay >= 0 on the range (checked at construction).
    batch = D.stack([dev.replace(w_max=m) for m in (0.5, 0.8, 1.0)])
    out = jax.vmap(lambda d: d.expected_update(0.4, 1.0))(batch)
    np.testing.assert_allclose(out, [0.5, 0.8, 1.0], rtol=1e-6)  # 0.4 + 1*(1 - 0.4), clipped


def test_vmap_over_sixteen_devices_matches_loop():
    params = [(t, g) for t in (0.6, 0.7, 0.8, 0.9) for g in (0.5, 1.0, 2.0, 3.0)]
    devs = [D.Power(tau=t, gamma=g, asymmetry=0.1) for t, g in params]
    batch = D.stack(devs)
    w = jnp.linspace(-0.5, 0.5, 7)
    got = jax.vmap(lambda d: (d.F(w), d.G(w), d.symmetric_point()))(batch)
    for i, dev in enumerate(devs):
        np.testing.assert_allclose(got[0][i], dev.F(w), rtol=1e-6)
        np.testing.assert_allclose(got[1][i], dev.G(w), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(got[2][i], dev.symmetric_point(), rtol=1e-6)


def test_presets_are_valid_devices():
    for name, make in presets.PRESETS.items():
        dev = make()
        assert isinstance(dev, D.Device), name
        ws = float(dev.symmetric_point())
        assert dev.w_min < ws < dev.w_max, name
    assert presets.reram_sb(dw_min_std=0.0).dw_min_std == 0.0


@pytest.mark.parametrize(
    "make,arg",
    [
        (lambda: D.SoftBounds(w_min=0.1, w_max=1.0), "w_min"),
        (lambda: D.SoftBounds(w_min=-1.0, w_max=0.0), "w_max"),
        (lambda: D.ConstantStep(w_max=-0.5), "w_max"),
        (lambda: D.Power(dw_min=0.0), "dw_min"),
        (lambda: D.Exponential(dw_min=-1e-3), "dw_min"),
        (lambda: D.SoftBounds(dw_min_std=-0.1), "dw_min_std"),
        (lambda: D.SoftBounds(dw_min_dtod=-0.1), "dw_min_dtod"),
        (lambda: D.SoftBounds(reference_std=-1.0), "reference_std"),
        (lambda: D.SoftBounds(noise="gaussian"), "noise"),
        (lambda: D.SoftBounds(tau=0.0), "tau"),
        (lambda: D.Power(gamma=-1.0), "gamma"),
        (lambda: D.SoftBounds(asymmetry=1.0), "asymmetry"),
        (lambda: D.SoftBounds(tau=float("nan")), "tau"),
        (lambda: D.Piecewise(up=[1.0, 2.0], down=[1.0, 2.0]), "up"),
        (lambda: D.Piecewise(up=[2.0, 1.0], down=[2.0, 1.0]), "down"),
        (lambda: D.Piecewise(up=[2.0, 1.0, 0.0], down=[0.0, 2.0]), "up and down"),
        (lambda: D.Piecewise(up=[1.0], down=[1.0]), "up"),
    ],
)
def test_bad_parameters_name_the_argument(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


def test_custom_needs_callables():
    with pytest.raises(TypeError, match="q_plus"):
        D.Custom(q_plus=1.0, q_minus=lambda w: w)


def test_stack_rejects_mixed_families():
    with pytest.raises(TypeError, match="family"):
        D.stack([D.SoftBounds(), D.Power()])
