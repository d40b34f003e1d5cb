"""Analog training algorithms as optax gradient transformations (DESIGN §5).

- :func:`analog_sgd`: the gradient step written into the crossbar [RF eq. 2].
- :func:`residual_learning` (versions 1 and 2), :func:`tiki_taka`, :func:`ttv2`: a residual
  array P integrates the gradient and is transferred into the main array W [RF; TTv1; TTv2].
- :func:`analog_state`: the tiles (W, P, H) inside any optimizer state.
"""

from aimcjax.optim.analog_sgd import AnalogSGDState, analog_sgd
from aimcjax.optim.residual import ResidualLearningState, residual_learning, tiki_taka, ttv2
from aimcjax.optim.state import AnalogTiles, analog_state

__all__ = [
    "AnalogSGDState",
    "AnalogTiles",
    "ResidualLearningState",
    "analog_sgd",
    "analog_state",
    "residual_learning",
    "tiki_taka",
    "ttv2",
]
