"""Type aliases shared by the annotations of the library's public modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import jax
import numpy as np
from jax.typing import DTypeLike

__all__ = ["ArrayLike", "DTypeLike", "KeyLike", "PyTree", "Shape"]

# A number or an array (jax or numpy). jax.typing.ArrayLike also admits bool and complex, for
# which the arithmetic of the numeric code is not typed.
ArrayLike: TypeAlias = jax.Array | np.ndarray | np.number | float | int
# An int seed or a PRNG key (typed, or raw uint32 as from jax.random.PRNGKey).
KeyLike: TypeAlias = int | jax.Array
# A pytree of arrays (nested dicts, lists, tuples, NamedTuples); jax has no precise type for it.
PyTree: TypeAlias = Any
Shape: TypeAlias = Sequence[int]
