"""The per-pulse loop: pulses fired one at a time, the response and the cycle-to-cycle noise
re-evaluated after each, and the exact closed forms of noise-free constant-step and
soft-bounds devices.

:func:`_pulse_step` is the single definition of one pulse; the XLA loop here and the fused
Pallas kernel (:mod:`aimcjax.pulse.pallas`) both call it, so they do the same float operations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeGuard, cast

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from aimcjax.devices import ConstantStep, Device, Exponential, Power, SoftBounds
from aimcjax.pulse.rng import _noise_sampler
from aimcjax.pulse.xla import _static_value, _sweep_max
from aimcjax.tile import Tile


class _Elements(Protocol):
    """The per-element fields one pulse reads: a :class:`~aimcjax.tile.Tile`, or a block of
    one in the fused kernel."""

    @property
    def gain_up(self) -> jax.Array: ...

    @property
    def gain_down(self) -> jax.Array: ...

    @property
    def w_min(self) -> jax.Array: ...

    @property
    def w_max(self) -> jax.Array: ...


def _closed_form_apply(tile: Tile, device: ConstantStep | SoftBounds, n: jax.Array) -> jax.Array:
    """Exact n pulses on noise-free constant-step or soft-bounds elements."""
    w, lo, hi = tile.w, tile.w_min, tile.w_max
    c = device.asymmetry
    dw = device.dw_min
    up_step = tile.gain_up * dw * (1 + c)
    down_step = tile.gain_down * dw * (1 - c)
    n = n.astype(w.dtype)
    if isinstance(device, ConstantStep):
        n_up, n_down = jnp.maximum(n, 0), jnp.maximum(-n, 0)
        # Monotone constant steps: clipping after each pulse equals clipping once.
        return jnp.clip(w + n_up * up_step - n_down * down_step, lo, hi)
    # Soft bounds: the distance to the bound pulsed towards shrinks by a constant factor per
    # pulse; a step larger than the distance lands on the bound (factor clipped at 0).
    up = n > 0
    factor = jnp.where(up, jnp.maximum(1 - up_step / hi, 0), jnp.maximum(1 + down_step / lo, 0))
    target = jnp.where(up, hi, lo)
    count = jnp.abs(n)
    # factor**count via exp/log (XLA's pow is several times slower on CPU); 0**0 stays 1.
    shrink = jnp.where(count == 0, 1.0, jnp.exp(count * jnp.log(factor)))
    return jnp.clip(target - (target - w) * shrink, lo, hi)


def _directed_response(
    device: Device, up: jax.Array, w_min: jax.Array, w_max: jax.Array
) -> Callable[[jax.Array], jax.Array]:
    """A function w -> each element's response to a pulse in its direction ``up`` (q_plus
    where up, else q_minus), built so that the per-pulse loop evaluates one side only."""
    per_bound = getattr(device, "range_normalization", "per_bound") == "per_bound"
    if type(device) in (SoftBounds, Power, Exponential) and per_bound:
        # These families have q_plus = (1+c) f(1 - w/w_max) and q_minus = (1-c) f(1 - w/w_min)
        # with one f: q_plus taken against the bound pulsed towards gives either side, with one
        # f per element instead of two (for Power one pow instead of two). Power's "aihwkit"
        # form measures both sides against the whole range, so it takes the general path.
        family = cast("SoftBounds | Power | Exponential", device)
        c = family.asymmetry
        bound = jnp.where(up, w_max, w_min)
        down_ratio = (1 - c) / (1 + c)
        return lambda w: jnp.where(up, 1, down_ratio) * family.response(w, bound, bound)[0]

    def either_side(w: jax.Array) -> jax.Array:
        q_plus, q_minus = device.response(w, w_min, w_max)
        return jnp.where(up, q_plus, q_minus)

    return either_side


def _noise_term(device: Device, dtype: DTypeLike) -> Callable[[jax.Array], jax.Array]:
    """xi -> the cycle-to-cycle noise term of a pulse from standard normals xi: sigma*xi
    (added to the response) or 1 + sigma*xi (multiplying it), see :func:`_pulse_step`."""
    sigma = jnp.asarray(device.dw_min_std, dtype)
    return (lambda xi: sigma * xi) if device.noise == "additive" else (lambda xi: 1 + sigma * xi)


def _pulse_step(
    device: Device,
    w: jax.Array,
    n: jax.Array,
    t: ArrayLike,
    part: _Elements,
    noise: Callable[[ArrayLike], jax.Array] | None,
) -> jax.Array:
    """Pulse number ``t`` (0-based) on the elements with |n| > t, the others unchanged.

    ``part`` holds the elements' gains and bounds (a :class:`Tile` or any object with those
    fields), ``noise(t)`` their noise terms (:func:`_noise_term`; None: noise-free). Shared by
    the per-pulse loop and the fused Pallas kernel, so that both do the same float
    operations. The noise term is drawn whole into a buffer (see :func:`_noise_sampler`):
    then XLA rounds ``sigma * xi`` alike wherever it fuses the step (an FMA contraction of it
    with its consumer would round differently)."""
    up = n > 0
    amp = jnp.where(up, part.gain_up, -part.gain_down) * device.dw_min
    q = _directed_response(device, up, part.w_min, part.w_max)(w)
    if noise is not None:
        q = q + noise(t) if device.noise == "additive" else q * noise(t)
    stepped = jnp.clip(w + amp * q, part.w_min, part.w_max)
    return jnp.where(jnp.abs(n) > t, stepped, w)


def _pulse_loop_apply(
    tile: Tile,
    device: Device,
    n: jax.Array,
    key: jax.Array,
    rng: str = "counter",
    ids: jax.Array | None = None,
) -> jax.Array:
    """n pulses one at a time, response and noise re-drawn per pulse; loops max|n| times.
    ``ids``: the elements' ids in the whole tile (see :func:`_noise_sampler`)."""
    w0 = tile.w
    dtype = w0.dtype
    noisy = _static_value(device.dw_min_std) != 0.0  # unknown (traced) counts as noisy
    noise = _noise_sampler(key, w0.shape, dtype, rng, ids, _noise_term(device, dtype))

    def pulse_number(t: jax.Array, w: jax.Array, part: Tile = tile, n: jax.Array = n) -> jax.Array:
        # The per-element factors are recomputed in every pass rather than hoisted: as loop
        # invariants they would be materialized tile-sized arrays (memory and an extra pass
        # each), which under vmap (a sweep) cost more than the arithmetic.
        return _pulse_step(device, w, n, t, part, noise if noisy else None)

    def later_pulse(carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        t, w = carry
        # Tying the tile and the counts to the loop-carried w keeps XLA from hoisting the
        # factors above (and |n|, n > 0) out of the loop.
        part, counts, w = jax.lax.optimization_barrier((tile, n, w))
        return t + 1, pulse_number(t, w, part, counts)

    # The first pulse is peeled out of the loop: its noise depends on the key alone, so under
    # vmap over devices or states with a shared key (a sweep) it is drawn once for all members
    # (inside the loop the counter becomes batched with the loop's predicate). Same stream.
    w = pulse_number(jnp.zeros((), n.dtype), w0)
    max_count = _sweep_max(jnp.max(jnp.abs(n)))
    _, w = jax.lax.while_loop(lambda c: c[0] < max_count, later_pulse, (jnp.ones((), n.dtype), w))
    return w


def _has_closed_form(device: Device) -> TypeGuard[ConstantStep | SoftBounds]:
    """Noise-free constant-step and soft-bounds devices: n pulses in closed form."""
    return (
        isinstance(device, (ConstantStep, SoftBounds)) and _static_value(device.dw_min_std) == 0.0
    )
