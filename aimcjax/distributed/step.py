"""Training steps that run :func:`~aimcjax.distributed.censor.csgd` over JAX workers.

Three interchangeable backends, one per-worker step function:

* ``"vmap"``: all workers simulated on one device (``jax.vmap`` with ``axis_name``);
* ``"pmap"``: one worker per local device;
* ``"shard_map"``: one worker per device of a ``jax.sharding.Mesh`` axis, which may span
  several processes / hosts (after :func:`aimcjax.distributed.initialize`).

Layouts: with ``"vmap"`` and ``"pmap"`` every leaf of params and optimizer state carries a
leading worker axis (replicated leaves repeated, as usual with ``pmap``). With
``"shard_map"`` params and replicated state are stored once (``PartitionSpec()``) and only
per-worker state (held gradients, counters) carries the worker axis.

References:
  [CSGD] Li, Wu, Chen, Li, Ling. arXiv:1909.03631.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from aimcjax._typing import PyTree
from aimcjax.distributed.censor import PER_WORKER_FIELDS, CSGDState, num_workers

__all__ = [
    "StepMetrics",
    "TrainStep",
    "logical_bytes",
    "make_train_step",
    "split_among_workers",
    "state_partition_specs",
]

BACKENDS = ("vmap", "pmap", "shard_map")


class StepMetrics(NamedTuple):
    """Loss and communication accounting after one step (no worker axis unless stated).

    Attributes:
      loss: (M,) each worker's mini-batch loss at the pre-step parameters.
      sent: (M,) whether each worker uploaded this step.
      uploads: (M,) cumulative uploads per worker.
      bytes_up: logical bytes uploaded this step (uploads x gradient bytes).
      bytes_broadcast: logical bytes broadcast this step (the new parameters to M workers).
      total_uploads: cumulative uploads of all workers.
      total_bytes_up, total_bytes_broadcast: cumulative logical bytes.
      ratio_to_sgd: total_uploads / (M * iterations), i.e. 1 for SGD.
    """

    loss: jax.Array
    sent: jax.Array
    uploads: jax.Array
    bytes_up: jax.Array
    bytes_broadcast: jax.Array
    total_uploads: jax.Array
    total_bytes_up: jax.Array
    total_bytes_broadcast: jax.Array
    ratio_to_sgd: jax.Array


class TrainStep(NamedTuple):
    """What :func:`make_train_step` returns.

    Attributes:
      init: ``init(params) -> (params, opt_state)`` in the backend's layout.
      step: ``step(params, opt_state, batch, mask) -> (params, opt_state, StepMetrics)``;
        ``batch`` leaves are shaped (M, B, ...), ``mask`` (M, B) marks real examples.
      server_params: ``server_params(params)`` -> one host copy (numpy) of the parameters.
      num_workers: M.
      backend, axis_name, mesh: as configured (mesh is None except for ``"shard_map"``).
    """

    init: Callable[..., Any]
    step: Callable[..., Any]
    server_params: Callable[..., Any]
    num_workers: int
    backend: str
    axis_name: Any
    mesh: Any


def logical_bytes(tree: PyTree) -> int:
    """Bytes of a pytree of arrays as sent over the wire (size x itemsize, no framing)."""
    return int(sum(np.size(x) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def split_among_workers(tree: PyTree, num_workers_: int) -> PyTree:
    """Reshape every leaf from (N, ...) to (M, N / M, ...): contiguous blocks per worker.

    Shuffle first (with a seeded, stratified permutation when the data is ordered by class)
    if the blocks should be i.i.d.

    Raises:
      ValueError: if M does not divide N or the leaves disagree on N.
    """
    if isinstance(num_workers_, bool) or not isinstance(num_workers_, int) or num_workers_ < 1:
        raise ValueError(f"num_workers must be a positive int, got {num_workers_!r}")
    sizes = {np.shape(x)[0] for x in jax.tree.leaves(tree)}
    if len(sizes) != 1:
        raise ValueError(f"all leaves must have the same number of examples, got {sorted(sizes)}")
    (n,) = sizes
    if n % num_workers_:
        raise ValueError(
            f"num_workers ({num_workers_}) must divide the number of examples ({n}); "
            f"drop {n % num_workers_} examples or change the worker count"
        )
    return jax.tree.map(lambda x: x.reshape((num_workers_, n // num_workers_) + x.shape[1:]), tree)


def _find_csgd_state(opt_state: optax.OptState) -> CSGDState:
    found = [
        s
        for s in jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, CSGDState))
        if isinstance(s, CSGDState)
    ]
    if len(found) != 1:
        raise ValueError(
            "optimizer must contain exactly one aimcjax.distributed.csgd(...) transformation, "
            f"found {len(found)}"
        )
    return found[0]


def state_partition_specs(opt_state: optax.OptState, axis_name: Hashable) -> PyTree:
    """PartitionSpecs for an optimizer state containing :class:`CSGDState`.

    Per-worker fields get ``PartitionSpec(axis_name)`` (a leading worker axis), everything
    else ``PartitionSpec()`` (replicated).
    """

    def spec(node: Any) -> Any:
        if isinstance(node, CSGDState):
            fields = {}
            for name, value in node._asdict().items():
                if name in PER_WORKER_FIELDS:
                    fields[name] = jax.tree.map(lambda _: PartitionSpec(axis_name), value)
                else:
                    fields[name] = state_partition_specs(value, axis_name)
            return CSGDState(**fields)
        return PartitionSpec()

    return jax.tree.map(spec, opt_state, is_leaf=lambda s: isinstance(s, CSGDState))


def _per_worker_metrics(
    loss: jax.Array, opt_state: optax.OptState, params: optax.Params, axis_name: Hashable
) -> StepMetrics:
    """Gather per-worker numbers onto every worker (a one-hot psum: invariant everywhere)."""
    workers = num_workers(axis_name)
    onehot = jax.nn.one_hot(jax.lax.axis_index(axis_name), workers, dtype=jnp.int32)
    gather = lambda v: jax.lax.psum(onehot.astype(v.dtype) * v, axis_name)
    state = _find_csgd_state(opt_state)
    sent = gather(state.sent.astype(jnp.int32))
    uploads = gather(state.uploads)
    grad_bytes = float(logical_bytes(state.held_grads))
    broadcast_bytes = float(workers * logical_bytes(params))
    total_uploads = jnp.sum(uploads)
    iterations = state.count.astype(jnp.float32)
    return StepMetrics(
        loss=gather(loss),
        sent=sent.astype(jnp.bool_),
        uploads=uploads,
        bytes_up=jnp.sum(sent).astype(jnp.float32) * grad_bytes,
        bytes_broadcast=jnp.float32(broadcast_bytes),
        total_uploads=total_uploads,
        total_bytes_up=total_uploads.astype(jnp.float32) * grad_bytes,
        total_bytes_broadcast=iterations * broadcast_bytes,
        ratio_to_sgd=total_uploads.astype(jnp.float32) / (workers * iterations),
    )


def make_train_step(
    loss_fn: Callable[[Any, Any], jax.Array],
    optimizer: optax.GradientTransformation,
    *,
    backend: str = "pmap",
    axis_name: str = "workers",
    num_workers: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
) -> TrainStep:
    """A distributed training step: per-worker gradients, censored upload, server update.

    Args:
      loss_fn: ``loss_fn(params, example) -> scalar`` for ONE example (a pytree slice of
        the batch); the step averages it over the real (unmasked) examples of each worker.
      optimizer: an optax transformation containing exactly one
        ``csgd(..., axis_name=axis_name)``.
      backend: ``"pmap"``, ``"shard_map"`` or ``"vmap"`` (single-device simulation).
      axis_name: the worker axis; must match the one given to ``csgd`` (and be an axis of
        ``mesh`` for ``"shard_map"``).
      num_workers: M for ``"vmap"`` (required) and ``"pmap"`` (default: all local devices).
      mesh: for ``"shard_map"``; default a 1-D mesh over all (global) devices.

    Returns:
      A :class:`TrainStep`. The padded batch size may change between calls (each distinct
      shape compiles once): pad to :func:`~aimcjax.distributed.padded_batch_size`.

    Example:
      >>> from aimcjax import distributed as dist
      >>> tx = dist.csgd(optax.sgd(0.1), dist.CensorConfig(learning_rate=0.1, sigma0=1.0))
      >>> train = make_train_step(lambda p, ex: (ex["x"] @ p - ex["y"]) ** 2, tx,
      ...                         backend="vmap", num_workers=4)
      >>> params, state = train.init(jnp.zeros(3))
      >>> batch = {"x": np.ones((4, 2, 3), np.float32), "y": np.ones((4, 2), np.float32)}
      >>> params, state, metrics = train.step(params, state, batch, np.ones((4, 2), bool))
      >>> int(metrics.total_uploads), float(metrics.ratio_to_sgd)
      (4, 1.0)

    References:
      [CSGD] Algorithm 1.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable")
    if backend == "shard_map":
        if num_workers is not None:
            raise ValueError("num_workers is given by the mesh for backend='shard_map'")
        if mesh is None:
            mesh = jax.make_mesh((jax.device_count(),), (axis_name,))
        if axis_name not in mesh.axis_names:
            raise ValueError(
                f"axis_name {axis_name!r} is not an axis of the mesh {tuple(mesh.axis_names)}"
            )
        workers = mesh.shape[axis_name]
    else:
        if mesh is not None:
            raise ValueError(f"mesh is only used by backend='shard_map', not {backend!r}")
        if backend == "pmap":
            workers = jax.local_device_count() if num_workers is None else num_workers
            if workers > jax.local_device_count():
                raise ValueError(
                    f"num_workers ({workers}) exceeds the {jax.local_device_count()} local devices"
                )
        else:
            if num_workers is None:
                raise ValueError("num_workers is required for backend='vmap'")
            workers = num_workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"num_workers must be a positive int, got {workers!r}")

    def local_step(
        params: optax.Params,
        opt_state: optax.OptState,
        batch: PyTree,
        mask: jax.Array,
        vary: bool,
    ) -> tuple[optax.Params, optax.OptState, StepMetrics]:
        def batch_loss(p: optax.Params) -> jax.Array:
            losses = jax.vmap(loss_fn, in_axes=(None, 0))(p, batch)
            weights = mask.astype(losses.dtype)
            return jnp.sum(weights * losses) / jnp.maximum(jnp.sum(weights), 1)

        # Inside shard_map, the gradient w.r.t. replicated (invariant) params would be summed
        # over workers by JAX; differentiating a varying copy keeps each worker's own gradient.
        grad_at = (
            jax.tree.map(lambda x: jax.lax.pcast(x, axis_name, to="varying"), params)
            if vary
            else params
        )
        loss, grads = jax.value_and_grad(batch_loss)(grad_at)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        metrics = _per_worker_metrics(loss, opt_state, params, axis_name)
        return new_params, opt_state, metrics

    def check_batch(batch: PyTree, mask: Any) -> None:
        mask_shape = np.shape(mask)
        if len(mask_shape) != 2 or mask_shape[0] != workers:
            raise ValueError(
                f"mask must have shape (num_workers={workers}, batch), got {mask_shape}"
            )
        for leaf in jax.tree.leaves(batch):
            if np.shape(leaf)[:2] != mask_shape:
                raise ValueError(
                    f"batch leaves must start with (num_workers, batch) = {mask_shape}, "
                    f"got {np.shape(leaf)}"
                )

    if backend in ("vmap", "pmap"):
        mapped: Callable[..., Any] = lambda p, s, b, m: local_step(p, s, b, m, vary=False)
        if backend == "vmap":
            mapped = jax.jit(jax.vmap(mapped, axis_name=axis_name))
        else:
            mapped = jax.pmap(mapped, axis_name=axis_name, devices=jax.local_devices()[:workers])

        def mapped_init(params: optax.Params) -> tuple[optax.Params, optax.OptState]:
            opt_state = optimizer.init(params)
            _find_csgd_state(opt_state)
            stack = lambda x: jnp.broadcast_to(x, (workers,) + jnp.shape(x))
            return jax.tree.map(stack, params), jax.tree.map(stack, opt_state)

        def mapped_step(
            params: optax.Params, opt_state: optax.OptState, batch: PyTree, mask: Any
        ) -> tuple[optax.Params, optax.OptState, StepMetrics]:
            check_batch(batch, mask)
            params, opt_state, metrics = mapped(params, opt_state, batch, mask)
            return params, opt_state, jax.tree.map(lambda x: x[0], metrics)

        def mapped_server_params(params: optax.Params) -> PyTree:
            return jax.tree.map(lambda x: np.asarray(x[0]), params)

        # exposes the jitted function (cache size, lowering)
        mapped_step.compiled = mapped  # type: ignore[attr-defined]
        return TrainStep(
            mapped_init, mapped_step, mapped_server_params, workers, backend, axis_name, None
        )

    assert mesh is not None  # made above for "shard_map"

    replicated = NamedSharding(mesh, PartitionSpec())
    by_worker = NamedSharding(mesh, PartitionSpec(axis_name))

    def place(x: Any, sharding: jax.sharding.Sharding) -> jax.Array:
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return x
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        host = np.asarray(x)  # every process holds the same full host copy
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    def squeeze_worker(tree: PyTree, specs: PyTree) -> PyTree:
        return jax.tree.map(lambda x, s: x[0] if s == PartitionSpec(axis_name) else x, tree, specs)

    def expand_worker(tree: PyTree, specs: PyTree) -> PyTree:
        return jax.tree.map(
            lambda x, s: x[None] if s == PartitionSpec(axis_name) else x, tree, specs
        )

    compiled: dict[Any, Callable[..., Any]] = {}

    def mapped_for(opt_state: optax.OptState) -> tuple[Callable[..., Any], PyTree]:
        specs = state_partition_specs(opt_state, axis_name)
        key = jax.tree.structure(opt_state)
        if key not in compiled:

            def body(
                params: optax.Params, opt_state: optax.OptState, batch: PyTree, mask: jax.Array
            ) -> tuple[optax.Params, optax.OptState, StepMetrics]:
                local_state = squeeze_worker(opt_state, specs)
                params, local_state, metrics = local_step(
                    params, local_state, jax.tree.map(lambda x: x[0], batch), mask[0], vary=True
                )
                return params, expand_worker(local_state, specs), metrics

            compiled[key] = jax.jit(
                jax.shard_map(
                    body,
                    mesh=mesh,
                    in_specs=(
                        PartitionSpec(),
                        specs,
                        PartitionSpec(axis_name),
                        PartitionSpec(axis_name),
                    ),
                    out_specs=(PartitionSpec(), specs, PartitionSpec()),
                )
            )
        return compiled[key], specs

    def init(params: optax.Params) -> tuple[optax.Params, optax.OptState]:
        opt_state = optimizer.init(params)
        _find_csgd_state(opt_state)
        specs = state_partition_specs(opt_state, axis_name)
        stack = lambda x, s: (
            jnp.broadcast_to(x, (workers,) + jnp.shape(x)) if s == PartitionSpec(axis_name) else x
        )
        opt_state = jax.tree.map(stack, opt_state, specs)
        opt_state = jax.tree.map(lambda x, s: place(x, NamedSharding(mesh, s)), opt_state, specs)
        return jax.tree.map(lambda x: place(x, replicated), params), opt_state

    def step(
        params: optax.Params, opt_state: optax.OptState, batch: PyTree, mask: Any
    ) -> tuple[optax.Params, optax.OptState, StepMetrics]:
        check_batch(batch, mask)
        fn, _ = mapped_for(opt_state)
        batch = jax.tree.map(lambda x: place(x, by_worker), batch)
        return fn(params, opt_state, batch, place(mask, by_worker))

    def server_params(params: optax.Params) -> PyTree:
        return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), params)

    step.compiled = compiled  # type: ignore[attr-defined]
    return TrainStep(init, step, server_params, workers, "shard_map", axis_name, mesh)
