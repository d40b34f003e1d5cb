"""Chopped TTv2 ("c-TTv2", "TTv3") and AGAD ("TTv4"): Tiki-Taka with sign choppers.

Both keep the two arrays of Tiki-Taka — a fast residual array P that integrates the gradient
and a main array W that receives transfers — plus a digital buffer H, and add a random sign
``c_i = ±1`` per input line of P (the *chopper*):

    P <- analog_update(P, -alpha * c ⊙ g)           (gradient written chopped: row i times c_i)
    s_i = c_i * read(P)_i                           (c-TTv2: read demodulated by the same sign)
    s_i = c_i * (read(P)_i - mu_i)                  (AGAD: relative to the past chopper period)
    H_i <- H_i + beta * s_i;  n = trunc(H_i / theta) capped at ±BL;  fire n pulses on W_i;
    H_i <- H_i - n * theta                          (or H_i <- 0 with ``forget_buffer``)
    after each read of line i, flip c_i (randomly with probability ``in_chop_prob``, or
    regularly every ceil(1 / in_chop_prob) reads)

The gradient part of P is written and read with the same sign, so it passes; any offset of P
that does not follow the chopper — a zero-shift reference that misses the symmetric point, the
drift of P towards its symmetric point, a read offset — is modulated by ``c`` and averages out
in H. That is the robustness of c-TTv2 to reference errors [Rasch et al. 2024]. AGAD goes one
step further and needs no reference at all: it subtracts ``mu_i``, the running mean of the
reads of line i over the previous chopper period (aihwkit's DynamicTransferCompound), so the
transfer is proportional to how far P moved since the chopper last switched.

Threshold: ``theta = buffer_granularity * dw_min(W)``, and with ``auto_granularity > 0``
additionally times ``auto_granularity / period`` (period = steps per read of a line), as
aihwkit's ChoppedTransferCompound. Each fired pulse moves W by one dw_min of W.

With ``in_chop_prob = 0`` the chopper stays +1 and c-TTv2 is TTv2 (buffer) or, with
``no_buffer=True``, Tiki-Taka: ``W <- analog_update(W, beta * read(P))`` — the same numbers
as :func:`aimcjax.optim.ttv2` / :func:`aimcjax.optim.tiki_taka` for the same key.

References:
  [cTTv2/AGAD] M. J. Rasch, F. Carta, O. Fagbohungbe, T. Gokmen, "Fast and robust analog
  in-memory deep neural network training", Nat. Commun. 15, 7133 (2024), arXiv:2302.07280.
  [TTv2] T. Gokmen, Front. Artif. Intell. 2021. [AIHWKIT] ChoppedTransferCompound,
  DynamicTransferCompound.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aimcjax import pulse
from aimcjax import tile as tile_lib
from aimcjax.devices import Device
from aimcjax.optim import _common as common
from aimcjax.optim._read import make_reader
from aimcjax.optim.residual import _default_transfer_update, check_residual_args
from aimcjax.tile import Tile

__all__ = ["ChoppedState", "chopped_ttv2", "agad"]


class ChoppedState(NamedTuple):
    """State of :func:`chopped_ttv2` and :func:`agad` (params-shaped trees; digital leaves
    hold ``optax.MaskedNode()``).

    Attributes:
      count: number of updates so far (int32).
      key: raw PRNG key for the next update.
      main: the main array W (a Tile) per analog leaf.
      residual: the fast array P per analog leaf.
      buffer: the digital transfer buffer H per analog leaf (shaped like the leaf), or None
        with ``no_buffer``.
      chopper: the chopper signs, shape (lines,) per analog leaf (+1 / -1), lines = inputs of
        the kernel's (in, out) view.
      reads: how many times each line has been read for a transfer, shape (lines,).
      running_mean: AGAD: running mean of each element's reads (shaped like the leaf); else None.
      past_mean: AGAD: the running mean at the last chopper switch (the reference); else None.
      switched: AGAD: whether a line's chopper switched at its previous read, shape (lines,).
    """

    count: jax.Array
    key: jax.Array
    main: Any
    residual: Any
    buffer: Any
    chopper: Any
    reads: Any
    running_mean: Any
    past_mean: Any
    switched: Any


def _check_probability(name, value):
    arr = common.concrete(value)
    if arr is None:
        raise TypeError(f"{name} must be a static float (it shapes the chopper schedule)")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or arr.ndim != 0:
        raise TypeError(f"{name} must be a float in [0, 1], got {value!r}")
    if not np.isfinite(arr) or not 0 <= arr <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(arr)


def _check_positive(name, value, allow_zero=False):
    arr = common.concrete(value)
    if arr is None:
        raise TypeError(f"{name} must be a static float")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or arr.ndim != 0:
        raise TypeError(f"{name} must be a float, got {value!r}")
    if not np.isfinite(arr) or arr < 0 or (arr == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
    return float(arr)


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")


def write_lines(W2: Tile, device: Device, rows, one_hot, values, beta, key, cfg: pulse.UpdateConfig) -> Tile:
    """Tiki-Taka's direct transfer ``W[rows] <- analog_update(W[rows], beta * values)`` on a 2-D
    tile view; in "outer" mode each line is one one-hot sample ``(e_i, values_i)`` of a rank-1
    pulse train, as aihwkit's transfer (same arithmetic as the residual kernel's version 1)."""
    if cfg.mode == "outer":
        return pulse.outer_update(W2, device, one_hot, -values, beta, key, cfg)
    dW = jnp.zeros_like(W2.w).at[rows].set(beta * values)
    return pulse.update(W2, device, dW, key, cfg)


def _chopped_kernel(
    learning_rate,
    transfer_lr,
    gamma,
    device: Device,
    *,
    residual_device,
    zero_shift,
    transfer,
    transfer_every,
    in_chop_prob,
    in_chop_random,
    no_buffer,
    buffer_granularity,
    auto_granularity,
    forget_buffer,
    dynamic,
    tail_weighting,
    read,
    update,
    transfer_update,
    mask,
    key,
) -> optax.GradientTransformationExtraArgs:
    common.check_rate("learning_rate", learning_rate)
    common.check_rate("transfer_lr", transfer_lr)
    residual_device = check_residual_args(gamma, device, residual_device, zero_shift, transfer)
    transfer_every = common.static_int("transfer_every", transfer_every, minimum=1)
    in_chop_prob = _check_probability("in_chop_prob", in_chop_prob)
    for name, flag in (("in_chop_random", in_chop_random), ("no_buffer", no_buffer), ("forget_buffer", forget_buffer)):
        _check_bool(name, flag)
    buffer_granularity = _check_positive("buffer_granularity", buffer_granularity)
    auto_granularity = _check_positive("auto_granularity", auto_granularity, allow_zero=True)
    tail_weighting = _check_positive("tail_weighting", tail_weighting)
    if dynamic and in_chop_prob == 0:
        raise ValueError("in_chop_prob must be > 0 for AGAD: its reference is the previous chopper period")
    common.check_update_config("update", update)
    if transfer_update is None:
        transfer_update = _default_transfer_update(update)
    common.check_update_config("transfer_update", transfer_update)
    reader = make_reader(read)
    gradient_outer = update.mode == "outer"
    # Regular chopping: a line's chopper flips after every `period_reads`-th read of it.
    period_reads = max(math.ceil(1 / in_chop_prob), 2) if in_chop_prob > 0 else 0
    # AGAD's running mean weights the tail of a chopper period more (aihwkit tail_weightening).
    mean_rate = min(tail_weighting / period_reads, 1.0) if dynamic else 0.0

    def init_fn(params):
        paths, leaves, treedef = common.flatten_params(params)
        flags = common.analog_flags(params, mask)
        key_state, keys = common.split_key(common.as_raw_key(key), len(leaves))
        main, residual, buf, chop, reads, mean, past, switched = ([] for _ in range(8))
        for k, p, flag in zip(keys, leaves, flags):
            if not flag:
                for tree in (main, residual, buf, chop, reads, mean, past, switched):
                    tree.append(common.masked_node())
                continue
            k_main, k_res = jax.random.split(k)
            n_lines = common.num_lines(p.shape)
            main.append(tile_lib.init(k_main, device, p.shape, w0=p))
            residual.append(
                tile_lib.init(k_res, residual_device, p.shape, w0=jnp.zeros_like(p), zero_shift=zero_shift)
            )
            buf.append(jnp.zeros_like(p))
            chop.append(jnp.ones((n_lines,), p.dtype))
            reads.append(jnp.zeros((n_lines,), jnp.int32))
            mean.append(jnp.zeros_like(p))
            past.append(jnp.zeros_like(p))
            switched.append(jnp.zeros((n_lines,), bool))
        tree = treedef.unflatten
        return ChoppedState(
            count=jnp.zeros([], jnp.int32),
            key=key_state,
            main=tree(main),
            residual=tree(residual),
            buffer=None if no_buffer else tree(buf),
            chopper=tree(chop),
            reads=tree(reads),
            running_mean=tree(mean) if dynamic else None,
            past_mean=tree(past) if dynamic else None,
            switched=tree(switched) if dynamic else None,
        )

    def transfer_lines(W2: Tile, P2: Tile, aux, rows, beta, key):
        """Read the given lines of P, demodulate, buffer, write W, advance the choppers."""
        H2, chop, reads, mean2, past2, switched = aux
        n_in = P2.w.shape[0]
        dtype = P2.w.dtype
        k_read, k_write = jax.random.split(key)
        k_chop = jax.random.fold_in(key, 1)  # an extra stream; leaves the TT/TTv2 keys as they are
        one_hot = jax.nn.one_hot(rows, n_in, dtype=dtype)
        read_rows = reader(tile_lib.weights(P2), one_hot, k_read)  # (k, out)
        sign = chop[rows][:, None]
        active = jnp.ones((rows.shape[0], 1), bool)
        if dynamic:
            # First read after a switch: the mean of the period just ended becomes the reference.
            past_rows = jnp.where(switched[rows][:, None], mean2[rows], past2[rows])
            signal = sign * (read_rows - past_rows)
            past2 = past2.at[rows].set(past_rows)
            mean2 = mean2.at[rows].set((1 - mean_rate) * mean2[rows] + mean_rate * read_rows)
            # No reference exists before the first period has ended.
            active = (reads[rows] >= period_reads)[:, None]
        else:
            signal = sign * read_rows

        if no_buffer:
            W2 = write_lines(W2, device, rows, one_hot, signal, beta, k_write, transfer_update)
        else:
            theta = buffer_granularity * jnp.asarray(device.dw_min, dtype)
            if auto_granularity > 0:
                period = transfer_every * (n_in if transfer == "column" else 1)
                theta = theta * auto_granularity / period
            h = jnp.where(active, H2[rows] + beta * signal, H2[rows])
            W2, n = common.fire_buffer(W2, device, h, rows, theta, k_write, transfer_update)
            h = jnp.where(n != 0, 0.0, h) if forget_buffer else h - n * theta
            H2 = H2.at[rows].set(h)

        reads = reads.at[rows].add(1)
        if in_chop_prob == 0:
            flip = jnp.zeros(rows.shape, bool)
        elif in_chop_random:
            flip = jax.random.uniform(k_chop, rows.shape, dtype) < in_chop_prob
        else:
            flip = reads[rows] % period_reads == 0
        chop = chop.at[rows].multiply(jnp.where(flip, -1, 1).astype(chop.dtype))
        if dynamic:
            switched = switched.at[rows].set(flip)
        return W2, (H2, chop, reads, mean2, past2, switched)

    def update_fn(grads, state, params=None, *, factors=None, **extra_args):
        del extra_args
        paths, leaves, treedef = common.flatten_params(params)
        grad_leaves = treedef.flatten_up_to(grads)
        per = lambda tree: common.per_leaf(treedef, tree) if tree is not None else [None] * len(leaves)  # noqa: E731
        mains, residuals = per(state.main), per(state.residual)
        buffers, chops, reads_all = per(state.buffer), per(state.chopper), per(state.reads)
        means, pasts, switches = per(state.running_mean), per(state.past_mean), per(state.switched)
        flags = [common.is_analog(t) for t in mains]
        per_factors = common.leaf_factors(factors, paths, flags, needed=gradient_outer)
        count = state.count
        alpha = common.rate_at(learning_rate, count)
        beta = common.rate_at(transfer_lr, count)
        key_state, keys = common.split_key(state.key, len(leaves))
        transfers_done = (count + 1) // transfer_every
        do_transfer = (count + 1) % transfer_every == 0

        out = {name: [] for name in ("main", "res", "buf", "chop", "reads", "mean", "past", "sw")}
        updates = []
        for i, (path, p, g, W, P, f, k) in enumerate(zip(paths, leaves, grad_leaves, mains, residuals, per_factors, keys)):
            common.check_grad(path, p, g)
            if not common.is_analog(W):
                for name, tree in (("main", mains), ("res", residuals), ("buf", buffers), ("chop", chops),
                                   ("reads", reads_all), ("mean", means), ("past", pasts), ("sw", switches)):
                    out[name].append(tree[i])
                updates.append(common.sgd_update(g, alpha, p))
                continue
            shape2 = tile_lib.matrix_shape(p.shape)
            chop = chops[i]
            if gradient_outer:
                common.check_factors(path, p.shape, *f)
                x, d = f
                f = (jnp.asarray(x) * chop[None, :].astype(jnp.result_type(x)), d)
            k_grad, k_transfer = jax.random.split(k)
            g2 = chop[:, None] * g.reshape(shape2)
            P2 = common.write(common.as_matrix(P), residual_device, g2, f, alpha, k_grad, update)
            W2 = common.as_matrix(W)
            as2 = lambda a: None if a is None else a.reshape(shape2)  # noqa: E731
            aux = (as2(buffers[i]), chop, reads_all[i], as2(means[i]), as2(pasts[i]), switches[i])
            rows = jnp.arange(shape2[0]) if transfer == "full" else ((transfers_done - 1) % shape2[0])[None]

            def run_transfer(operands, rows=rows, k_transfer=k_transfer):
                W2, P2, aux = operands
                return transfer_lines(W2, P2, aux, rows, beta, k_transfer)

            if transfer_every == 1:
                W2, aux = run_transfer((W2, P2, aux))
            else:
                W2, aux = jax.lax.cond(do_transfer, run_transfer, lambda o: (o[0], o[2]), (W2, P2, aux))
            H2, chop, reads, mean2, past2, switched = aux
            W, P = common.reshape_tile(W2, p.shape), common.reshape_tile(P2, p.shape)
            back = lambda a: None if a is None else a.reshape(p.shape)  # noqa: E731
            for name, value in (("main", W), ("res", P), ("buf", back(H2)), ("chop", chop), ("reads", reads),
                                ("mean", back(mean2)), ("past", back(past2)), ("sw", switched)):
                out[name].append(value)
            # Chopper correction of the visible weight: P holds the gradient times the chopper.
            mixed_p = (chop[:, None] * tile_lib.weights(P2)).reshape(p.shape)
            mixed = tile_lib.weights(W) + gamma * mixed_p
            updates.append((mixed - p).astype(p.dtype))

        tree = treedef.unflatten
        new_state = ChoppedState(
            count=count + 1,
            key=key_state,
            main=tree(out["main"]),
            residual=tree(out["res"]),
            buffer=None if no_buffer else tree(out["buf"]),
            chopper=tree(out["chop"]),
            reads=tree(out["reads"]),
            running_mean=tree(out["mean"]) if dynamic else None,
            past_mean=tree(out["past"]) if dynamic else None,
            switched=tree(out["sw"]) if dynamic else None,
        )
        return tree(updates), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def chopped_ttv2(
    learning_rate: optax.ScalarOrSchedule,
    transfer_lr: optax.ScalarOrSchedule,
    device: Device,
    *,
    gamma: float = 0.0,
    residual_device: Device | None = None,
    zero_shift: bool = True,
    transfer: str = "column",
    transfer_every: int = 1,
    in_chop_prob: float = 0.1,
    in_chop_random: bool = True,
    no_buffer: bool = False,
    buffer_granularity: float = 1.0,
    auto_granularity: float = 0.0,
    forget_buffer: bool = False,
    read=None,
    update: pulse.UpdateConfig = pulse.UpdateConfig(),
    transfer_update: pulse.UpdateConfig | None = None,
    mask: common.MaskOrFn = None,
    key=0,
) -> optax.GradientTransformationExtraArgs:
    """Chopped TTv2 (c-TTv2, "TTv3"): TTv2 whose gradient writes into P and reads from P are
    multiplied by a random sign per input line [Rasch et al. 2024].

    ``P <- analog_update(P, -alpha * c ⊙ g)``; at a transfer of line i,
    ``H_i <- H_i + beta * c_i * read(P)_i``; where ``|H| >= theta`` fire
    ``n = trunc(H / theta)`` (capped at the transfer BL) pulses on W and
    ``H <- H - n * theta``; then flip ``c_i`` with probability ``in_chop_prob``. Offsets of P
    (a wrong zero-shift reference, the drift to the symmetric point) are modulated by the
    chopper and average out in the buffer, while the gradient passes.
    The visible weight is ``W + gamma * c ⊙ P`` (chopper correction; ``gamma=0``: W alone).

    Args:
      learning_rate: alpha, rate of the gradient writes into P (float or schedule).
      transfer_lr: beta, rate of the reads of P into the buffer (float or schedule).
      device: device of W (and of P unless ``residual_device``).
      gamma: weight of the chopper-corrected P in the visible weight (>= 0).
      residual_device: device of P.
      zero_shift: reference P at its symmetric point (with ``device.reference_std`` error).
      transfer: "column" (one input line per transfer, cycling, as aihwkit) or "full".
      transfer_every: steps between transfers (>= 1).
      in_chop_prob: probability (``in_chop_random``) or frequency (regular: every
        ``max(ceil(1/p), 2)`` reads) of flipping a line's chopper after it is read; 0: no
        chopping.
      in_chop_random: random (True) or regular flips.
      no_buffer: write ``beta * c ⊙ read(P)`` straight into W (Tiki-Taka's transfer).
      buffer_granularity: threshold of the buffer in units of dw_min of W (> 0).
      auto_granularity: if > 0, the threshold is further scaled by
        ``auto_granularity / period`` with period the steps between reads of a line.
      forget_buffer: reset a line's buffer entry to 0 after it fires (aihwkit's default)
        instead of subtracting what was transferred (the default here: nothing is lost).
      read, update, transfer_update, mask, key: as :func:`aimcjax.optim.residual_learning`.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`ChoppedState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices, optim
      >>> dev = devices.SoftBounds(tau=0.6, asymmetry=0.3, reference_std=0.3)
      >>> opt = optim.chopped_ttv2(0.1, 0.1, dev, in_chop_prob=0.1, key=0)
      >>> state = opt.init({"w": jnp.zeros((4, 2))})

    References:
      Rasch, Carta, Fagbohungbe, Gokmen, Nat. Commun. 15, 7133 (2024), arXiv:2302.07280
      (c-TTv2); [AIHWKIT] ChoppedTransferCompound.
    """
    return _chopped_kernel(
        learning_rate, transfer_lr, gamma, device,
        residual_device=residual_device, zero_shift=zero_shift, transfer=transfer,
        transfer_every=transfer_every, in_chop_prob=in_chop_prob, in_chop_random=in_chop_random,
        no_buffer=no_buffer, buffer_granularity=buffer_granularity,
        auto_granularity=auto_granularity, forget_buffer=forget_buffer, dynamic=False,
        tail_weighting=1.0, read=read, update=update, transfer_update=transfer_update,
        mask=mask, key=key,
    )


def agad(
    learning_rate: optax.ScalarOrSchedule,
    transfer_lr: optax.ScalarOrSchedule,
    device: Device,
    *,
    residual_device: Device | None = None,
    zero_shift: bool = False,
    transfer: str = "column",
    transfer_every: int = 1,
    in_chop_prob: float = 0.1,
    in_chop_random: bool = False,
    tail_weighting: float = 5.0,
    buffer_granularity: float = 1.0,
    auto_granularity: float = 0.0,
    forget_buffer: bool = False,
    read=None,
    update: pulse.UpdateConfig = pulse.UpdateConfig(),
    transfer_update: pulse.UpdateConfig | None = None,
    mask: common.MaskOrFn = None,
    key=0,
) -> optax.GradientTransformationExtraArgs:
    """AGAD ("TTv4"): chopped transfer relative to the previous chopper period; no reference.

    As :func:`chopped_ttv2`, but the buffer integrates ``c_i * (read(P)_i - mu_i)``, where
    ``mu_i`` is the running mean of line i's reads over the chopper period before the last
    switch (an exponential mean with rate ``min(tail_weighting / period, 1)``, weighting the
    end of a period, where P has settled, more). Within a period the gradient moves P in
    direction ``c``; after a switch it moves back, so ``read - mu`` times the new sign is the
    gradient accumulated since the switch, while P's own offset and its symmetric point cancel
    — AGAD needs no zero-shift reference array (``zero_shift`` defaults to False). Chopper
    flips are regular by default (every ``max(ceil(1/in_chop_prob), 2)`` reads of a line);
    transfers begin after each line's first full period.

    Args:
      in_chop_prob: chopper frequency (> 0; the reference is the previous period).
      in_chop_random: flip randomly with probability ``in_chop_prob`` instead of regularly.
      tail_weighting: > 0; the running mean's rate is ``min(tail_weighting / period, 1)``.
      others: as :func:`chopped_ttv2` (AGAD has no ``gamma``: the forward pass reads W).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`ChoppedState`.

    Example:
      >>> from aimcjax import devices, optim
      >>> opt = optim.agad(0.1, 0.1, devices.SoftBounds(tau=0.6, asymmetry=0.3), key=0)

    References:
      Rasch, Carta, Fagbohungbe, Gokmen, Nat. Commun. 15, 7133 (2024), arXiv:2302.07280
      (AGAD); [AIHWKIT] DynamicTransferCompound.
    """
    return _chopped_kernel(
        learning_rate, transfer_lr, 0.0, device,
        residual_device=residual_device, zero_shift=zero_shift, transfer=transfer,
        transfer_every=transfer_every, in_chop_prob=in_chop_prob, in_chop_random=in_chop_random,
        no_buffer=False, buffer_granularity=buffer_granularity,
        auto_granularity=auto_granularity, forget_buffer=forget_buffer, dynamic=True,
        tail_weighting=tail_weighting, read=read, update=update, transfer_update=transfer_update,
        mask=mask, key=key,
    )
