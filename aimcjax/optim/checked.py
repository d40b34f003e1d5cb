"""An opt-in checked mode: raise at the first non-finite gradient or factor, naming the leaf."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aimcjax._typing import PyTree

__all__ = ["checked"]


def checked(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """``inner`` that raises ``FloatingPointError`` at an update whose gradients (or, in
    "outer" mode, factors) hold a NaN or an infinity, naming the first such leaf.

    By default the analog optimizers skip such a step and count it in
    ``AnalogState.notfinite_count`` (docs/architecture.md, "Non-finite values"); wrap them in
    ``checked`` while debugging. Outside ``jit`` the error is raised at once; inside, from the
    compiled step (a host callback that runs only on failure), as a ``JaxRuntimeError`` whose
    message holds the leaf's name.

    Args:
      inner: any optax transformation (typically an analog one).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with ``inner``'s state.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices, optim
      >>> opt = optim.checked(optim.analog_sgd(0.1, devices.SoftBounds(tau=0.6), key=0))
      >>> params = {"w": jnp.zeros((2, 2))}
      >>> state = opt.init(params)
      >>> opt.update({"w": jnp.full((2, 2), jnp.nan)}, state, params)
      Traceback (most recent call last):
      FloatingPointError: non-finite values in updates['w'] (the first of them)
    """
    inner = optax.with_extra_args_support(inner)

    def update_fn(
        updates: optax.Updates,
        state: optax.OptState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, optax.OptState]:
        named = [
            (f"updates{jax.tree_util.keystr(p)}", a)
            for p, a in jax.tree_util.tree_leaves_with_path(updates)
        ]
        factors = extra_args.get("factors")
        if factors is not None:
            named += [
                (f"factors{jax.tree_util.keystr(p)}", a)
                for p, a in jax.tree_util.tree_leaves_with_path(factors)
            ]
        named = [
            (n, a)
            for n, a in named
            if hasattr(a, "dtype") and jnp.issubdtype(jnp.result_type(a), jnp.inexact)
        ]
        if named:
            bad = jnp.stack([~jnp.all(jnp.isfinite(a)) for _, a in named])
            _raise_at_first(bad, [n for n, _ in named])
        return inner.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


def _raise_at_first(bad: jax.Array, names: list[str]) -> None:
    def raise_if(flags: PyTree) -> None:
        flags = np.asarray(flags).reshape(-1, len(names)).any(axis=0)
        if flags.any():
            raise FloatingPointError(
                f"non-finite values in {names[int(np.argmax(flags))]} (the first of them)"
            )

    if not isinstance(bad, jax.core.Tracer):
        raise_if(bad)
        return
    jax.lax.cond(jnp.any(bad), lambda: jax.debug.callback(raise_if, bad), lambda: None)
