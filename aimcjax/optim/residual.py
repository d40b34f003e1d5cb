"""Residual learning, Tiki-Taka and TTv2: one kernel, two arrays, a transfer between them.

All three keep a fast residual array P that integrates the gradient and a main array W that
receives transfers of (a read of) P:

    P <- analog_update(P, -alpha * g)                      g taken at W + gamma * P
    version 1: W <- analog_update(W, beta * read(P))          (lines being transferred)
    version 2: H <- decay * H + beta * read(P);  n = trunc(H / dw_min(W)) capped at +-BL;
               fire n pulses on W;  H <- H - n * dw_min(W)

They differ only in parameters: residual learning [RF eqs. 10-11, 14-15] mixes gamma * P
into the weights and zero-shifts P; Tiki-Taka [TTv1] has gamma = 0, version 1, no zero
shift; TTv2 [TTv2; RF App. D] has gamma = 0 and a buffer that sums (decay 1) instead of the
exponential average of residual learning v2 (decay 1 - beta).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from aimcjax import pulse
from aimcjax import tile as tile_lib
from aimcjax.devices import Device
from aimcjax.optim import _common as common
from aimcjax.optim._read import make_reader
from aimcjax.tile import Tile

__all__ = ["ResidualLearningState", "residual_learning", "tiki_taka", "ttv2"]

TRANSFERS = ("full", "column")
_BUFFERS = ("ema", "sum")


class ResidualLearningState(NamedTuple):
    """State of :func:`residual_learning`, :func:`tiki_taka` and :func:`ttv2`.

    Attributes:
      count: number of updates so far (int32); transfers and the line cycle follow it.
      key: raw PRNG key for the next update.
      main: params-shaped tree: the main array W (a Tile) per analog leaf, else MaskedNode.
      residual: the residual array P per analog leaf, else MaskedNode.
      buffer: version 2: the digital transfer buffer H per analog leaf (shaped like the
        leaf), else MaskedNode; version 1: None.
    """

    count: jax.Array
    key: jax.Array
    main: Any
    residual: Any
    buffer: Any


def check_residual_args(gamma, device, residual_device, zero_shift, transfer):
    """Validate the arguments every residual-array algorithm shares; returns the residual
    array's device (``device`` when ``residual_device`` is None)."""
    common.check_nonnegative("gamma", gamma)
    common.check_device("device", device)
    residual_device = device if residual_device is None else residual_device
    common.check_device("residual_device", residual_device)
    if not isinstance(zero_shift, bool):
        raise TypeError(f"zero_shift must be a bool, got {zero_shift!r}")
    if transfer not in TRANSFERS:
        raise ValueError(f"transfer must be one of {TRANSFERS}, got {transfer!r}")
    return residual_device


def _default_transfer_update(update: pulse.UpdateConfig) -> pulse.UpdateConfig:
    # aihwkit's transfer writes: same pulse type as the gradient writes, BL 31 with update
    # (BL) management, so W moves at most 31 * dw_min per transfer and line.
    return dataclasses.replace(update, bl=31, update_management=True, update_bl_management=True)


