"""Symmetric-point tracking: finding each element's symmetric point by pulsing it.

Zero shifting [RF Assumption 4] subtracts a reference equal to each element's symmetric point
w⋄ (where G(w⋄) = 0). ``tile.init(..., zero_shift=True)`` *assumes* that point (it bisects
the sampled element's response). Hardware cannot: it *measures* the point the way
calibration on chip does — by firing alternating up and down pulses on every element at once.
Each up/down pair moves an element by

    dw_min * (s+ q_plus(w) - s- q_minus(w)) = -2 dw_min G_s(w)

(G_s: the element's gain-weighted asymmetric component), a restoring drift towards w⋄, so after
enough pairs every element oscillates around its own symmetric point. Averaging the read
weights over the last pairs then estimates w⋄ element by element, including the
device-to-device spread of gains and bounds, and with cycle-to-cycle noise and read noise
averaged down. The estimate is what a reference array would be programmed to.

Convergence: near w⋄ the drift per pair is about ``-dw_min (s+|q_plus'| + s-|q_minus'|)
(w - w⋄)``; for soft bounds with range ±tau that is a contraction ``kappa ≈ 2 dw_min / tau``
per pair, so ``n_pairs ≳ ln(distance / dw_min) / kappa`` pairs reach the point
(≈ 2 000 pairs for dw_min = 1e-3, tau = 0.6 from one third of the range).

References:
  [RF] Wu et al., arXiv:2502.06309, Assumption 4 and §3 (symmetric point, zero shifting).
  Kim et al., "Zero-shifting technique for deep neural network training on resistive
  cross-point arrays", arXiv:1907.10228 (2019): the up/down pulse-pair calibration.
  [cTTv2/AGAD] Rasch et al., "Fast and robust analog in-memory deep neural network
  training", Nat. Commun. 15, 7133 (2024): reference errors and how choppers tolerate them.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from aimcjax import pulse
from aimcjax._typing import ArrayLike, KeyLike
from aimcjax.devices import Device
from aimcjax.tile import Tile, as_key

__all__ = ["SymmetricPointEstimate", "calibrate_reference", "track_symmetric_point"]


class SymmetricPointEstimate(NamedTuple):
    """Result of :func:`track_symmetric_point`.

    Attributes:
      point: estimated symmetric point of each element, in stored-weight units (shaped like
        the tile).
      tile: the tile after the pulsing (its elements now sit near their symmetric points).
    """

    point: jax.Array
    tile: Tile


def _check_count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a Python int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")


def _check_std(name: str, value: object) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    arr = np.asarray(value)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or arr.ndim != 0:
        raise TypeError(f"{name} must be a float, got {value!r}")
    if not np.isfinite(arr) or arr < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def track_symmetric_point(
    tile: Tile,
    device: Device,
    key: KeyLike,
    *,
    n_pairs: int = 3000,
    n_average: int = 1000,
    max_burst: int = 64,
    read_noise: ArrayLike = 0.0,
) -> SymmetricPointEstimate:
    """Estimate every element's symmetric point by alternating up and down pulses.

    All elements receive ``n_pairs`` pairs (a burst of k up pulses, then k down pulses),
    through the exact per-pulse kernel :func:`aimcjax.pulse.apply` (response, per-element
    gains and bounds, cycle-to-cycle noise). The first ``n_pairs - n_average`` pairs settle the
    elements with bursts shrinking geometrically from ``max_burst`` pulses to 1 (a k-pulse
    pair drifts k times faster towards the symmetric point, with a k times wider
    oscillation); the last ``n_average`` pairs are single pulses. After each burst the array is
    read (plus Gaussian read noise of std ``read_noise``); the estimate is the mean of the
    reads over the last ``n_average`` pairs, i.e. the centre of each element's final
    oscillation. Elements with a much smaller step gain than nominal converge more slowly
    (the drift is proportional to the gain).

    Args:
      tile: the array to calibrate (its sampled device-to-device variation is what is found).
      device: its device.
      key: PRNG key or int seed (cycle-to-cycle and read noise).
      n_pairs: up/down pulse pairs in total (>= 1).
      n_average: pairs at the end whose reads are averaged (1 <= n_average <= n_pairs).
      max_burst: pulses per direction in the first settling pair (>= 1; 1 = plain up/down
        alternation throughout).
      read_noise: std of additive read noise per element and read (>= 0).

    Returns:
      :class:`SymmetricPointEstimate` ``(point, tile)``; ``point`` is in stored-weight units,
      the same units as ``tile.ref``.

    Example:
      >>> from aimcjax import devices, tile
      >>> dev = devices.SoftBounds(tau=0.6, asymmetry=0.3, dw_min_dtod=0.1, up_down_dtod=0.05)
      >>> t = tile.init(0, dev, (8, 4))
      >>> est = track_symmetric_point(t, dev, 1, n_pairs=2500, n_average=500)
      >>> est.point.shape
      (8, 4)
      >>> # against each element's exact symmetric point (the same sampled variation)
      >>> exact = tile.init(0, dev, (8, 4), zero_shift=True).ref
      >>> bool(jnp.max(jnp.abs(est.point - exact)) < 5 * dev.dw_min)
      True

    References:
      Kim et al., arXiv:1907.10228 (zero-shifting by up/down pulse pairs); [RF] Assumption 4.
    """
    if not isinstance(tile, Tile):
        raise TypeError(f"tile must be an aimcjax.tile.Tile, got {type(tile).__name__}")
    if not isinstance(device, Device):
        raise TypeError(f"device must be an aimcjax device, got {type(device).__name__}")
    _check_count("n_pairs", n_pairs, 1)
    _check_count("n_average", n_average, 1)
    if n_average > n_pairs:
        raise ValueError(f"n_average ({n_average}) must not exceed n_pairs ({n_pairs})")
    _check_count("max_burst", max_burst, 1)
    _check_std("read_noise", read_noise)

    dtype = tile.w.dtype
    ones = jnp.ones(tile.w.shape, jnp.int32)
    first_averaged = n_pairs - n_average
    settle = np.arange(n_pairs) / max(first_averaged, 1)
    bursts = np.where(
        np.arange(n_pairs) < first_averaged, np.maximum(np.round(max_burst ** (1 - settle)), 1), 1
    )
    read_std = jnp.asarray(read_noise, dtype)

    def read(w: jax.Array, k: jax.Array) -> jax.Array:
        return w + read_std * jax.random.normal(k, w.shape, dtype)

    def one_pair(
        carry: tuple[Tile, jax.Array], inputs: tuple[jax.Array, jax.Array, jax.Array]
    ) -> tuple[tuple[Tile, jax.Array], None]:
        t, total = carry
        i, burst, k = inputs
        k_up, k_down, k_read_up, k_read_down = jax.random.split(k, 4)
        t = pulse.apply(t, device, burst * ones, k_up)
        after_up = read(t.w, k_read_up)
        t = pulse.apply(t, device, -burst * ones, k_down)
        after_down = read(t.w, k_read_down)
        # The centre of the oscillation is the mean of the two read states of a pair.
        total = total + jnp.where(i >= first_averaged, (after_up + after_down) / 2, 0.0)
        return (t, total), None

    keys = jax.random.split(as_key(key), n_pairs)
    (tile, total), _ = jax.lax.scan(
        one_pair,
        (tile, jnp.zeros_like(tile.w)),
        (jnp.arange(n_pairs), jnp.asarray(bursts, jnp.int32), keys),
    )
    return SymmetricPointEstimate(point=total / n_average, tile=tile)


def calibrate_reference(
    tile: Tile,
    device: Device,
    key: KeyLike,
    *,
    n_pairs: int = 3000,
    n_average: int = 1000,
    max_burst: int = 64,
    read_noise: ArrayLike = 0.0,
    programming_std: ArrayLike | None = None,
) -> Tile:
    """Zero-shift a tile with a *measured* reference: track the symmetric points, program the
    reference to them.

    The tile's elements are left where the pulsing left them (at their symmetric points), so
    its effective weights ``w - ref`` start near 0, as after ``tile.init(zero_shift=True)``.
    The reference is the estimate plus a programming error of std ``programming_std``
    (default: ``device.reference_std``, the error of writing the reference array).

    Args:
      tile: the array to calibrate.
      device: its device.
      key: PRNG key or int seed.
      n_pairs, n_average, max_burst, read_noise: as :func:`track_symmetric_point`.
      programming_std: std of the error of the programmed reference (None: the device's
        ``reference_std``; 0: an exact copy of the estimate).

    Returns:
      The tile with ``ref`` set to the measured symmetric points (plus programming error).

    Example:
      >>> from aimcjax import devices, tile
      >>> dev = devices.SoftBounds(tau=0.6, asymmetry=0.3, dw_min_dtod=0.1)
      >>> t = calibrate_reference(tile.init(0, dev, (8, 4)), dev, 1, n_pairs=2500, n_average=500)
      >>> bool(jnp.max(jnp.abs(tile.weights(t))) < 5 * dev.dw_min)  # effective weights near 0
      True

    References:
      Kim et al., arXiv:1907.10228; [RF] Assumption 4; [cTTv2/AGAD] Rasch et al. 2024.
    """
    programming_std = device.reference_std if programming_std is None else programming_std
    _check_std("programming_std", programming_std)
    k_track, k_program = jax.random.split(as_key(key))
    point, tile = track_symmetric_point(
        tile,
        device,
        k_track,
        n_pairs=n_pairs,
        n_average=n_average,
        max_burst=max_burst,
        read_noise=read_noise,
    )
    error = jnp.asarray(programming_std, tile.w.dtype) * jax.random.normal(
        k_program, tile.w.shape, tile.w.dtype
    )
    return tile._replace(ref=(point + error).astype(tile.w.dtype))
