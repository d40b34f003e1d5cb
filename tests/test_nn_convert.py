"""convert_to_analog (linen and nnx) and the device/periphery/algorithm presets."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from aimcjax import devices, optim, presets, pulse, tile
from aimcjax.nn import AnalogConv, AnalogDense, AnalogModel, convert_to_analog, grad_and_factors
from aimcjax.nn import nnx as annx
from aimcjax.periphery import PeripheryConfig

PERFECT = PeripheryConfig.perfect()
HI = jax.lax.Precision.HIGHEST


class LinenCNN(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = jnp.tanh(nn.Conv(3, (3, 3), padding="VALID", precision=HI)(x))
        x = jnp.tanh(nn.Conv(4, (2, 2), strides=2, precision=HI, use_bias=False)(x))
        x = x.reshape(x.shape[0], -1)
        x = jnp.tanh(nn.Dense(5, precision=HI)(x))
        return nn.Dense(2, precision=HI)(x)


class LinenAnalogCNN(nn.Module):
    """The same network written with the analog layers by hand."""

    @nn.compact
    def __call__(self, x):
        kw = dict(forward=PeripheryConfig(), backward=PeripheryConfig(bound_management="none"))
        x = jnp.tanh(AnalogConv(3, (3, 3), padding="VALID", name="Conv_0", **kw)(x))
        x = jnp.tanh(AnalogConv(4, (2, 2), strides=2, use_bias=False, name="Conv_1", **kw)(x))
        x = x.reshape(x.shape[0], -1)
        x = jnp.tanh(AnalogDense(5, name="Dense_0", **kw)(x))
        return AnalogDense(2, name="Dense_1", **kw)(x)


X = jax.random.normal(jax.random.key(0), (2, 9, 9, 2))


def test_linen_conversion_keeps_the_variables_and_is_exact_with_a_perfect_periphery():
    model = LinenCNN()
    variables = model.init(jax.random.key(1), X)
    analog = convert_to_analog(model, forward=PERFECT, backward=PERFECT)
    assert isinstance(analog, AnalogModel)
    # the converted model creates the very same variables
    jax.tree.map(np.testing.assert_array_equal, analog.init(jax.random.key(1), X), variables)
    ref = model.apply(variables, X)
    np.testing.assert_allclose(analog.apply(variables, X), ref, rtol=1e-5, atol=1e-6)
    g_ref = jax.grad(lambda v: jnp.sum(jnp.sin(model.apply(v, X))))(variables)
    g = jax.grad(lambda v: jnp.sum(jnp.sin(analog.apply(v, X))))(variables)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g, g_ref)


def test_linen_conversion_equals_the_hand_written_analog_model_with_noise():
    """Noisy RF Table 4 periphery: the same reads, noise draws and factors as AnalogDense/Conv."""
    variables = LinenCNN().init(jax.random.key(1), X)
    analog = convert_to_analog(LinenCNN())
    rngs = {"periphery": jax.random.key(7)}
    y = analog.apply(variables, X, rngs=rngs)
    np.testing.assert_array_equal(y, LinenAnalogCNN().apply(variables, X, rngs=rngs))
    assert not np.allclose(y, LinenCNN().apply(variables, X), atol=1e-4)  # really analog

    def loss(out):
        return jnp.mean(out**2)

    got = grad_and_factors(analog, loss, variables, X, rngs=rngs)
    want = grad_and_factors(LinenAnalogCNN(), loss, variables, X, rngs=rngs)
    jax.tree.map(np.testing.assert_array_equal, got, want)
    assert got[2]["Dense_0"]["kernel"][0].shape == (2, 4 * 4 * 4)  # factors (x, d) per layer


def test_linen_conversion_refuses_what_it_cannot_model():
    class Dilated(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Conv(2, (3, 3), kernel_dilation=2)(x)

    variables = Dilated().init(jax.random.key(0), X)
    with pytest.raises(ValueError, match="dilation"):
        convert_to_analog(Dilated(), forward=PERFECT, backward=PERFECT).apply(variables, X)
    with pytest.raises(TypeError, match="linen or nnx"):
        convert_to_analog(lambda x: x)


class NnxNet(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(2, 3, (3, 3), padding="VALID", precision=HI, rngs=rngs)
        self.layers = nnx.List(
            [
                nnx.Linear(3 * 7 * 7, 5, precision=HI, rngs=rngs),
                nnx.Linear(5, 2, use_bias=False, precision=HI, rngs=rngs),
            ]
        )

    def __call__(self, x):
        x = jnp.tanh(self.conv(x)).reshape(x.shape[0], -1)
        return self.layers[1](jnp.tanh(self.layers[0](x)))


def test_nnx_conversion_keeps_the_weights_and_is_exact_with_a_perfect_periphery():
    model = NnxNet(nnx.Rngs(0))
    analog = convert_to_analog(model, forward=PERFECT, backward=PERFECT)
    assert isinstance(analog.conv, annx.AnalogConv)
    assert all(isinstance(layer, annx.AnalogLinear) for layer in analog.layers)
    assert isinstance(model.conv, nnx.Conv)  # the original is left alone
    np.testing.assert_array_equal(analog.conv.kernel[...], model.conv.kernel[...])
    np.testing.assert_array_equal(analog.layers[0].bias[...], model.layers[0].bias[...])
    assert analog.layers[1].bias is None
    np.testing.assert_allclose(analog(X), model(X), rtol=1e-5, atol=1e-6)


def test_nnx_conversion_with_noise_trains_analog():
    model = convert_to_analog(NnxNet(nnx.Rngs(0)), rngs=nnx.Rngs(periphery=3))
    assert not np.allclose(model(X), NnxNet(nnx.Rngs(0))(X), atol=1e-4)
    optimizer = nnx.Optimizer(
        model, optim.analog_sgd(0.1, devices.SoftBounds(dw_min=1e-2), key=0), wrt=nnx.Param
    )
    grads = nnx.grad(lambda m: jnp.mean(m(X) ** 2))(model)
    optimizer.update(model, grads)
    tiles = optim.analog_state(nnx.as_pure(optimizer.opt_state))
    # params + (new weights - params): the tiles' weights up to the rounding of that sum
    np.testing.assert_allclose(
        tile.weights(tiles.W["layers"][0]["kernel"]), model.layers[0].kernel[...], rtol=0, atol=1e-7
    )
    with pytest.raises(TypeError, match="rngs"):
        convert_to_analog(NnxNet(nnx.Rngs(0)))


# ------------------------------------------------------------------------------------------
# presets


def _by_hand(name, mode):
    """What each preset's docstring promises, built from the public constructors."""
    io = PeripheryConfig(out_bound=20.0, out_noise=0.1)
    one = pulse.UpdateConfig(mode=mode, bl=1, update_management=False, update_bl_management=False)
    if name == "tiki_taka_reram_sb":
        d = devices.presets.reram_sb()
        up = pulse.UpdateConfig(mode=mode, bl=31)
        return (
            d,
            io,
            optim.residual_learning(
                0.1,
                0.05,
                0.0,
                d,
                zero_shift=True,
                transfer="column",
                update=up,
                transfer_update=up,
                key=0,
            ),
        )
    if name in ("ttv2_ecram", "chopped_ttv2_ecram"):
        d = devices.presets.ecram()
        return (
            d,
            io,
            optim.chopped_ttv2(
                0.1,
                0.1,
                d,
                zero_shift=False,
                in_chop_prob=0.0 if name == "ttv2_ecram" else 0.01,
                auto_granularity=500.0,
                update=pulse.UpdateConfig(mode=mode, bl=100),
                transfer_update=one,
                key=0,
            ),
        )
    if name == "agad_ecram":
        d = devices.presets.ecram()
        return (
            d,
            io,
            optim.agad(
                0.1,
                0.1,
                d,
                in_chop_prob=0.005,
                tail_weighting=50.0,
                auto_granularity=750.0,
                update=pulse.UpdateConfig(mode=mode, bl=31),
                transfer_update=one,
                key=0,
            ),
        )
    d = devices.presets.reram_sb() if name == "mixed_precision_reram_sb" else presets.pcm_like()
    return d, io, optim.mixed_precision(0.1, d, key=0)


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_preset_is_what_its_docstring_says(name):
    preset = presets.PRESETS[name]()
    device, io, opt = preset
    want_device, want_io, want_opt = _by_hand(name, "pulse")
    assert io == want_io
    assert jax.tree.structure(device) == jax.tree.structure(want_device)
    jax.tree.map(np.testing.assert_array_equal, device, want_device)
    assert preset.layer_kwargs()["backward"].bound_management == "none"
    params = {"w": 0.1 * jax.random.normal(jax.random.key(0), (6, 4))}
    s1, s2 = opt.init(params), want_opt.init(params)
    step1, step2 = jax.jit(opt.update), jax.jit(want_opt.update)
    for k in range(3):
        g = {"w": jax.random.normal(jax.random.key(10 + k), (6, 4))}
        u1, s1 = step1(g, s1, params)
        u2, s2 = step2(g, s2, params)
        np.testing.assert_array_equal(u1["w"], u2["w"])
        params = optax.apply_updates(params, u1)
    assert isinstance(optim.analog_state(s1).W["w"], tile.Tile)


def test_pcm_like_device_saturates_and_is_noisy():
    d = presets.pcm_like()
    assert float(d.symmetric_point()) == 0.0
    assert float(d.q_plus(0.9)) < 0.2 * float(d.q_plus(-0.9))  # steps shrink towards the bound
    assert float(d.dw_min_std) == 0.6
