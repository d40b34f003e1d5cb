"""Finding the analog arrays inside any (possibly wrapped) optimizer state."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from aimcjax.optim.analog_sgd import AnalogSGDState
from aimcjax.optim.residual import ResidualLearningState

__all__ = ["AnalogTiles", "analog_state"]

_STATES = (AnalogSGDState, ResidualLearningState)


class AnalogTiles(NamedTuple):
    """The analog state of one optimizer, as params-shaped trees.

    Attributes:
      W: the main arrays (``aimcjax.tile.Tile`` per analog leaf, ``optax.MaskedNode`` else).
      P: the residual arrays (None for Analog SGD).
      H: the digital transfer buffers (None unless version 2 / TTv2).
    """

    W: Any
    P: Any
    H: Any


def analog_state(opt_state) -> AnalogTiles:
    """The tiles (W, P, H) of the analog optimizer inside ``opt_state``.

    Looks through any optax wrapper (``chain``, ``masked``, ``multi_transform``,
    ``inject_hyperparams``, ...) for the state of :func:`analog_sgd`,
    :func:`residual_learning`, :func:`tiki_taka` or :func:`ttv2`.

    Args:
      opt_state: an optimizer state holding exactly one analog optimizer state.

    Returns:
      :class:`AnalogTiles`; use ``aimcjax.tile.weights`` on a tile for its effective weights.

    Raises:
      ValueError: if ``opt_state`` holds none or several analog optimizer states (pass the
        sub-state you mean in the latter case).

    Example:
      >>> tiles = analog_state(state)
      >>> w_main = jax.tree.map(aimcjax.tile.weights, tiles.W,
      ...                       is_leaf=lambda t: isinstance(t, aimcjax.tile.Tile))
    """
    found = [
        node
        for node in jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, _STATES))
        if isinstance(node, _STATES)
    ]
    if not found:
        raise ValueError("opt_state holds no analog optimizer state (analog_sgd, residual_learning, tiki_taka, ttv2)")
    if len(found) > 1:
        raise ValueError(f"opt_state holds {len(found)} analog optimizer states; pass the one you mean")
    state = found[0]
    if isinstance(state, AnalogSGDState):
        return AnalogTiles(W=state.tiles, P=None, H=None)
    return AnalogTiles(W=state.main, P=state.residual, H=state.buffer)
