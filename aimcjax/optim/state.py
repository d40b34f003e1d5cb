"""Finding the analog arrays inside any (possibly wrapped) optimizer state: an open registry.

Every optimizer of this package keeps :class:`aimcjax.optim.AnalogState`; a new analog
transformation with its own state type makes it findable by :func:`analog_state` with
:func:`register_state` (no closed list to edit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from aimcjax.optim.kernel import AnalogState

__all__ = ["AnalogTiles", "analog_state", "register_state"]


class AnalogTiles(NamedTuple):
    """The analog state of one optimizer, as params-shaped trees.

    Attributes:
      W: the main arrays (``aimcjax.tile.Tile`` per analog leaf, ``optax.MaskedNode`` else).
      P: the residual array (None with one store; a tuple of the residual arrays, slowest
        first, with more than two).
      H: the digital buffer of the stage into W (None without one; the accumulator for
        mixed precision).
    """

    W: Any
    P: Any
    H: Any


def _tiles_of_analog_state(state: AnalogState) -> AnalogTiles:
    residual = state.tiles[1:]
    P = None if not residual else (residual[0] if len(residual) == 1 else tuple(residual))
    H = state.transfer[0].buffer if state.transfer else None
    return AnalogTiles(W=state.tiles[0], P=P, H=H)


_REGISTRY: dict[type, Callable[[Any], AnalogTiles]] = {AnalogState: _tiles_of_analog_state}


def register_state(state_type: type, to_tiles: Callable[[Any], AnalogTiles]) -> None:
    """Make states of ``state_type`` findable by :func:`analog_state`.

    Args:
      state_type: the (NamedTuple) state class of an analog transformation.
      to_tiles: maps such a state to its :class:`AnalogTiles`.

    Example:
      >>> class MyState(NamedTuple):
      ...     count: jax.Array
      ...     tiles: Any
      >>> register_state(MyState, lambda s: AnalogTiles(W=s.tiles, P=None, H=None))
      >>> analog_state((None, MyState(count=0, tiles={"w": "the tile"}))).W  # found in a chain
      {'w': 'the tile'}
    """
    if not isinstance(state_type, type):
        raise TypeError(f"state_type must be a class, got {state_type!r}")
    if not callable(to_tiles):
        raise TypeError(f"to_tiles must be callable, got {to_tiles!r}")
    _REGISTRY[state_type] = to_tiles


def analog_state(opt_state: Any) -> AnalogTiles:
    """The tiles (W, P, H) of the analog optimizer inside ``opt_state``.

    Looks through any optax wrapper (``chain``, ``masked``, ``multi_transform``,
    ``inject_hyperparams``, ...) for a registered analog state (every optimizer of
    :mod:`aimcjax.optim`, and those added with :func:`register_state`).

    Args:
      opt_state: an optimizer state holding exactly one analog optimizer state.

    Returns:
      :class:`AnalogTiles`; use ``aimcjax.tile.weights`` on a tile for its effective weights.

    Raises:
      ValueError: if ``opt_state`` holds none or several analog optimizer states (pass the
        sub-state you mean in the latter case).

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from aimcjax import devices, optim, tile
      >>> opt = optax.chain(optax.clip(1.0), optim.analog_sgd(0.1, devices.SoftBounds(), key=0))
      >>> tiles = analog_state(opt.init({"w": jnp.full((2, 2), 0.5), "b": jnp.zeros(2)}))
      >>> w_main = jax.tree.map(tile.weights, tiles.W, is_leaf=lambda t: isinstance(t, tile.Tile))
      >>> w_main["w"].tolist(), tiles.P  # the main arrays; no residual array in Analog SGD
      ([[0.5, 0.5], [0.5, 0.5]], None)
    """
    types = tuple(_REGISTRY)
    found = [
        node
        for node in jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, types))
        if isinstance(node, types)
    ]
    if not found:
        names = ", ".join(t.__name__ for t in types)
        raise ValueError(f"opt_state holds no analog optimizer state (registered: {names})")
    if len(found) > 1:
        raise ValueError(
            f"opt_state holds {len(found)} analog optimizer states; pass the one you mean"
        )
    state = found[0]
    to_tiles = next(fn for t, fn in _REGISTRY.items() if isinstance(state, t))
    return to_tiles(state)
