"""Tests of aimcjax.periphery: exactness of the perfect periphery, converter levels, noise
statistics, noise/bound management, tiling and validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aimcjax import periphery
from aimcjax.periphery import PeripheryConfig, analog_matmul, quantize

# Jitted (configs are static): eager op-by-op dispatch would dominate the test time.
mvm = jax.jit(periphery.mvm, static_argnames=("cfg", "transpose"))
tiled_mvm = jax.jit(periphery.tiled_mvm, static_argnames=("cfg", "max_tile", "transpose"))

KEY = jax.random.key(0)
# Periphery with every non-ideality off except the ones a test switches on.
BARE = dict(
    inp_bound=None,
    inp_bits=None,
    out_bound=None,
    out_bits=None,
    out_noise=0.0,
    noise_management="none",
    bound_management="none",
)


def _normal(seed, shape, scale=1.0):
    return scale * jax.random.normal(jax.random.key(seed), shape)


# ------------------------------------------------------------------------------------------
# configuration


def test_defaults_are_rf_table_4():
    cfg = PeripheryConfig()
    assert (cfg.inp_bound, cfg.inp_bits, cfg.out_bound, cfg.out_bits) == (1.0, 7, 12.0, 9)
    assert (cfg.out_noise, cfg.w_noise) == (0.06, 0.0)
    assert (cfg.noise_management, cfg.bound_management) == ("abs_max", "iterative")
    # aihwkit: inp_res = 1/(2^7-2) of the range 2*inp_bound; out_res = 1/(2^9-2) of 2*out_bound.
    assert cfg.inp_res == pytest.approx(2.0 / 126)
    assert cfg.out_res == pytest.approx(24.0 / 510)
    # Bound management stops once the reduction exceeds max_bm_res / inp_res = 0.25 * 63:
    # reads at reductions 1, 2, 4, 8, 16.
    assert cfg.max_bm_reads == 5
    assert hash(cfg) == hash(PeripheryConfig())  # a static jit argument


def test_perfect_is_perfect():
    assert PeripheryConfig.perfect().is_perfect
    assert not PeripheryConfig().is_perfect


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(inp_bits=0), "inp_bits"),
        (dict(out_bits=-3), "out_bits"),
        (dict(inp_bits=2.5), "inp_bits"),
        (dict(inp_bound=0.0), "inp_bound"),
        (dict(out_bound=-1.0), "out_bound"),
        (dict(out_bound=float("nan")), "out_bound"),
        (dict(out_noise=-0.1), "out_noise"),
        (dict(out_noise=float("nan")), "out_noise"),
        (dict(w_noise=-1e-3), "w_noise"),
        (dict(noise_management="absmax"), "noise_management"),
        (dict(bound_management="iterative_worst_case"), "bound_management"),
        (dict(max_bm_factor=0), "max_bm_factor"),
        (dict(max_bm_res=0.0), "max_bm_res"),
        (dict(inp_bound=2.0), "inp_bound"),  # noise management expects the managed range [-1, 1]
    ],
)
def test_bad_config_raises_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PeripheryConfig(**kwargs)


def test_bad_mvm_input_raises():
    w = jnp.ones((4, 3))
    with pytest.raises(ValueError, match="x has last dimension"):
        periphery.mvm(w, jnp.ones((2, 5)), PeripheryConfig(), KEY)
    with pytest.raises(ValueError, match="x has last dimension"):
        periphery.mvm(w, jnp.ones((2, 4)), PeripheryConfig(), KEY, transpose=True)
    with pytest.raises(ValueError, match="w must be a 2-D"):
        periphery.mvm(jnp.ones((2, 2, 2)), jnp.ones((2,)), PeripheryConfig(), KEY)
    with pytest.raises(ValueError, match="key"):
        periphery.mvm(w, jnp.ones((2, 4)), PeripheryConfig(), None)
    with pytest.raises(TypeError, match="cfg"):
        periphery.mvm(w, jnp.ones((2, 4)), {"out_noise": 0.0}, KEY)
    with pytest.raises(ValueError, match="max_tile"):
        periphery.tiled_mvm(w, jnp.ones((2, 4)), PeripheryConfig(), KEY, max_tile=0)


# ------------------------------------------------------------------------------------------
# perfect periphery


def test_perfect_forward_and_backward_are_exact():
    w, x, d = _normal(1, (7, 5)), _normal(2, (3, 4, 7)), _normal(3, (3, 4, 5))
    perfect = PeripheryConfig.perfect()
    hi = jax.lax.Precision.HIGHEST
    np.testing.assert_array_equal(
        periphery.mvm(w, x, perfect, None), jnp.matmul(x, w, precision=hi)
    )
    np.testing.assert_array_equal(
        periphery.mvm(w, d, perfect, None, transpose=True), jnp.matmul(d, w.T, precision=hi)
    )
    y, vjp = jax.vjp(lambda x, w: analog_matmul(x, w, None, perfect, perfect), x, w)
    dx, dw = vjp(d)
    np.testing.assert_array_equal(y, jnp.matmul(x, w, precision=hi))
    np.testing.assert_array_equal(dx, jnp.matmul(d, w.T, precision=hi))
    np.testing.assert_array_equal(
        dw, jnp.matmul(x.reshape(-1, 7).T, d.reshape(-1, 5), precision=hi)
    )


# ------------------------------------------------------------------------------------------
# converters


@pytest.mark.parametrize("bits", [1, 2, 3, 7])
def test_dac_has_2_pow_bits_minus_1_levels_over_its_bound(bits):
    cfg = PeripheryConfig(**{**BARE, "inp_bound": 1.0, "inp_bits": bits})
    x = jnp.linspace(-1.5, 1.5, 30001)[:, None]
    levels = np.unique(np.asarray(mvm(jnp.ones((1, 1)), x, cfg, KEY)))
    assert len(levels) == 2**bits - 1
    if bits > 1:
        assert levels.min() == pytest.approx(-1.0) and levels.max() == pytest.approx(1.0)
        np.testing.assert_allclose(np.diff(levels), 2.0 / (2**bits - 2), rtol=1e-5)


@pytest.mark.parametrize("bits", [2, 4, 9])
def test_adc_has_2_pow_bits_minus_1_levels_over_its_bound(bits):
    cfg = PeripheryConfig(**{**BARE, "out_bound": 12.0, "out_bits": bits})
    x = jnp.linspace(-15.0, 15.0, 60001)[:, None]
    levels = np.unique(np.asarray(mvm(jnp.ones((1, 1)), x, cfg, KEY)))
    assert len(levels) == 2**bits - 1
    assert levels.min() == pytest.approx(-12.0) and levels.max() == pytest.approx(12.0)
    np.testing.assert_allclose(np.diff(levels), 24.0 / (2**bits - 2), rtol=1e-4)


def test_stochastic_input_rounding_is_unbiased():
    cfg = PeripheryConfig(**{**BARE, "inp_bound": 1.0, "inp_bits": 7, "inp_sto_round": True})
    step = 2.0 / 126
    p = 0.3
    value = (10 + p) * step
    n = 200_000
    y = mvm(jnp.ones((1, 1)), jnp.full((n, 1), value), cfg, KEY)
    levels = np.unique(np.asarray(y))
    np.testing.assert_allclose(levels, [10 * step, 11 * step], rtol=1e-5)
    # Each read is 10*step + step*Bernoulli(p): the mean has std step*sqrt(p(1-p)/n); 5 sigma.
    tol = 5 * step * math.sqrt(p * (1 - p) / n)
    assert abs(float(jnp.mean(y)) - value) < tol
    # Nearest rounding is biased for the same input.
    nearest = PeripheryConfig(**{**BARE, "inp_bound": 1.0, "inp_bits": 7})
    assert float(
        mvm(jnp.ones((1, 1)), jnp.full((1, 1), value), nearest, KEY)[0, 0]
    ) == pytest.approx(10 * step)


def test_quantize_rounds_to_grid():
    np.testing.assert_allclose(quantize(jnp.array([0.26, -0.74, 0.1]), 0.5), [0.5, -0.5, 0.0])
    x = jnp.array([0.3])
    np.testing.assert_array_equal(quantize(x, None), x)


# ------------------------------------------------------------------------------------------
# noise


def test_output_noise_std_matches_configuration():
    sigma = 0.06
    cfg = PeripheryConfig(**{**BARE, "out_noise": sigma})
    w, x = _normal(1, (16, 500), 0.2), _normal(2, (400, 16))
    err = np.asarray(mvm(w, x, cfg, KEY) - jnp.matmul(x, w, precision="highest"))
    n = err.size  # 200_000 independent N(0, sigma^2) draws
    # The sample std of n Gaussians has relative std 1/sqrt(2n); 5 sigma.
    assert abs(err.std() / sigma - 1) < 5 / math.sqrt(2 * n)
    assert abs(err.mean()) < 5 * sigma / math.sqrt(n)


def test_managed_noise_scales_with_input_and_adds_adc_rounding():
    # RF Table 4 periphery. Input of abs max s = 2: the read noise N(0, 0.06^2) is added to the
    # managed read (x / s), then the ADC rounds with step D = 24/510, and the result is scaled
    # by s. With the noise wider than D the rounding error is uniform and independent of the
    # noise to within exp(-2 pi^2 sigma^2 / D^2) ~ 1e-14 (Sheppard), so the output std is
    # s * sqrt(sigma^2 + D^2 / 12). The DAC error is the same in every read (a constant offset).
    cfg = PeripheryConfig()
    sigma, step, s = 0.06, 24.0 / 510, 2.0
    x = _normal(3, (24,))
    x = x / jnp.max(jnp.abs(x)) * s
    w = _normal(4, (24, 8), 0.1)
    n = 25_000
    y = np.asarray(mvm(w, jnp.tile(x, (n, 1)), cfg, KEY))
    std = y.std(axis=0, ddof=1)  # per output, over n independent reads
    expected = s * math.sqrt(sigma**2 + step**2 / 12)
    # Near-Gaussian samples: sample std has relative std ~ 1/sqrt(2n); pooled over 8 outputs
    # the mean relative error has std 1/sqrt(16n); each single output within 6/sqrt(2n).
    assert abs(std.mean() / expected - 1) < 5 / math.sqrt(16 * n)
    assert np.all(np.abs(std / expected - 1) < 6 / math.sqrt(2 * n))


def test_weight_noise_std_is_w_noise_times_input_norm():
    w_noise = 0.02
    cfg = PeripheryConfig(**{**BARE, "w_noise": w_noise})
    x = _normal(5, (1000, 10))
    w = _normal(6, (10, 50), 0.1)
    err = np.asarray(mvm(w, x, cfg, KEY) - jnp.matmul(x, w, precision="highest"))
    norms = np.linalg.norm(np.asarray(x), axis=1, keepdims=True)
    z = err / (w_noise * norms)  # standard normal
    assert abs(z.std() / 1.0 - 1) < 5 / math.sqrt(2 * z.size)


def test_noise_comes_from_the_key():
    w, x = _normal(1, (6, 3)), _normal(2, (4, 6))
    cfg = PeripheryConfig()
    np.testing.assert_array_equal(
        mvm(w, x, cfg, jax.random.key(7)), mvm(w, x, cfg, jax.random.key(7))
    )
    assert not np.array_equal(mvm(w, x, cfg, jax.random.key(7)), mvm(w, x, cfg, jax.random.key(8)))


# ------------------------------------------------------------------------------------------
# noise management


def test_abs_max_noise_management_is_scale_equivariant():
    # x / max|x| is identical for x and 4x (a power of two: no rounding), so with the same
    # noise draw the output is exactly 4 times larger.
    w, x = _normal(1, (6, 3), 0.3), _normal(2, (5, 6))
    cfg = PeripheryConfig()
    np.testing.assert_allclose(mvm(w, 4.0 * x, cfg, KEY), 4.0 * mvm(w, x, cfg, KEY), rtol=1e-6)


def test_without_noise_management_the_dac_clips():
    cfg = PeripheryConfig(**{**BARE, "inp_bound": 1.0})
    y = mvm(jnp.ones((3, 1)), jnp.full((1, 3), 3.0), cfg, KEY)
    assert float(y[0, 0]) == pytest.approx(3.0)  # each input clipped to 1
    managed = PeripheryConfig(**{**BARE, "inp_bound": 1.0, "noise_management": "abs_max"})
    assert float(mvm(jnp.ones((3, 1)), jnp.full((1, 3), 3.0), managed, KEY)[0, 0]) == pytest.approx(
        9.0
    )


def test_max_noise_management():
    w = _normal(1, (4, 2))
    cfg_max = PeripheryConfig(**{**BARE, "inp_bound": 1.0, "noise_management": "max"})
    cfg_abs = PeripheryConfig(**{**BARE, "inp_bound": 1.0, "noise_management": "abs_max"})
    positive = jnp.array([[0.5, 2.0, 0.1, 1.0]])
    np.testing.assert_allclose(mvm(w, positive, cfg_max, KEY), positive @ w, rtol=1e-6)
    # max = 0.5 < |min| = 2: scaled input -4 clips at the DAC bound (aihwkit's "max").
    mixed = jnp.array([[0.5, -2.0, 0.1, 0.2]])
    clipped = jnp.array([[1.0, -1.0, 0.2, 0.4]]) * 0.5
    np.testing.assert_allclose(mvm(w, mixed, cfg_max, KEY), clipped @ w, rtol=1e-6)
    # All-negative input: the max is not positive; the abs max is used (documented).
    negative = -positive
    np.testing.assert_allclose(mvm(w, negative, cfg_max, KEY), mvm(w, negative, cfg_abs, KEY))


def test_zero_input_reads_zero():
    # With noise management a zero vector is not read at all (aihwkit): no noise either, which
    # matters for the many exactly-zero gradients behind a max-pool.
    x = jnp.zeros((2, 4)).at[1, 0].set(1.0)
    y = mvm(_normal(1, (4, 3)), x, PeripheryConfig(), KEY)
    np.testing.assert_array_equal(y[0], 0.0)
    assert np.all(y[1] != 0.0)
    # Without noise management the read noise is there whatever the input.
    y = mvm(_normal(1, (4, 3)), x, PeripheryConfig(**{**BARE, "out_noise": 0.06}), KEY)
    assert np.all(y[0] != 0.0)


# ------------------------------------------------------------------------------------------
# bound management


def test_iterative_bound_management_recovers_a_saturated_output():
    cfg = PeripheryConfig(out_noise=0.0)
    no_bm = PeripheryConfig(out_noise=0.0, bound_management="none")
    w = jnp.ones((20, 1))
    # Exact outputs 20 (saturates at the first read) and 5 (never saturates; with noise
    # management the managed read is 5 as well).
    x = jnp.stack([jnp.ones(20), jnp.concatenate([jnp.ones(5), jnp.zeros(15)])])
    assert float(mvm(w, x, no_bm, KEY)[0, 0]) == 12.0  # the first read saturates at the bound
    y = mvm(w, x, cfg, KEY)
    # Second read with the input halved: |error| <= r * (sum_j |w_j| * D_in / 2 + D_out / 2)
    # with r = 2, D_in = 2/126, D_out = 24/510 (rounding of the DAC and the ADC).
    tol = 2 * (20 * (2 / 126) / 2 + (24 / 510) / 2)
    assert abs(float(y[0, 0]) - 20.0) <= tol
    # The other sample did not saturate: its own single read (noise management only).
    assert float(y[1, 0]) == float(mvm(w, x[1:], no_bm, KEY)[0, 0])


def test_bound_management_gives_up_after_the_cap():
    w = jnp.ones((1000, 1))
    x = jnp.ones((1, 1000))  # exact output 1000 > 12 * 16
    cfg = PeripheryConfig(out_noise=0.0)
    # Documented result: the last read (reduction 2^(reads-1) = 16) saturated, clipped to the
    # bound and scaled back: out_bound * max|x| * 16.
    assert float(mvm(w, x, cfg, KEY)[0, 0]) == 12.0 * 16
    # Without DAC quantization only max_bm_factor caps: reductions 1, 2, 4, 8.
    cfg4 = PeripheryConfig(inp_bits=None, out_noise=0.0, max_bm_factor=4)
    assert cfg4.max_bm_reads == 4
    assert float(mvm(w, x, cfg4, KEY)[0, 0]) == 12.0 * 8


def test_bound_management_loop_is_a_while_loop_under_jit():
    cfg = PeripheryConfig()
    jaxpr = jax.make_jaxpr(lambda w, x: periphery.mvm(w, x, cfg, KEY))(
        jnp.ones((4, 2)), jnp.ones((3, 4))
    )
    assert "while" in str(jaxpr)


# ------------------------------------------------------------------------------------------
# tiling


def test_tiling_splits_into_arrays_with_their_own_periphery():
    w, x = _normal(1, (1024, 6), 0.05), _normal(2, (3, 1024))
    cfg = PeripheryConfig()
    y = tiled_mvm(w, x, cfg, KEY, max_tile=512)
    # Two arrays of 512 inputs, each read through its own periphery, summed digitally.
    expected = mvm(w[:512], x[:, :512], cfg, jax.random.fold_in(KEY, 0)) + mvm(
        w[512:], x[:, 512:], cfg, jax.random.fold_in(KEY, 1)
    )
    # Same draws, same maths; XLA may order the float sums differently (an ulp).
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
    perfect = PeripheryConfig.perfect()
    np.testing.assert_allclose(
        tiled_mvm(w, x, perfect, None, max_tile=300),
        jnp.matmul(x, w, precision="highest"),
        rtol=1e-5,
        atol=1e-5,
    )
    d = _normal(3, (3, 6))
    np.testing.assert_allclose(
        tiled_mvm(w, d, perfect, None, max_tile=300, transpose=True),
        jnp.matmul(d, w.T, precision="highest"),
        rtol=1e-5,
        atol=1e-5,
    )


def test_tiling_output_split_and_transpose():
    w, d = _normal(1, (10, 1024), 0.05), _normal(2, (2, 1024))
    cfg = PeripheryConfig(bound_management="none")  # the backward periphery of the layers
    y = tiled_mvm(w, d, cfg, KEY, max_tile=512, transpose=True)
    # 1024 outputs -> two arrays of 512 columns; the transposed read sums over them.
    expected = mvm(w[:, :512], d[:, :512], cfg, jax.random.fold_in(KEY, 0), transpose=True) + mvm(
        w[:, 512:], d[:, 512:], cfg, jax.random.fold_in(KEY, 1), transpose=True
    )
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
    assert periphery._splits(1100, 512) == [(0, 367), (367, 733), (733, 1100)]


def test_analog_matmul_gradients():
    cfg = PeripheryConfig()
    w, x, g = _normal(1, (6, 4), 0.3), _normal(2, (5, 6)), _normal(3, (5, 4))
    dx, dw = jax.jit(
        lambda x, w, g: jax.vjp(lambda x, w: analog_matmul(x, w, KEY, cfg, cfg), x, w)[1](g)
    )(x, w, g)
    # Exact weight gradient; input gradient = the backward read with the second half of the key.
    np.testing.assert_allclose(dw, jnp.matmul(x.T, g, precision="highest"), rtol=1e-6)
    np.testing.assert_allclose(
        dx, mvm(w, g, cfg, jax.random.split(KEY)[1], transpose=True), rtol=1e-6
    )
    assert not np.allclose(dx, g @ w.T, atol=1e-3)  # noisy
    assert np.allclose(dx, g @ w.T, atol=0.5)
