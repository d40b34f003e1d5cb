"""Analog SGD: the gradient step written straight into the crossbar through its response."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from aimcjax import pulse
from aimcjax import tile as tile_lib
from aimcjax.devices import Device
from aimcjax.optim import _common as common

__all__ = ["AnalogSGDState", "analog_sgd"]


class AnalogSGDState(NamedTuple):
    """State of :func:`analog_sgd`.

    Attributes:
      count: number of updates so far (int32).
      key: raw PRNG key for the next update's pulse noise.
      tiles: params-shaped tree: a :class:`aimcjax.tile.Tile` at each analog leaf,
        ``optax.MaskedNode()`` at digital leaves.
    """

    count: jax.Array
    key: jax.Array
    tiles: Any


def analog_sgd(
    learning_rate: optax.ScalarOrSchedule,
    device: Device,
    *,
    update: pulse.UpdateConfig = pulse.UpdateConfig(),
    mask: common.MaskOrFn = None,
    key=0,
) -> optax.GradientTransformationExtraArgs:
    """Analog SGD: ``W <- analog_update(W, -lr * g)`` on each analog leaf [RF eq. 2].

    The weights live on a tile (one crossbar array per analog leaf) whose device-to-device
    variation is sampled in ``init``. Each update asks the tile for the change ``-lr * g``;
    what the device actually does (response functions, granularity, noise, bounds) is the new
    weight, and the returned updates are ``new_weights - params`` so that
    ``optax.apply_updates(params, updates)`` equals the analog weights without drift.

    Args:
      learning_rate: float or optax schedule (of the update count).
      device: the analog device of every analog leaf (:mod:`aimcjax.devices`).
      update: :class:`aimcjax.pulse.UpdateConfig`; with mode "outer",
        ``update(grads, state, params, factors=F)`` needs F shaped like params whose analog
        leaves hold ``(x, d)``, x of shape (B, in) and d of shape (B, out) for the kernel
        viewed as (in, out), so that grads = sum_b x_b d_b^T.
      mask: pytree of bools (or a callable of params returning one) marking analog leaves;
        digital leaves get plain SGD at the same rate. Default: every leaf of rank >= 2.
      key: int seed or PRNG key for the tiles and the pulse noise.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`AnalogSGDState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from aimcjax import devices, optim, pulse
      >>> params = {"w": jnp.zeros((3, 2))}
      >>> opt = optim.analog_sgd(0.1, devices.SoftBounds(tau=0.6), key=0)
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": jnp.ones((3, 2))}, state, params)
      >>> params = optax.apply_updates(params, updates)

    References:
      [RF] Wu et al., arXiv:2502.06309, eq. 2 (Analog SGD) and eq. 5 (expected update).
    """
    common.check_rate("learning_rate", learning_rate)
    common.check_device("device", device)
    common.check_update_config("update", update)
    outer = update.mode == "outer"

    def init_fn(params):
        paths, leaves, treedef = common.flatten_params(params)
        flags = common.analog_flags(params, mask)
        key_state, keys = common.split_key(common.as_raw_key(key), len(leaves))
        tiles = [
            tile_lib.init(k, device, p.shape, w0=p) if flag else common.masked_node()
            for k, p, flag in zip(keys, leaves, flags)
        ]
        return AnalogSGDState(jnp.zeros([], jnp.int32), key_state, treedef.unflatten(tiles))

    def update_fn(grads, state, params=None, *, factors=None, **extra_args):
        del extra_args
        paths, leaves, treedef = common.flatten_params(params)
        grad_leaves = treedef.flatten_up_to(grads)
        tiles = common.per_leaf(treedef, state.tiles)
        flags = [common.is_analog(t) for t in tiles]
        per_factors = common.leaf_factors(factors, paths, flags, needed=outer)
        lr = common.rate_at(learning_rate, state.count)
        key_state, keys = common.split_key(state.key, len(leaves))

        new_tiles, updates = [], []
        for path, p, g, t, f, k in zip(paths, leaves, grad_leaves, tiles, per_factors, keys):
            common.check_grad(path, p, g)
            if not common.is_analog(t):
                new_tiles.append(t)
                updates.append(common.sgd_update(g, lr, p))
                continue
            if outer:
                common.check_factors(path, p.shape, *f)
            g2 = g.reshape(tile_lib.matrix_shape(p.shape))
            t2 = common.write(common.as_matrix(t), device, g2, f, lr, k, update)
            t = common.reshape_tile(t2, p.shape)
            new_tiles.append(t)
            updates.append((tile_lib.weights(t) - p).astype(p.dtype))
        new_state = AnalogSGDState(state.count + 1, key_state, treedef.unflatten(new_tiles))
        return treedef.unflatten(updates), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