def _residual_kernel(
    learning_rate,
    transfer_lr,
    gamma,
    device: Device,
    *,
    residual_device: Device | None,
    zero_shift: bool,
    transfer: str,
    transfer_every,
    version,
    buffer: str,
    read,
    update: pulse.UpdateConfig,
    transfer_update: pulse.UpdateConfig | None,
    mask,
    key,
) -> optax.GradientTransformationExtraArgs:
    common.check_rate("learning_rate", learning_rate)
    common.check_rate("transfer_lr", transfer_lr)
    residual_device = check_residual_args(gamma, device, residual_device, zero_shift, transfer)
    transfer_every = common.static_int("transfer_every", transfer_every, minimum=1)
    version = common.static_int("version", version, allowed=(1, 2))
    assert buffer in _BUFFERS
    common.check_update_config("update", update)
    if transfer_update is None:
        transfer_update = _default_transfer_update(update)
    common.check_update_config("transfer_update", transfer_update)
    reader = make_reader(read)
    gradient_outer = update.mode == "outer"
    transfer_outer = transfer_update.mode == "outer"

    def init_fn(params):
        paths, leaves, treedef = common.flatten_params(params)
        flags = common.analog_flags(params, mask)
        key_state, keys = common.split_key(common.as_raw_key(key), len(leaves))
        main, residual, buf = [], [], []
        for k, p, flag in zip(keys, leaves, flags):
            if not flag:
                main.append(common.masked_node())
                residual.append(common.masked_node())
                buf.append(common.masked_node())
                continue
            k_main, k_res = jax.random.split(k)
            main.append(tile_lib.init(k_main, device, p.shape, w0=p))
            residual.append(tile_lib.init(k_res, residual_device, p.shape, w0=jnp.zeros_like(p), zero_shift=zero_shift))
            buf.append(jnp.zeros_like(p))
        return ResidualLearningState(
            count=jnp.zeros([], jnp.int32),
            key=key_state,
            main=treedef.unflatten(main),
            residual=treedef.unflatten(residual),
            buffer=treedef.unflatten(buf) if version == 2 else None,
        )

    def _one_hot_outer_write(W2: Tile, rows, read_rows, beta, key) -> Tile:
        """As aihwkit's transfer: each read line i is one rank-1 sample (e_i, read(P)_i) of an
        "outer" write with rate beta, W <- W + beta e_i r_i^T.

        A one-hot sample only touches its own row, so applying the samples in sequence equals
        applying each to its row independently; we vmap over rows (one sample each) instead
        of scanning over a batch of one-hot samples.
        """
        row_tiles = Tile(*(f[rows][:, None, :] for f in W2))  # (k, 1, out)
        one = jnp.ones((1, 1), W2.w.dtype)

        def write_row(t_row, r_row, k):
            return pulse.outer_update(t_row, device, one, -r_row[None], beta, k, transfer_update)

        keys = jax.random.split(key, rows.shape[0])
        new_rows = jax.vmap(write_row)(row_tiles, read_rows, keys)
        return W2._replace(w=W2.w.at[rows].set(new_rows.w[:, 0, :]))

    def transfer_lines(W2: Tile, P2: Tile, H2, rows, beta, key):
        """Transfer the given input lines of P into W (2-D views); returns (W2, H2)."""
        n_in = P2.w.shape[0]
        dtype = P2.w.dtype
        k_read, k_write = jax.random.split(key)
        one_hot = jax.nn.one_hot(rows, n_in, dtype=dtype)  # (k, in)
        read_rows = reader(tile_lib.weights(P2), one_hot, k_read)  # (k, out)
        if version == 1:
            if transfer_outer:
                return _one_hot_outer_write(W2, rows, read_rows, beta, k_write), H2
            dW = jnp.zeros_like(W2.w).at[rows].set(beta * read_rows)
            return pulse.update(W2, device, dW, k_write, transfer_update), H2
        decay = (1 - beta) if buffer == "ema" else 1.0
        dw = jnp.asarray(device.dw_min, dtype)
        h = decay * H2[rows] + beta * read_rows
        W2, n = common.fire_buffer(W2, device, h, rows, dw, k_write, transfer_update)
        h = h - n * dw  # pulses beyond the cap stay in the buffer: nothing is lost
        return W2, H2.at[rows].set(h)

    def update_fn(grads, state, params=None, *, factors=None, **extra_args):
        del extra_args
        paths, leaves, treedef = common.flatten_params(params)
        grad_leaves = treedef.flatten_up_to(grads)
        mains = common.per_leaf(treedef, state.main)
        residuals = common.per_leaf(treedef, state.residual)
        buffers = common.per_leaf(treedef, state.buffer) if version == 2 else [None] * len(leaves)
        flags = [common.is_analog(t) for t in mains]
        per_factors = common.leaf_factors(factors, paths, flags, needed=gradient_outer)
        count = state.count
        alpha = common.rate_at(learning_rate, count)
        beta = common.rate_at(transfer_lr, count)
        key_state, keys = common.split_key(state.key, len(leaves))
        transfers_done = (count + 1) // transfer_every  # including this step's, if any
        do_transfer = (count + 1) % transfer_every == 0

        new_main, new_res, new_buf, updates = [], [], [], []
        for path, p, g, W, P, H, f, k in zip(paths, leaves, grad_leaves, mains, residuals, buffers, per_factors, keys):
            common.check_grad(path, p, g)
            if not common.is_analog(W):
                new_main.append(W)
                new_res.append(P)
                new_buf.append(H)
                updates.append(common.sgd_update(g, alpha, p))
                continue
            if gradient_outer:
                common.check_factors(path, p.shape, *f)
            shape2 = tile_lib.matrix_shape(p.shape)
            k_grad, k_transfer = jax.random.split(k)
            P2 = common.write(common.as_matrix(P), residual_device, g.reshape(shape2), f, alpha, k_grad, update)
            W2 = common.as_matrix(W)
            H2 = None if H is None else H.reshape(shape2)
            if transfer == "full":
                rows = jnp.arange(shape2[0])
            else:
                rows = ((transfers_done - 1) % shape2[0])[None]

            def run_transfer(operands, rows=rows, k_transfer=k_transfer):
                W2, P2, H2 = operands
                W2, H2 = transfer_lines(W2, P2, H2, rows, beta, k_transfer)
                return W2, H2

            if transfer_every == 1:
                W2, H2 = run_transfer((W2, P2, H2))
            else:
                W2, H2 = jax.lax.cond(do_transfer, run_transfer, lambda o: (o[0], o[2]), (W2, P2, H2))
            W, P = common.reshape_tile(W2, p.shape), common.reshape_tile(P2, p.shape)
            new_main.append(W)
            new_res.append(P)
            new_buf.append(None if H2 is None else H2.reshape(p.shape))
            mixed = tile_lib.weights(W) + gamma * tile_lib.weights(P)
            updates.append((mixed - p).astype(p.dtype))

        new_state = ResidualLearningState(
            count=count + 1,
            key=key_state,
            main=treedef.unflatten(new_main),
            residual=treedef.unflatten(new_res),
            buffer=treedef.unflatten(new_buf) if version == 2 else None,
        )
        return treedef.unflatten(updates), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def residual_learning(
    learning_rate: optax.ScalarOrSchedule,
    transfer_lr: optax.ScalarOrSchedule,
    gamma: float,
    device: Device,
    *,
    residual_device: Device | None = None,
    zero_shift: bool = True,
    transfer: str = "full",
    transfer_every: int = 1,
    version: int = 1,
    read=None,
    update: pulse.UpdateConfig = pulse.UpdateConfig(),
    transfer_update: pulse.UpdateConfig | None = None,
    mask: common.MaskOrFn = None,
    key=0,
) -> optax.GradientTransformationExtraArgs:
    """Residual learning on two analog arrays: a residual P and a main W [RF Alg. 1, v2 App. D].

    ``params`` are the mixed weights ``W + gamma * P`` that the forward pass uses, so the
    gradient is taken there. Each step writes the gradient into the zero-shifted residual
    array, ``P <- analog_update(P, -alpha * g)``, and then transfers (a read of) P into W:

    - version 1: ``W <- analog_update(W, beta * read(P))`` for all input lines (``transfer=
      "full"``) or for one input line per ``transfer_every`` steps, cycling (``"column"``,
      as aihwkit's TransferCompound).
    - version 2: a digital buffer ``H <- (1 - beta) * H + beta * read(P)``; where
      ``|H| >= dw_min`` of W, ``n = trunc(H / dw_min)`` pulses (capped at the transfer BL) fire
      on W and ``H <- H - n * dw_min``. The buffer filters read noise and lets a coarse W
      move only by whole steps.

    Updates are ``new_mixed_weights - params``, so ``optax.apply_updates`` tracks the analog
    state without drift.

    Args:
      learning_rate: alpha, the rate of the gradient writes into P (float or schedule).
      transfer_lr: beta, the rate of the transfer writes into W (float or schedule).
      gamma: weight of P in the mixed weights (>= 0; 0 reads W alone).
      device: device of the main array W (and of P unless ``residual_device`` is given).
      residual_device: device of P.
      zero_shift: P's reference sits at each element's symmetric point (RF Assumption 4).
      transfer: "full" (every line each transfer) or "column" (one input line per transfer,
        cycling; kernels of rank > 2 viewed as (prod(leading), out)).
      transfer_every: transfer after every this many steps (>= 1).
      version: 1 (direct transfer) or 2 (digital buffer with threshold).
      read: how P is read: None (exact), a read-noise std, an ``aimcjax.periphery``
        ``PeripheryConfig``, or ``read(w, x_one_hot, key) -> y`` (see ``_read.make_reader``).
      update: :class:`aimcjax.pulse.UpdateConfig` for the gradient writes into P. With mode
        "outer", pass ``factors`` to ``update`` (see :func:`aimcjax.optim.analog_sgd`).
      transfer_update: UpdateConfig for the writes into W. Default: ``update``'s mode with
        BL 31 and update (BL) management, as aihwkit's transfer, so a transfer moves W by at
        most 31 dw_min per element. In "outer" mode each transferred line is one one-hot
        sample ``(e_i, read(P)_i)``.
      mask: pytree of bools or callable marking analog leaves (default: rank >= 2);
        digital leaves get plain SGD at ``learning_rate``.
      key: int seed or PRNG key for the tiles, pulse noise and read noise.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`ResidualLearningState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices, optim
      >>> opt = optim.residual_learning(0.1, 0.05, 0.4, devices.SoftBounds(tau=0.6, asymmetry=0.3))
      >>> state = opt.init({"w": jnp.zeros((4, 2))})

    References:
      [RF] Wu et al., arXiv:2502.06309: eqs. 10-11 (residual learning), 14-15 and App. D
      (version 2). [AIHWKIT] TransferCompound / BufferedTransferCompound.
    """
    return _residual_kernel(
        learning_rate, transfer_lr, gamma, device,
        residual_device=residual_device, zero_shift=zero_shift, transfer=transfer,
        transfer_every=transfer_every, version=version, buffer="ema", read=read,
        update=update, transfer_update=transfer_update, mask=mask, key=key,
    )


