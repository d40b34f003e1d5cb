"""Plumbing shared by the analog optimizers: hyperparameters, masks, factors, 2-D tile views.

Every optimizer flattens ``params`` to leaves once; the per-leaf optimizer state lives in
params-shaped trees whose digital leaves hold :class:`optax.MaskedNode` (a pytree node
without leaves, so those trees checkpoint and shard like any other).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aimcjax import pulse
from aimcjax import tile as tile_lib
from aimcjax._typing import ArrayLike, KeyLike, PyTree, Shape
from aimcjax.devices import Device
from aimcjax.tile import Tile

MaskOrFn = Any  # pytree of bools (or a prefix of params) or a callable params -> such a tree


# ----------------------------------------------------------------------------------------
# hyperparameters


def concrete(value: object) -> np.ndarray | None:
    """``value`` as a numpy array when it is known at trace time, else None."""
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        return np.asarray(value)
    except Exception:
        return None


def check_rate(name: str, value: object) -> None:
    """A learning rate (float or schedule) must be finite and >= 0 where it is known now."""
    if callable(value):
        return
    arr = concrete(value)
    if arr is None:
        return
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be a float or an optax schedule, got {value!r}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def check_nonnegative(name: str, value: object) -> None:
    arr = concrete(value)
    if arr is None:
        return
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")


def check_fraction(name: str, value: object) -> float:
    """A static float in [0, 1] (it shapes a schedule, so it must be known at construction)."""
    arr = concrete(value)
    if arr is None:
        raise TypeError(f"{name} must be a static float in [0, 1]")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or arr.ndim != 0:
        raise TypeError(f"{name} must be a float in [0, 1], got {value!r}")
    if not np.isfinite(arr) or not 0 <= arr <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(arr)


def check_positive(name: str, value: object, allow_zero: bool = False) -> float:
    """A static, finite float > 0 (>= 0 with ``allow_zero``)."""
    arr = concrete(value)
    if arr is None:
        raise TypeError(f"{name} must be a static float")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or arr.ndim != 0:
        raise TypeError(f"{name} must be a float, got {value!r}")
    if not np.isfinite(arr) or arr < 0 or (arr == 0 and not allow_zero):
        raise ValueError(
            f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}"
        )
    return float(arr)


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return value


def static_int(
    name: str, value: object, allowed: Sequence[int] | None = None, minimum: int | None = None
) -> int:
    """An integer that shapes the computation, so it must be known when the optimizer is built.

    Under ``optax.inject_hyperparams`` numeric arguments become traced state; name such
    arguments in ``static_args`` there.
    """
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{name} must be a static Python int (with optax.inject_hyperparams, "
            f"pass static_args=({name!r},))"
        )
    arr = np.asarray(value)
    if (
        arr.ndim != 0
        or arr.dtype == bool
        or not np.issubdtype(arr.dtype, np.number)
        or arr != np.round(arr)
    ):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    out = int(arr)
    if allowed is not None and out not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return out


def check_device(name: str, device: object) -> None:
    if not isinstance(device, Device):
        raise TypeError(f"{name} must be an aimcjax device, got {type(device).__name__}")


def check_update_config(name: str, cfg: object) -> None:
    if not isinstance(cfg, pulse.UpdateConfig):
        raise TypeError(f"{name} must be an aimcjax.pulse.UpdateConfig, got {type(cfg).__name__}")


def rate_at(rate: optax.ScalarOrSchedule, count: jax.Array) -> jax.Array | float:
    """A float rate, or an optax schedule evaluated at ``count``."""
    return rate(count) if callable(rate) else rate


def as_raw_key(key: KeyLike | None) -> jax.Array:
    """An int seed or PRNG key (typed or raw) as a raw uint32 key, which checkpoints plainly.

    There is no default key: two optimizers built with the same default would share their
    device variation and pulse noise, which silently correlates runs meant to be independent.
    """
    if key is None:
        raise TypeError(
            "key is required: pass key= an int seed or a jax PRNG key (typed or raw) for the "
            "tiles' device variation and the pulse noise; optimizers meant to be independent "
            "need different keys"
        )
    if isinstance(key, bool):
        raise TypeError(f"key must be an int seed or a jax PRNG key, got {key!r}")
    key = tile_lib.as_key(key)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return key


# ----------------------------------------------------------------------------------------
# pytree paths, masks and factors


def _child(node: Any, key: Any) -> Any:
    if isinstance(key, jax.tree_util.DictKey):
        return node[key.key]
    if isinstance(key, jax.tree_util.SequenceKey):
        return node[key.idx]
    if isinstance(key, jax.tree_util.GetAttrKey):
        return getattr(node, key.name)
    if isinstance(key, jax.tree_util.FlattenedIndexKey):
        children = jax.tree_util.tree_flatten(node, is_leaf=lambda x: x is not node)[0]
        return children[key.key]
    raise TypeError(f"unsupported pytree key {key!r}")


def lookup(tree: PyTree, path: Sequence[Any], stop: Callable[[Any], bool] = lambda _: False) -> Any:
    """The subtree of ``tree`` at a params key path (stopping early where ``stop`` holds)."""
    node = tree
    for key in path:
        if stop(node):
            return node
        node = _child(node, key)
    return node


def _is_bool(x: object) -> bool:
    return isinstance(x, (bool, np.bool_)) or (
        hasattr(x, "dtype")
        and getattr(x, "shape", None) == ()
        and x.dtype == bool
        and not isinstance(x, jax.core.Tracer)
    )


def default_mask(params: PyTree) -> PyTree:
    """Analog by default: every leaf of rank >= 2 (kernels); biases and scalars stay digital."""
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


def flatten_params(params: PyTree) -> tuple[list[Any], list[Any], Any]:
    """Leaves of params with their key paths, and the treedef."""
    if params is None:
        raise ValueError("params are required: the analog optimizers read the weights in use")
    with_path, treedef = jax.tree_util.tree_flatten_with_path(unbox(params))
    return [p for p, _ in with_path], [leaf for _, leaf in with_path], treedef


def unbox(params: PyTree) -> PyTree:
    """params with each flax nnx ``Variable`` replaced by its value (duck-typed: optim does not
    depend on flax). nnx.Optimizer passes boxed params to ``init``; a state built on them would
    hold a Variable around each Tile, which nnx.Optimizer flattens into a dict after its first
    update (the leaf would then turn digital). Unboxed, the state holds plain Tiles."""

    def is_box(x: object) -> bool:
        return hasattr(x, "get_value") and hasattr(x, "get_metadata") and hasattr(x, "set_value")

    return jax.tree.map(lambda x: x.get_value() if is_box(x) else x, params, is_leaf=is_box)


def analog_flags(params: PyTree, mask: MaskOrFn) -> list[bool]:
    """Which leaves of ``params`` are analog, validated (one bool per flattened leaf)."""
    paths, leaves, _ = flatten_params(params)
    params = unbox(params)
    mask_tree = default_mask(params) if mask is None else (mask(params) if callable(mask) else mask)
    flags = []
    for path, leaf in zip(paths, leaves):
        try:
            flag = lookup(mask_tree, path, stop=_is_bool)
        except (KeyError, IndexError, AttributeError, TypeError):
            raise ValueError(
                f"mask has no entry for params leaf {jax.tree_util.keystr(path)}"
            ) from None
        if not _is_bool(flag):
            raise TypeError(
                f"mask must hold a bool for params leaf {jax.tree_util.keystr(path)}, got {type(flag).__name__}"
            )
        flag = bool(flag)
        if flag:
            if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
                raise TypeError(
                    f"mask marks params leaf {jax.tree_util.keystr(path)} analog, but it is not an array "
                    f"({type(leaf).__name__})"
                )
            if jnp.ndim(leaf) < 1:
                raise ValueError(
                    f"mask marks params leaf {jax.tree_util.keystr(path)} analog, but a scalar cannot be "
                    "a crossbar array (analog leaves need rank >= 1)"
                )
            if not jnp.issubdtype(leaf.dtype, jnp.floating):
                raise TypeError(
                    f"mask marks params leaf {jax.tree_util.keystr(path)} analog, but its dtype "
                    f"{leaf.dtype} is not floating"
                )
        flags.append(flag)
    return flags


def is_analog(node: object) -> bool:
    return isinstance(node, Tile)


def per_leaf(treedef: Any, tree: PyTree) -> list[Any]:
    """The params-level entries of a params-shaped state tree (a Tile, array or MaskedNode each)."""
    return treedef.flatten_up_to(tree)


def leaf_factors(
    factors: PyTree, paths: Sequence[Any], flags: Sequence[bool], needed: bool
) -> list[Any]:
    """Per-leaf ``(x, d)`` from the ``factors`` tree (None where digital or not needed)."""
    if not needed:
        return [None] * len(paths)
    if factors is None:
        raise ValueError(
            'factors are required when the update mode is "outer": '
            "update(grads, state, params, factors=...) with (x, d) per analog leaf"
        )
    out: list[Any] = []
    for path, flag in zip(paths, flags):
        if not flag:
            out.append(None)
            continue
        try:
            entry = lookup(factors, path)
        except (KeyError, IndexError, AttributeError, TypeError):
            raise ValueError(
                f"factors has no (x, d) for analog leaf {jax.tree_util.keystr(path)}"
            ) from None
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
            raise ValueError(
                f"factors for analog leaf {jax.tree_util.keystr(path)} must be a pair (x, d), got {type(entry).__name__}"
            )
        out.append(tuple(entry))
    return out


def check_factors(path: Any, shape: Shape, x: ArrayLike, d: ArrayLike) -> None:
    n_in, n_out = tile_lib.matrix_shape(shape)
    where = jax.tree_util.keystr(path)
    x_shape, d_shape = jnp.shape(x), jnp.shape(d)
    if len(x_shape) != 2 or x_shape[1] != n_in:
        raise ValueError(
            f"factors x for leaf {where} must have shape (batch, {n_in}) "
            f"(kernel {tuple(shape)} viewed as ({n_in}, {n_out})), got {x_shape}"
        )
    if len(d_shape) != 2 or d_shape[1] != n_out:
        raise ValueError(
            f"factors d for leaf {where} must have shape (batch, {n_out}) "
            f"(kernel {tuple(shape)} viewed as ({n_in}, {n_out})), got {d_shape}"
        )
    if x_shape[0] != d_shape[0]:
        raise ValueError(
            f"factors x and d for leaf {where} need the same batch size, got {x_shape[0]} and {d_shape[0]}"
        )


def check_grad(path: Any, param: ArrayLike, grad: ArrayLike) -> None:
    if jnp.shape(grad) != jnp.shape(param):
        raise ValueError(
            f"grads for leaf {jax.tree_util.keystr(path)} have shape {jnp.shape(grad)}, "
            f"params {jnp.shape(param)}"
        )


# ----------------------------------------------------------------------------------------
# tiles


def as_matrix(t: Tile) -> Tile:
    """The (inputs, outputs) view of a tile (kernels of rank > 2 flatten their leading dims)."""
    shape2 = tile_lib.matrix_shape(t.w.shape)
    return Tile(*(f.reshape(shape2) for f in t))


def reshape_tile(t: Tile, shape: Shape) -> Tile:
    return Tile(*(f.reshape(shape) for f in t))


def write(
    t2: Tile,
    device: Device,
    grad2: jax.Array,
    factor: tuple[jax.Array, jax.Array] | None,
    lr: jax.Array | float,
    key: jax.Array,
    cfg: pulse.UpdateConfig,
) -> Tile:
    """The analog gradient step ``T <- analog_update(T, -lr * g)`` on a 2-D tile view.

    In "outer" mode the per-sample factors fire rank-1 pulse trains; otherwise the requested
    change ``-lr * g`` goes through :func:`aimcjax.pulse.update`.
    """
    if cfg.mode == "outer":
        assert factor is not None, 'the caller passes factors in "outer" mode'
        x, d = factor
        return pulse.outer_update(t2, device, x, d, lr, key, cfg)
    return pulse.update(t2, device, -lr * grad2, key, cfg)


def sgd_update(grad: jax.Array, lr: jax.Array | float, param: ArrayLike) -> jax.Array:
    """Digital leaves: plain SGD at the analog rate."""
    return (-lr * grad).astype(jnp.result_type(param))


def split_key(key: jax.Array, n: int) -> tuple[jax.Array, list[jax.Array]]:
    keys = jax.random.split(key, n + 1)
    return keys[0], list(keys[1:])


masked_node = optax.MaskedNode


def num_lines(shape: Shape) -> int:
    """Input lines of a kernel: rows of its (prod(leading), out) view."""
    return tile_lib.matrix_shape(shape)[0]


# ----------------------------------------------------------------------------------------
# checks that hold under jit: non-finite inputs, params in sync with the tiles, factors


def fail_if(pred: ArrayLike, message: str, exc: type[Exception] = ValueError) -> None:
    """Raise ``exc(message)`` where ``pred`` holds: at once when it is known, else from the
    compiled step (a host callback run only on failure; under ``vmap`` on any member)."""
    value = concrete(pred)
    if value is not None:
        if np.any(value):
            raise exc(message)
        return

    def raise_if(bad: np.ndarray) -> None:
        if np.any(bad):
            raise exc(message)

    jax.lax.cond(jnp.any(pred), lambda: jax.debug.callback(raise_if, pred), lambda: None)


def _float_arrays(leaves: Sequence[Any]) -> list[Any]:
    return [
        a for a in leaves if hasattr(a, "dtype") and jnp.issubdtype(jnp.result_type(a), jnp.inexact)
    ]


def all_finite(grad_leaves: Sequence[Any], per_factors: Sequence[Any]) -> jax.Array:
    """Whether every gradient and every factor is finite (a scalar bool)."""
    arrays = _float_arrays(grad_leaves) + _float_arrays(
        [a for f in per_factors if f is not None for a in f]
    )
    if not arrays:
        return jnp.asarray(True)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in arrays]))


def zero_if(pred: ArrayLike, x: ArrayLike) -> jax.Array:
    """``x`` with zeros where (scalar) ``pred`` holds; ``x`` bit for bit otherwise."""
    return jnp.where(pred, jnp.zeros_like(x), x)


def select_tree(pred: ArrayLike, on_true: PyTree, on_false: PyTree) -> PyTree:
    """``on_true`` where (scalar) ``pred`` holds, else ``on_false`` (same structure)."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def check_in_sync(path: Any, param: jax.Array, count: jax.Array, visible: jax.Array) -> None:
    """After the first step, params must be the tiles' visible weights (up to the rounding of
    ``params + (visible - params)``, 16 eps of the leaf's largest magnitude): anything else means a transformation chained after the
    analog one changed its updates, and params would silently drift from the hardware."""
    dtype = jnp.result_type(param)
    finfo = jnp.finfo(dtype)
    # p + (w - p) rounds at the scale of the update as well as of the weight, and an update
    # can exceed a small weight: the tolerance is relative to the leaf's largest magnitude.
    tol = (
        16 * finfo.eps * jnp.maximum(jnp.max(jnp.abs(param)), jnp.max(jnp.abs(visible)))
        + finfo.tiny
    )
    drift = jnp.abs(param - visible)
    fail_if(
        (count > 0) & jnp.any(drift > tol),
        f"params of analog leaf {jax.tree_util.keystr(path)} differ from the weights on its tiles: "
        "a transformation chained after the analog one changed its updates (the analog transformation "
        "must be the last one that changes updates: optax.chain(optax.clip(...), analog) works, "
        "optax.chain(analog, optax.scale(...)) does not), or params were changed outside the optimizer",
    )


