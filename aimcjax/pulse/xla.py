"""XLA workarounds of the pulse kernels: trace-time constants, forced materialization, and a
loop bound that stays shared under ``vmap``.

These keep the compiled per-pulse loop fast and its random draws shared across a vmapped sweep
without changing any number: each function returns its input's value.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _static_value(x: object) -> float | None:
    """x as a Python float if it is known at trace time, else None."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        arr = np.asarray(x)
    except Exception:
        return None
    return float(arr) if arr.size == 1 else None


def _materialized(x: jax.Array, key: jax.Array) -> jax.Array:
    """``x``, computed once into memory.

    XLA fuses a cheap-looking producer into every consumer and recomputes it per output
    element: a draw keyed by a sweep-shared key would be re-hashed for each member of a
    vmapped sweep, counts read by several passes re-derived in each. XLA CPU drops
    optimization barriers before fusion, but a conditional's results are buffers, so ``x``
    goes through a two-way conditional whose branches both return it (correct whichever runs;
    the predicate comes from ``key`` so that it stays unbatched under a vmap with a shared key).
    """
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    pick = data.reshape(-1)[0] % 2 == 0
    return jax.lax.cond(pick, lambda v: v, lambda v: v * 1, x)  # distinct, or JAX inlines


@jax.custom_batching.custom_vmap
def _sweep_max(count: jax.Array) -> jax.Array:
    """``count`` (an integer loop bound); under vmap, its maximum over the batch, unbatched.

    Used only as the trip count of a loop whose surplus iterations leave a member unchanged
    (each pass masks elements by their own count). A batched trip count would make the loop
    counter batched too, and with it every draw keyed by the counter: one per member instead
    of one shared by a sweep that passes all members the same key.
    """
    return count


@_sweep_max.def_vmap
def _sweep_max_rule(
    axis_size: int, in_batched: list[bool], count: jax.Array
) -> tuple[jax.Array, bool]:
    del axis_size
    return (jnp.max(count, axis=0) if in_batched[0] else count), False
