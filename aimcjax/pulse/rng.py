"""The counter-based generator of the per-element random numbers (``rng="counter"``).

A draw for element ``i`` under key ``k`` is ``mix(mix(i ^ k0) ^ k1)`` with the two key words
``(k0, k1)`` drawn from ``k`` by threefry and ``mix`` the lowbias32 integer mixer: a few integer
operations per element instead of threefry's 20 rounds, i.i.d. uniforms with 23-bit resolution
and normals by the inverse error function. Indexed by the element's id in the whole tile, so
any blocking of a tile (and the fused Pallas kernel) draws the numbers the whole tile would.
``rng="threefry"`` keeps ``jax.random`` (the reference).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from aimcjax.pulse.xla import _materialized

# lowbias32 (C. Wellons, "hash-prospector"): a bijective 32-bit integer mixer.
_MIX_SHIFTS = (16, 15, 15)
_MIX_MULTS = (0x21F0AAAD, 0x735A2D97)


def _mix32(x: jax.Array) -> jax.Array:
    s0, s1, s2 = _MIX_SHIFTS
    x = x ^ (x >> s0)
    x = x * jnp.uint32(_MIX_MULTS[0])
    x = x ^ (x >> s1)
    x = x * jnp.uint32(_MIX_MULTS[1])
    return x ^ (x >> s2)


def _counter_bits(key: jax.Array, counter: jax.Array) -> jax.Array:
    """32 random bits per entry of ``counter`` (distinct uint32 element ids) from a keyed
    counter-based generator: mix(mix(id ^ k0) ^ k1) with (k0, k1) drawn from ``key`` by
    threefry. Both mixing rounds are bijections, so the ids of one draw give distinct bit
    patterns; a fresh key gives an independent stream. It costs a few integer operations per
    element, ~15x less than threefry's 20 rounds on CPU."""
    k0, k1 = _counter_words(key)
    return _keyed_bits(k0, k1, counter)


def _counter_words(key: jax.Array) -> jax.Array:
    """The two uint32 words (k0, k1) that key the counter generator (see :func:`_counter_bits`)."""
    return jax.random.bits(key, (2,), jnp.uint32)


def _keyed_bits(k0: jax.Array, k1: jax.Array, counter: jax.Array) -> jax.Array:
    """:func:`_counter_bits` from its key words: elementwise integer arithmetic only (so a
    Pallas kernel, given the words, draws the same bits)."""
    return _mix32(_mix32(counter ^ k0) ^ k1)


def _unit_uniform(bits: jax.Array) -> jax.Array:
    """The top 23 bits as a float32 in [0, 1) (the resolution of jax.random.uniform's)."""
    return jax.lax.bitcast_convert_type((bits >> 9) | jnp.uint32(0x3F800000), jnp.float32) - 1.0


def _counter_normal(key: jax.Array, counter: jax.Array, dtype: DTypeLike) -> jax.Array:
    """Standard normals, one per entry of ``counter``: sqrt(2) erfinv(u) of the symmetric
    uniform u = 2 u0 - 1 + 2^-23 in (-1, 1) (odd multiples of 2^-23), u0 from
    :func:`_counter_bits`."""
    return _normal_from_bits(_counter_bits(key, counter), dtype)


def _normal_from_bits(bits: jax.Array, dtype: DTypeLike) -> jax.Array:
    """:func:`_counter_normal` of given random bits (elementwise; shared with the Pallas kernel)."""
    u = 2.0 * _unit_uniform(bits) - 1.0 + 2.0**-23
    return (np.sqrt(2.0) * jax.lax.erf_inv(u)).astype(dtype)


def _counter_ok(rng: str, dtype: DTypeLike) -> bool:
    # 23 random bits serve float32 and narrower; float64 keeps the reference generator.
    return rng == "counter" and jnp.finfo(dtype).bits <= 32


def _element_ids(shape: tuple[int, ...]) -> jax.Array:
    return jax.lax.iota(jnp.uint32, int(np.prod(shape))).reshape(shape)


def _uniform(key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike, rng: str) -> jax.Array:
    """U[0, 1) of ``shape``: the counter generator or jax.random.uniform (the reference)."""
    if _counter_ok(rng, dtype):
        return _materialized(
            _unit_uniform(_counter_bits(key, _element_ids(shape))).astype(dtype), key
        )
    return jax.random.uniform(key, shape, dtype)


def _noise_sampler(
    key: jax.Array,
    shape: tuple[int, ...],
    dtype: DTypeLike,
    rng: str,
    ids: jax.Array | None = None,
    term: Callable[[jax.Array], jax.Array] = lambda xi: xi,
) -> Callable[[ArrayLike], jax.Array]:
    """A function t -> ``term`` of the standard normals of ``shape`` for loop iteration t.

    With the counter generator the normal of pulse t on an element depends only on (key, t,
    the element's id): ``ids`` (uint32, ``shape``) are the elements' flat indices in the whole
    tile (default: a tile of ``shape``), so a part of a tile pulsed on its own draws exactly
    the numbers the whole tile would (the block-wise "outer" path and a fused kernel agree
    with :func:`~aimcjax.pulse.apply` on the full tile bit for bit)."""
    if _counter_ok(rng, dtype):
        ids = _element_ids(shape) if ids is None else ids
        return lambda t: _materialized(
            term(_counter_normal(jax.random.fold_in(key, t), ids, dtype)), key
        )
    return lambda t: term(jax.random.normal(jax.random.fold_in(key, t), shape, dtype))
