"""Old import paths of the application modules, kept as aliases of their new homes.

The application (the ``aimcjax`` command, recipes, data readers, spec grammar, demos) moved to
:mod:`aimcjax.app`. A module at an old path calls :func:`alias`, which makes the old name the
new module itself (one module object: its classes, functions and state are shared, so
``isinstance`` checks and monkeypatching see one thing) and warns once per import.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType


def alias(old: str, new: str) -> ModuleType:
    """Make module ``old`` an alias of module ``new`` and warn that ``old`` is deprecated.

    Called at the top level of the module named ``old``: the import system hands out
    ``sys.modules[old]`` after running it, so ``import old`` yields the ``new`` module.

    Args:
      old: the deprecated module name (the caller's ``__name__``).
      new: the module that replaces it.

    Returns:
      The ``new`` module.

    Example:
      >>> import sys
      >>> from aimcjax._deprecated import alias
      >>> module = alias("aimcjax_old_name_example", "aimcjax.app.specs")
      >>> sys.modules["aimcjax_old_name_example"] is module
      True
    """
    module = importlib.import_module(new)
    warnings.warn(
        f"{old} is deprecated: use {new} (the application moved to aimcjax.app)",
        DeprecationWarning,
        stacklevel=3,
    )
    sys.modules[old] = module
    return module