def tiki_taka(
    learning_rate: optax.ScalarOrSchedule,
    transfer_lr: optax.ScalarOrSchedule,
    device: Device,
    *,
    gamma: float = 0.0,
    residual_device: Device | None = None,
    transfer: str = "column",
    transfer_every: int = 1,
    read=None,
    update: pulse.UpdateConfig = pulse.UpdateConfig(),
    transfer_update: pulse.UpdateConfig | None = None,
    mask: common.MaskOrFn = None,
    key=0,
) -> optax.GradientTransformationExtraArgs:
    """Tiki-Taka (TTv1): residual learning version 1 without zero shift of P [TTv1].

    The fast array P starts at (effective) 0 but is *not* referenced to its symmetric point,
    so with asymmetric devices P drifts towards its symmetric point and keeps pushing W.
    ``gamma`` defaults to 0 (the forward pass reads W); aihwkit's TransferCompound allows a
    visible weight ``gamma * P + W``, as used in RF Fig. 2 (gamma = 0.4).

    Args: as :func:`residual_learning` (transfer defaults to "column", as aihwkit).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`ResidualLearningState`.

    Example:
      >>> from aimcjax import devices, optim
      >>> opt = optim.tiki_taka(0.1, 0.05, devices.SoftBounds(tau=0.6))

    References:
      [TTv1] Gokmen & Haensch, Front. Neurosci. 2020. [TT24] arXiv:2406.12774.
    """
    return _residual_kernel(
        learning_rate, transfer_lr, gamma, device,
        residual_device=residual_device, zero_shift=False, transfer=transfer,
        transfer_every=transfer_every, version=1, buffer="ema", read=read,
        update=update, transfer_update=transfer_update, mask=mask, key=key,
    )


