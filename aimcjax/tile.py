"""A crossbar array's state: stored weights plus each element's sampled device parameters.

Device-to-device variation is sampled once, in :func:`init`, and then lives in the tile:
per-element step gains for up and down pulses and per-element bounds. With
``zero_shift=True`` each element also gets a reference equal to its own symmetric point
(plus a programming error of std ``device.reference_std``), so that the *effective* weight
``w - ref`` sees G(0) = 0 [RF Assumption 4: "zero-shifting by subtracting a reference array"].

Tiles keep the shape of the weights they stand for; kernels of rank > 2 are viewed as
``(prod(leading), out)`` by the outer-product update (see :func:`matrix_shape`).
"""

from __future__ import annotations

import math
from typing import NamedTuple, cast

import jax
import jax.numpy as jnp

from aimcjax._typing import ArrayLike, DTypeLike, KeyLike, Shape
from aimcjax.devices import Device, check_response_range, symmetric_point_bisect

__all__ = ["Tile", "as_key", "init", "matrix_shape", "program", "weights"]

# Bounds whose sampled spread would flip their sign are held at this fraction of the nominal
# bound instead: a device's range cannot close or invert.
_MIN_BOUND_FRACTION = 0.01


class Tile(NamedTuple):
    """State of one crossbar array (every field shaped like the weights).

    Attributes:
      w: stored (raw) weights, within ``[w_min, w_max]`` element by element.
      ref: zero-shift reference subtracted on read (zeros without zero shift).
      gain_up, gain_down: each element's step gain for up / down pulses (1 without variation).
      w_min, w_max: each element's bounds.
    """

    w: jax.Array
    ref: jax.Array
    gain_up: jax.Array
    gain_down: jax.Array
    w_min: jax.Array
    w_max: jax.Array


def as_key(key: KeyLike) -> jax.Array:
    """Accept an int seed or a PRNG key (typed or raw uint32)."""
    if isinstance(key, (int,)) and not isinstance(key, bool):
        return jax.random.PRNGKey(key)
    if isinstance(key, jax.Array) or hasattr(key, "dtype"):
        is_typed_key = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
        if not is_typed_key and jnp.ndim(key) == 0 and jnp.issubdtype(key.dtype, jnp.integer):
            return jax.random.PRNGKey(key)  # an int seed that went through jit
        return cast(jax.Array, key)
    raise TypeError(f"key must be an int seed or a jax PRNG key, got {type(key).__name__}")


def matrix_shape(shape: Shape) -> tuple[int, int]:
    """The 2-D ``(inputs, outputs)`` view of a kernel: leading dims are flattened into inputs."""
    shape = tuple(shape)
    if len(shape) == 0:
        raise ValueError("a tile needs at least one dimension, got shape ()")
    if len(shape) == 1:
        return 1, shape[0]
    return math.prod(shape[:-1]), shape[-1]


def init(
    key: KeyLike,
    device: Device,
    shape: Shape,
    w0: ArrayLike | None = None,
    zero_shift: bool = False,
    dtype: DTypeLike | None = None,
) -> Tile:
    """Sample a tile's device-to-device variation and program its initial weights.

    Args:
      key: PRNG key or int seed for the variation and the reference error.
      device: the device family and its parameters (:mod:`aimcjax.devices`).
      shape: weight shape.
      w0: initial *effective* weights (scalar or array broadcastable to ``shape``); default 0.
        Stored weights are ``clip(w0 + ref)`` to each element's bounds.
      zero_shift: subtract a per-element reference at the element's symmetric point.
      dtype: float dtype of the state (default: that of ``w0``, else float32).

    Returns:
      A :class:`Tile`.

    Example:
      >>> from aimcjax import devices, tile
      >>> t = tile.init(0, devices.SoftBounds(tau=0.6, asymmetry=0.2), (4, 3), zero_shift=True)
      >>> tile.weights(t).shape
      (4, 3)
    """
    if not isinstance(device, Device):
        raise TypeError(f"device must be an aimcjax device, got {type(device).__name__}")
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"shape must be a tuple of ints, got {shape!r}") from None
    if any(s <= 0 for s in shape):
        raise ValueError(f"shape must have positive dimensions, got {shape}")
    if dtype is None:
        dtype = (
            jnp.result_type(w0)
            if w0 is not None and jnp.issubdtype(jnp.result_type(w0), jnp.floating)
            else jnp.float32
        )
    _check_device_in_dtype(device, dtype)
    if w0 is not None:
        w0 = jnp.asarray(w0, dtype)
        try:
            w0 = jnp.broadcast_to(w0, shape)
        except ValueError:
            raise ValueError(
                f"w0 of shape {w0.shape} does not broadcast to the tile shape {shape}"
            ) from None
    k_gain, k_updown, k_max, k_min, k_ref = jax.random.split(as_key(key), 5)
    normal = lambda k: jax.random.normal(k, shape, dtype)

    gain = jnp.maximum(1 + device.dw_min_dtod * normal(k_gain), 0)
    imbalance = device.up_down_dtod * normal(k_updown)
    gain_up = jnp.maximum(gain * (1 + imbalance), 0)
    gain_down = jnp.maximum(gain * (1 - imbalance), 0)
    w_max = device.w_max * jnp.maximum(1 + device.w_max_dtod * normal(k_max), _MIN_BOUND_FRACTION)
    w_min = device.w_min * jnp.maximum(1 + device.w_min_dtod * normal(k_min), _MIN_BOUND_FRACTION)

    if zero_shift:
        ref = symmetric_point_bisect(device, gain_up, gain_down, w_min, w_max)
        ref = ref + device.reference_std * normal(k_ref)
    else:
        ref = jnp.zeros(shape, dtype)
    w = ref if w0 is None else w0 + ref
    w = jnp.clip(w, w_min, w_max)
    cast = lambda a: jnp.asarray(a, dtype)
    return Tile(cast(w), cast(ref), cast(gain_up), cast(gain_down), cast(w_min), cast(w_max))


def _check_device_in_dtype(device: Device, dtype: DTypeLike) -> None:
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype, got {jnp.dtype(dtype)}")
    check_response_range(device, dtype)


def weights(tile: Tile) -> jax.Array:
    """Effective weights ``w - ref`` (what a forward pass reads)."""
    return tile.w - tile.ref


def program(tile: Tile, w_eff: ArrayLike) -> Tile:
    """Program effective weights exactly (e.g. a checkpoint or a hardware re-programming step),
    clipped to each element's bounds."""
    w_eff = jnp.asarray(w_eff, tile.w.dtype)
    if w_eff.shape != tile.w.shape:
        raise ValueError(f"w_eff has shape {w_eff.shape}, the tile has {tile.w.shape}")
    return tile._replace(w=jnp.clip(w_eff + tile.ref, tile.w_min, tile.w_max))
