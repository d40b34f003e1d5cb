"""Multi-tile residual learning: n > 2 crossbar tiles, each learning the residual of the ones
before it, on its own timescale.

The weight is a geometric sum over tiles, most significant first,

    W̄ = T_0 + gamma * T_1 + gamma^2 * T_2 + ... + gamma^(n-1) * T_(n-1),

so each extra tile of a device with few conductance states adds resolution below the previous
tile's granularity [Li, Wu, Liu, Gokmen, Chen 2025]. Each step:

    T_(n-1) <- analog_update(T_(n-1), -alpha * g)               g taken at W̄ (the params)
    for j = n-1, ..., 1 (fast to slow), every transfer_every[j-1] steps:
        T_(j-1) <- analog_update(T_(j-1), beta_j * read(T_j))     (all lines or one line)

The residual tiles T_1..T_(n-1) are zero-shifted (reference at each element's symmetric
point). With n = 2 this is residual learning version 1 [RF eqs. 10-11]: T_0 = W, T_1 = P —
the same numbers as :func:`aimcjax.optim.residual_learning` for the same key.

References:
  J. Li, Z. Wu, G. Liu, T. Gokmen, T. Chen, "In-memory Training on Analog Devices with Limited
  Conductance States via Multi-tile Residual Learning", arXiv:2510.02516 (2025).
  [RF] Wu et al., arXiv:2502.06309 (two-tile residual learning).
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aimcjax import pulse
from aimcjax import tile as tile_lib
from aimcjax.devices import Device
from aimcjax.optim import _common as common
from aimcjax.optim._read import make_reader
from aimcjax.optim.chopped import write_lines
from aimcjax.optim.residual import _default_transfer_update, check_residual_args

__all__ = ["MultiTileState", "multi_tile_residual"]


class MultiTileState(NamedTuple):
    """State of :func:`multi_tile_residual`.

    Attributes:
      count: number of updates so far (int32).
      key: raw PRNG key for the next update.
      tiles: tuple of n params-shaped trees, most significant first: ``tiles[0]`` is the main
        array, ``tiles[-1]`` the fastest residual array that receives the gradient (a Tile per
        analog leaf, ``optax.MaskedNode()`` at digital leaves).
    """

    count: jax.Array
    key: jax.Array
    tiles: tuple


def _per_stage(name, value, n_stages, check):
    """A scalar, or one value per transfer stage (stage j moves tile j into tile j-1)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_stages:
            raise ValueError(f"{name} needs one value per transfer stage ({n_stages} for n_tiles={n_stages + 1}), got {len(value)}")
        values = list(value)
    else:
        values = [value] * n_stages
    return [check(f"{name}[{j}]", v) for j, v in enumerate(values)]


