"""Deprecated: the experiments moved to :mod:`aimcjax.app.experiments`.

The submodules that README and the docs used to name (``least_squares``, ``csgd``,
``training``, ``pulse_response``) are aliases of their new modules.
"""

import warnings

from aimcjax.app.experiments import RECIPES, get_recipe

__all__ = ["RECIPES", "get_recipe"]

warnings.warn(
    "aimcjax.experiments is deprecated: use aimcjax.app.experiments "
    "(the application moved to aimcjax.app)",
    DeprecationWarning,
    stacklevel=2,
)
