"""Tests of the flax layers (linen and nnx): exactness with a perfect periphery, gradients,
per-sample factors, conductance mapping, output scales, tiling, validation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from aimcjax import periphery
from aimcjax.nn import AnalogConv, AnalogDense, PeripheryConfig, grad_and_factors
from aimcjax.nn import nnx as annx

PERFECT = PeripheryConfig.perfect()
HI = jax.lax.Precision.HIGHEST
RNGS = {"params": jax.random.key(0), "periphery": jax.random.key(1)}


def _normal(seed, shape, scale=1.0):
    return scale * jax.random.normal(jax.random.key(seed), shape)


# ------------------------------------------------------------------------------------------
# linen: forward and gradients


def test_dense_with_perfect_periphery_is_a_dense_layer():
    x = _normal(1, (4, 3, 7))
    layer = AnalogDense(5, forward=PERFECT, backward=PERFECT)
    variables = layer.init(RNGS, x)
    assert set(variables) == {"params"}
    params = variables["params"]
    dense = nn.Dense(5, precision=HI)

    def loss(layer, params, x):
        return jnp.sum(jnp.sin(layer.apply({"params": params}, x)))

    y = layer.apply(variables, x)  # no periphery rng needed: nothing is random
    np.testing.assert_allclose(y, dense.apply({"params": params}, x), rtol=1e-6, atol=1e-6)
    g_analog = jax.grad(loss, argnums=(1, 2))(layer, params, x)
    g_digital = jax.grad(loss, argnums=(1, 2))(dense, params, x)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g_analog, g_digital
    )


def test_dense_gradient_exact_for_weights_noisy_for_inputs():
    x = _normal(1, (6, 8))
    layer = AnalogDense(4)  # RF Table 4 forward, same without bound management backward
    variables = layer.init(RNGS, x)
    cotangent = _normal(2, (6, 4))  # loss = sum(y * c), so dL/dy = c
    key = jax.random.key(5)

    @jax.jit
    def grads(params, x):
        def loss(params, x):
            y = layer.apply({"params": params}, x, rngs={"periphery": key})
            return jnp.sum(y * cotangent)

        return jax.grad(loss, argnums=(0, 1))(params, x)

    g_params, g_x = grads(variables["params"], x)
    np.testing.assert_allclose(
        g_params["kernel"], jnp.matmul(x.T, cotangent, precision=HI), rtol=1e-6
    )
    np.testing.assert_allclose(g_params["bias"], cotangent.sum(0), rtol=1e-6)
    # The input gradient is the transposed read through the backward periphery, with the
    # backward half of the layer's periphery key.
    kernel = variables["params"]["kernel"]
    exact = cotangent @ kernel.T
    assert not np.allclose(g_x, exact, atol=1e-3)
    # Noise of std ~ max|c| * 0.06 per entry (managed backward read) plus ADC rounding.
    assert np.max(np.abs(g_x - exact)) < 6 * np.max(np.abs(cotangent)) * 0.07


def test_dense_input_gradient_is_the_backward_read():
    # With a perfect forward and a noisy backward, the input gradient must equal
    # periphery.mvm(W, c, backward, key_backward, transpose=True) for the layer's key.
    x = _normal(1, (3, 5))
    backward = PeripheryConfig(out_noise=0.1, bound_management="none")
    layer = AnalogDense(2, forward=PERFECT, backward=backward, use_bias=False)
    variables = layer.init(RNGS, x)
    c = _normal(2, (3, 2))
    key = jax.random.key(9)

    def loss(x):
        return jnp.sum(layer.apply(variables, x, rngs={"periphery": key}) * c)

    g_x = jax.grad(loss)(x)
    layer_key = layer.apply(
        variables, method=lambda m: m.make_rng("periphery"), rngs={"periphery": key}
    )
    expected = periphery.mvm(
        variables["params"]["kernel"], c, backward, jax.random.split(layer_key)[1], transpose=True
    )
    np.testing.assert_allclose(g_x, expected, rtol=1e-6, atol=1e-7)


def test_noisy_layer_needs_the_periphery_rng():
    x = jnp.ones((2, 3))
    layer = AnalogDense(2)
    variables = layer.init(RNGS, x)
    with pytest.raises(Exception, match="periphery"):
        layer.apply(variables, x)


def test_conv_with_perfect_periphery_is_a_conv_layer():
    x = _normal(1, (2, 9, 8, 3))
    for padding, strides in (("SAME", 1), ("VALID", 2), (((1, 2), (0, 1)), (2, 1))):
        layer = AnalogConv(
            4, (3, 2), strides=strides, padding=padding, forward=PERFECT, backward=PERFECT
        )
        variables = layer.init(RNGS, x)
        conv = nn.Conv(4, (3, 2), strides=strides, padding=padding, precision=HI)
        np.testing.assert_allclose(
            layer.apply(variables, x), conv.apply(variables, x), rtol=1e-5, atol=1e-5
        )
        g = jax.grad(lambda p, x: jnp.sum(jnp.sin(layer.apply({"params": p}, x))), argnums=(0, 1))(
            variables["params"], x
        )
        g_ref = jax.grad(
            lambda p, x: jnp.sum(jnp.sin(conv.apply({"params": p}, x))), argnums=(0, 1)
        )(variables["params"], x)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g, g_ref)


# ------------------------------------------------------------------------------------------
# factors


class _Net(nn.Module):
    """Conv -> dense (conductance-mapped, learned scale) -> digital dense."""

    @nn.compact
    def __call__(self, x):
        x = AnalogConv(3, (3, 3), padding="VALID")(x)
        x = jnp.tanh(x).reshape(x.shape[0], -1)
        x = AnalogDense(6, weight_scaling_omega=0.6, learn_out_scale=True)(x)
        x = AnalogDense(5, max_tile=4)(jax.nn.sigmoid(x))
        return nn.Dense(2)(x)


def test_factors_reproduce_the_gradient_exactly():
    x = _normal(1, (4, 6, 6, 2))
    labels = jnp.array([0, 1, 1, 0])
    net = _Net()
    variables = net.init(RNGS, x)

    def loss_fn(logits):
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), labels])

    run = jax.jit(lambda v, x, k: grad_and_factors(net, loss_fn, v, x, rngs={"periphery": k}))
    loss, grads, factors = run(variables, x, jax.random.key(3))
    # Same loss and gradients as a plain jax.grad through the model.
    loss_ref, grads_ref = jax.jit(
        jax.value_and_grad(
            lambda p: loss_fn(
                net.apply({**variables, "params": p}, x, rngs={"periphery": jax.random.key(3)})
            )
        )
    )(variables["params"])
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads, grads_ref
    )
    analog = {
        "AnalogConv_0": (4 * 4 * 4, 18, 3),
        "AnalogDense_0": (4, 48, 6),
        "AnalogDense_1": (4, 6, 5),
    }
    for name, (samples, n_in, n_out) in analog.items():
        x_b, d_b = factors[name]["kernel"]
        assert x_b.shape == (samples, n_in) and d_b.shape == (samples, n_out)
        kernel_grad = grads[name]["kernel"].reshape(n_in, n_out)
        # grads = sum_b x_b (x) d_b: the same float32 products; XLA may order the sum
        # differently inside and outside jit, hence a few-ulp tolerance.
        np.testing.assert_allclose(
            kernel_grad, jnp.matmul(x_b.T, d_b, precision=HI), rtol=1e-5, atol=1e-8
        )
        assert factors[name]["bias"] is None
    assert factors["AnalogDense_0"]["out_scale"] is None
    assert factors["Dense_0"] == {"kernel": None, "bias": None}


def test_factors_refuse_a_layer_called_twice():
    class Twice(nn.Module):
        @nn.compact
        def __call__(self, x):
            layer = AnalogDense(3, forward=PERFECT, backward=PERFECT)
            return layer(layer(x))

    x = jnp.ones((2, 3))
    net = Twice()
    variables = net.init(RNGS, x)
    with pytest.raises(ValueError, match="called 2 times"):
        grad_and_factors(net, jnp.sum, variables, x)


# ------------------------------------------------------------------------------------------
# conductance mapping, output scales, tiling


def test_weight_scaling_omega_maps_columns_to_the_device_range():
    x = _normal(1, (3, 10))
    layer = AnalogDense(
        4, weight_scaling_omega=0.5, device_w_max=0.6, forward=PERFECT, backward=PERFECT
    )
    variables = layer.init(RNGS, x)
    kernel = variables["params"]["kernel"]
    scale = variables["constants"]["out_scale"]
    np.testing.assert_allclose(jnp.max(jnp.abs(kernel), axis=0), 0.5 * 0.6, rtol=1e-6)
    y = layer.apply(variables, x)
    np.testing.assert_allclose(
        y,
        jnp.matmul(x, kernel * scale, precision=HI) + variables["params"]["bias"],
        rtol=1e-5,
        atol=1e-6,
    )
    # The optimizer sees gradients in device units: d(sum y)/d(kernel) = x^T (1 * scale).
    g = jax.grad(lambda p: layer.apply({**variables, "params": p}, x).sum())(variables["params"])
    np.testing.assert_allclose(g["kernel"], jnp.outer(x.sum(0), scale), rtol=1e-5)


def test_learned_out_scale_is_a_parameter_with_a_gradient():
    x = _normal(1, (3, 10))
    layer = AnalogDense(4, learn_out_scale=True, forward=PERFECT, backward=PERFECT)
    variables = layer.init(RNGS, x)
    np.testing.assert_array_equal(variables["params"]["out_scale"], jnp.ones(4))
    g = jax.grad(lambda p: layer.apply({"params": p}, x).sum())(variables["params"])
    assert np.all(np.abs(g["out_scale"]) > 0)


def test_max_tile_layer_is_two_arrays_summed():
    x = _normal(1, (2, 1024), 0.05)
    layer = AnalogDense(3, max_tile=512, use_bias=False)
    variables = layer.init(RNGS, x)
    key = jax.random.key(4)
    y = jax.jit(lambda v, x: layer.apply(v, x, rngs={"periphery": key}))(variables, x)
    layer_key = layer.apply(
        variables, method=lambda m: m.make_rng("periphery"), rngs={"periphery": key}
    )
    forward_key = jax.random.split(layer_key)[0]
    kernel = variables["params"]["kernel"]
    expected = periphery.mvm(
        kernel[:512], x[:, :512], PeripheryConfig(), jax.random.fold_in(forward_key, 0)
    ) + periphery.mvm(
        kernel[512:], x[:, 512:], PeripheryConfig(), jax.random.fold_in(forward_key, 1)
    )
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------
# validation


def test_bad_layer_input_raises():
    layer = AnalogDense(3)
    variables = layer.init(RNGS, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="x has last dimension"):
        layer.apply(variables, jnp.ones((2, 5)), rngs={"periphery": jax.random.key(0)})
    with pytest.raises(ValueError, match="max_tile"):
        AnalogDense(3, max_tile=0).init(RNGS, jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="weight_scaling_omega"):
        AnalogDense(3, weight_scaling_omega=-1.0).init(RNGS, jnp.ones((2, 4)))
    with pytest.raises(TypeError, match="forward"):
        AnalogDense(3, forward="perfect").init(RNGS, jnp.ones((2, 4)))
    conv = AnalogConv(2, (3, 3))
    cvars = conv.init(RNGS, jnp.ones((1, 5, 5, 2)))
    with pytest.raises(ValueError, match="channels"):
        conv.apply(cvars, jnp.ones((1, 5, 5, 3)), rngs={"periphery": jax.random.key(0)})
    with pytest.raises(ValueError, match="kernel_size"):
        AnalogConv(2, (0, 3)).init(RNGS, jnp.ones((1, 5, 5, 2)))
    with pytest.raises(ValueError, match="in_features"):
        annx.AnalogLinear(0, 3, rngs=nnx.Rngs(0))
    lin = annx.AnalogLinear(4, 3, rngs=nnx.Rngs(params=0, periphery=1))
    with pytest.raises(ValueError, match="x has last dimension"):
        lin(jnp.ones((2, 5)))


# ------------------------------------------------------------------------------------------
# nnx


class _NnxNet(nnx.Module):
    def __init__(self, rngs):
        self.conv = annx.AnalogConv(2, 3, (3, 3), padding="VALID", rngs=rngs)
        self.hidden = annx.AnalogLinear(48, 6, weight_scaling_omega=0.6, rngs=rngs)
        self.out = annx.AnalogLinear(6, 2, learn_out_scale=True, rngs=rngs)

    def __call__(self, x):
        x = jnp.tanh(self.conv(x)).reshape(x.shape[0], -1)
        return self.out(jax.nn.sigmoid(self.hidden(x)))


def test_nnx_layers_match_linen_with_perfect_periphery():
    x = _normal(1, (2, 7))
    lin = annx.AnalogLinear(7, 3, forward=PERFECT, backward=PERFECT, rngs=nnx.Rngs(0))
    params = {"kernel": lin.kernel[...], "bias": lin.bias[...]}
    np.testing.assert_allclose(
        lin(x),
        AnalogDense(3, forward=PERFECT, backward=PERFECT).apply({"params": params}, x),
        rtol=1e-6,
    )
    xc = _normal(2, (2, 6, 6, 2))
    conv = annx.AnalogConv(
        2, 4, (3, 3), strides=2, forward=PERFECT, backward=PERFECT, rngs=nnx.Rngs(0)
    )
    cparams = {"kernel": conv.kernel[...], "bias": conv.bias[...]}
    ref = nn.Conv(4, (3, 3), strides=2, precision=HI).apply({"params": cparams}, xc)
    np.testing.assert_allclose(conv(xc), ref, rtol=1e-5, atol=1e-5)


def test_nnx_scales_are_param_or_fixed():
    net = _NnxNet(nnx.Rngs(params=0, periphery=1))
    assert isinstance(net.out.out_scale, nnx.Param)
    assert isinstance(net.hidden.out_scale, annx.AnalogScale)
    assert not isinstance(net.hidden.out_scale, nnx.Param)
    np.testing.assert_allclose(jnp.max(jnp.abs(net.hidden.kernel[...]), axis=0), 0.6, rtol=1e-6)


def test_nnx_factors_reproduce_the_gradient_exactly():
    net = _NnxNet(nnx.Rngs(params=0, periphery=1))
    x = _normal(1, (3, 6, 6, 2))
    labels = jnp.array([0, 1, 1])

    def loss_fn(model, x, labels):
        logits = model(x)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(3), labels])

    loss, grads, factors = nnx.jit(annx.grad_and_factors, static_argnums=0)(loss_fn, net, x, labels)
    assert np.isfinite(loss)
    for name, (samples, n_in, n_out) in {
        "conv": (3 * 16, 18, 3),
        "hidden": (3, 48, 6),
        "out": (3, 6, 2),
    }.items():
        x_b, d_b = factors[name]["kernel"]
        assert x_b.shape == (samples, n_in) and d_b.shape == (samples, n_out)
        np.testing.assert_allclose(
            grads[name]["kernel"][...].reshape(n_in, n_out),
            jnp.matmul(x_b.T, d_b, precision=HI),
            rtol=1e-5,
            atol=1e-8,
        )
        assert factors[name]["bias"] is None
    assert factors["out"]["out_scale"] is None
    assert "out_scale" not in factors["hidden"]  # fixed scale: not a parameter
    # The periphery stream advances: a second pass draws new noise.
    loss2, _, _ = annx.grad_and_factors(loss_fn, net, x, labels)
    assert loss2 != loss


# ------------------------------------------------------------------------------------------
# kernel_size as flax's Conv: an int is a 1-D window, a tuple one entry per spatial dimension


def test_conv_kernel_size_follows_flax_in_linen_and_nnx():
    x1 = _normal(1, (2, 9, 3))  # (batch, length, channels)
    x2 = _normal(2, (2, 6, 6, 3))
    for k, x in ((3, x1), ((3,), x1), ((3, 3), x2), ([3, 3], x2)):
        ours = AnalogConv(4, k, forward=PERFECT, backward=PERFECT)
        params = ours.init(RNGS, x)["params"]
        ref = nn.Conv(4, k, precision=HI).apply({"params": params}, x)
        np.testing.assert_allclose(ours.apply({"params": params}, x), ref, rtol=1e-5, atol=1e-5)
        mine = annx.AnalogConv(3, 4, k, forward=PERFECT, backward=PERFECT, rngs=nnx.Rngs(0))
        theirs = nnx.Conv(3, 4, k, precision=HI, rngs=nnx.Rngs(0))
        theirs.kernel[...] = mine.kernel[...]
        np.testing.assert_allclose(mine(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_conv_int_kernel_size_on_images_names_the_fix():
    x = jnp.ones((1, 6, 6, 3))
    with pytest.raises(ValueError, match=r"kernel_size=3 \(an int\) is a 1-D window.*\(3, 3\)"):
        AnalogConv(4, 3).init(RNGS, x)
    with pytest.raises(ValueError, match=r"kernel_size=3 \(an int\) is a 1-D window.*\(3, 3\)"):
        annx.AnalogConv(3, 4, 3, rngs=nnx.Rngs(0))(x)
    with pytest.raises(TypeError, match="kernel_size"):
        AnalogConv(4, kernel_size=3.0).init(RNGS, x)
    with pytest.raises(TypeError):  # required, as flax's Conv
        AnalogConv(4).init(RNGS, x)
