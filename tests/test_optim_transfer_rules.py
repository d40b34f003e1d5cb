"""c-TTv2, AGAD, multi-tile residual learning, mixed precision: limits, conservation, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import DEV, OUTER, PULSE, train

from aimcjax import devices as D
from aimcjax import tile as T
from aimcjax.optim import (
    agad,
    chopped_ttv2,
    mixed_precision,
    multi_tile_residual,
    quantize_factors,
    residual_learning,
    tiki_taka,
    ttv2,
)

MODES = pytest.mark.parametrize("update", [PULSE, OUTER], ids=lambda u: u.mode)


def _run(opt, steps=12, outer=False):
    return train(opt, steps=steps, outer=outer)


# The limits hold bit for bit in every update mode, "outer" transfers included: the kernel,
# its keys, line schedule, one-hot read and one-hot write are shared; only the rule differs.


@MODES
@pytest.mark.parametrize("transfer_every", [1, 3])
def test_chopped_without_chopper_and_buffer_is_tiki_taka(transfer_every, update):
    outer = update.mode == "outer"
    a, _ = _run(
        tiki_taka(0.1, 0.5, DEV, transfer_every=transfer_every, update=update, key=3), outer=outer
    )
    b, _ = _run(
        chopped_ttv2(
            0.1,
            0.5,
            DEV,
            in_chop_prob=0.0,
            no_buffer=True,
            zero_shift=False,
            transfer_every=transfer_every,
            update=update,
            key=3,
        ),
        outer=outer,
    )
    assert np.abs(np.asarray(a["w"])).max() > 10 * DEV.dw_min  # something happened
    np.testing.assert_array_equal(a["w"], b["w"])
    np.testing.assert_array_equal(a["b"], b["b"])


@MODES
def test_chopped_without_chopper_is_ttv2(update):
    outer = update.mode == "outer"
    a, _ = _run(ttv2(0.1, 0.5, DEV, zero_shift=True, update=update, key=3), outer=outer)
    b, _ = _run(
        chopped_ttv2(0.1, 0.5, DEV, in_chop_prob=0.0, zero_shift=True, update=update, key=3),
        outer=outer,
    )
    assert np.abs(np.asarray(a["w"])).max() > 0
    np.testing.assert_array_equal(a["w"], b["w"])


@MODES
def test_two_tiles_are_residual_learning(update):
    outer = update.mode == "outer"
    for transfer, every in (("full", 1), ("column", 2)):
        a, sa = _run(
            residual_learning(
                0.1,
                0.3,
                DEV,
                gamma=0.4,
                transfer=transfer,
                transfer_every=every,
                update=update,
                key=5,
            ),
            outer=outer,
        )
        b, sb = _run(
            multi_tile_residual(
                0.1,
                0.3,
                DEV,
                gamma=0.4,
                n_tiles=2,
                transfer=transfer,
                transfer_every=every,
                update=update,
                key=5,
            ),
            outer=outer,
        )
        np.testing.assert_array_equal(a["w"], b["w"])
        np.testing.assert_array_equal(sa.tiles[1]["w"].w, sb.tiles[1]["w"].w)


def test_outer_gradient_trains_use_the_average_granularity_of_the_arrays():
    """aihwkit sizes the gradient's pulse trains into a transfer compound's fast array with the
    compound's weight granularity, the mean over its devices (VectorRPUDevice::populate); the
    trains depend on lr / dw_min only, so the kernel scales the rate by dw_min(P) / mean. With
    equal devices nothing changes; with different ones, "average" equals "own" at the rate
    lr * dw_min(P) / mean(dw_min) (the same trains; a rounding of the rate apart)."""
    fast = D.SoftBounds(tau=0.4, asymmetry=0.1, dw_min=0.002)
    mean = (fast.dw_min + DEV.dw_min) / 2
    make = lambda lr, how: tiki_taka(
        lr, 0.5, DEV, residual_device=fast, gradient_granularity=how, update=OUTER, key=3
    )
    # one step: later steps differ anyway, the digital bias following the unscaled rate
    _, s_avg = _run(make(0.1, "average"), steps=1, outer=True)
    _, s_own = _run(make(0.1 * fast.dw_min / mean, "own"), steps=1, outer=True)
    np.testing.assert_allclose(
        T.weights(s_avg.tiles[1]["w"]), T.weights(s_own.tiles[1]["w"]), atol=1e-6
    )
    _, s_plain = _run(make(0.1, "own"), steps=1, outer=True)
    assert not np.allclose(
        T.weights(s_avg.tiles[1]["w"]), T.weights(s_plain.tiles[1]["w"]), atol=1e-4
    )


def test_average_granularity_with_traced_devices():
    """A sweep passes the devices as traced arguments (jit / vmap over configurations): the
    average granularity is then computed in the graph, with the same weights as built from
    concrete devices."""
    from conftest import ls_grads_and_factors, small_params

    fast = D.SoftBounds(tau=0.4, asymmetry=0.1, dw_min=0.002)

    def make(slow, fast):
        return tiki_taka(0.1, 0.5, slow, residual_device=fast, update=OUTER, key=3)

    def one_step(slow, fast):
        opt = make(slow, fast)
        p = small_params()
        g, f = ls_grads_and_factors(p)
        _, s = opt.update(g, opt.init(p), p, factors=f)
        return T.weights(s.tiles[1]["w"])

    _, s_concrete = _run(make(DEV, fast), steps=1, outer=True)
    traced = jax.jit(one_step)(DEV, fast)
    np.testing.assert_allclose(traced, T.weights(s_concrete.tiles[1]["w"]), atol=1e-6)
    swept = jax.jit(jax.vmap(one_step, in_axes=(None, 0)))(DEV, D.stack([fast, fast]))
    np.testing.assert_allclose(swept[0], traced, atol=1e-6)


def test_multi_tile_weights_are_the_geometric_sum():
    gamma = 0.2
    p, s = _run(
        multi_tile_residual(
            0.1, (0.3, 0.5), DEV, gamma=gamma, n_tiles=3, transfer_every=(3, 1), key=1
        )
    )
    total = sum(gamma**k * T.weights(s.tiles[k]["w"]) for k in range(3))
    np.testing.assert_allclose(p["w"], total, atol=1e-6)
    assert all(np.abs(np.asarray(T.weights(s.tiles[k]["w"]))).max() > 0 for k in range(3))


def test_chopper_flips_and_chopped_weight_uses_it():
    p, s = _run(
        chopped_ttv2(
            0.1, 0.5, DEV, gamma=0.3, in_chop_prob=1.0, in_chop_random=False, transfer="full", key=2
        ),
        steps=3,
    )
    # regular flips every max(ceil(1/p), 2) = 2 reads: after 3 full reads the sign is -1
    np.testing.assert_array_equal(s.transfer[0].chopper["w"], -np.ones(6))
    w = T.weights(s.tiles[0]["w"]) + 0.3 * (-1.0) * T.weights(s.tiles[1]["w"])
    np.testing.assert_allclose(p["w"], w, atol=1e-6)


def test_agad_reference_is_previous_period_and_waits_one_period():
    _, s = _run(agad(0.1, 0.5, DEV, in_chop_prob=0.25, transfer="full", key=4), steps=3)
    # first period (4 reads) not over: W untouched, buffer empty
    np.testing.assert_array_equal(s.transfer[0].buffer["w"], 0.0)
    np.testing.assert_allclose(T.weights(s.tiles[0]["w"]), 0.0, atol=1e-7)
    _p, s = _run(agad(0.1, 0.5, DEV, in_chop_prob=0.25, transfer="full", key=4), steps=12)
    assert np.abs(np.asarray(s.transfer[0].past_mean["w"])).max() > 0
    assert np.abs(np.asarray(T.weights(s.tiles[0]["w"]))).max() > 0


def test_mixed_precision_conserves_the_requested_change():
    # ConstantStep without noise: every booked pulse moves W by exactly dw_min, so
    # W + chi is the exact digital SGD trajectory's sum of requested changes.
    dev = D.ConstantStep(dw_min=0.01)
    opt = mixed_precision(0.1, dev, transfer_every=2, key=0)
    _p, s = _run(opt, steps=10)
    w = np.asarray(T.weights(s.tiles[0]["w"]))
    chi = np.asarray(s.transfer[0].buffer["w"])
    assert np.all(np.abs(chi) < 0.01 + 1e-6)  # 10 steps, transfer after step 10: below threshold
    np.testing.assert_allclose(w / 0.01, np.round(w / 0.01), atol=1e-3)  # whole pulses
    assert np.abs(w).max() > 0.01


def test_mixed_precision_ideal_device_tracks_sgd():
    dev = D.ConstantStep(dw_min=1e-4, w_min=-10.0, w_max=10.0)
    p_mp, _s = _run(mixed_precision(0.05, dev, key=0), steps=15)
    p_sgd, _ = _run(optax.sgd(0.05), steps=15)
    # each element lags SGD by the sub-threshold remainder |chi| < dw_min, which feeds back
    # through the gradient only weakly over 15 steps
    np.testing.assert_allclose(p_mp["w"], p_sgd["w"], atol=5e-3)


def test_mixed_precision_quantized_factors():
    x = jnp.array([[0.1, -1.0, 0.55]])
    np.testing.assert_allclose(quantize_factors(x, 2), [[0.0, -1.0, 0.5]])
    dev = D.ConstantStep(dw_min=1e-3)
    opt = mixed_precision(0.1, dev, n_x_bins=4, n_d_bins=4, key=0)
    params = {"w": jnp.zeros((3, 2))}
    s = opt.init(params)
    with pytest.raises(ValueError, match="factors"):
        opt.update({"w": jnp.ones((3, 2))}, s, params)
    xs, ds = jnp.ones((2, 3)), jnp.ones((2, 2))
    u, s = opt.update({"w": xs.T @ ds}, s, params, factors={"w": (xs, ds)})
    # the quantized outer product is exact here (all ones); whole pulses leave < dw_min in chi
    np.testing.assert_allclose(u["w"] + s.transfer[0].buffer["w"], -0.2, atol=1e-6)
    assert np.all(np.abs(np.asarray(s.transfer[0].buffer["w"])) < 1e-3)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: chopped_ttv2(0.1, 0.1, DEV, key=0, in_chop_prob=1.5), "in_chop_prob"),
        (lambda: chopped_ttv2(0.1, 0.1, DEV, key=0, buffer_granularity=0.0), "buffer_granularity"),
        (lambda: chopped_ttv2(0.1, 0.1, DEV, key=0, transfer="rows"), "transfer"),
        (lambda: agad(0.1, 0.1, DEV, key=0, in_chop_prob=0.0), "in_chop_prob"),
        (lambda: agad(0.1, 0.1, DEV, key=0, tail_weighting=-1.0), "tail_weighting"),
        (lambda: multi_tile_residual(0.1, (0.1,), DEV, key=0, gamma=0.1, n_tiles=3), "transfer_lr"),
        (lambda: multi_tile_residual(0.1, 0.1, DEV, key=0, gamma=0.1, n_tiles=1), "n_tiles"),
        (lambda: multi_tile_residual(0.1, 0.1, DEV, key=0, gamma=-0.1), "gamma"),
        (lambda: mixed_precision(0.1, DEV, key=0, transfer_every=0), "transfer_every"),
        (lambda: mixed_precision(0.1, DEV, key=0, granularity=-1.0), "granularity"),
    ],
)
def test_bad_arguments_are_named(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()
