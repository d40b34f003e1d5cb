"""Pieces shared by the linen and nnx layers: im2col, conductance mapping, the analog product."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

# analog_matmul is re-exported: the layers call it as _core.analog_matmul (an explicit
# re-export, so that linters do not drop it as unused).
from aimcjax.periphery import PeripheryConfig
from aimcjax.periphery import analog_matmul as analog_matmul

# Names under which the layers record what the "outer" update needs (see aimcjax.nn.factors).
FACTOR_X = "analog_x"  # sown: the layer's MVM inputs, (samples, in)
FACTOR_D = "analog_d"  # perturbed: gradient of the loss at the MVM outputs, (samples, out)

PERIPHERY_STREAM = "periphery"


def check_layer_config(
    forward: object,
    backward: object,
    max_tile: object,
    weight_scaling_omega: object,
    device_w_max: object,
) -> None:
    """Fails early, naming the argument, on a bad layer configuration."""
    for name, cfg in (("forward", forward), ("backward", backward)):
        if not isinstance(cfg, PeripheryConfig):
            raise TypeError(f"{name} must be a PeripheryConfig, got {type(cfg).__name__}")
    if max_tile is not None and not (isinstance(max_tile, int) and max_tile >= 1):
        raise ValueError(f"max_tile must be a positive integer or None, got {max_tile!r}")
    if weight_scaling_omega is not None and not (
        isinstance(weight_scaling_omega, (int, float)) and 0 < weight_scaling_omega <= 1
    ):
        raise ValueError(
            f"weight_scaling_omega must be in (0, 1] or None, got {weight_scaling_omega!r}"
        )
    if not (isinstance(device_w_max, (int, float)) and device_w_max > 0):
        raise ValueError(f"device_w_max must be > 0, got {device_w_max!r}")


def needs_key(forward: PeripheryConfig, backward: PeripheryConfig) -> bool:
    return not (forward.is_perfect and backward.is_perfect)


def check_input_width(x: jax.Array, expected: int, what: str = "inputs") -> None:
    if x.ndim < 1 or x.shape[-1] != expected:
        raise ValueError(
            f"x has last dimension {x.shape[-1:] or '()'} but the layer's kernel "
            f"takes {expected} {what}"
        )


def map_to_conductances(
    w0: jax.Array, omega: float, device_w_max: float
) -> tuple[jax.Array, jax.Array]:
    """aihwkit's ``weight_scaling_omega``: per output column, scale so max |w| = omega * w_max.

    Returns ``(stored, scale)`` with ``w0 == stored * scale`` (scale per output, shape (out,)).
    An all-zero column keeps scale 1.
    """
    flat = w0.reshape(-1, w0.shape[-1])
    col_max = jnp.max(jnp.abs(flat), axis=0)
    scale = jnp.where(col_max > 0, col_max / (omega * device_w_max), 1.0).astype(w0.dtype)
    return w0 / scale, scale


def conv_dimension_numbers(n_spatial: int) -> tuple[str, str, str]:
    spatial = "DHW"[-n_spatial:] if n_spatial <= 3 else None
    if spatial is None:
        raise ValueError(f"kernel_size must have 1 to 3 spatial dimensions, got {n_spatial}")
    return ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")


def normalize_tuple(value: int | Sequence[int], n: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        value = (value,) * n
    value = tuple(value)
    if len(value) != n or not all(isinstance(v, int) and v >= 1 for v in value):
        raise ValueError(f"{name} must be a positive int or {n} positive ints, got {value!r}")
    return value


def conv_kernel_size(kernel_size: object) -> tuple[int, ...]:
    """flax's rule for ``kernel_size``: an int ``k`` is the 1-D window ``(k,)``, a sequence one
    entry per spatial dimension (``(3, 3)`` for images)."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, tuple, list)):
        raise TypeError(
            "kernel_size must be an int (1-D, as flax's Conv) or a tuple of ints, "
            f"got {kernel_size!r}"
        )
    n = 1 if isinstance(kernel_size, int) else len(kernel_size)
    return normalize_tuple(kernel_size, n, "kernel_size")


def check_conv_input(
    x: jax.Array, kernel_size: tuple[int, ...], given: object, channels: int | None = None
) -> None:
    """A clear error when ``x`` does not have ``len(kernel_size)`` spatial dimensions."""
    n = len(kernel_size)
    if x.ndim != n + 2:
        hint = ""
        if isinstance(given, int) and x.ndim > 3:
            hint = (
                f"; kernel_size={given} (an int) is a 1-D window, as in flax's Conv: for "
                f"{x.ndim - 2}-D inputs pass kernel_size={(given,) * (x.ndim - 2)}"
            )
        raise ValueError(
            f"x must have shape (batch, {n} spatial dim{'s' if n > 1 else ''}, "
            f"channels) for kernel_size {kernel_size}, got shape {x.shape}{hint}"
        )
    if channels is not None and x.shape[-1] != channels:
        raise ValueError(f"x has {x.shape[-1]} channels but the kernel takes {channels}")


def extract_patches(
    x: jax.Array, kernel_size: Sequence[int], strides: Sequence[int], padding: Any
) -> jax.Array:
    """im2col: ``(N, *spatial, C)`` -> ``(N, *out_spatial, prod(kernel_size) * C)``.

    The patch features are ordered ``(*kernel_size, C)``, i.e. a flax conv kernel of shape
    ``(*kernel_size, C, out)`` reshaped to ``(prod(kernel_size) * C, out)`` maps a patch to the
    conv output (the 2-D view of a kernel used throughout aimcjax). aihwkit maps convolutions to
    crossbars the same way (one MVM per output position).
    """
    n = len(kernel_size)
    if x.ndim != n + 2:
        raise ValueError(
            f"x must have shape (batch, {n} spatial dims, channels), got shape {x.shape}"
        )
    dims = conv_dimension_numbers(n)
    patches = lax.conv_general_dilated_patches(
        x,
        filter_shape=tuple(kernel_size),
        window_strides=tuple(strides),
        padding=padding,
        dimension_numbers=dims,
        precision=lax.Precision.HIGHEST,
    )
    channels = x.shape[-1]
    lead = patches.shape[:-1]
    patches = patches.reshape(lead + (channels, math.prod(kernel_size)))
    patches = jnp.swapaxes(patches, -1, -2)
    return patches.reshape(lead + (math.prod(kernel_size) * channels,))
