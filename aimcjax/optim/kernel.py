"""The one kernel behind every analog optimizer: stores, a gradient write, transfers.

Each analog leaf (a kernel of params) lives on a chain of stores, slowest first: analog
arrays ``T_0`` (the main array W), ``T_1``, ..., ``T_(n-1)``, and for mixed precision a
digital accumulator after them. Each step:

    the gradient g (taken at the visible weights, the params) is written into the last store
    for j = last, ..., 1 (fast to slow), every ``transfer_every[j-1]`` steps:
        read some input lines of store j (one one-hot vector per line), and let the transfer
        rule (:mod:`aimcjax.optim.transfer`) move store j - 1 by what was read

and the visible weights are ``T_0 + sum_k gamma^k * c_k ⊙ T_k`` (``c_k`` the chopper signs
where the rule chops, else 1). The returned updates are ``visible - params``, so
``optax.apply_updates`` keeps the params equal to the visible weights without drift.

Analog SGD is one store and no transfer; residual learning, Tiki-Taka, TTv2, c-TTv2 and AGAD
are two arrays with different rules; multi-tile residual learning is n arrays; mixed precision
is one array and a digital accumulator. The aliases in :mod:`aimcjax.optim.alias` pick them.

Non-finite inputs (see ``docs/architecture.md``): a step whose gradients or factors hold a NaN
or an infinity changes nothing (no tile, buffer or chopper moves, the key and count stay) and
returns updates that keep params at the visible weights (zero when in sync); ``AnalogState.notfinite_count`` counts such steps, as
``optax.apply_if_finite`` does. :func:`aimcjax.optim.checked` raises at the first one instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from aimcjax import pulse
from aimcjax import tile as tile_lib
from aimcjax.devices import Device
from aimcjax.optim import _common as common
from aimcjax.optim._read import make_reader
from aimcjax.optim.transfer import LEAF_SHAPED, Direct, LeafAux, Line

__all__ = ["AnalogState", "analog_kernel"]

TRANSFERS = ("full", "column")
GRANULARITIES = ("average", "own")


class AnalogState(NamedTuple):
    """State of every analog optimizer (params-shaped trees hold ``optax.MaskedNode()`` at
    digital leaves).

    Attributes:
      count: number of finite updates so far (int32); transfers and line cycles follow it.
      key: raw PRNG key for the next update.
      tiles: tuple of params-shaped trees of :class:`aimcjax.tile.Tile`, slowest first:
        ``tiles[0]`` is the main array W, ``tiles[-1]`` the fastest analog array.
      transfer: one :class:`aimcjax.optim.transfer.LeafAux` of params-shaped trees per
        transfer stage (``transfer[j-1]``: the stage from store j into array j - 1); fields a
        rule does not use are None.
      gamma: the gamma of the visible weights returned last (params must equal them).
      notfinite_count: number of updates skipped because a gradient or factor was not finite.
    """

    count: jax.Array
    key: jax.Array
    tiles: tuple
    transfer: tuple
    gamma: jax.Array
    notfinite_count: jax.Array


def default_transfer_update(update: pulse.UpdateConfig) -> pulse.UpdateConfig:
    """aihwkit's transfer writes: the gradient writes' pulse type with BL 31 and update (BL)
    management, so a transfer moves W by at most 31 dw_min per element and line."""
    import dataclasses

    return dataclasses.replace(update, bl=31, update_management=True, update_bl_management=True)


def _per_stage(name, value, n_stages, check):
    """A scalar, or one value per transfer stage (stage j moves store j into array j-1)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_stages:
            raise ValueError(
                f"{name} needs one value per transfer stage ({n_stages}), got {len(value)}"
            )
        values = list(value)
    else:
        values = [value] * n_stages
    return [
        check(f"{name}[{j}]" if isinstance(value, (list, tuple)) else name, v)
        for j, v in enumerate(values)
    ]


def _checked_rate(name, value):
    common.check_rate(name, value)
    return value


