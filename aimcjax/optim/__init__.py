"""Analog training algorithms as optax gradient transformations.

Every algorithm is an alias of one kernel (:mod:`aimcjax.optim.kernel`) with a transfer rule
(:mod:`aimcjax.optim.transfer`); see ``docs/architecture.md``.

- :func:`analog_sgd`: the gradient step written into the crossbar [RF eq. 2].
- :func:`residual_learning` (versions 1 and 2), :func:`tiki_taka`, :func:`ttv2`: a residual
  array P integrates the gradient and is transferred into the main array W [RF; TTv1; TTv2].
- :func:`chopped_ttv2` (c-TTv2) and :func:`agad`: chopped transfers [Rasch et al. 2024].
- :func:`mixed_precision`: digital accumulator, whole-pulse transfers [Nandakumar et al. 2020].
- :func:`multi_tile_residual`: n > 2 tiles with geometric gamma and per-stage periods.
- :func:`analog_state`: the tiles (W, P, H) inside any optimizer state.
- :func:`checked`: raise at the first non-finite gradient or factor, naming the leaf.
"""

from aimcjax.optim.alias import (
    agad,
    analog_sgd,
    chopped_ttv2,
    mixed_precision,
    multi_tile_residual,
    residual_learning,
    tiki_taka,
    ttv2,
)
from aimcjax.optim.checked import checked
from aimcjax.optim.kernel import AnalogState, analog_kernel
from aimcjax.optim.state import AnalogTiles, analog_state, register_state
from aimcjax.optim.transfer import LeafAux, quantize_factors

__all__ = [
    "AnalogState",
    "AnalogTiles",
    "LeafAux",
    "agad",
    "analog_kernel",
    "analog_sgd",
    "analog_state",
    "checked",
    "chopped_ttv2",
    "mixed_precision",
    "multi_tile_residual",
    "quantize_factors",
    "register_state",
    "residual_learning",
    "tiki_taka",
    "ttv2",
]