def check_factors_match(path: Any, grad: ArrayLike, factor: Sequence[ArrayLike]) -> None:
    """In "outer" mode the pulses come from the factors (x, d), not from the gradient; the
    gradient must then be their outer-product sum, or a transformation before the analog one
    (clipping, scaling, ``optax.MultiSteps`` averaging) would be silently ignored."""
    x, d = (jnp.asarray(a, jnp.float32) for a in factor)
    hi = jax.lax.Precision.HIGHEST
    want = jnp.matmul(x.T, d, precision=hi)
    scale = jnp.matmul(jnp.abs(x).T, jnp.abs(d), precision=hi)
    g = jnp.asarray(grad, jnp.float32).reshape(want.shape)
    rtol = max(1e-2, 64 * float(jnp.finfo(jnp.result_type(grad)).eps))
    fail_if(
        jnp.any(jnp.abs(g - want) > rtol * scale + jnp.finfo(jnp.float32).tiny),
        f'grads of analog leaf {jax.tree_util.keystr(path)} are not sum_b x_b d_b^T of its factors: in "outer" '
        "mode the pulses come from the factors, so a transformation that changes the gradient before the "
        "analog one (clipping, scaling, optax.MultiSteps averaging over mini-steps) would be silently "
        'ignored; apply it to the factors, or use a mode other than "outer"',
    )
