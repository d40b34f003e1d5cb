"""The paper's classifiers as pure jnp functions that also expose per-layer update factors.

Every weight layer computes ``z = x @ W + eps`` then ``y = scale * z + bias``. ``W`` lives on
an analog tile (device units); ``scale`` is the digital weight-to-conductance factor (aihwkit's
``weight_scaling_omega``: the initial weights are mapped so their largest magnitude sits at
``omega * w_max`` of the device range and the output is scaled back digitally); ``eps`` is a
zero perturbation whose gradient is the layer's output error ``d``, so that the weight gradient
is ``sum_b x_b d_b^T`` -- the per-sample factors (x, d) that "outer" pulse updates need
(DESIGN §5-6). Convolutions are written as im2col matmuls, so their factors have one row per
(sample, output position), exactly the rows aihwkit's analog convolution feeds its tile.

Models [RF §5]: ``fcn`` 784-256-128-10 sigmoid; ``cnn`` conv5x5(16)-pool2-conv5x5(32)-pool2-
512-128-10 tanh; ``mlp`` one hidden sigmoid layer of 32 for small inputs (8x8 digits).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Model", "MODELS", "get", "cross_entropy"]


class Layer(NamedTuple):
    kind: str  # "dense" | "conv"
    n_in: int
    n_out: int
    act: Callable | None
    pool: bool = False


class Model(NamedTuple):
    """A classifier as pure functions.

    Attributes:
      name: model name.
      init: ``init(key, omega, w_max) -> (params, scales)``; params ``{"layer{i}": {"kernel",
        "bias"}}`` with kernels in device units, scales the per-layer digital output scales.
        ``omega=None`` (or 0) keeps the weights unscaled (scale 1).
      apply: ``apply(params, scales, x, eps=None) -> (logits, inputs)``; ``inputs`` are the
        per-layer kernel inputs as (rows, in) matrices; ``eps`` the per-layer zero perturbations.
      perturbations: ``perturbations(batch) -> eps`` zeros of the right shapes.
      analog_mask: pytree of bools like params: kernels analog, biases digital.
    """

    name: str
    init: Callable
    apply: Callable
    perturbations: Callable
    analog_mask: dict


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy with integer labels."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def _patches(x):
    # (N, H, W, C) -> (N, H-4, W-4, C*25), feature order (c, kh, kw).
    return jax.lax.conv_general_dilated_patches(
        x, (5, 5), (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _pool(y):
    n, h, w, c = y.shape
    return y.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _build(name, layers, out_positions):
    def init(key, omega=None, w_max=1.0):
        params, scales = {}, {}
        keys = jax.random.split(key, len(layers))
        for i, (layer, k) in enumerate(zip(layers, keys)):
            bound = 1.0 / math.sqrt(layer.n_in)  # torch's default Linear/Conv init, as aihwkit
            k_w, k_b = jax.random.split(k)
            w = jax.random.uniform(k_w, (layer.n_in, layer.n_out), jnp.float32, -bound, bound)
            b = jax.random.uniform(k_b, (layer.n_out,), jnp.float32, -bound, bound)
            if omega:
                scale = jnp.max(jnp.abs(w)) / (omega * w_max)
            else:
                scale = jnp.ones((), jnp.float32)
            params[f"layer{i}"] = {"kernel": w / scale, "bias": b}
            scales[f"layer{i}"] = scale
        return params, scales

    def perturbations(batch):
        return {f"layer{i}": jnp.zeros((batch * p, layer.n_out), jnp.float32)
                for i, (layer, p) in enumerate(zip(layers, out_positions))}

    def apply(params, scales, x, eps=None):
        inputs = {}
        h = x
        for i, layer in enumerate(layers):
            name_i = f"layer{i}"
            p = params[name_i]
            if layer.kind == "conv":
                pt = _patches(h)
                n, hh, ww, f = pt.shape
                rows = pt.reshape(n * hh * ww, f)
            else:
                rows = h.reshape(h.shape[0], -1)
            inputs[name_i] = rows
            z = rows @ p["kernel"]
            if eps is not None:
                z = z + eps[name_i]
            y = scales[name_i] * z + p["bias"]
            if layer.kind == "conv":
                y = y.reshape(n, hh, ww, layer.n_out)
            if layer.act is not None:
                y = layer.act(y)
            if layer.pool:
                y = _pool(y)
            h = y
        return h, inputs

    mask = {f"layer{i}": {"kernel": True, "bias": False} for i in range(len(layers))}
    return Model(name, init, apply, perturbations, mask)


def get(name: str, input_shape, num_classes: int) -> Model:
    """Build a model for inputs of ``input_shape`` (H, W, C) and ``num_classes`` outputs.

    Args:
      name: ``"fcn"``, ``"cnn"`` or ``"mlp"``.
      input_shape: shape of one image.
      num_classes: number of outputs.

    Returns:
      A :class:`Model`.
    """
    n_in = int(math.prod(input_shape))
    sig = jax.nn.sigmoid
    if name == "fcn":
        layers = [Layer("dense", n_in, 256, sig), Layer("dense", 256, 128, sig),
                  Layer("dense", 128, num_classes, None)]
        return _build(name, layers, [1, 1, 1])
    if name == "mlp":
        layers = [Layer("dense", n_in, 32, sig), Layer("dense", 32, num_classes, None)]
        return _build(name, layers, [1, 1])
    if name == "cnn":
        if len(input_shape) != 3 or input_shape[0] < 12 or input_shape[1] < 12:
            raise ValueError(f"model 'cnn' needs images of at least 12x12 pixels (H, W, C), "
                             f"got input shape {tuple(input_shape)}")
        h, w, c = input_shape
        h1, w1 = (h - 4), (w - 4)
        h2, w2 = (h1 // 2 - 4), (w1 // 2 - 4)
        flat = (h2 // 2) * (w2 // 2) * 32
        layers = [Layer("conv", c * 25, 16, jnp.tanh, True), Layer("conv", 16 * 25, 32, jnp.tanh, True),
                  Layer("dense", flat, 128, jnp.tanh), Layer("dense", 128, num_classes, None)]
        return _build(name, layers, [h1 * w1, h2 * w2, 1, 1])
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


MODELS = ("fcn", "cnn", "mlp")
