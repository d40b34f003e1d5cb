"""The paper's classifiers built from the library's analog layers (:mod:`aimcjax.nn`).

Every weight layer is an :class:`aimcjax.nn.AnalogDense` or :class:`aimcjax.nn.AnalogConv`:
its product runs through the periphery (:mod:`aimcjax.periphery`; ``perfect`` gives the exact
product), its kernel lives on an analog tile (device units) and its bias is digital. With a
weight-to-conductance factor ``omega`` (aihwkit's ``weight_scaling_omega``) each output column's
initial weights are mapped to ``omega * w_max`` and a fixed digital output scale (the
``constants`` collection) restores the function. The per-sample update factors (x, d) come
from :func:`aimcjax.nn.grad_and_factors`; convolutions have one factor row per (sample, output
position), as aihwkit feeds its tile.

Models [RF §5]: ``fcn`` 784-256-128-10 sigmoid; ``cnn`` conv5x5(16)-pool2-conv5x5(32)-pool2-
512-128-10 tanh; ``mlp`` one hidden sigmoid layer of 32 for small inputs (8x8 digits).
Weights and biases start as torch's (and so aihwkit's) defaults, U(-1/sqrt(fan_in),
1/sqrt(fan_in)).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from aimcjax import nn as analog_nn
from aimcjax.periphery import PeripheryConfig

__all__ = ["MODELS", "Classifier", "analog_kernels", "cross_entropy", "get", "to_device_range"]

MODELS = ("fcn", "cnn", "mlp")


class Layer(NamedTuple):
    kind: str  # "dense" | "conv"
    features: int
    act: Callable | None
    pool: bool = False


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy with integer labels."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def _torch_uniform(fan_in: int):
    bound = 1.0 / math.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
        key, shape, dtype, -bound, bound
    )


class Classifier(nn.Module):
    """A stack of analog layers (``layers``) through one periphery.

    Attributes:
      layers: the layer specs, in order; layer ``i`` is named ``layer{i}``.
      forward: periphery of the forward reads.
      backward: periphery of the backward reads (aihwkit: the forward one without bound
        management).
      omega: weight-to-conductance factor (None = weights stored as they are). The mapping is
        to a device range of 1; :func:`to_device_range` rescales to the device's ``w_max``.
    """

    layers: tuple
    forward: PeripheryConfig
    backward: PeripheryConfig
    omega: float | None = None

    @nn.compact
    def __call__(self, x):
        h = x
        for i, layer in enumerate(self.layers):
            common = dict(
                forward=self.forward,
                backward=self.backward,
                weight_scaling_omega=self.omega,
                name=f"layer{i}",
            )
            if layer.kind == "conv":
                init = _torch_uniform(25 * h.shape[-1])
                h = analog_nn.AnalogConv(
                    layer.features,
                    (5, 5),
                    padding="VALID",
                    kernel_init=init,
                    bias_init=init,
                    **common,
                )(h)
            else:
                h = h.reshape(h.shape[0], -1)
                init = _torch_uniform(h.shape[-1])
                h = analog_nn.AnalogDense(
                    layer.features, kernel_init=init, bias_init=init, **common
                )(h)
            if layer.act is not None:
                h = layer.act(h)
            if layer.pool:
                h = nn.max_pool(h, (2, 2), strides=(2, 2))
        return h


def analog_kernels(params):
    """The analog mask of a classifier's params: kernels analog, biases digital."""
    return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key == "kernel", params)


def to_device_range(variables, w_max):
    """Conductance-mapped variables for a device range ``w_max`` (may be traced, e.g. vmapped).

    The layers map to a range of 1 (their ``device_w_max`` must be a Python float); stored
    kernels scale with the range and the digital output scales inversely, so the function of
    the network is unchanged.
    """
    if "constants" not in variables:
        return variables
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: p * w_max if path[-1].key == "kernel" else p, variables["params"]
    )
    constants = jax.tree.map(lambda s: s / w_max, variables["constants"])
    return {**variables, "params": params, "constants": constants}


def get(
    name: str,
    input_shape,
    num_classes: int,
    forward: PeripheryConfig | None = None,
    backward: PeripheryConfig | None = None,
    omega: float | None = None,
) -> Classifier:
    """Build a classifier for inputs of ``input_shape`` (H, W, C) and ``num_classes`` outputs.

    Args:
      name: ``"fcn"``, ``"cnn"`` or ``"mlp"``.
      input_shape: shape of one image.
      num_classes: number of outputs.
      forward: periphery of the forward reads (default: perfect, the exact product).
      backward: periphery of the backward reads (default: ``forward`` without bound
        management, as aihwkit).
      omega: weight-to-conductance factor in (0, 1], or None / 0 for no mapping.

    Returns:
      A :class:`Classifier` (a linen module).

    Example:
      >>> model = get("mlp", (8, 8, 1), 10)
      >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    """
    forward = PeripheryConfig.perfect() if forward is None else forward
    if backward is None:
        backward = (
            forward
            if forward.bound_management == "none"
            else dataclasses.replace(forward, bound_management="none")
        )
    sig = jax.nn.sigmoid
    if name == "fcn":
        layers = (
            Layer("dense", 256, sig),
            Layer("dense", 128, sig),
            Layer("dense", num_classes, None),
        )
    elif name == "mlp":
        layers = (Layer("dense", 32, sig), Layer("dense", num_classes, None))
    elif name == "cnn":
        if len(input_shape) != 3 or input_shape[0] < 12 or input_shape[1] < 12:
            raise ValueError(
                f"model 'cnn' needs images of at least 12x12 pixels (H, W, C), "
                f"got input shape {tuple(input_shape)}"
            )
        layers = (
            Layer("conv", 16, jnp.tanh, True),
            Layer("conv", 32, jnp.tanh, True),
            Layer("dense", 128, jnp.tanh),
            Layer("dense", num_classes, None),
        )
    else:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return Classifier(layers, forward, backward, omega or None)