def ttv2(
    learning_rate: optax.ScalarOrSchedule,
    transfer_lr: optax.ScalarOrSchedule,
    device: Device,
    *,
    residual_device: Device | None = None,
    zero_shift: bool = False,
    transfer: str = "column",
    transfer_every: int = 1,
    read=None,
    update: pulse.UpdateConfig = pulse.UpdateConfig(),
    transfer_update: pulse.UpdateConfig | None = None,
    mask: common.MaskOrFn = None,
    key=0,
) -> optax.GradientTransformationExtraArgs:
    """TTv2: Tiki-Taka with a digital buffer ``H <- H + beta * read(P)`` and threshold transfer.

    The gradient is taken at W (gamma = 0). Where ``|H| >= dw_min`` of W,
    ``n = trunc(H / dw_min)`` pulses (capped at the transfer BL) fire on W and
    ``H <- H - n * dw_min`` [TTv2; RF App. D].

    Args: as :func:`residual_learning`, without ``gamma`` and ``version``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`ResidualLearningState`.

    Example:
      >>> from aimcjax import devices, optim
      >>> opt = optim.ttv2(0.1, 0.05, devices.SoftBounds(tau=0.6))

    References:
      [TTv2] Gokmen, Front. Artif. Intell. 2021. [RF] arXiv:2502.06309, App. D.
    """
    return _residual_kernel(
        learning_rate, transfer_lr, 0.0, device,
        residual_device=residual_device, zero_shift=zero_shift, transfer=transfer,
        transfer_every=transfer_every, version=2, buffer="sum", read=read,
        update=update, transfer_update=transfer_update, mask=mask, key=key,
    )
