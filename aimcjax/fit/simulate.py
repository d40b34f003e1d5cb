"""Synthetic traces from the library's own pulse physics (:func:`aimcjax.pulse.apply`).

Simulated data go through exactly the code that training uses: device-to-device variation
from :func:`aimcjax.tile.init`, one pulse at a time from :func:`aimcjax.pulse.apply` (response
re-evaluated, cycle-to-cycle noise, clipping to each element's bounds), plus Gaussian read
noise on every read.
"""

from __future__ import annotations

from typing import Literal, overload

import jax
import jax.numpy as jnp
import numpy as np

from aimcjax import pulse, tile
from aimcjax._typing import ArrayLike, KeyLike
from aimcjax.devices import Device
from aimcjax.fit.traces import Traces, make_traces

__all__ = ["ramp_directions", "simulate_directions", "simulate_traces"]


def ramp_directions(n_cycles: int, pulses_per_ramp: int) -> np.ndarray:
    """Alternating ramps: ``pulses_per_ramp`` up pulses, then as many down, ``n_cycles`` times."""
    one = np.concatenate([np.ones(pulses_per_ramp, np.int8), -np.ones(pulses_per_ramp, np.int8)])
    return np.tile(one, n_cycles)


@overload
def simulate_directions(
    device: Device,
    directions: ArrayLike,
    key: KeyLike,
    *,
    n_devices: int | None = None,
    read_noise: float = 0.0,
    w0: ArrayLike = 0.0,
    return_tile: Literal[False] = False,
) -> np.ndarray: ...
@overload
def simulate_directions(
    device: Device,
    directions: ArrayLike,
    key: KeyLike,
    *,
    n_devices: int | None = None,
    read_noise: float = 0.0,
    w0: ArrayLike = 0.0,
    return_tile: Literal[True],
) -> tuple[np.ndarray, tile.Tile]: ...
def simulate_directions(
    device: Device,
    directions: ArrayLike,
    key: KeyLike,
    *,
    n_devices: int | None = None,
    read_noise: float = 0.0,
    w0: ArrayLike = 0.0,
    return_tile: bool = False,
) -> np.ndarray | tuple[np.ndarray, tile.Tile]:
    """Reads of pulse trains with given directions on ``n_devices`` sampled devices.

    Args:
      device: the device (its variation parameters give the devices' spread).
      directions: (n_pulses,) shared by all devices, or (n_devices, n_pulses); +1 up, -1 down
        (0: no pulse, e.g. padding).
      key: PRNG key or int seed.
      n_devices: number of devices (default: from a 2-D ``directions``).
      read_noise: std of the Gaussian noise of each read (weight units).
      w0: starting weight (scalar or per device), clipped to each device's bounds.
      return_tile: also return the sampled :class:`aimcjax.tile.Tile` (the devices' truth).

    Returns:
      ``reads`` (n_devices, n_pulses + 1) as a numpy array (and the tile).
    """
    directions = jnp.asarray(directions, jnp.int32)
    if directions.ndim == 1:
        if n_devices is None:
            raise ValueError("n_devices is needed with 1-D directions")
        directions = jnp.broadcast_to(directions, (n_devices, directions.shape[0]))
    n_devices = directions.shape[0]
    if not np.isfinite(read_noise) or read_noise < 0:
        raise ValueError(f"read_noise must be a finite number >= 0, got {read_noise}")
    k_tile, k_pulse, k_read = jax.random.split(tile.as_key(key), 3)
    t = tile.init(
        k_tile,
        device,
        (n_devices,),
        w0=jnp.broadcast_to(jnp.asarray(w0, jnp.float32), (n_devices,)),
    )
    reads = _run(t, device, directions.T, k_pulse)
    reads = reads + read_noise * jax.random.normal(k_read, reads.shape, reads.dtype)
    out = np.asarray(reads, np.float64)
    return (out, t) if return_tile else out


@jax.jit
def _run(t: tile.Tile, device: Device, directions_t: jax.Array, key: jax.Array) -> jax.Array:
    def one_pulse(
        w_tile: tile.Tile, inputs: tuple[jax.Array, jax.Array]
    ) -> tuple[tile.Tile, jax.Array]:
        n, k = inputs
        w_tile = pulse.apply(w_tile, device, n, k)
        return w_tile, w_tile.w

    keys = jax.random.split(key, directions_t.shape[0])
    _, ws = jax.lax.scan(one_pulse, t, (directions_t, keys))
    return jnp.concatenate([t.w[:, None], ws.T], axis=1)


def simulate_traces(
    device: Device,
    n_devices: int,
    n_cycles: int,
    pulses_per_ramp: int,
    read_noise: float,
    key: KeyLike,
    *,
    w0: ArrayLike = 0.0,
) -> Traces:
    """Traces of alternating up/down ramps on ``n_devices`` devices sampled from ``device``.

    Args:
      device: any :mod:`aimcjax.devices` device; its ``*_dtod`` parameters give the spread
        over devices, ``dw_min_std``/``noise`` the cycle-to-cycle noise.
      n_devices: devices in the array.
      n_cycles: up-ramp + down-ramp cycles per device.
      pulses_per_ramp: pulses per ramp.
      read_noise: std of each read's Gaussian noise (weight units; recorded in the traces as
        known).
      key: PRNG key or int seed.
      w0: starting weight of every device (default 0).

    Returns:
      :class:`~aimcjax.fit.traces.Traces` with ``n_cycles * 2 * pulses_per_ramp`` pulses.

    Example:
      >>> from aimcjax.devices import presets
      >>> tr = simulate_traces(presets.reram_sb(), 4, 2, 50, 1e-3, 0)
      >>> tr.reads.shape
      (4, 201)
    """
    for name, value in (
        ("n_devices", n_devices),
        ("n_cycles", n_cycles),
        ("pulses_per_ramp", pulses_per_ramp),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    directions = ramp_directions(n_cycles, pulses_per_ramp)
    reads = simulate_directions(
        device, directions, key, n_devices=n_devices, read_noise=read_noise, w0=w0
    )
    return make_traces(
        reads,
        np.broadcast_to(directions, (n_devices, directions.size)),
        read_noise=read_noise,
        where="simulate_traces",
    )