def _line_rows(count, every: int, n_in: int, transfer: str):
    """The input lines a transfer reads: all, or one per transfer cycling (aihwkit's order)."""
    if transfer == "full":
        return jnp.arange(n_in)
    return ((((count + 1) // every) - 1) % n_in)[None]


def _aux_view(aux: LeafAux, shape) -> LeafAux:
    """``aux`` with its leaf-shaped fields reshaped (to the 2-D view and back)."""
    return aux._replace(
        **{f: getattr(aux, f).reshape(shape) for f in LEAF_SHAPED if getattr(aux, f) is not None}
    )


def _zip_leaves(treedef, n_leaves: int, trees: LeafAux) -> list[LeafAux]:
    """A LeafAux of params-shaped trees as one LeafAux per leaf (the per-leaf view)."""
    columns = {f: common.per_leaf(treedef, t) for f, t in trees._asdict().items() if t is not None}
    return [LeafAux(**{f: col[i] for f, col in columns.items()}) for i in range(n_leaves)]


def _unzip_leaves(treedef, per_leaf: list[LeafAux], fields) -> LeafAux:
    """One LeafAux per leaf back as a LeafAux of params-shaped trees (the given fields)."""
    return LeafAux(**{f: treedef.unflatten([getattr(a, f) for a in per_leaf]) for f in fields})


def _train_granularity_scale(devices: Sequence[Device], how: str, outer: bool):
    """aihwkit sizes the gradient's pulse trains into a transfer compound's fast array with the
    compound's granularity, the average over its devices; the pulses themselves move the fast
    array by its own dw_min. The trains depend on lr / g only (g = ``update_granularity()``,
    what outer_update balances with), so the average is the rate scaled by
    ``g(fast) / mean(g)`` (exactly 1 when all devices agree).

    Returns None when the scale is 1 by construction, else a scalar array: the devices'
    parameters may be traced (a vmapped sweep over device configurations)."""
    if not outer or how == "own" or len(devices) < 2:
        return None
    dws = jnp.stack([jnp.asarray(d.update_granularity(), jnp.float32) for d in devices])
    return jnp.where(jnp.all(dws == dws[-1]), 1.0, dws[-1] / jnp.mean(dws))


def analog_kernel(
    learning_rate: optax.ScalarOrSchedule,
    device: Device,
    *,
    key,
    n_tiles: int = 1,
    rule=None,
    transfer_lr=0.0,
    gamma=0.0,
    residual_device: Device | None = None,
    zero_shift: bool = False,
    transfer: str = "full",
    transfer_every=1,
    read=None,
    update: pulse.UpdateConfig | None = None,
    transfer_update: pulse.UpdateConfig | None = None,
    gradient_granularity: str = "average",
    mask: common.MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
    """The analog optimizer kernel; the public algorithms are aliases of it (see module doc).

    Args:
      learning_rate: alpha, rate of the gradient writes into the last store (float or schedule).
      device: device of the main array W (and of the other arrays unless ``residual_device``).
      key: int seed or PRNG key (typed or raw) for the tiles, pulse noise and reads.
      n_tiles: number of analog arrays (>= 1).
      rule: the transfer rule (:mod:`aimcjax.optim.transfer`); None without transfers.
      transfer_lr: beta, per stage or one for all (float or schedule).
      gamma: the visible weight is ``sum_k gamma**k c_k ⊙ T_k`` (>= 0).
      residual_device: device of the arrays 1..n-1.
      zero_shift: reference the arrays 1..n-1 at each element's symmetric point.
      transfer: "full" (all input lines per transfer) or "column" (one line, cycling).
      transfer_every: steps between transfers, per stage or one for all (>= 1).
      read: how a store is read for a transfer (see :func:`aimcjax.optim._read.make_reader`).
      update: :class:`aimcjax.pulse.UpdateConfig` of the gradient writes (default: "pulse").
      transfer_update: UpdateConfig of the transfer writes (default:
        :func:`default_transfer_update` of ``update``).
      gradient_granularity: "average" (aihwkit: in "outer" mode the gradient's pulse trains
        into the fast array are sized with the mean dw_min of all arrays) or "own".
      mask: pytree of bools or callable marking analog leaves (default: rank >= 2).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`AnalogState`.
    """
    common.check_rate("learning_rate", learning_rate)
    common.check_device("device", device)
    key = common.as_raw_key(key)
    n_tiles = common.static_int("n_tiles", n_tiles, minimum=1)
    common.check_nonnegative("gamma", gamma)
    residual_device = device if residual_device is None else residual_device
    common.check_device("residual_device", residual_device)
    if not isinstance(zero_shift, bool):
        raise TypeError(f"zero_shift must be a bool, got {zero_shift!r}")
    if transfer not in TRANSFERS:
        raise ValueError(f"transfer must be one of {TRANSFERS}, got {transfer!r}")
    if gradient_granularity not in GRANULARITIES:
        raise ValueError(
            f"gradient_granularity must be one of {GRANULARITIES}, got {gradient_granularity!r}"
        )
    update = pulse.UpdateConfig() if update is None else update
    common.check_update_config("update", update)
    if transfer_update is None:
        transfer_update = default_transfer_update(update)
    common.check_update_config("transfer_update", transfer_update)
    rule = Direct() if rule is None else rule
    digital = rule.digital_source
    n_stages = n_tiles - 1 + int(digital)
    betas = _per_stage("transfer_lr", transfer_lr, n_stages, _checked_rate)
    periods = _per_stage(
        "transfer_every", transfer_every, n_stages, lambda n, v: common.static_int(n, v, minimum=1)
    )
    reader = make_reader(read)
    devices = [device] + [residual_device] * (n_tiles - 1)
    outer = update.mode == "outer"
    alpha_scale = _train_granularity_scale(devices, gradient_granularity, outer)
    # Mixed precision uses factors when given (to quantize them); the others in "outer" mode.
    factors_needed = outer or (digital and (rule.n_x_bins > 0 or rule.n_d_bins > 0))
    # The fields of LeafAux this rule keeps (digital leaves hold MaskedNode in exactly these).
    aux_fields = [
        f for f, v in rule.init((1, 1), 1, jnp.float32)._asdict().items() if v is not None
    ]

    def init_fn(params):
        _, leaves, treedef = common.flatten_params(params)
        flags = common.analog_flags(params, mask)
        key_state, keys = common.split_key(key, len(leaves))
        tiles = [[] for _ in range(n_tiles)]
        auxes = [[] for _ in range(n_stages)]
        for k, p, flag in zip(keys, leaves, flags):
            tile_keys = [k] if n_tiles == 1 else list(jax.random.split(k, n_tiles))
            for i in range(n_tiles):
                if not flag:
                    tiles[i].append(common.masked_node())
                elif i == 0:
                    tiles[i].append(tile_lib.init(tile_keys[0], device, p.shape, w0=p))
                else:
                    tiles[i].append(
                        tile_lib.init(
                            tile_keys[i],
                            residual_device,
                            p.shape,
                            w0=jnp.zeros_like(p),
                            zero_shift=zero_shift,
                        )
                    )
            for j in range(n_stages):
                if not flag:
                    auxes[j].append(LeafAux(**{f: common.masked_node() for f in aux_fields}))
                else:
                    auxes[j].append(rule.init(p.shape, common.num_lines(p.shape), p.dtype))
        aux_trees = tuple(_unzip_leaves(treedef, a, aux_fields) for a in auxes)
        return AnalogState(
            count=jnp.zeros([], jnp.int32),
            key=key_state,
            tiles=tuple(treedef.unflatten(t) for t in tiles),
            transfer=aux_trees,
            gamma=jnp.asarray(gamma, jnp.float32),
            notfinite_count=jnp.zeros([], jnp.int32),
        )

    def visible(tiles2, auxes, shape, gamma=gamma):
        """The visible weights of one leaf from its 2-D tile views and stage states."""
        mixed = tile_lib.weights(tiles2[0]).reshape(shape)
        for t in range(1, n_tiles):
            w = tile_lib.weights(tiles2[t])
            signs = rule.signs(auxes[t - 1])
            if signs is not None:  # the chopper's correction: T_t holds the gradient times c
                w = signs[:, None] * w
            coeff = gamma if t == 1 else gamma**t
            mixed = mixed + coeff * w.reshape(shape)
        return mixed

    def stage(dst, src, aux, rows, beta, k_stage, j):
        """Transfer stage j: read the lines of store j, let the rule move array j - 1."""
        k_read, k_write = jax.random.split(k_stage)
        k_chop = jax.random.fold_in(
            k_stage, 1
        )  # an extra stream; leaves the read/write keys as they are
        values = None
        if src is not None:
            one_hot = jax.nn.one_hot(rows, src.w.shape[0], dtype=src.w.dtype)  # (k, in)
            values = reader(tile_lib.weights(src), one_hot, k_read)  # (k, out)
        period = periods[j - 1] * (dst.w.shape[0] if transfer == "column" else 1)
        line = Line(devices[j - 1], rows, beta, period, transfer_update, k_write, k_chop)
        return rule.transfer(dst, aux, values, line)

    def leaf_step(p, g, tiles, auxes, f, k, count, alpha, stage_betas):
        """One analog leaf: gradient write, transfers fast to slow; returns (tiles, auxes, visible)."""
        shape2 = tile_lib.matrix_shape(p.shape)
        T2 = [common.as_matrix(t) for t in tiles]
        A2 = [_aux_view(a, shape2) for a in auxes]
        step_keys = [k] if n_stages == 0 else list(jax.random.split(k, n_stages + 1))
        g2 = g.reshape(shape2)
        if digital:
            A2[-1] = rule.accumulate(A2[-1], g2, f, alpha, step_keys[0])
        else:
            signs = rule.signs(A2[-1]) if n_stages else None
            if signs is not None:
                g2 = signs[:, None] * g2
                if f is not None:
                    x, d = f
                    f = (jnp.asarray(x) * signs[None, :].astype(jnp.result_type(x)), d)
            T2[-1] = common.write(
                T2[-1],
                devices[-1],
                g2,
                f,
                alpha if alpha_scale is None else alpha * alpha_scale,
                step_keys[0],
                update,
            )
        for j in range(n_stages, 0, -1):
            every = periods[j - 1]
            rows = _line_rows(count, every, shape2[0], "full" if digital else transfer)

            def run(operands, j=j, rows=rows, k_stage=step_keys[j]):
                dst, src, aux = operands
                return stage(dst, src, aux, rows, stage_betas[j - 1], k_stage, j)

            src = T2[j] if j < n_tiles else None
            if every == 1:
                T2[j - 1], A2[j - 1] = run((T2[j - 1], src, A2[j - 1]))
            else:
                T2[j - 1], A2[j - 1] = jax.lax.cond(
                    (count + 1) % every == 0,
                    run,
                    lambda o: (o[0], o[2]),
                    (T2[j - 1], src, A2[j - 1]),
                )
        new_tiles = [common.reshape_tile(t, p.shape) for t in T2]
        new_auxes = [_aux_view(a, p.shape) for a in A2]
        return new_tiles, new_auxes, visible(T2, A2, p.shape)

    def update_fn(updates, state, params=None, *, factors=None, **extra_args):
        del extra_args
        grads = updates
        paths, leaves, treedef = common.flatten_params(params)
        grad_leaves = treedef.flatten_up_to(grads)
        per_tile = [common.per_leaf(treedef, t) for t in state.tiles]
        flags = [common.is_analog(t) for t in per_tile[0]]
        per_aux = [_zip_leaves(treedef, len(leaves), a) for a in state.transfer]
        if factors_needed and factors is None:
            raise ValueError(
                'factors are required (update mode "outer", or mixed precision with n_x_bins / '
                "n_d_bins > 0): update(grads, state, params, factors=...) with (x, d) per analog leaf"
            )
        use_factors = outer or (digital and factors is not None)
        per_factors = common.leaf_factors(factors, paths, flags, needed=use_factors)
        for path, p, g, f, flag in zip(paths, leaves, grad_leaves, per_factors, flags):
            common.check_grad(path, p, g)
            if flag and f is not None:
                common.check_factors(path, p.shape, *f)

        # The NaN/inf policy: a step with a non-finite gradient or factor changes nothing.
        finite = common.all_finite(grad_leaves, per_factors)
        grad_leaves = [common.zero_if(~finite, g) for g in grad_leaves]
        per_factors = [
            None if f is None else tuple(common.zero_if(~finite, a) for a in f) for f in per_factors
        ]

        count = state.count
        alpha = common.rate_at(learning_rate, count)
        stage_betas = [common.rate_at(b, count) for b in betas]
        key_state, keys = common.split_key(state.key, len(leaves))

        new_tiles = [[] for _ in range(n_tiles)]
        new_aux = [[] for _ in range(n_stages)]
        out = []
        for i, (path, p, g, f, k) in enumerate(zip(paths, leaves, grad_leaves, per_factors, keys)):
            tiles_i = [per_tile[t][i] for t in range(n_tiles)]
            auxes_i = [per_aux[j][i] for j in range(n_stages)]
            if not flags[i]:
                for t in range(n_tiles):
                    new_tiles[t].append(tiles_i[t])
                for j in range(n_stages):
                    new_aux[j].append(auxes_i[j])
                out.append(common.sgd_update(g, alpha, p))
                continue
            shape2 = tile_lib.matrix_shape(p.shape)
            before = visible(
                [common.as_matrix(t) for t in tiles_i],
                [_aux_view(a, shape2) for a in auxes_i],
                p.shape,
                state.gamma.astype(p.dtype),
            )
            common.check_in_sync(path, p, count, before)
            if outer and f is not None:
                common.check_factors_match(path, g, f)
            tiles_i, auxes_i, after = leaf_step(
                p, g, tiles_i, auxes_i, f, k, count, alpha, stage_betas
            )
            for t in range(n_tiles):
                new_tiles[t].append(tiles_i[t])
            for j in range(n_stages):
                new_aux[j].append(auxes_i[j])
            # A skipped step returns params to the visible weights it keeps (a zero update up
            # to rounding); selecting before the subtraction leaves the finite arithmetic as is.
            out.append((jnp.where(finite, after, before) - p).astype(p.dtype))

        new_state = AnalogState(
            count=count + 1,
            key=key_state,
            tiles=tuple(treedef.unflatten(t) for t in new_tiles),
            transfer=tuple(_unzip_leaves(treedef, a, aux_fields) for a in new_aux),
            gamma=jnp.asarray(gamma, jnp.float32),
            notfinite_count=state.notfinite_count,
        )
        new_state = common.select_tree(finite, new_state, state)
        new_state = new_state._replace(
            notfinite_count=state.notfinite_count + (~finite).astype(jnp.int32)
        )
        return treedef.unflatten(out), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