def multi_tile_residual(
    learning_rate: optax.ScalarOrSchedule,
    transfer_lr: optax.ScalarOrSchedule | Sequence[optax.ScalarOrSchedule],
    gamma: float,
    device: Device,
    *,
    n_tiles: int = 3,
    residual_device: Device | None = None,
    zero_shift: bool = True,
    transfer: str = "full",
    transfer_every: int | Sequence[int] = 1,
    read=None,
    update: pulse.UpdateConfig = pulse.UpdateConfig(),
    transfer_update: pulse.UpdateConfig | None = None,
    mask: common.MaskOrFn = None,
    key=0,
) -> optax.GradientTransformationExtraArgs:
    """Residual learning over ``n_tiles`` analog tiles with geometric weights ``gamma**k``.

    ``params`` are ``W̄ = sum_k gamma**k T_k``. The gradient at W̄ is written into the last
    (fastest) tile; then, from fast to slow, tile j is read and transferred into tile j - 1
    (``T_(j-1) <- analog_update(T_(j-1), beta_j * read(T_j))``) every ``transfer_every[j-1]``
    steps. Slower stages (small j) usually get longer periods, so each tile works on its own
    timescale.

    Args:
      learning_rate: alpha, rate of the gradient writes into the last tile (float or schedule).
      transfer_lr: beta, rate of the transfers; one value for all stages or a sequence of
        ``n_tiles - 1`` (entry j-1 for the transfer from tile j into tile j-1).
      gamma: geometric weight (>= 0): tile k enters the weights with ``gamma**k``.
      device: device of every tile (of the main tile only if ``residual_device`` is given).
      n_tiles: number of tiles (>= 2; 2 is :func:`aimcjax.optim.residual_learning`, version 1).
      residual_device: device of the residual tiles 1..n-1.
      zero_shift: reference the residual tiles at each element's symmetric point.
      transfer: "full" (all input lines per transfer) or "column" (one line per transfer,
        cycling, per stage).
      transfer_every: period of each transfer stage in steps (>= 1), one for all or a
        sequence of ``n_tiles - 1`` (entry j-1 for tile j into tile j-1).
      read, update, transfer_update, mask, key: as :func:`aimcjax.optim.residual_learning`.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`MultiTileState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices, optim
      >>> dev = devices.SoftBounds(tau=0.6, asymmetry=0.2, dw_min=0.05)  # ~24 states
      >>> opt = optim.multi_tile_residual(0.1, 0.5, 0.1, dev, n_tiles=3, transfer_every=(4, 1))
      >>> state = opt.init({"w": jnp.zeros((4, 2))})

    References:
      Li, Wu, Liu, Gokmen, Chen, arXiv:2510.02516 (2025); [RF] arXiv:2502.06309 eqs. 10-11.
    """
    common.check_rate("learning_rate", learning_rate)
    n_tiles = common.static_int("n_tiles", n_tiles, minimum=2)
    n_stages = n_tiles - 1

    def rate(name, v):
        common.check_rate(name, v)
        return v

    transfer_lrs = _per_stage("transfer_lr", transfer_lr, n_stages, rate)
    periods = _per_stage("transfer_every", transfer_every, n_stages, lambda n, v: common.static_int(n, v, minimum=1))
    residual_device = check_residual_args(gamma, device, residual_device, zero_shift, transfer)
    common.check_update_config("update", update)
    if transfer_update is None:
        transfer_update = _default_transfer_update(update)
    common.check_update_config("transfer_update", transfer_update)
    reader = make_reader(read)
    gradient_outer = update.mode == "outer"
    devices = [device] + [residual_device] * n_stages

    def init_fn(params):
        paths, leaves, treedef = common.flatten_params(params)
        flags = common.analog_flags(params, mask)
        key_state, keys = common.split_key(common.as_raw_key(key), len(leaves))
        tiles = [[] for _ in range(n_tiles)]
        for k, p, flag in zip(keys, leaves, flags):
            tile_keys = jax.random.split(k, n_tiles)
            for i in range(n_tiles):
                if not flag:
                    tiles[i].append(common.masked_node())
                elif i == 0:
                    tiles[i].append(tile_lib.init(tile_keys[0], device, p.shape, w0=p))
                else:
                    tiles[i].append(tile_lib.init(tile_keys[i], residual_device, p.shape,
                                                  w0=jnp.zeros_like(p), zero_shift=zero_shift))
        return MultiTileState(jnp.zeros([], jnp.int32), key_state, tuple(treedef.unflatten(t) for t in tiles))

    def update_fn(grads, state, params=None, *, factors=None, **extra_args):
        del extra_args
        paths, leaves, treedef = common.flatten_params(params)
        grad_leaves = treedef.flatten_up_to(grads)
        per_tile = [common.per_leaf(treedef, t) for t in state.tiles]
        flags = [common.is_analog(t) for t in per_tile[0]]
        per_factors = common.leaf_factors(factors, paths, flags, needed=gradient_outer)
        count = state.count
        alpha = common.rate_at(learning_rate, count)
        betas = [common.rate_at(b, count) for b in transfer_lrs]
        key_state, keys = common.split_key(state.key, len(leaves))

        new_tiles = [[] for _ in range(n_tiles)]
        updates = []
        for i, (path, p, g, f, k) in enumerate(zip(paths, leaves, grad_leaves, per_factors, keys)):
            common.check_grad(path, p, g)
            if not flags[i]:
                for t in range(n_tiles):
                    new_tiles[t].append(per_tile[t][i])
                updates.append(common.sgd_update(g, alpha, p))
                continue
            if gradient_outer:
                common.check_factors(path, p.shape, *f)
            shape2 = tile_lib.matrix_shape(p.shape)
            n_in = shape2[0]
            step_keys = jax.random.split(k, n_tiles)  # [gradient, stage 1, ..., stage n-1]
            T2 = [common.as_matrix(per_tile[t][i]) for t in range(n_tiles)]
            T2[-1] = common.write(T2[-1], devices[-1], g.reshape(shape2), f, alpha, step_keys[0], update)
            for j in range(n_stages, 0, -1):  # fast to slow: tile j into tile j-1
                every = periods[j - 1]
                rows = jnp.arange(n_in) if transfer == "full" else ((((count + 1) // every) - 1) % n_in)[None]

                def run_transfer(operands, j=j, rows=rows, k_stage=step_keys[j]):
                    dst, src = operands
                    k_read, k_write = jax.random.split(k_stage)
                    one_hot = jax.nn.one_hot(rows, n_in, dtype=src.w.dtype)
                    values = reader(tile_lib.weights(src), one_hot, k_read)
                    return write_lines(dst, devices[j - 1], rows, one_hot, values, betas[j - 1], k_write, transfer_update)

                if every == 1:
                    T2[j - 1] = run_transfer((T2[j - 1], T2[j]))
                else:
                    T2[j - 1] = jax.lax.cond((count + 1) % every == 0, run_transfer, lambda o: o[0], (T2[j - 1], T2[j]))
            mixed = jnp.zeros(p.shape, p.dtype)
            for t in range(n_tiles):
                tile_t = common.reshape_tile(T2[t], p.shape)
                new_tiles[t].append(tile_t)
                weight = tile_lib.weights(tile_t)
                mixed = mixed + (weight if t == 0 else gamma**t * weight)
            updates.append((mixed - p).astype(p.dtype))

        new_state = MultiTileState(count + 1, key_state, tuple(treedef.unflatten(t) for t in new_tiles))
        return treedef.unflatten(updates), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
