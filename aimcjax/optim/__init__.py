"""Analog training algorithms as optax gradient transformations (DESIGN §5).

- :func:`analog_sgd`: the gradient step written into the crossbar [RF eq. 2].
- :func:`residual_learning` (versions 1 and 2), :func:`tiki_taka`, :func:`ttv2`: a residual
  array P integrates the gradient and is transferred into the main array W [RF; TTv1; TTv2].
- :func:`chopped_ttv2` (c-TTv2) and :func:`agad`: chopped transfers [Rasch et al. 2024].
- :func:`mixed_precision`: digital accumulator, whole-pulse transfers [Nandakumar et al. 2020].
- :func:`multi_tile_residual`: n > 2 tiles with geometric gamma and per-stage periods.
- :func:`analog_state`: the tiles (W, P, H) inside any optimizer state.
"""

from aimcjax.optim.analog_sgd import AnalogSGDState, analog_sgd
from aimcjax.optim.chopped import ChoppedState, agad, chopped_ttv2
from aimcjax.optim.mixed_precision import MixedPrecisionState, mixed_precision
from aimcjax.optim.multi_tile import MultiTileState, multi_tile_residual
from aimcjax.optim.residual import ResidualLearningState, residual_learning, tiki_taka, ttv2
from aimcjax.optim.state import AnalogTiles, analog_state

__all__ = [
    "AnalogSGDState",
    "ChoppedState",
    "MixedPrecisionState",
    "MultiTileState",
    "agad",
    "chopped_ttv2",
    "mixed_precision",
    "multi_tile_residual",
    "AnalogTiles",
    "ResidualLearningState",
    "analog_sgd",
    "analog_state",
    "residual_learning",
    "tiki_taka",
    "ttv2",
]
