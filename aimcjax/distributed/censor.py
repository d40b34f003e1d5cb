"""The censored gradient exchange and ``csgd``, an optax wrapper around any server update.

Everything here runs per worker inside a mapped context that binds ``axis_name``
(``jax.pmap``, ``jax.shard_map`` or ``jax.vmap(..., axis_name=...)``): one worker = one
index along that axis.

References:
  [CSGD] Li, Wu, Chen, Li, Ling. Communication-Censored Distributed Stochastic Gradient
  Descent. arXiv:1909.03631 (IEEE TNNLS 2021).
  [LAG] Chen, Giannakis, Sun, Yin. LAG: Lazily Aggregated Gradient for
  Communication-Efficient Distributed Learning. NeurIPS 2018.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aimcjax._typing import ArrayLike, PyTree
from aimcjax.distributed.config import CensorConfig, move_window_length

__all__ = ["CSGDState", "censored_mean", "csgd", "num_workers", "threshold"]


def num_workers(axis_name: Hashable) -> int:
    """Size of the bound mapped axis ``axis_name``; a clear error when it is not bound."""
    try:
        return jax.lax.axis_size(axis_name)
    except NameError as err:
        raise ValueError(
            f"axis_name {axis_name!r} is not bound here: call this inside jax.pmap, "
            f"jax.shard_map or jax.vmap with the same axis name ({err})"
        ) from None


def _squared_norm(tree: PyTree) -> jax.Array | int:
    leaves = jax.tree.leaves(tree)
    return sum(jnp.sum(jnp.square(x)) for x in leaves)


def _check_threshold(tau: ArrayLike) -> None:
    """A known threshold must be a number, not NaN: ``innovation > NaN`` is always False, so a
    NaN threshold would censor every upload for good without a word."""
    if isinstance(tau, jax.core.Tracer):
        return
    value = np.asarray(tau)
    if value.dtype.kind not in "biuf":
        raise TypeError(f"tau must be a real scalar, got {type(tau).__name__}")
    if value.ndim != 0:
        raise ValueError(f"tau must be a scalar, got shape {value.shape}")
    if np.isnan(value):
        raise ValueError("tau must not be NaN (a NaN threshold censors every upload)")


def censored_mean(
    grads: PyTree,
    g_hat: PyTree,
    tau: ArrayLike,
    axis_name: Hashable = "workers",
    *,
    force: ArrayLike = False,
) -> tuple[PyTree, PyTree, jax.Array]:
    """Mean over workers of the gradients the server holds after a censored upload round.

    Each worker uploads ``grads`` only if ``||grads - g_hat||^2 > tau`` (or ``force``);
    otherwise the server keeps using the stale ``g_hat`` of that worker [CSGD Alg. 1].

    Args:
      grads: this worker's fresh gradient (a pytree).
      g_hat: the gradient the server last received from this worker (same structure).
      tau: scalar threshold (same on every worker).
      axis_name: the mapped axis enumerating the workers.
      force: scalar bool; upload regardless of the test (SGD, staleness cap, optional first
        upload).

    Returns:
      ``(mean, new_g_hat, sent)``: the server's mean of the held gradients (identical on
      every worker), this worker's held gradient after the round, and whether it uploaded.

    Example:
      >>> f = jax.vmap(lambda g, h: censored_mean(g, h, 0.5, "w"), axis_name="w")
      >>> mean, held, sent = f(jnp.array([[1.0], [0.1]]), jnp.zeros((2, 1)))
      >>> sent.tolist(), mean.tolist()
      ([True, False], [[0.5], [0.5]])
    """
    num_workers(axis_name)
    _check_threshold(tau)
    structure: Any = jax.tree.structure(grads)  # (PyTreeDef's stub has no comparison)
    if structure != jax.tree.structure(g_hat):
        raise ValueError("grads and g_hat must have the same pytree structure")
    innovation = _squared_norm(jax.tree.map(jnp.subtract, grads, g_hat))
    sent = jnp.logical_or(innovation > tau, force)
    new_g_hat = jax.tree.map(lambda g, h: jnp.where(sent, g, h), grads, g_hat)
    # The server holds sum_m g_hat_m; only uploaded workers change it. Averaging the held
    # gradients directly gives the same iterate without accumulating rounding drift.
    mean = jax.lax.pmean(new_g_hat, axis_name)
    return mean, new_g_hat, sent


def threshold(
    config: CensorConfig, recent_sq_moves: jax.Array, count: jax.Array, num_workers_: int
) -> jax.Array:
    """The censoring threshold tau^k of iteration ``count`` = k (see :class:`CensorConfig`).

    Default (the authors' code): tau^k = (xi/(alpha^2 D) * [k >= D-1] *
    sum_{j=1..D-1} ||x^{k+1-j} - x^{k-j}||^2 + sigma^k) / M^2; LAG-S has sigma^k = 0.

    Args:
      config: the :class:`CensorConfig`.
      recent_sq_moves: the window of squared parameter moves, newest first
        (``move_window_length(config)`` entries, zeros for moves not made yet).
      count: k, a scalar int array.
      num_workers_: M.

    Returns:
      A float32 scalar.
    """
    moves = config.xi / (config.learning_rate**2 * config.window) * jnp.sum(recent_sq_moves)
    if config.move_window == "authors":
        # The authors' window list fills up to D iterates before its sum is used at all.
        moves = jnp.where(count >= config.window - 1, moves, 0.0)
    slack: jax.Array | float = 0.0
    if config.mode != "lag":
        slack = config.sigma0 * jnp.power(
            jnp.float32(config.sigma_decay), count.astype(jnp.float32)
        )
    scale = 1.0 / num_workers_**2
    if config.slack_scaling == "workers_squared":
        return (moves + slack) * scale
    return moves * scale + slack


def _push(ring: jax.Array, value: ArrayLike) -> jax.Array:
    """Newest-first ring buffer of fixed length (length 0 stays empty)."""
    if ring.shape[0] == 0:
        return ring
    return jnp.roll(ring, 1).at[0].set(jnp.asarray(value, ring.dtype))


class CSGDState(NamedTuple):
    """State of :func:`csgd` as one worker sees it.

    Attributes:
      count: iteration k (replicated).
      recent_sq_moves: the last D - 1 (``move_window="lag"``: D) squared parameter moves,
        newest first (replicated).
      inner_state: state of the wrapped server optimizer (replicated).
      held_grads: the gradient the server holds for this worker (per worker).
      staleness: iterations since this worker last uploaded (per worker).
      uploads: cumulative uploads of this worker (per worker).
      sent: whether this worker uploaded at the last iteration (per worker).
    """

    count: jax.Array  # type: ignore[assignment]  # (a field named like tuple.count)
    recent_sq_moves: jax.Array
    inner_state: optax.OptState
    held_grads: optax.Updates
    staleness: jax.Array
    uploads: jax.Array
    sent: jax.Array


# Fields whose value differs between workers; the others are replicated.
PER_WORKER_FIELDS = ("held_grads", "staleness", "uploads", "sent")


def csgd(
    optimizer: optax.GradientTransformation,
    config: CensorConfig,
    axis_name: Hashable = "workers",
) -> optax.GradientTransformationExtraArgs:
    """Communication-censored distributed SGD around any optax server update [CSGD].

    Call ``update`` per worker with that worker's mini-batch gradient, inside a mapped
    context binding ``axis_name``. Workers upload only informative gradients
    (:func:`censored_mean`); ``optimizer`` is applied to the mean of the gradients the
    server holds, so ``optax.sgd(alpha)`` reproduces the paper and any other transformation
    (e.g. ``aimcjax.optim.residual_learning``) is distributed the same way. The returned
    updates are replicated: every worker applies the same step.

    Args:
      optimizer: the server update (an optax transformation, extra args passed through).
      config: a :class:`CensorConfig` (mode ``"csgd"``, ``"lag"`` or ``"sgd"``).
      axis_name: the mapped axis enumerating the workers.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with :class:`CSGDState`.

    Example:
      >>> tx = csgd(optax.sgd(0.2), CensorConfig(learning_rate=0.2, sigma0=1.0))
      >>> step = jax.vmap(lambda g, s, p: tx.update(g, s, p), axis_name="workers")

    References:
      [CSGD] Algorithm 1; baselines SGD (always upload) and LAG-S (sigma = 0) [LAG].
    """
    if not isinstance(config, CensorConfig):
        raise TypeError(f"config must be a CensorConfig, got {type(config).__name__}")
    optimizer = optax.with_extra_args_support(optimizer)

    def init_fn(params: optax.Params) -> CSGDState:
        zeros = jax.tree.map(jnp.zeros_like, params)
        return CSGDState(
            count=jnp.zeros([], jnp.int32),
            recent_sq_moves=jnp.zeros([move_window_length(config)], jnp.float32),
            inner_state=optimizer.init(params),
            held_grads=zeros,
            staleness=jnp.zeros([], jnp.int32),
            uploads=jnp.zeros([], jnp.int32),
            sent=jnp.zeros([], jnp.bool_),
        )

    def update_fn(
        grads: optax.Updates,
        state: CSGDState,
        params: optax.Params | None = None,
        **extra_args: Any,
    ) -> tuple[optax.Updates, CSGDState]:
        workers = num_workers(axis_name)
        force = jnp.logical_and(config.force_first_upload, state.count == 0)
        if config.mode == "sgd":
            force = jnp.bool_(True)
        if config.max_staleness is not None:
            force = force | (state.staleness >= config.max_staleness)
        tau = threshold(config, state.recent_sq_moves, state.count, workers)
        mean, held, sent = censored_mean(grads, state.held_grads, tau, axis_name, force=force)
        updates, inner_state = optimizer.update(mean, state.inner_state, params, **extra_args)
        move = _squared_norm(updates)
        new_state = CSGDState(
            count=state.count + 1,
            recent_sq_moves=_push(state.recent_sq_moves, move),
            inner_state=inner_state,
            held_grads=held,
            staleness=jnp.where(sent, 0, state.staleness + 1),
            uploads=state.uploads + sent.astype(jnp.int32),
            sent=sent,
        )
        return updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
