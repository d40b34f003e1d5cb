"""Pulse trains of "outer" mode: aihwkit's stochastic-compressed rank-1 trains per sample.

Bit probabilities with update management and update-BL management (saturation above ``bl``,
balanced with the device's update granularity), the trains themselves drawn a chunk of slots
at a time, and their coincidences ``n = trains_x @ trains_d`` [AIHWKIT StochasticCompressed;
Gokmen & Vlasov 2016, arXiv:1603.07341].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from aimcjax.pulse.rng import _uniform
from aimcjax.pulse.xla import _sweep_max

if TYPE_CHECKING:
    from aimcjax.pulse.modes import UpdateConfig


_SLOT_CHUNK = 4  # pulse-train slots drawn per coincidence matmul


def _pulse_probabilities(
    x: jax.Array, d: jax.Array, lr: ArrayLike, granularity: ArrayLike, cfg: UpdateConfig
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One sample's bit probabilities and train length, as aihwkit 1.2.0 computes them
    (``PulsedUpdateMetaParameter::calculateBlAB`` and ``performUpdateManagement``):

        k = |lr| x* d* / g   (x* = max|x|, d* = max|d|, g = the device's update granularity)
        BL = min(ceil(k), bl) with update-BL management, else bl
        A = B = sqrt(|lr| / (g BL))
        update management: d' = d* (bl/k if k > bl, else 1);  B *= sqrt(d'/x*),  A *= sqrt(x*/d')
        p_x = min(|x| B, 1),  p_d = min(|d| A, 1)

    Above saturation (k > bl) the largest x fires in every slot and only the d entries with
    |d| > d* bl/k are clipped at probability 1 (aihwkit fires a bit when p > u with u in
    [0, 1)): the smaller entries keep E[n_ij] = |lr x_j d_i| / g. aihwkit turns update
    management on whenever update-BL management is on; here the two flags act separately.

    Returns:
      (p_x, p_d, BL): probabilities shaped like x and d, and the train length (a scalar).
    """
    x_abs, d_abs = jnp.abs(x), jnp.abs(d)
    x_max, d_max = jnp.max(x_abs), jnp.max(d_abs)
    lr_abs = jnp.abs(lr)
    k = lr_abs * x_max * d_max / granularity  # expected pulses of the largest element
    if cfg.update_bl_management:
        sample_bl = jnp.clip(jnp.ceil(k), 1, cfg.bl)
    else:
        sample_bl = jnp.asarray(cfg.bl, x.dtype)
    base = jnp.sqrt(lr_abs / (granularity * sample_bl))
    p_x, p_d = x_abs * base, d_abs * base
    if cfg.update_management:
        safe = lambda v: jnp.where(v > 0, v, 1)
        d_val = d_max * jnp.where(k > cfg.bl, cfg.bl / safe(k), 1.0)  # "avoid clipping of x"
        p_x = p_x * jnp.sqrt(safe(d_val) / safe(x_max))
        p_d = p_d * jnp.sqrt(safe(x_max) / safe(d_val))
    return jnp.minimum(p_x, 1), jnp.minimum(p_d, 1), sample_bl


def _sample_pulse_trains(
    x: jax.Array, d: jax.Array, lr: ArrayLike, dw_min: ArrayLike, key: jax.Array, cfg: UpdateConfig
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One sample's signed pulse trains as aihwkit's stochastic-compressed ones with update
    (BL) management: (trains_x (in, S), trains_d (S, out), n_chunks), S = cfg.bl rounded up
    to whole chunks of slots; entries are -1, 0, +1 and zero beyond the sample's BL (only
    the first n_chunks chunks are drawn). The coincidences are n = trains_x @ trains_d.
    ``dw_min``: the granularity the probabilities are balanced with (see
    :func:`_pulse_probabilities`)."""
    dtype = x.dtype
    bl = cfg.bl
    p_x, p_d, sample_bl = _pulse_probabilities(x, d, lr, dw_min, cfg)
    # Slots are drawn in chunks, and only as many chunks as this sample's BL needs: the cost
    # follows the actual train length rather than cfg.bl (and, unlike a switch over sizes,
    # stays one loop under vmap).
    chunk = min(_SLOT_CHUNK, bl)
    n_chunks = _sweep_max(jnp.ceil(sample_bl / chunk).astype(jnp.int32))

    # sign(lr * x_j * d_i) > 0 fires a down pulse (W <- W - lr * x d^T): with the signs on the
    # bits, the trains' product yields the signed count directly (all terms of n_ij share one
    # sign).
    sign_x = (-jnp.sign(lr) * jnp.sign(x)).astype(dtype)
    sign_d = jnp.sign(d).astype(dtype)

    def chunk_trains(c: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_x, k_d = jax.random.split(jax.random.fold_in(key, c))
        slots = c * chunk + jnp.arange(chunk) < sample_bl
        bits_x = (_uniform(k_x, (x.shape[0], chunk), dtype, cfg.rng) < p_x[:, None]) & slots[
            None, :
        ]
        bits_d = (_uniform(k_d, (chunk, d.shape[0]), dtype, cfg.rng) < p_d[None, :]) & slots[
            :, None
        ]
        return jnp.where(bits_x, sign_x[:, None], 0), jnp.where(bits_d, sign_d[None, :], 0)

    def add_chunk(
        carry: tuple[jax.Array, jax.Array, jax.Array],
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        c, trains_x, trains_d = carry
        tx, td = chunk_trains(c)
        return (
            c + 1,
            jax.lax.dynamic_update_slice_in_dim(trains_x, tx, c * chunk, 1),
            jax.lax.dynamic_update_slice_in_dim(trains_d, td, c * chunk, 0),
        )

    # Every sample has at least one chunk (BL >= 1): the first is drawn outside the loop.
    slots = -(-bl // chunk) * chunk
    tx, td = chunk_trains(jnp.int32(0))
    trains_x = jnp.zeros((x.shape[0], slots), dtype).at[:, :chunk].set(tx)
    trains_d = jnp.zeros((slots, d.shape[0]), dtype).at[:chunk].set(td)
    _, trains_x, trains_d = jax.lax.while_loop(
        lambda c: c[0] < n_chunks, add_chunk, (jnp.int32(1), trains_x, trains_d)
    )
    return trains_x, trains_d, n_chunks


def _coincidences(trains_x: jax.Array, trains_d: jax.Array, n_chunks: jax.Array) -> jax.Array:
    """n = trains_x @ trains_d, a chunk of slots at a time up to the trains' length."""
    chunk = min(_SLOT_CHUNK, trains_x.shape[1])

    def add_chunk(carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        c, counts = carry
        tx = jax.lax.dynamic_slice_in_dim(trains_x, c * chunk, chunk, 1)
        td = jax.lax.dynamic_slice_in_dim(trains_d, c * chunk, chunk, 0)
        return c + 1, counts + tx @ td

    counts = trains_x[:, :chunk] @ trains_d[:chunk]
    _, counts = jax.lax.while_loop(lambda c: c[0] < n_chunks, add_chunk, (jnp.int32(1), counts))
    return counts.astype(jnp.int32)


def _sample_pulse_counts(
    x: jax.Array, d: jax.Array, lr: ArrayLike, dw_min: ArrayLike, key: jax.Array, cfg: UpdateConfig
) -> jax.Array:
    """One sample's signed coincidence counts n_ij (see :func:`_sample_pulse_trains`)."""
    return _coincidences(*_sample_pulse_trains(x, d, lr, dw_min, key, cfg))
