"""The analog optimizers, each an alias of :func:`aimcjax.optim.kernel.analog_kernel`.

Conventions (``docs/architecture.md``): the operands ``learning_rate`` (, ``transfer_lr``),
``device`` are positional; everything else is keyword-only; ``key`` is required (there is no
shared default); the same option has the same name in every alias. The state of every alias
is :class:`aimcjax.optim.kernel.AnalogState`.

References:
  [RF] Wu et al., arXiv:2502.06309. [TTv1] Gokmen & Haensch, Front. Neurosci. 2020.
  [TTv2] Gokmen, Front. Artif. Intell. 2021. [cTTv2/AGAD] Rasch, Carta, Fagbohungbe, Gokmen,
  Nat. Commun. 15, 7133 (2024), arXiv:2302.07280. [MT] Li, Wu, Liu, Gokmen, Chen,
  arXiv:2510.02516 (2025). [MP] Nandakumar et al., Front. Neurosci. 14:406 (2020).
  [AIHWKIT] TransferCompound and its buffered, chopped, dynamic and mixed-precision kin.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import optax

from aimcjax import pulse
from aimcjax._typing import KeyLike
from aimcjax.devices import Device
from aimcjax.optim import _common as common
from aimcjax.optim.kernel import analog_kernel
from aimcjax.optim.transfer import Accumulator, Buffered, Chopped, Direct

__all__ = [
    "agad",
    "analog_sgd",
    "chopped_ttv2",
    "mixed_precision",
    "multi_tile_residual",
    "residual_learning",
    "tiki_taka",
    "ttv2",
]

_DEFAULT_UPDATE = pulse.UpdateConfig()
_PULSE_TRANSFER = pulse.UpdateConfig(mode="pulse")


def _legacy_gamma(
    name: str, device: Any, old_device: Device | None, gamma: float | None
) -> tuple[Device, float]:
    """``(device, gamma)``, also from the old positional form ``name(lr, beta, gamma, device)``
    (then ``old_device``, the hidden fourth positional parameter, holds the device).

    Deprecated: ``gamma`` is keyword-only like in every other alias."""
    if old_device is None:
        if gamma is None:
            raise TypeError(
                f"{name}() needs gamma= (the weight of the residual arrays in the visible weights)"
            )
        return device, gamma
    if isinstance(device, Device) or not isinstance(old_device, Device) or gamma is not None:
        raise TypeError(
            f"{name}() takes learning_rate, transfer_lr and device positionally; pass gamma= by keyword"
        )
    warnings.warn(
        f"{name}(learning_rate, transfer_lr, gamma, device) is deprecated: use "
        f"{name}(learning_rate, transfer_lr, device, gamma=...)",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_device, device


def analog_sgd(
    learning_rate: optax.ScalarOrSchedule,
    device: Device,
    *,
    key: KeyLike,
    update: pulse.UpdateConfig = _DEFAULT_UPDATE,
    mask: common.MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
    """Analog SGD: ``W <- analog_update(W, -lr * g)`` on each analog leaf [RF eq. 2].

    The weights live on a tile (one crossbar array per analog leaf) whose device-to-device
    variation is sampled in ``init``. Each update asks the tile for the change ``-lr * g``;
    what the device does (response, granularity, noise, bounds) is the new weight, and the
    returned updates are ``new_weights - params``, so params track the tile without drift.

    Args:
      learning_rate: float or optax schedule (of the update count).
      device: the analog device of every analog leaf (:mod:`aimcjax.devices`).
      key: int seed or PRNG key (typed or raw) for the tiles and the pulse noise (required).
      update: :class:`aimcjax.pulse.UpdateConfig`; with mode "outer",
        ``update(grads, state, params, factors=F)`` needs F shaped like params whose analog
        leaves hold ``(x, d)``, x of shape (B, in) and d of shape (B, out) for the kernel
        viewed as (in, out), with grads = sum_b x_b d_b^T.
      mask: pytree of bools (or a callable of params returning one) marking analog leaves;
        digital leaves get plain SGD at the same rate. Default: every leaf of rank >= 2.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state
      :class:`aimcjax.optim.AnalogState`.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from aimcjax import devices, optim
      >>> params = {"w": jnp.zeros((3, 2))}
      >>> opt = optim.analog_sgd(0.1, devices.SoftBounds(tau=0.6), key=0)
      >>> state = opt.init(params)
      >>> updates, state = opt.update({"w": jnp.ones((3, 2))}, state, params)
      >>> params = optax.apply_updates(params, updates)

    References:
      [RF] eq. 2 (Analog SGD) and eq. 5 (expected update).
    """
    return analog_kernel(learning_rate, device, key=key, update=update, mask=mask)


def residual_learning(
    learning_rate: optax.ScalarOrSchedule,
    transfer_lr: optax.ScalarOrSchedule,
    device: Device,
    _old_device: Device | None = None,
    *,
    gamma: float | None = None,
    key: KeyLike | None = None,
    residual_device: Device | None = None,
    zero_shift: bool = True,
    transfer: str = "full",
    transfer_every: int = 1,
    version: int = 1,
    read: Any = None,
    update: pulse.UpdateConfig = _DEFAULT_UPDATE,
    transfer_update: pulse.UpdateConfig | None = None,
    gradient_granularity: str = "average",
    mask: common.MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
    """Residual learning on two analog arrays: a residual P and a main W [RF Alg. 1, App. D].

    ``params`` are the mixed weights ``W + gamma * P``, where the gradient is taken. Each step
    writes it into the zero-shifted P, ``P <- analog_update(P, -alpha * g)``, then transfers
    (a read of) P into W: version 1 directly, ``W <- analog_update(W, beta * read(P))``;
    version 2 through a digital buffer ``H <- (1 - beta) * H + beta * read(P)`` from which
    whole pulses ``n = trunc(H / dw_min)`` fire on W (``H <- H - n * dw_min``).

    Args:
      learning_rate: alpha, the rate of the gradient writes into P (float or schedule).
      transfer_lr: beta, the rate of the transfers into W (float or schedule).
      device: device of W (and of P unless ``residual_device`` is given).
      gamma: weight of P in the visible weights (>= 0; keyword; the old positional form
        ``(lr, beta, gamma, device)`` still works with a DeprecationWarning).
      key: int seed or PRNG key (typed or raw) for tiles, pulse noise and reads (required).
      residual_device: device of P.
      zero_shift: P's reference sits at each element's symmetric point [RF Assumption 4].
      transfer: "full" (every input line each transfer) or "column" (one line per transfer,
        cycling, as aihwkit's TransferCompound).
      transfer_every: transfer after every this many steps (>= 1).
      version: 1 (direct transfer) or 2 (digital buffer with threshold).
      read: how P is read: None (exact), a read-noise std, an
        ``aimcjax.periphery.PeripheryConfig``, "aihwkit" (aihwkit's default transfer read),
        or ``read(w, x_one_hot, key) -> y``.
      update: :class:`aimcjax.pulse.UpdateConfig` of the gradient writes into P ("outer":
        pass ``factors``, see :func:`analog_sgd`).
      transfer_update: UpdateConfig of the writes into W (default: ``update``'s mode, BL 31,
        update (BL) management, as aihwkit); in "outer" mode each line is one one-hot sample.
      gradient_granularity: "average" (aihwkit: in "outer" mode the gradient's pulse trains
        into P are sized with the mean dw_min of P's and W's devices) or "own" (P's).
      mask: pytree of bools or callable marking analog leaves (default: rank >= 2).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state
      :class:`aimcjax.optim.AnalogState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices, optim
      >>> dev = devices.SoftBounds(tau=0.6, asymmetry=0.3)
      >>> opt = optim.residual_learning(0.1, 0.05, dev, gamma=0.4, key=0)
      >>> state = opt.init({"w": jnp.zeros((4, 2))})

    References:
      [RF] eqs. 10-11 (residual learning), 14-15 and App. D (version 2).
    """
    device, gamma = _legacy_gamma("residual_learning", device, _old_device, gamma)
    version = common.static_int("version", version, allowed=(1, 2))
    return analog_kernel(
        learning_rate,
        device,
        key=key,
        n_tiles=2,
        rule=Direct() if version == 1 else Buffered(decay="ema"),
        transfer_lr=transfer_lr,
        gamma=gamma,
        residual_device=residual_device,
        zero_shift=zero_shift,
        transfer=transfer,
        transfer_every=transfer_every,
        read=read,
        update=update,
        transfer_update=transfer_update,
        gradient_granularity=gradient_granularity,
        mask=mask,
    )


def tiki_taka(
    learning_rate: optax.ScalarOrSchedule,
    transfer_lr: optax.ScalarOrSchedule,
    device: Device,
    *,
    key: KeyLike,
    gamma: float = 0.0,
    residual_device: Device | None = None,
    transfer: str = "column",
    transfer_every: int = 1,
    read: Any = None,
    update: pulse.UpdateConfig = _DEFAULT_UPDATE,
    transfer_update: pulse.UpdateConfig | None = None,
    gradient_granularity: str = "average",
    mask: common.MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
    """Tiki-Taka (TTv1): residual learning version 1 without zero shift of P [TTv1].

    P starts at (effective) 0 but is *not* referenced to its symmetric point, so with
    asymmetric devices P drifts towards it and keeps pushing W. ``gamma`` defaults to 0 (the
    forward pass reads W); aihwkit allows a visible weight ``W + gamma * P`` (RF Fig. 2: 0.4).

    Args: as :func:`residual_learning` (transfer defaults to "column", as aihwkit).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state
      :class:`aimcjax.optim.AnalogState`.

    Example:
      >>> from aimcjax import devices, optim
      >>> opt = optim.tiki_taka(0.1, 0.05, devices.SoftBounds(tau=0.6), key=0)

    References:
      [TTv1] Gokmen & Haensch 2020. [TT24] arXiv:2406.12774.
    """
    return analog_kernel(
        learning_rate,
        device,
        key=key,
        n_tiles=2,
        rule=Direct(),
        transfer_lr=transfer_lr,
        gamma=gamma,
        residual_device=residual_device,
        zero_shift=False,
        transfer=transfer,
        transfer_every=transfer_every,
        read=read,
        update=update,
        transfer_update=transfer_update,
        gradient_granularity=gradient_granularity,
        mask=mask,
    )


def ttv2(
    learning_rate: optax.ScalarOrSchedule,
    transfer_lr: optax.ScalarOrSchedule,
    device: Device,
    *,
    key: KeyLike,
    residual_device: Device | None = None,
    zero_shift: bool = False,
    transfer: str = "column",
    transfer_every: int = 1,
    read: Any = None,
    update: pulse.UpdateConfig = _DEFAULT_UPDATE,
    transfer_update: pulse.UpdateConfig | None = None,
    gradient_granularity: str = "average",
    mask: common.MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
    """TTv2: Tiki-Taka with a digital buffer ``H <- H + beta * read(P)`` and threshold transfer.

    The gradient is taken at W (gamma = 0). Where ``|H| >= dw_min`` of W,
    ``n = trunc(H / dw_min)`` pulses (capped at the transfer BL) fire on W and
    ``H <- H - n * dw_min`` [TTv2; RF App. D].

    Args: as :func:`residual_learning`, without ``gamma`` and ``version``.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state
      :class:`aimcjax.optim.AnalogState`.

    Example:
      >>> from aimcjax import devices, optim
      >>> opt = optim.ttv2(0.1, 0.05, devices.SoftBounds(tau=0.6), key=0)

    References:
      [TTv2] Gokmen 2021. [RF] App. D.
    """
    return analog_kernel(
        learning_rate,
        device,
        key=key,
        n_tiles=2,
        rule=Buffered(decay="sum"),
        transfer_lr=transfer_lr,
        residual_device=residual_device,
        zero_shift=zero_shift,
        transfer=transfer,
        transfer_every=transfer_every,
        read=read,
        update=update,
        transfer_update=transfer_update,
        gradient_granularity=gradient_granularity,
        mask=mask,
    )


def _buffered(buffer_granularity: float, auto_granularity: float, forget_buffer: bool) -> Buffered:
    return Buffered(
        decay="sum",
        granularity=common.check_positive("buffer_granularity", buffer_granularity),
        auto_granularity=common.check_positive(
            "auto_granularity", auto_granularity, allow_zero=True
        ),
        forget=common.check_bool("forget_buffer", forget_buffer),
    )


def chopped_ttv2(
    learning_rate: optax.ScalarOrSchedule,
    transfer_lr: optax.ScalarOrSchedule,
    device: Device,
    *,
    key: KeyLike,
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
    read: Any = None,
    update: pulse.UpdateConfig = _DEFAULT_UPDATE,
    transfer_update: pulse.UpdateConfig | None = None,
    gradient_granularity: str = "average",
    mask: common.MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
    """Chopped TTv2 (c-TTv2, "TTv3"): TTv2 whose gradient writes into P and reads from P are
    multiplied by a random sign per input line [cTTv2].

    ``P <- analog_update(P, -alpha * c ⊙ g)``; at a transfer of line i,
    ``H_i <- H_i + beta * c_i * read(P)_i``; where ``|H| >= theta`` fire
    ``n = trunc(H / theta)`` pulses on W and ``H <- H - n * theta``; then flip ``c_i``.
    Offsets of P (a wrong zero-shift reference, the drift to the symmetric point) are
    modulated by the chopper and average out in H, while the gradient passes. The visible
    weight is ``W + gamma * c ⊙ P``. With ``in_chop_prob=0`` this is :func:`ttv2` (and with
    ``no_buffer=True`` :func:`tiki_taka`) bit for bit, for the same key, in every mode.

    Args:
      in_chop_prob: probability (``in_chop_random``) or frequency (regular: every
        ``max(ceil(1/p), 2)`` reads) of flipping a line's chopper after it is read; 0: none.
      in_chop_random: random (True) or regular flips.
      no_buffer: write ``beta * c ⊙ read(P)`` straight into W (Tiki-Taka's transfer).
      buffer_granularity: the threshold theta in units of dw_min of W (> 0).
      auto_granularity: if > 0, theta is further scaled by ``auto_granularity / period``
        (period: steps between two reads of a line), as aihwkit.
      forget_buffer: reset a line's buffer entry after it fires (aihwkit's default) instead
        of subtracting what was transferred (here the default: nothing is lost).
      others: as :func:`residual_learning`.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state
      :class:`aimcjax.optim.AnalogState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices, optim
      >>> dev = devices.SoftBounds(tau=0.6, asymmetry=0.3, reference_std=0.3)
      >>> opt = optim.chopped_ttv2(0.1, 0.1, dev, in_chop_prob=0.1, key=0)
      >>> state = opt.init({"w": jnp.zeros((4, 2))})

    References:
      [cTTv2]; [AIHWKIT] ChoppedTransferCompound.
    """
    inner = (
        Direct()
        if common.check_bool("no_buffer", no_buffer)
        else _buffered(buffer_granularity, auto_granularity, forget_buffer)
    )
    rule = Chopped(
        inner,
        common.check_fraction("in_chop_prob", in_chop_prob),
        in_chop_random=common.check_bool("in_chop_random", in_chop_random),
    )
    return analog_kernel(
        learning_rate,
        device,
        key=key,
        n_tiles=2,
        rule=rule,
        transfer_lr=transfer_lr,
        gamma=gamma,
        residual_device=residual_device,
        zero_shift=zero_shift,
        transfer=transfer,
        transfer_every=transfer_every,
        read=read,
        update=update,
        transfer_update=transfer_update,
        gradient_granularity=gradient_granularity,
        mask=mask,
    )


def agad(
    learning_rate: optax.ScalarOrSchedule,
    transfer_lr: optax.ScalarOrSchedule,
    device: Device,
    *,
    key: KeyLike,
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
    read: Any = None,
    update: pulse.UpdateConfig = _DEFAULT_UPDATE,
    transfer_update: pulse.UpdateConfig | None = None,
    gradient_granularity: str = "average",
    mask: common.MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
    """AGAD ("TTv4"): chopped transfer relative to the previous chopper period; no reference.

    As :func:`chopped_ttv2`, but H integrates ``c_i * (read(P)_i - mu_i)``, ``mu_i`` the
    running mean of line i's reads over the chopper period before the last switch (rate
    ``min(tail_weighting / period, 1)``, weighting the settled end of a period more). P's
    offset and symmetric point cancel, so AGAD needs no zero-shift reference. Flips are
    regular by default; transfers begin after each line's first full period.

    Args:
      in_chop_prob: chopper frequency (> 0: the reference is the previous period).
      in_chop_random: flip randomly with probability ``in_chop_prob`` instead of regularly.
      tail_weighting: > 0; the running mean's rate is ``min(tail_weighting / period, 1)``.
      others: as :func:`chopped_ttv2` (no ``gamma``: the forward pass reads W).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state
      :class:`aimcjax.optim.AnalogState`.

    Example:
      >>> from aimcjax import devices, optim
      >>> opt = optim.agad(0.1, 0.1, devices.SoftBounds(tau=0.6, asymmetry=0.3), key=0)

    References:
      [cTTv2/AGAD]; [AIHWKIT] DynamicTransferCompound.
    """
    in_chop_prob = common.check_fraction("in_chop_prob", in_chop_prob)
    if in_chop_prob == 0:
        raise ValueError(
            "in_chop_prob must be > 0 for AGAD: its reference is the previous chopper period"
        )
    rule = Chopped(
        _buffered(buffer_granularity, auto_granularity, forget_buffer),
        in_chop_prob,
        in_chop_random=common.check_bool("in_chop_random", in_chop_random),
        dynamic=True,
        tail_weighting=common.check_positive("tail_weighting", tail_weighting),
    )
    return analog_kernel(
        learning_rate,
        device,
        key=key,
        n_tiles=2,
        rule=rule,
        transfer_lr=transfer_lr,
        residual_device=residual_device,
        zero_shift=zero_shift,
        transfer=transfer,
        transfer_every=transfer_every,
        read=read,
        update=update,
        transfer_update=transfer_update,
        gradient_granularity=gradient_granularity,
        mask=mask,
    )


def multi_tile_residual(
    learning_rate: optax.ScalarOrSchedule,
    transfer_lr: optax.ScalarOrSchedule | Sequence[optax.ScalarOrSchedule],
    device: Device,
    _old_device: Device | None = None,
    *,
    gamma: float | None = None,
    key: KeyLike | None = None,
    n_tiles: int = 3,
    residual_device: Device | None = None,
    zero_shift: bool = True,
    transfer: str = "full",
    transfer_every: int | Sequence[int] = 1,
    read: Any = None,
    update: pulse.UpdateConfig = _DEFAULT_UPDATE,
    transfer_update: pulse.UpdateConfig | None = None,
    gradient_granularity: str = "average",
    mask: common.MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
    """Residual learning over ``n_tiles`` analog tiles with geometric weights ``gamma**k`` [MT].

    ``params`` are ``sum_k gamma**k T_k``. The gradient is written into the last (fastest)
    tile; then, fast to slow, tile j is read and transferred into tile j - 1
    (``T_(j-1) <- analog_update(T_(j-1), beta_j * read(T_j))``) every ``transfer_every[j-1]``
    steps. With ``n_tiles=2`` this is :func:`residual_learning` version 1 bit for bit.

    Args:
      transfer_lr: beta, one for all stages or a sequence of ``n_tiles - 1`` (entry j-1: tile j
        into tile j-1).
      gamma: geometric weight (>= 0; keyword, the old positional form is deprecated).
      n_tiles: number of tiles (>= 2).
      transfer_every: period of each stage in steps (>= 1), one for all or one per stage.
      others: as :func:`residual_learning`.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state
      :class:`aimcjax.optim.AnalogState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices, optim
      >>> dev = devices.SoftBounds(tau=0.6, asymmetry=0.2, dw_min=0.05)  # ~24 states
      >>> opt = optim.multi_tile_residual(0.1, 0.5, dev, gamma=0.1, n_tiles=3, transfer_every=(4, 1), key=0)
      >>> state = opt.init({"w": jnp.zeros((4, 2))})

    References:
      [MT]; [RF] eqs. 10-11.
    """
    device, gamma = _legacy_gamma("multi_tile_residual", device, _old_device, gamma)
    n_tiles = common.static_int("n_tiles", n_tiles, minimum=2)
    return analog_kernel(
        learning_rate,
        device,
        key=key,
        n_tiles=n_tiles,
        rule=Direct(),
        transfer_lr=transfer_lr,
        gamma=gamma,
        residual_device=residual_device,
        zero_shift=zero_shift,
        transfer=transfer,
        transfer_every=transfer_every,
        read=read,
        update=update,
        transfer_update=transfer_update,
        gradient_granularity=gradient_granularity,
        mask=mask,
    )


def mixed_precision(
    learning_rate: optax.ScalarOrSchedule,
    device: Device,
    *,
    key: KeyLike,
    transfer_every: int = 1,
    granularity: float | None = None,
    max_pulses: int | None = None,
    n_x_bins: int = 0,
    n_d_bins: int = 0,
    stochastic_rounding: bool = False,
    update: pulse.UpdateConfig = _DEFAULT_UPDATE,
    transfer_update: pulse.UpdateConfig = _PULSE_TRANSFER,
    mask: common.MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
    """Mixed precision [MP]: accumulate ``-lr * g`` digitally, transfer whole pulses to the
    analog array every ``transfer_every`` steps.

    ``chi <- chi - lr * Q(x)^T Q(d)`` (or ``- lr * g`` without factors); at a transfer each
    element gets ``n = trunc(chi / eps)`` pulses (capped at ``max_pulses``) and
    ``chi <- chi - n * eps``. The analog array only ever sees whole, sign-definite pulse
    trains. There is no ``read``: the accumulator is digital and read exactly.

    Args:
      learning_rate: float or optax schedule.
      device: the analog device of W.
      key: int seed or PRNG key (typed or raw) for the tile and pulse noise (required).
      transfer_every: steps between transfers (>= 1).
      granularity: eps, the weight change one pulse is booked as (default: ``device.dw_min``).
      max_pulses: cap on pulses per element and transfer (None: none); the rest stays in chi.
      n_x_bins, n_d_bins: quantize the per-sample x / d to this many levels of their absolute
        maximum (0: full precision); needs ``factors`` (see :func:`analog_sgd`).
      stochastic_rounding: round x and d stochastically when quantizing.
      update: UpdateConfig of the gradient step; mode "outer" requires ``factors`` (which are
        then used, quantized or not, instead of the gradient).
      transfer_update: UpdateConfig of the pulses into W (default: mode "pulse").
      mask: pytree of bools or callable marking analog leaves (default: rank >= 2).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state
      :class:`aimcjax.optim.AnalogState` (the accumulator is ``transfer[0].buffer``).

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices, optim
      >>> opt = optim.mixed_precision(0.1, devices.SoftBounds(tau=0.6, asymmetry=0.3), key=0)
      >>> state = opt.init({"w": jnp.zeros((4, 2))})

    References:
      [MP]; [AIHWKIT] MixedPrecisionCompound.
    """
    if granularity is not None:
        granularity = common.check_positive("granularity", granularity)
    rule = Accumulator(
        granularity=granularity,
        max_pulses=None
        if max_pulses is None
        else common.static_int("max_pulses", max_pulses, minimum=1),
        n_x_bins=common.static_int("n_x_bins", n_x_bins, minimum=0),
        n_d_bins=common.static_int("n_d_bins", n_d_bins, minimum=0),
        stochastic_rounding=common.check_bool("stochastic_rounding", stochastic_rounding),
    )
    return analog_kernel(
        learning_rate,
        device,
        key=key,
        rule=rule,
        transfer_every=transfer_every,
        update=update,
        transfer_update=transfer_update,
        mask=mask,
    )
