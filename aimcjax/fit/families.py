"""The response families a fit can choose from, in a per-device parametrization.

Every device k of an array gets its own step scales ``up_k, down_k`` (the mean up / down step
where the response shape is 1) and, except for :class:`ConstantStep`, its own bounds
``w_max_k, w_min_k``; the response *shape* (``gamma``, Piecewise nodes) is shared by the
array, as in :mod:`aimcjax.devices` where only gains and bounds vary from device to device.
The mean step of a pulse from weight w is

    up:   up_k   * f_plus(w;  w_min_k, w_max_k, shape)
    down: -down_k * f_minus(w; w_min_k, w_max_k, shape)

with ``f_plus, f_minus`` the family's own ``response`` at zero asymmetry (so the fit and
training use one formula). In the library's terms up_k = g_k (1 + i_k) dw_min (1 + c) and
down_k = g_k (1 - i_k) dw_min (1 - c) (gain g_k, imbalance i_k, asymmetry c), see
:mod:`aimcjax.fit.population`.

Parameters are unconstrained (logs relative to a starting value) so that an optimizer can
move freely.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from aimcjax import devices
from aimcjax._typing import ArrayLike

__all__ = ["FAMILIES", "Family", "family", "piecewise"]

# Weights are kept this fraction of a bound inside it when the response is evaluated: exactly
# at a bound a power or log of 1 - w / bound has an infinite derivative in gamma.
_INSIDE = 1e-6


@dataclasses.dataclass(frozen=True)
class Family:
    """A response family as the fit sees it.

    Attributes:
      name: CLI / report name (``constant``, ``softbounds``, ``power``, ``exp``, ``piecewise5``).
      cls: the :mod:`aimcjax.devices` class a fit produces.
      bounded: whether each device's bounds are fitted (False: ConstantStep, whose hard bounds
        traces rarely reach; it gets the observed range instead).
      shape_names: names of the shared shape parameters (unconstrained vector entries).
      shape_init: starting values of the unconstrained shape vector.
      shape_fn: unconstrained vector -> dict of shape values (``gamma``; ``up``/``down`` nodes).
      proto: a device of the family at unit step, zero asymmetry, whose shape leaves are
        replaced by the fitted ones.
      n_nodes: node count of a piecewise family (0 otherwise).
      clips: whether the response is not 0 at the bounds (Piecewise, ExpStep): a trace that
        reaches a bound then sits on it, clipped, and one that does not reach it does not
        estimate it (see :func:`aimcjax.fit.estimate._unpinned_bounds`).
    """

    name: str
    cls: type
    bounded: bool
    shape_names: tuple[str, ...]
    shape_init: tuple[float, ...]
    shape_fn: Callable
    proto: devices.Device
    n_nodes: int = 0
    clips: bool = False

    def response(
        self, shape: dict[str, Any], w: jax.Array, w_min: ArrayLike, w_max: ArrayLike
    ) -> tuple[jax.Array, jax.Array]:
        """(f_plus, f_minus) at w for bounds (w_min, w_max): the family's response at zero
        asymmetry (Piecewise nodes normalised to 1 at their largest end)."""
        if self.bounded:
            # Each bound's own scale, not the span: a bound the traces do not identify can be
            # fitted far out (measured: w_min -1.7e9 on a Capacitor trace), and a margin of
            # _INSIDE * span then clipped every weight ~1 700 inside the other bound.
            w = jnp.clip(w, w_min + _INSIDE * jnp.abs(w_min), w_max - _INSIDE * jnp.abs(w_max))
        return _device(self, shape).response(w, w_min, w_max)

    def n_shape(self) -> int:
        return len(self.shape_init)


def _device(fam: Family, shape: dict[str, Any]) -> devices.Device:
    """A device of the family at unit step and zero asymmetry carrying ``shape`` (leaves
    swapped into a prototype without validation: they may be tracers)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(fam.proto)
    return jax.tree_util.tree_unflatten(
        treedef, [shape.get(path[-1].name, leaf) for path, leaf in leaves]
    )


def _gamma_shape(theta: jax.Array) -> dict[str, jax.Array]:
    return {"gamma": jnp.exp(theta[0])}


def _no_shape(theta: jax.Array) -> dict[str, jax.Array]:
    return {}


