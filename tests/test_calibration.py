"""Symmetric-point tracking (aimcjax.calibration): pulsing finds each element's symmetric point."""

import jax
import numpy as np
import pytest

from aimcjax import calibration as C
from aimcjax import devices as D
from aimcjax import tile as T
from aimcjax.devices import symmetric_point_bisect

# dw_min_dtod 0.2 keeps every element's step gain above ~0.2 (4 sigma over 256 elements):
# the drift towards the symmetric point is proportional to the gain, so an element with a
# near-zero gain cannot be calibrated by pulsing in any number of pairs.
D2D = dict(dw_min_dtod=0.2, up_down_dtod=0.05, w_max_dtod=0.1, w_min_dtod=0.1)
SHAPE = (16, 16)


def _true_points(t, dev):
    return np.asarray(symmetric_point_bisect(dev, t.gain_up, t.gain_down, t.w_min, t.w_max))


@pytest.mark.parametrize(
    "dev",
    [
        D.SoftBounds(tau=0.6, asymmetry=0.3, **D2D),
        D.Power(tau=0.6, gamma=0.5, asymmetry=0.2, **D2D),
        D.Power(tau=0.6, gamma=2.0, asymmetry=-0.2, **D2D),
    ],
    ids=["softbounds", "power-0.5", "power-2"],
)
def test_recovers_symmetric_points_with_device_to_device_variation(dev):
    t = T.init(jax.random.PRNGKey(0), dev, SHAPE)
    true = _true_points(t, dev)
    # The variation must spread the points by much more than the tolerance, or a constant
    # guess would pass.
    assert true.std() > 10 * dev.dw_min
    est = C.track_symmetric_point(t, dev, 1, n_pairs=2000, n_average=500)
    err = np.abs(np.asarray(est.point) - true) / dev.dw_min
    # Noise-free: the only error is the finite settling and the k=1 oscillation (~1 step);
    # "a few dw_min" is the requirement.
    assert err.max() < 3.0, err.max()
    # the elements end at their symmetric points
    assert np.abs(np.asarray(est.tile.w) - true).max() < 4 * dev.dw_min


def test_cycle_to_cycle_noise_is_averaged_to_a_few_steps():
    sigma, tau, dw = 0.3, 0.6, 1e-3
    dev = D.SoftBounds(tau=tau, asymmetry=0.3, dw_min=dw, dw_min_std=sigma, **D2D)
    t = T.init(jax.random.PRNGKey(2), dev, SHAPE)
    true = _true_points(t, dev)
    n_average = 1000
    est = C.track_symmetric_point(t, dev, 3, n_pairs=3000, n_average=n_average)
    err = (np.asarray(est.point) - true) / dw
    # Each pair adds noise of variance 2 sigma^2 dw^2 and pulls back by kappa = 2 dw / tau
    # (unit gain), so the element wanders with stationary variance v = sigma^2 dw tau / 2
    # (std 5.2 dw) and correlation time 1/kappa = 300 pairs; the mean of n_average reads has
    # variance ~ v * (2 / kappa) / n_average -> std ~ 4.0 dw for unit gain (larger for the
    # elements with smaller gains). Allow 1.5x for the gain spread.
    v = sigma**2 * dw * tau / 2
    kappa = 2 * dw / tau
    predicted = np.sqrt(v * (2 / kappa) / n_average) / dw
    assert np.sqrt(np.mean(err**2)) < 1.5 * predicted
    # No bias: the mean error of 256 independent elements has std predicted / 16.
    assert abs(err.mean()) < 4 * 1.5 * predicted / np.sqrt(err.size)


def test_calibrated_reference_zero_shifts_the_tile():
    dev = D.SoftBounds(tau=0.6, asymmetry=0.3, **D2D)
    t = T.init(jax.random.PRNGKey(4), dev, SHAPE)
    exact = C.calibrate_reference(t, dev, 5, n_pairs=2000, n_average=500, programming_std=0.0)
    # the effective weights start at ~0, as with tile.init(zero_shift=True)
    assert np.abs(np.asarray(T.weights(exact))).max() < 3 * dev.dw_min
    # G vanishes at the measured reference within the calibration accuracy
    true = _true_points(t, dev)
    assert np.abs(np.asarray(exact.ref) - true).max() < 3 * dev.dw_min


def test_programming_error_of_the_reference_has_the_device_spread():
    std = 0.05
    dev = D.SoftBounds(tau=0.6, asymmetry=0.3, reference_std=std)
    t = T.init(0, dev, (64, 64))
    cal = C.calibrate_reference(t, dev, 1, n_pairs=300, n_average=100)
    est = C.track_symmetric_point(
        t, dev, jax.random.split(jax.random.PRNGKey(1))[0], n_pairs=300, n_average=100
    )
    error = np.asarray(cal.ref - est.point)
    n = error.size
    assert abs(error.mean()) < 4 * std / np.sqrt(n)
    assert abs(error.std() - std) < 4 * std / np.sqrt(2 * (n - 1))


def test_jit_and_vmap_over_tiles():
    dev = D.SoftBounds(tau=0.6, asymmetry=0.2)
    tiles = jax.vmap(lambda k: T.init(k, dev, (4, 3)))(jax.random.split(jax.random.PRNGKey(0), 3))
    run = jax.jit(
        jax.vmap(lambda t, k: C.track_symmetric_point(t, dev, k, n_pairs=400, n_average=100).point)
    )
    points = run(tiles, jax.random.split(jax.random.PRNGKey(1), 3))
    assert points.shape == (3, 4, 3)
    np.testing.assert_allclose(points, 0.2 * 0.6, atol=2 * dev.dw_min)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(n_pairs=10, n_average=20), ValueError, "n_average"),
        (dict(n_pairs=0), ValueError, "n_pairs"),
        (dict(n_pairs=10.0), TypeError, "n_pairs"),
        (dict(max_burst=0), ValueError, "max_burst"),
        (dict(read_noise=-1.0), ValueError, "read_noise"),
        (dict(read_noise=float("nan")), ValueError, "read_noise"),
    ],
)
def test_bad_arguments_are_named(kwargs, exc, match):
    dev = D.SoftBounds()
    t = T.init(0, dev, (2, 2))
    args = dict(n_pairs=10, n_average=5)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        C.track_symmetric_point(t, dev, 0, **args)


def test_bad_tile_and_device_types():
    dev = D.SoftBounds()
    t = T.init(0, dev, (2, 2))
    with pytest.raises(TypeError, match="tile"):
        C.track_symmetric_point(t.w, dev, 0)
    with pytest.raises(TypeError, match="device"):
        C.track_symmetric_point(t, "softbounds", 0)
    with pytest.raises(ValueError, match="programming_std"):
        C.calibrate_reference(t, dev, 0, programming_std=-0.1)
