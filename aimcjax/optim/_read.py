"""Reading the residual array P line by line before a transfer (exact, noisy, or a periphery).

A read is ``read(w, x, key) -> y`` in the forward-MVM orientation: ``w`` of shape
(in, out), ``x`` of shape (k, in) holding one-hot input lines, ``y = x @ w`` of shape (k, out)
plus whatever the read path adds. aihwkit's transfer reads P exactly this way: one one-hot
input vector per line through the transfer periphery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from aimcjax import periphery
from aimcjax.optim import _common as common

Reader = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]

# aihwkit's TransferCompound reads with its default IOParameters (transfer_forward) and turns
# bound management off for transfers (TransferRPUDeviceMetaParameter::initializeWithSize).
AIHWKIT_TRANSFER_READ = periphery.PeripheryConfig(bound_management="none")


def make_reader(read: Any) -> Reader:
    """Turn the ``read`` argument of the residual optimizers into a read function.

    Args:
      read: None (exact read), a float >= 0 (std of additive Gaussian read noise per element
        and read), an ``aimcjax.periphery.PeripheryConfig`` (read through
        ``periphery.mvm``), "aihwkit" (aihwkit's default transfer read: its default
        ``IOParameters``, 7-bit DAC, 9-bit ADC, output noise 0.06, with bound management
        turned off as its TransferRPUDevice does), or a callable ``read(w, x, key) -> y``
        as described above.

    Returns:
      ``reader(w, x, key)``.
    """
    if read is None:
        return lambda w, x, key: x @ w
    if isinstance(read, str):
        if read != "aihwkit":
            raise ValueError(
                f'read must be None, a read-noise std, a PeripheryConfig, "aihwkit" or a callable, got {read!r}'
            )
        read = AIHWKIT_TRANSFER_READ
    if isinstance(read, periphery.PeripheryConfig):
        return lambda w, x, key: periphery.mvm(w, x, read, key)
    if callable(read):
        return read
    arr = common.concrete(read)
    if arr is not None:
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or arr.ndim != 0:
            raise TypeError(
                f"read must be None, a read-noise std, a PeripheryConfig or a callable, got {read!r}"
            )
        if not np.isfinite(arr) or arr < 0:
            raise ValueError(f"read (read-noise std) must be finite and >= 0, got {read!r}")

    def noisy_read(w: jax.Array, x: jax.Array, key: jax.Array) -> jax.Array:
        y = x @ w
        return y + jnp.asarray(read, y.dtype) * jax.random.normal(key, y.shape, y.dtype)

    return noisy_read