def _piecewise_shape(n_nodes: int) -> Callable[[jax.Array], dict[str, jax.Array]]:
    def shape_fn(theta: jax.Array) -> dict[str, jax.Array]:
        # Node ratios exp(-softplus(b)) in (0, 1]: up non-increasing from 1 at w_min, down
        # non-decreasing to 1 at w_max (each direction's scale is the per-device step).
        drop_up = jax.nn.softplus(theta[: n_nodes - 1])
        drop_down = jax.nn.softplus(theta[n_nodes - 1 :])
        up = jnp.exp(-jnp.concatenate([jnp.zeros(1), jnp.cumsum(drop_up)]))
        down = jnp.exp(-jnp.concatenate([jnp.cumsum(drop_down[::-1])[::-1], jnp.zeros(1)]))
        return {"up": up, "down": down}

    return shape_fn


@functools.cache
def piecewise(n_nodes: int) -> Family:
    """The Piecewise family with ``n_nodes`` nodes per direction (>= 2)."""
    if isinstance(n_nodes, bool) or not isinstance(n_nodes, (int, np.integer)) or n_nodes < 2:
        raise ValueError(f"n_nodes must be an integer >= 2, got {n_nodes!r}")
    n = int(n_nodes)
    # Start from a response that halves across the range (softplus(b) = log(2)/(n-1)).
    b0 = float(np.log(np.expm1(np.log(2.0) / (n - 1))))
    names = tuple(f"up_drop{j}" for j in range(1, n)) + tuple(f"down_drop{j}" for j in range(n - 1))
    return Family(
        f"piecewise{n}",
        devices.Piecewise,
        True,
        names,
        (b0,) * (2 * (n - 1)),
        _piecewise_shape(n),
        devices.Piecewise(up=np.ones(n), down=np.ones(n)),
        n,
        clips=True,
    )


def _expstep_shape(theta: jax.Array) -> dict[str, jax.Array]:
    return dict(zip(EXPSTEP_SHAPE, jnp.exp(theta)))


# ExpStep's shape: A_up, A_down, gamma_up, gamma_down (all > 0), with a and b held at
# aihwkit's defaults. On a device's range z = 2 a w / (w_max - w_min) + b is linear in w, so
# A exp(gamma z) = exp(log A + gamma b + gamma (2 a / span) w): any (a, b) is absorbed by
# (A, gamma) and the two pairs are not identified separately. A device with other a, b is the
# same response as A' = A exp(gamma b - gamma' b0), gamma' = gamma a / a0 at a0, b0.
EXPSTEP_SHAPE = ("A_up", "A_down", "gamma_up", "gamma_down")
_EXPSTEP_PROTO = devices.ExpStep(dw_min=1.0)


FAMILIES = {
    "constant": Family(
        "constant", devices.ConstantStep, False, (), (), _no_shape, devices.ConstantStep()
    ),
    "softbounds": Family(
        "softbounds", devices.SoftBounds, True, (), (), _no_shape, devices.SoftBounds(tau=1.0)
    ),
    "power": Family(
        "power", devices.Power, True, ("log_gamma",), (0.0,), _gamma_shape, devices.Power(tau=1.0)
    ),
    "exp": Family(
        "exp",
        devices.Exponential,
        True,
        ("log_gamma",),
        (0.0,),
        _gamma_shape,
        devices.Exponential(tau=1.0),
    ),
    # Starts at aihwkit's default ExpStep shape.
    "expstep": Family(
        "expstep",
        devices.ExpStep,
        True,
        tuple(f"log_{n}" for n in EXPSTEP_SHAPE),
        tuple(float(np.log(getattr(_EXPSTEP_PROTO, n))) for n in EXPSTEP_SHAPE),
        _expstep_shape,
        _EXPSTEP_PROTO,
        clips=True,
    ),
}


def family(name: str | Family) -> Family:
    """A :class:`Family` by name: ``constant``, ``softbounds``, ``power``, ``exp``,
    ``expstep`` or ``piecewiseN`` (N nodes); a :class:`Family` passes through."""
    if isinstance(name, Family):
        return name
    if (
        isinstance(name, str)
        and name.startswith("piecewise")
        and name[len("piecewise") :].isdigit()
    ):
        return piecewise(int(name[len("piecewise") :]))
    if name not in FAMILIES:
        raise ValueError(
            f"unknown family {name!r}; choose from {', '.join(FAMILIES)} or piecewiseN"
        )
    return FAMILIES[name]
