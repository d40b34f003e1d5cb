"""Flax layers whose products run on simulated analog crossbars (docs/architecture.md).

Linen: :class:`AnalogDense`, :class:`AnalogConv` and :func:`grad_and_factors`;
nnx: :mod:`aimcjax.nn.nnx` (``AnalogLinear``, ``AnalogConv``, ``grad_and_factors``).
:func:`convert_to_analog` turns an existing linen or nnx model's Dense/Conv layers analog.
The periphery of every read is an :class:`aimcjax.periphery.PeripheryConfig`; noise is drawn
from the RNG stream ``"periphery"``.
"""

from aimcjax.nn.convert import AnalogModel, convert_to_analog
from aimcjax.nn.factors import assemble_factors, grad_and_factors
from aimcjax.nn.linen import AnalogConv, AnalogDense
from aimcjax.periphery import PeripheryConfig

__all__ = [
    "AnalogConv",
    "AnalogDense",
    "AnalogModel",
    "PeripheryConfig",
    "assemble_factors",
    "convert_to_analog",
    "grad_and_factors",
]
