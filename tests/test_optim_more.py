"""c-TTv2, AGAD, multi-tile residual learning, mixed precision: limits, conservation, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aimcjax import devices as D
from aimcjax import pulse
from aimcjax import tile as T
from aimcjax.optim import residual_learning, tiki_taka, ttv2
from aimcjax.optim.chopped import agad, chopped_ttv2
from aimcjax.optim.mixed_precision import mixed_precision, quantize
from aimcjax.optim.multi_tile import multi_tile_residual

DEV = D.SoftBounds(tau=0.6, asymmetry=0.3, dw_min_dtod=0.2, up_down_dtod=0.05, reference_std=0.05)
A = jax.random.normal(jax.random.PRNGKey(0), (20, 6))


def _loss(p):
    return jnp.mean((A @ p["w"] + p["b"] - 1.0) ** 2)


def _run(opt, steps=12):
    def go():
        p = {"w": jnp.zeros((6, 3)), "b": jnp.zeros(3)}
        s = opt.init(p)

        def step(c, _):
            p, s = c
            u, s = opt.update(jax.grad(_loss)(p), s, p)
            return (optax.apply_updates(p, u), s), None

        (p, s), _ = jax.lax.scan(step, (p, s), None, length=steps)
        return p, s

    return jax.jit(go)()


@pytest.mark.parametrize("transfer_every", [1, 3])
def test_chopped_without_chopper_and_buffer_is_tiki_taka(transfer_every):
    a, _ = _run(tiki_taka(0.1, 0.5, DEV, transfer_every=transfer_every, key=3))
    b, _ = _run(chopped_ttv2(0.1, 0.5, DEV, in_chop_prob=0.0, no_buffer=True, zero_shift=False,
                             transfer_every=transfer_every, key=3))
    assert np.abs(np.asarray(a["w"])).max() > 10 * DEV.dw_min  # something happened
    np.testing.assert_array_equal(a["w"], b["w"])
    np.testing.assert_array_equal(a["b"], b["b"])


def test_chopped_without_chopper_is_ttv2():
    a, _ = _run(ttv2(0.1, 0.5, DEV, zero_shift=True, key=3))
    b, _ = _run(chopped_ttv2(0.1, 0.5, DEV, in_chop_prob=0.0, zero_shift=True, key=3))
    np.testing.assert_array_equal(a["w"], b["w"])


def test_two_tiles_are_residual_learning():
    for transfer, every in (("full", 1), ("column", 2)):
        a, sa = _run(residual_learning(0.1, 0.3, 0.4, DEV, transfer=transfer, transfer_every=every, key=5))
        b, sb = _run(multi_tile_residual(0.1, 0.3, 0.4, DEV, n_tiles=2, transfer=transfer, transfer_every=every, key=5))
        np.testing.assert_array_equal(a["w"], b["w"])
        np.testing.assert_array_equal(sa.residual["w"].w, sb.tiles[1]["w"].w)


def test_multi_tile_weights_are_the_geometric_sum():
    gamma = 0.2
    p, s = _run(multi_tile_residual(0.1, (0.3, 0.5), gamma, DEV, n_tiles=3, transfer_every=(3, 1), key=1))
    total = sum(gamma**k * T.weights(s.tiles[k]["w"]) for k in range(3))
    np.testing.assert_allclose(p["w"], total, atol=1e-6)
    assert all(np.abs(np.asarray(T.weights(s.tiles[k]["w"]))).max() > 0 for k in range(3))


def test_chopper_flips_and_chopped_weight_uses_it():
    p, s = _run(chopped_ttv2(0.1, 0.5, DEV, gamma=0.3, in_chop_prob=1.0, in_chop_random=False,
                             transfer="full", key=2), steps=3)
    # regular flips every max(ceil(1/p), 2) = 2 reads: after 3 full reads the sign is -1
    np.testing.assert_array_equal(s.chopper["w"], -np.ones(6))
    w = T.weights(s.main["w"]) + 0.3 * (-1.0) * T.weights(s.residual["w"])
    np.testing.assert_allclose(p["w"], w, atol=1e-6)


def test_agad_reference_is_previous_period_and_waits_one_period():
    p, s = _run(agad(0.1, 0.5, DEV, in_chop_prob=0.25, transfer="full", key=4), steps=3)
    # first period (4 reads) not over: W untouched, buffer empty
    np.testing.assert_array_equal(s.buffer["w"], 0.0)
    np.testing.assert_allclose(T.weights(s.main["w"]), 0.0, atol=1e-7)
    p, s = _run(agad(0.1, 0.5, DEV, in_chop_prob=0.25, transfer="full", key=4), steps=12)
    assert np.abs(np.asarray(s.past_mean["w"])).max() > 0
    assert np.abs(np.asarray(T.weights(s.main["w"]))).max() > 0


def test_mixed_precision_conserves_the_requested_change():
    # ConstantStep without noise: every booked pulse moves W by exactly dw_min, so
    # W + chi is the exact digital SGD trajectory's sum of requested changes.
    dev = D.ConstantStep(dw_min=0.01)
    opt = mixed_precision(0.1, dev, transfer_every=2)
    p, s = _run(opt, steps=10)
    w = np.asarray(T.weights(s.tiles["w"]))
    chi = np.asarray(s.accumulator["w"])
    assert np.all(np.abs(chi) < 0.01 + 1e-6)  # 10 steps, transfer after step 10: below threshold
    np.testing.assert_allclose(w / 0.01, np.round(w / 0.01), atol=1e-3)  # whole pulses
    assert np.abs(w).max() > 0.01


def test_mixed_precision_ideal_device_tracks_sgd():
    dev = D.ConstantStep(dw_min=1e-4, w_min=-10.0, w_max=10.0)
    p_mp, s = _run(mixed_precision(0.05, dev), steps=15)
    p_sgd, _ = _run(optax.sgd(0.05), steps=15)
    # each element lags SGD by the sub-threshold remainder |chi| < dw_min, which feeds back
    # through the gradient only weakly over 15 steps
    np.testing.assert_allclose(p_mp["w"], p_sgd["w"], atol=5e-3)


def test_mixed_precision_quantized_factors():
    x = jnp.array([[0.1, -1.0, 0.55]])
    np.testing.assert_allclose(quantize(x, 2), [[0.0, -1.0, 0.5]])
    dev = D.ConstantStep(dw_min=1e-3)
    opt = mixed_precision(0.1, dev, n_x_bins=4, n_d_bins=4)
    params = {"w": jnp.zeros((3, 2))}
    s = opt.init(params)
    with pytest.raises(ValueError, match="factors"):
        opt.update({"w": jnp.ones((3, 2))}, s, params)
    xs, ds = jnp.ones((2, 3)), jnp.ones((2, 2))
    u, s = opt.update({"w": xs.T @ ds}, s, params, factors={"w": (xs, ds)})
    # the quantized outer product is exact here (all ones); whole pulses leave < dw_min in chi
    np.testing.assert_allclose(u["w"] + s.accumulator["w"], -0.2, atol=1e-6)
    assert np.all(np.abs(np.asarray(s.accumulator["w"])) < 1e-3)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: chopped_ttv2(0.1, 0.1, DEV, in_chop_prob=1.5), "in_chop_prob"),
        (lambda: chopped_ttv2(0.1, 0.1, DEV, buffer_granularity=0.0), "buffer_granularity"),
        (lambda: chopped_ttv2(0.1, 0.1, DEV, transfer="rows"), "transfer"),
        (lambda: agad(0.1, 0.1, DEV, in_chop_prob=0.0), "in_chop_prob"),
        (lambda: agad(0.1, 0.1, DEV, tail_weighting=-1.0), "tail_weighting"),
        (lambda: multi_tile_residual(0.1, (0.1,), 0.1, DEV, n_tiles=3), "transfer_lr"),
        (lambda: multi_tile_residual(0.1, 0.1, 0.1, DEV, n_tiles=1), "n_tiles"),
        (lambda: multi_tile_residual(0.1, 0.1, -0.1, DEV), "gamma"),
        (lambda: mixed_precision(0.1, DEV, transfer_every=0), "transfer_every"),
        (lambda: mixed_precision(0.1, DEV, granularity=-1.0), "granularity"),
    ],
)
def test_bad_arguments_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()
