"""Tiles: device-to-device sampling, zero shift, programming, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aimcjax import devices as D
from aimcjax import tile as T

N_SIDE = 200  # 40 000 elements: standard errors of ~0.5% of a std


def _se_mean(std, n):
    return std / np.sqrt(n)


def _se_std(std, n):
    # std of the sample std of a Gaussian: sigma / sqrt(2(n-1))
    return std / np.sqrt(2 * (n - 1))


def test_device_to_device_statistics_match_configuration():
    dev = D.SoftBounds(tau=0.6, dw_min_dtod=0.2, up_down_dtod=0.05, w_max_dtod=0.1, w_min_dtod=0.15)
    t = T.init(jax.random.PRNGKey(3), dev, (N_SIDE, N_SIDE))
    n = N_SIDE * N_SIDE
    gain = np.asarray(t.gain_up + t.gain_down) / 2  # = the common gain g
    imbalance = np.asarray(t.gain_up - t.gain_down) / (2 * gain)
    for values, mean, std in [
        (gain, 1.0, 0.2),
        (imbalance, 0.0, 0.05),
        (np.asarray(t.w_max), 0.6, 0.06),
        (np.asarray(t.w_min), -0.6, 0.09),
    ]:
        assert abs(values.mean() - mean) < 4 * _se_mean(std, n)
        assert abs(values.std() - std) < 4 * _se_std(std, n)


def test_no_variation_gives_nominal_elements():
    dev = D.Power(tau=0.7, gamma=2.0)
    t = T.init(0, dev, (3, 4), w0=0.25)
    np.testing.assert_array_equal(t.gain_up, np.ones((3, 4)))
    np.testing.assert_array_equal(t.w_max, np.full((3, 4), 0.7, np.float32))
    np.testing.assert_allclose(T.weights(t), 0.25)


def test_zero_shift_reference_is_each_elements_symmetric_point():
    dev = D.SoftBounds(
        tau=0.6, asymmetry=0.3, dw_min_dtod=0.1, up_down_dtod=0.05, w_max_dtod=0.1, w_min_dtod=0.1
    )
    t = T.init(jax.random.PRNGKey(1), dev, (50, 20), zero_shift=True)
    qp, qm = dev.response(t.ref, t.w_min, t.w_max)
    G = np.asarray(t.gain_down * qm - t.gain_up * qp)
    assert np.abs(G).max() < 1e-5
    np.testing.assert_allclose(T.weights(t), 0.0, atol=1e-6)  # w0 defaults to 0 effective
    # without variation it is the closed form c * tau
    t0 = T.init(
        0,
        dev.replace(dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0),
        (2,),
        zero_shift=True,
    )
    np.testing.assert_allclose(t0.ref, 0.18, rtol=1e-5)


def test_reference_error_spread():
    dev = D.SoftBounds(tau=0.6, reference_std=0.05)
    t = T.init(jax.random.PRNGKey(2), dev, (N_SIDE, N_SIDE), zero_shift=True)
    ref = np.asarray(t.ref)
    assert abs(ref.std() - 0.05) < 4 * _se_std(0.05, ref.size)


def test_w0_is_clipped_to_element_bounds_and_program():
    dev = D.SoftBounds(tau=0.5)
    t = T.init(0, dev, (3,), w0=jnp.array([-2.0, 0.1, 2.0]))
    np.testing.assert_allclose(t.w, [-0.5, 0.1, 0.5])
    t = T.program(t, jnp.array([0.2, 0.3, 0.4]))
    np.testing.assert_allclose(T.weights(t), [0.2, 0.3, 0.4], rtol=1e-6)


def test_float64_follows_w0():
    with jax.enable_x64(True):
        t = T.init(0, D.SoftBounds(), (2, 2), w0=jnp.zeros((2, 2), jnp.float64))
        assert t.w.dtype == jnp.float64 and t.gain_up.dtype == jnp.float64


def test_matrix_view():
    assert T.matrix_shape((5, 5, 3, 16)) == (75, 16)
    assert T.matrix_shape((7,)) == (1, 7)


@pytest.mark.parametrize(
    "call,err,arg",
    [
        (lambda: T.init(0, "softbounds", (2, 2)), TypeError, "device"),
        (lambda: T.init(0, D.SoftBounds(), (2, -1)), ValueError, "shape"),
        (lambda: T.init(0, D.SoftBounds(), (2, 2), w0=jnp.zeros((3,))), ValueError, "w0"),
        (lambda: T.init("seed", D.SoftBounds(), (2, 2)), TypeError, "key"),
        (lambda: T.program(T.init(0, D.SoftBounds(), (2,)), jnp.zeros(3)), ValueError, "w_eff"),
    ],
)
def test_bad_input(call, err, arg):
    with pytest.raises(err, match=arg):
        call()
