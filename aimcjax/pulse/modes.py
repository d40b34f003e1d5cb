"""The public update modes: :class:`UpdateConfig`, :func:`update`, :func:`outer_update`,
:func:`apply` and :func:`pulse_counts`, and the choice between the XLA path and the fused
kernel (see the package docstring, :mod:`aimcjax.pulse`).
"""

from __future__ import annotations

import dataclasses
from types import ModuleType

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from aimcjax.devices import Device
from aimcjax.pulse.blocks import _apply_trains
from aimcjax.pulse.loop import _closed_form_apply, _has_closed_form, _pulse_loop_apply
from aimcjax.pulse.rng import _uniform
from aimcjax.pulse.trains import _coincidences, _sample_pulse_trains
from aimcjax.pulse.xla import _materialized
from aimcjax.tile import Tile, as_key, matrix_shape

KeyLike = int | jax.Array  # an int seed or a PRNG key (raw uint32 or typed)

__all__ = [
    "KERNELS",
    "MAX_BL",
    "MODES",
    "RNGS",
    "UpdateConfig",
    "apply",
    "outer_update",
    "pulse_counts",
    "update",
]


MODES = ("expected", "pulse", "outer", "ideal")
# Upper bound of UpdateConfig.bl. An update fires up to bl pulses per element, each one pass
# of the per-pulse loop over the tile (and, in "outer" mode, bl slots of pulse trains held in
# memory), so bl sets the worst-case time and memory of one step; 2**16 pulses cross the whole
# range of any device with at most 65 536 distinguishable states (published ReRAM / ECRAM /
# PCM devices have tens to thousands), so a larger bl cannot change a weight further but can
# stall a step for hours (bl=10**9 did, deaf to Ctrl-C inside the compiled loop).
MAX_BL = 2**16
RNGS = ("counter", "threefry")  # generators of the per-element random numbers, see apply
KERNELS = ("auto", "xla", "pallas")  # implementations of the per-pulse loop, see UpdateConfig


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class UpdateConfig:
    """How a requested change becomes pulses (hashable; a pytree without leaves, so it can be
    passed straight into jitted functions).

    Attributes:
      mode: "expected" | "pulse" | "outer" | "ideal".
      bl: maximal pulses per element and update (aihwkit's desired_bl), 1 <= bl <=
        :data:`MAX_BL` (= 2**16).
      update_management: "outer" mode balances the x and d pulse probabilities per sample.
      update_bl_management: "outer" mode shortens the train to ceil(lr*max|x|*max|d|/dw_min).
      stochastic_rounding: "pulse" mode rounds dW/dw_min stochastically (else to nearest).
      rng: generator of the per-element random numbers: the per-pulse cycle-to-cycle noise
        (see :func:`apply`), the "pulse" mode's stochastic rounding and the "outer" mode's
        pulse-train bits. "counter" (default, fast) or "threefry" (jax.random.normal /
        uniform, the reference).
      kernel: implementation of the per-pulse loop of "pulse" and "outer" modes. "auto"
        (default): the fused Pallas kernel (:mod:`aimcjax.pulse.pallas`, one launch per
        update) when the default backend is a GPU and the update is supported (float32,
        rng="counter", a ConstantStep/SoftBounds/Power/Exponential device with scalar
        parameters), else XLA. "xla": always XLA (the reference, and the CPU path).
        "pallas": always the kernel (interpret mode off GPU: slow, for tests); an error
        for an unsupported update. Noise-free ConstantStep/SoftBounds updates take their
        exact closed form on XLA whatever the choice.

    Example:
      >>> from aimcjax import pulse
      >>> cfg = pulse.UpdateConfig(mode="outer", bl=15)
      >>> cfg.update_management, cfg.rng
      (True, 'counter')
      >>> pulse.UpdateConfig(bl=0)
      Traceback (most recent call last):
      ...
      ValueError: bl must be an integer >= 1, got 0
    """

    mode: str = "pulse"
    bl: int = 31
    update_management: bool = True
    update_bl_management: bool = True
    stochastic_rounding: bool = True
    rng: str = "counter"
    kernel: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if isinstance(self.bl, bool) or not isinstance(self.bl, (int, np.integer)) or self.bl < 1:
            raise ValueError(f"bl must be an integer >= 1, got {self.bl!r}")
        if self.bl > MAX_BL:
            raise ValueError(
                f"bl must be <= {MAX_BL} (2**16 pulses cross the range of any "
                f"device; more only stalls the update), got {self.bl!r}"
            )
        for name in ("update_management", "update_bl_management", "stochastic_rounding"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.rng not in RNGS:
            raise ValueError(f"rng must be one of {RNGS}, got {self.rng!r}")
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {self.kernel!r}")


def _check_device_tile(tile: object, device: object) -> None:
    if not isinstance(device, Device):
        raise TypeError(f"device must be an aimcjax device, got {type(device).__name__}")
    if not isinstance(tile, Tile):
        raise TypeError(f"tile must be an aimcjax.tile.Tile, got {type(tile).__name__}")


def _check_same_shape(name: str, value: jax.Array, tile: Tile) -> None:
    if value.shape != tile.w.shape:
        raise ValueError(f"{name} has shape {value.shape}, the tile has {tile.w.shape}")


def _check_finite(name: str, value: jax.Array) -> None:
    if not isinstance(value, jax.core.Tracer) and not np.isfinite(np.asarray(value)).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def apply(tile: Tile, device: Device, n: ArrayLike, key: KeyLike, rng: str = "counter") -> Tile:
    """Fire signed pulse counts ``n`` (positive: up) on every element.

    Args:
      tile: the array state.
      device: its device (response functions and noise).
      n: integer array shaped like the tile: pulses per element, sign = direction.
      key: PRNG key (or int) for the cycle-to-cycle noise.
      rng: "counter": the per-pulse standard normals come from a keyed counter-based
        generator seeded from ``key`` (a few integer operations per element; float32 and
        narrower); "threefry": from ``jax.random.normal`` (the reference, ~8x slower on
        CPU). Both draw i.i.d. N(0, 1) noise; they differ only in the stream for a key.

    Returns:
      The tile with updated stored weights.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices, pulse, tile
      >>> dev = devices.SoftBounds(tau=0.6, dw_min=0.01, dw_min_std=0.3)
      >>> t = tile.init(0, dev, (2, 2), w0=jnp.zeros((2, 2)))
      >>> t = pulse.apply(t, dev, jnp.array([[3, 0], [-2, 1]]), 0)
      >>> [bool(t.w[0, 0] > 0), bool(t.w[0, 1] == 0), bool(t.w[1, 0] < 0)]  # up, none, down
      [True, True, True]
    """
    _check_device_tile(tile, device)
    n = jnp.asarray(n)
    if not jnp.issubdtype(n.dtype, jnp.integer):
        raise TypeError(f"n must be an integer array of pulse counts, got dtype {n.dtype}")
    _check_same_shape("n", n, tile)
    if rng not in RNGS:
        raise ValueError(f"rng must be one of {RNGS}, got {rng!r}")
    if _has_closed_form(device):
        return tile._replace(w=_closed_form_apply(tile, device, n))
    return tile._replace(w=_pulse_loop_apply(tile, device, n, as_key(key), rng))


def _fused_kernel(cfg: UpdateConfig, device: Device, dtype: DTypeLike) -> ModuleType | None:
    """The fused-kernel module when ``cfg.kernel`` sends this update to it, else None."""
    if cfg.kernel == "xla" or _has_closed_form(device):
        return None
    from aimcjax.pulse import pallas  # Pallas is imported only when an update may use it

    return pallas if pallas.use_kernel(cfg.kernel, device, dtype, cfg.rng) else None


def _expected(tile: Tile, device: Device, dW: jax.Array) -> jax.Array:
    qp, qm = device.response(tile.w, tile.w_min, tile.w_max)
    gain = jnp.where(dW > 0, tile.gain_up * qp, tile.gain_down * qm)
    return jnp.clip(tile.w + dW * gain, tile.w_min, tile.w_max)


def pulse_counts(
    dW: jax.Array,
    dw_min: ArrayLike,
    bl: int,
    key: KeyLike,
    stochastic: bool = True,
    rng: str = "counter",
) -> jax.Array:
    """Signed pulse counts for a requested change: round(dW/dw_min), capped at +-bl.

    ``rng`` picks the generator of the stochastic rounding's uniforms (see :data:`RNGS`);
    both give U[0, 1) with 23-bit resolution.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import pulse
      >>> pulse.pulse_counts(jnp.array([0.0042, -0.05, 0.0]), 1e-3, 31, 0, stochastic=False)
      Array([  4, -31,   0], dtype=int32)
    """
    if rng not in RNGS:
        raise ValueError(f"rng must be one of {RNGS}, got {rng!r}")
    x = dW / dw_min
    if stochastic:
        x = jnp.floor(x + _uniform(as_key(key), x.shape, x.dtype, rng))
    else:
        x = jnp.round(x)
    return jnp.clip(x, -bl, bl).astype(jnp.int32)


def update(
    tile: Tile, device: Device, dW: ArrayLike, key: KeyLike, cfg: UpdateConfig = UpdateConfig()
) -> Tile:
    """Apply a requested change ``dW`` of the effective weights in the configured mode.

    Args:
      tile: the array state.
      device: its device.
      dW: requested change, shaped like the tile.
      key: PRNG key (or int) for rounding and noise.
      cfg: :class:`UpdateConfig`; "outer" needs the per-sample factors, see :func:`outer_update`.

    Returns:
      The updated tile.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices, pulse, tile
      >>> dev = devices.SoftBounds(tau=0.6, dw_min=1e-3)
      >>> t = tile.init(0, dev, (3,), w0=jnp.zeros(3))
      >>> dW = jnp.array([0.01, -0.002, 0.0004])
      >>> t = pulse.update(t, dev, dW, 1, pulse.UpdateConfig(mode="pulse"))
      >>> bool(jnp.all(jnp.abs(t.w - dW) <= 1.1e-3))  # within one pulse of the request
      True
    """
    _check_device_tile(tile, device)
    if not isinstance(cfg, UpdateConfig):
        raise TypeError(f"cfg must be an UpdateConfig, got {type(cfg).__name__}")
    dW = jnp.asarray(dW, tile.w.dtype)
    _check_same_shape("dW", dW, tile)
    _check_finite("dW", dW)
    if cfg.mode == "ideal":
        return tile._replace(w=tile.w + dW)
    if cfg.mode == "expected":
        return tile._replace(w=_expected(tile, device, dW))
    if cfg.mode == "pulse":
        k_round, k_noise = jax.random.split(as_key(key))
        n = pulse_counts(dW, device.dw_min, cfg.bl, k_round, cfg.stochastic_rounding, cfg.rng)
        # |n| <= bl: int8 counts when they fit (a quarter of the memory traffic of int32).
        n = _materialized(
            n.astype(jnp.int8 if cfg.bl <= np.iinfo(np.int8).max else jnp.int32), k_noise
        )
        fused = _fused_kernel(cfg, device, tile.w.dtype)
        if fused is not None:
            return tile._replace(w=fused.pulse_update(tile, device, n, k_noise, cfg.bl))
        return apply(tile, device, n, k_noise, cfg.rng)
    raise ValueError('mode "outer" needs the per-sample factors (x, d): use pulse.outer_update')


def outer_update(
    tile: Tile,
    device: Device,
    x: ArrayLike,
    d: ArrayLike,
    lr: ArrayLike,
    key: KeyLike,
    cfg: UpdateConfig = UpdateConfig(mode="outer"),
) -> Tile:
    """Rank-1 stochastic pulse trains per sample: W <- W - lr * sum_b x_b d_b^T in expectation.

    For each sample, in sequence [AIHWKIT StochasticCompressed]: with x* = max|x|,
    d* = max|d| and k = lr*x*d*/dw_min, the train length is BL = min(ceil(k), cfg.bl)
    (update-BL management); probabilities p_x = |x| B, p_d = |d| A with
    A = B = sqrt(lr/(g BL)) balanced by sqrt(x*/d*) (update management), g the device's
    :meth:`~aimcjax.devices.Device.update_granularity`; above cfg.bl the largest x fires
    in every slot and the d probabilities above 1 are clipped (only the largest d entries
    saturate, see :func:`~aimcjax.pulse.trains._pulse_probabilities`); bits b_jt ~ Bern(p_x,j), c_it ~ Bern(p_d,i)
    for t < BL; n_ij = sum_t b_jt c_it pulses in direction -sign(lr x_j d_i). Then
    E[n_ij] = lr |x_j d_i| / g below saturation.

    With ``cfg.mode`` other than "outer" the batch's summed change ``-lr * x^T d`` is applied
    by :func:`update` in that mode instead.

    Args:
      tile: array state of shape (in, out), or a kernel viewed as (prod(leading), out).
      device: its device.
      x: inputs, shape (B, in) (or (in,) for one sample).
      d: output errors, shape (B, out) (or (out,)).
      lr: learning rate (scalar, may be traced).
      key: PRNG key (or int).
      cfg: :class:`UpdateConfig`.

    Returns:
      The updated tile.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices, pulse, tile
      >>> dev = devices.ConstantStep(dw_min=1e-3)
      >>> t = tile.init(0, dev, (4, 2), w0=jnp.zeros((4, 2)))
      >>> t = pulse.outer_update(t, dev, jnp.ones((8, 4)), jnp.ones((8, 2)), 0.01, 1)
      >>> bool(jnp.all(t.w < 0))  # W <- W - lr x^T d: every element pulsed down
      True
    """
    _check_device_tile(tile, device)
    if not isinstance(cfg, UpdateConfig):
        raise TypeError(f"cfg must be an UpdateConfig, got {type(cfg).__name__}")
    dtype = tile.w.dtype
    x = jnp.asarray(x, dtype)
    d = jnp.asarray(d, dtype)
    if x.ndim == 1:
        x = x[None]
    if d.ndim == 1:
        d = d[None]
    n_in, n_out = matrix_shape(tile.w.shape)
    if x.ndim != 2 or x.shape[1] != n_in:
        raise ValueError(
            f"x must have shape (batch, {n_in}) for a tile viewed as ({n_in}, {n_out}), got {x.shape}"
        )
    if d.ndim != 2 or d.shape[1] != n_out:
        raise ValueError(
            f"d must have shape (batch, {n_out}) for a tile viewed as ({n_in}, {n_out}), got {d.shape}"
        )
    if x.shape[0] != d.shape[0]:
        raise ValueError(f"x and d need the same batch size, got {x.shape[0]} and {d.shape[0]}")
    _check_finite("x", x)
    _check_finite("d", d)
    lr = jnp.asarray(lr, dtype)
    if cfg.mode != "outer":
        dW = (-lr * x.T @ d).reshape(tile.w.shape)
        return update(tile, device, dW, key, cfg)
    fused = _fused_kernel(cfg, device, dtype)
    if fused is not None:  # all samples' pulses in one kernel launch
        return tile._replace(w=fused.outer_update(tile, device, x, d, lr, key, cfg))

    shape = tile.w.shape
    flat = tile._replace(**{f: getattr(tile, f).reshape(n_in, n_out) for f in Tile._fields})

    granularity = device.update_granularity()  # aihwkit balances x and d with it

    def one_sample(t: Tile, inputs: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[Tile, None]:
        xb, db, kb = inputs
        k_bits, k_noise = jax.random.split(kb)
        trains_x, trains_d, n_chunks = _sample_pulse_trains(xb, db, lr, granularity, k_bits, cfg)
        if _has_closed_form(device):
            return apply(
                t, device, _coincidences(trains_x, trains_d, n_chunks), k_noise, cfg.rng
            ), None
        return _apply_trains(t, device, trains_x, trains_d, k_noise, cfg.rng), None

    keys = jax.random.split(as_key(key), x.shape[0])
    flat, _ = jax.lax.scan(one_sample, flat, (x, d, keys))
    return tile._replace(w=flat.w.reshape(shape))
