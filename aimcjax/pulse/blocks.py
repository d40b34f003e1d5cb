"""Block scheduling of "outer" mode: the per-pulse loop over the live rows and columns only.

One sample's coincidences can be non-zero only where both of its pulse trains fired, so the
loop runs over those lines, a block at a time. Noise is indexed by the element's id in the
whole tile (:mod:`aimcjax.pulse.rng`), so the result is that of the loop over the whole tile.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from aimcjax.devices import Device
from aimcjax.pulse.loop import _pulse_loop_apply
from aimcjax.pulse.rng import _counter_ok
from aimcjax.pulse.xla import _sweep_max
from aimcjax.tile import Tile

_BLOCK = (128, 64)  # (rows, columns) per pass of the per-pulse loop of "outer" mode


def _live_first(live: jax.Array) -> jax.Array:
    """The indices of a boolean vector with the True ones first, each group in order (a
    stable partition; XLA CPU's sort takes ~10-20x longer)."""
    size = live.shape[0]
    before = jnp.cumsum(live.astype(jnp.int32))  # live entries up to and including each
    position = jnp.where(live, before - 1, before[-1] + jnp.arange(size, dtype=jnp.int32) - before)
    return (
        jnp.zeros(size, jnp.int32)
        .at[position]
        .set(jnp.arange(size, dtype=jnp.int32), unique_indices=True)
    )


def _apply_blocks(
    tile: Tile,
    device: Device,
    live_rows: jax.Array,
    live_cols: jax.Array,
    counts_at: Callable[[jax.Array, jax.Array], jax.Array],
    key: jax.Array,
    rng: str,
) -> Tile:
    """:func:`~aimcjax.pulse.apply` on the live rows x live columns of the tile, a block at a time.

    ``counts_at(rows, cols)`` gives the pulse counts of one block (a (rows, cols) grid of
    indices); elements outside the live lines must have none. Elements without pulses are
    unchanged by :func:`~aimcjax.pulse.apply` anyway, and every pulsed element still gets fresh noise per
    pulse (streams keyed per block), so the law is that of :func:`~aimcjax.pulse.apply` on the whole tile.
    """
    n_rows, n_cols = tile.w.shape
    rb, cb = min(_BLOCK[0], n_rows), min(_BLOCK[1], n_cols)
    row_order = _live_first(live_rows)
    col_order = _live_first(live_cols)
    row_blocks = (jnp.sum(live_rows) + rb - 1) // rb
    col_blocks = (jnp.sum(live_cols) + cb - 1) // cb

    def take(
        order: jax.Array, index: jax.Array, size: int, total: int
    ) -> tuple[jax.Array, jax.Array]:
        # The last block is shifted back to fit; lines it shares with the previous block
        # were pulsed there and get no pulses here.
        start = jnp.minimum(index * size, total - size)
        fresh = start + jnp.arange(size) >= index * size
        return jax.lax.dynamic_slice_in_dim(order, start, size), fresh

    def one_block(carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        k, w = carry
        rows, fresh_r = take(row_order, k // col_blocks, rb, n_rows)
        cols, fresh_c = take(col_order, k % col_blocks, cb, n_cols)
        at = (rows[:, None], cols[None, :])
        part = tile._replace(
            w=w[at], **{f: getattr(tile, f)[at] for f in ("gain_up", "gain_down", "w_min", "w_max")}
        )
        n_part = jnp.where(fresh_r[:, None] & fresh_c[None, :], counts_at(rows, cols), 0)
        if _counter_ok(rng, w.dtype):
            # Noise indexed by the element's id in the whole tile: the same numbers as
            # apply() on the full tile with this key (each element is fresh in one block).
            ids = (rows[:, None] * n_cols + cols[None, :]).astype(jnp.uint32)
            w_part = _pulse_loop_apply(part, device, n_part, key, rng, ids)
        else:
            w_part = _pulse_loop_apply(part, device, n_part, jax.random.fold_in(key, k), rng)
        return k + 1, w.at[at].set(w_part, unique_indices=True)

    # Surplus blocks of a member (under vmap the loop runs to the batch's largest count) hold
    # dead lines only, whose counts are zero: they leave w as it is.
    n_blocks = _sweep_max(row_blocks * col_blocks)
    _, w = jax.lax.while_loop(
        lambda c: c[0] < n_blocks, one_block, (jnp.zeros((), n_blocks.dtype), tile.w)
    )
    return tile._replace(w=w)


def _apply_active_block(tile: Tile, device: Device, n: jax.Array, key: jax.Array, rng: str) -> Tile:
    """:func:`~aimcjax.pulse.apply` of counts ``n`` on the rows and columns that carry pulses only.

    One sample's coincidences n_ij can be non-zero only where row j's x-train and column i's
    d-train both fired (typically a third of the rows and a fifth of the columns; for a
    one-hot x, as in a transfer, one row), so the per-pulse loop, whose cost is one noise
    draw per element and pulse, runs over those only (see :func:`_apply_blocks`).
    """
    pulsed = n != 0
    return _apply_blocks(
        tile,
        device,
        jnp.any(pulsed, axis=1),
        jnp.any(pulsed, axis=0),
        lambda rows, cols: n[rows[:, None], cols[None, :]],
        key,
        rng,
    )


def _apply_trains(
    tile: Tile, device: Device, trains_x: jax.Array, trains_d: jax.Array, key: jax.Array, rng: str
) -> Tile:
    """:func:`_apply_active_block` of the coincidences n = trains_x @ trains_d without forming
    n: the live lines follow from the trains (row j is live when its train fires in a slot in
    which some column's fires) and each block's counts are a small matmul of its lines."""
    fired_x, fired_d = jnp.abs(trains_x), jnp.abs(trains_d)  # entries are -1, 0, +1
    live_rows = fired_x @ jnp.max(fired_d, axis=1) > 0
    live_cols = jnp.max(fired_x, axis=0) @ fired_d > 0

    def counts_at(rows: jax.Array, cols: jax.Array) -> jax.Array:
        # Sums of at most a few dozen +-1 terms: exact in float32.
        return (trains_x[rows] @ trains_d[:, cols]).astype(jnp.int32)

    return _apply_blocks(tile, device, live_rows, live_cols, counts_at, key, rng)
