"""Analog matrix-vector products through a non-ideal periphery (DAC, ADC, noise, management).

A crossbar computes ``y = W x`` in one step, but the vector enters through digital-to-analog
converters (DAC, finite resolution, bounded range) and leaves through analog-to-digital
converters (ADC, finite resolution, saturating range) with additive read noise in between.
aihwkit models this with ``IOParameters``; :class:`PeripheryConfig` carries the same fields with
the same defaults, which are also the hardware settings of [RF] Table 4:

==========================  =====================================================
DAC                          7 bit over ``[-inp_bound, inp_bound] = [-1, 1]``
ADC                          9 bit over ``[-out_bound, out_bound] = [-12, 12]``
output noise                 additive ``N(0, out_noise**2)``, ``out_noise = 0.06``
noise management             ``"abs_max"``: each input vector is divided by its max ``|x|``
bound management             ``"iterative"``: re-read with the input halved while the ADC saturates
==========================  =====================================================

One analog read of an input vector ``x`` (weights ``W`` of shape ``(in, out)``)::

    s      = noise-management scale of x   (max|x|, max x or 1)
    x'     = clip(quantize(x / (s * r), inp_res), -inp_bound, inp_bound)      # DAC
    y'     = x' @ W + w_noise * ||x'|| * xi + out_noise * xi'                  # crossbar + read noise
    y''    = quantize(y', out_res)                                            # ADC
    y      = clip(y'', -out_bound, out_bound) * s * r                         # digital rescale

with ``r = 1`` on the first read. Under iterative bound management a read in which any output
quantizes beyond ``±out_bound`` (saturation) is repeated with ``r`` doubled, as aihwkit does,
until no output saturates or ``r`` exceeds ``min(max_bm_factor, max_bm_res / inp_res)``
(``inp_res`` the absolute DAC step); then the last read is returned as it is, saturated
outputs clipped to ``±out_bound * s * r``. The number of reads is therefore capped at
:attr:`PeripheryConfig.max_bm_reads` and the loop is a ``lax.while_loop`` inside jit. Each sample
(each vector along the leading axes) has its own scale, its own reduction factor and its own
noise.

Resolutions follow aihwkit: ``b`` bits give ``2**b - 1`` levels over ``[-bound, bound]``,
i.e. the step ``2 * bound / (2**b - 2)`` (aihwkit's ``inp_res = 1 / (2**7 - 2)`` relative to the
full range), and level 0 is exact.

The config is a frozen (hashable) dataclass: pass it as a static argument to ``jax.jit`` or close
over it; it is not a pytree, so sweeping periphery settings with ``vmap`` is not supported
(numeric periphery sweeps are rare; recompiling per setting is cheap).

References:
  [RF] Wu et al., arXiv:2502.06309, Table 4 (hardware settings).
  [AIHWKIT] ``aihwkit.simulator.parameters.IOParameters`` and
  ``rpu_forward_backward_pass.cpp`` (noise and bound management semantics).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax import lax

from aimcjax._typing import ArrayLike

__all__ = ["PRESETS", "PeripheryConfig", "analog_matmul", "mvm", "preset", "quantize", "tiled_mvm"]

NoiseManagement = Literal["abs_max", "max", "none"]
BoundManagement = Literal["iterative", "none"]
_NOISE_MANAGEMENTS = ("abs_max", "max", "none")
_BOUND_MANAGEMENTS = ("iterative", "none")
_HIGHEST = lax.Precision.HIGHEST
# Converter resolution limit: a b-bit converter has 2**b - 1 levels, so a read is divided by
# the step 2*bound/(2**b - 2). float32 carries 24 significant bits: with more bits the levels
# are finer than float32 can tell apart at full scale (the "quantization" is rounding noise),
# and from ~128 bits on the level index overflows float32 (out_bits=200 read NaN).
MAX_BITS = 24
# Bound management halves the input up to this factor (one read more per doubling): 2**24
# again is where a halved float32 input stops carrying its DAC levels; aihwkit's default is 1000.
MAX_BM_FACTOR = 2**24


@dataclasses.dataclass(frozen=True)
class PeripheryConfig:
    """Settings of the analog periphery of one crossbar (aihwkit's ``IOParameters``).

    Defaults are aihwkit's, which are the hardware settings of [RF] Table 4.

    Attributes:
      inp_bound: DAC range ``[-inp_bound, inp_bound]``; ``None`` = unbounded. With noise
        management on it must be 1 (as in aihwkit: the managed input spans [-1, 1]).
      inp_bits: DAC resolution in bits (``2**bits - 1`` levels); ``None`` = no quantization.
      inp_sto_round: stochastic rounding of the DAC input (unbiased) instead of nearest.
      out_bound: ADC range ``[-out_bound, out_bound]``; ``None`` = never saturates.
      out_bits: ADC resolution in bits; ``None`` = no quantization.
      out_sto_round: stochastic rounding in the ADC.
      out_noise: std of the additive Gaussian read noise on every output, in the units of the
        managed (normalized) read, i.e. before the digital rescale by ``s * r``.
      w_noise: std of weight read noise, additive per element and per read; it adds
        ``w_noise * ||x'||_2 * N(0, 1)`` to each output (aihwkit's ``AdditiveConstant``
        ``w_noise_type``).
      noise_management: ``"abs_max"`` (divide each input vector by its max ``|x|``; an
        all-zero vector then reads as exactly zero, as in aihwkit), ``"max"``
        (by its max, for non-negative inputs; where the max is not positive the abs max is used,
        where aihwkit would output zeros) or ``"none"``.
      nm_thres: if > 0, the noise-management scale is capped at this value (aihwkit's
        ``nm_thres``).
      bound_management: ``"iterative"`` (re-read with halved input while the ADC saturates) or
        ``"none"``.
      max_bm_factor: largest input reduction factor of bound management (aihwkit default 1000).
      max_bm_res: bound management also stops once the reduction exceeds ``max_bm_res`` times
        the number of DAC steps ``1 / inp_res`` (aihwkit default 0.25), because a more reduced
        input has almost no DAC levels left.

    Example:
      >>> cfg = PeripheryConfig()                     # [RF] Table 4
      >>> cfg.max_bm_reads                            # 1, 2, 4, 8, 16
      5
      >>> exact = PeripheryConfig.perfect()           # plain x @ W

    References:
      [RF] Table 4; [AIHWKIT] ``IOParameters``.
    """

    inp_bound: float | None = 1.0
    inp_bits: int | None = 7
    inp_sto_round: bool = False
    out_bound: float | None = 12.0
    out_bits: int | None = 9
    out_sto_round: bool = False
    out_noise: float = 0.06
    w_noise: float = 0.0
    noise_management: NoiseManagement = "abs_max"
    nm_thres: float = 0.0
    bound_management: BoundManagement = "iterative"
    max_bm_factor: int = 1000
    max_bm_res: float = 0.25

    def __post_init__(self) -> None:
        for name in ("inp_bound", "out_bound"):
            value = getattr(self, name)
            # An infinite bound has an infinite converter step: every read quantizes to 0.
            if value is not None and not (_is_real(value) and 0 < value < math.inf):
                raise ValueError(
                    f"{name} must be a finite number > 0 or None (unbounded), got {value!r}"
                )
        for name in ("inp_bits", "out_bits"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_BITS
            ):
                raise ValueError(
                    f"{name} must be an integer in [1, {MAX_BITS}] or None (no "
                    f"quantization), got {value!r}"
                )
        for name in ("out_noise", "w_noise", "nm_thres"):
            value = getattr(self, name)
            if not (_is_real(value) and value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.noise_management not in _NOISE_MANAGEMENTS:
            raise ValueError(
                f"noise_management must be one of {_NOISE_MANAGEMENTS}, "
                f"got {self.noise_management!r}"
            )
        if self.bound_management not in _BOUND_MANAGEMENTS:
            raise ValueError(
                f"bound_management must be one of {_BOUND_MANAGEMENTS}, "
                f"got {self.bound_management!r}"
            )
        if not (
            isinstance(self.max_bm_factor, int)
            and not isinstance(self.max_bm_factor, bool)
            and 1 <= self.max_bm_factor <= MAX_BM_FACTOR
        ):
            raise ValueError(
                f"max_bm_factor must be an integer in [1, {MAX_BM_FACTOR}], "
                f"got {self.max_bm_factor!r}"
            )
        if not (_is_real(self.max_bm_res) and 0 < self.max_bm_res < math.inf):
            raise ValueError(f"max_bm_res must be a finite number > 0, got {self.max_bm_res!r}")
        if self.noise_management != "none" and self.inp_bound not in (None, 1.0):
            raise ValueError(
                "inp_bound must be 1.0 (or None) when noise_management is "
                f"{self.noise_management!r}: the managed input spans [-1, 1]; "
                f"got inp_bound={self.inp_bound!r}"
            )
        for name in ("inp_sto_round", "out_sto_round"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")

    @classmethod
    def perfect(cls) -> PeripheryConfig:
        """The ideal periphery: no DAC/ADC, no noise, no management; ``mvm`` is exactly ``x @ W``."""
        return cls(
            inp_bound=None,
            inp_bits=None,
            out_bound=None,
            out_bits=None,
            out_noise=0.0,
            w_noise=0.0,
            noise_management="none",
            bound_management="none",
        )

    @property
    def is_perfect(self) -> bool:
        """True when every non-ideality is off, so the read is the exact product."""
        return (
            self.inp_bound is None
            and self.inp_bits is None
            and self.out_bound is None
            and self.out_bits is None
            and self.out_noise == 0
            and self.w_noise == 0
            and self.noise_management == "none"
            and self.bound_management == "none"
        )

    @property
    def inp_res(self) -> float | None:
        """Absolute DAC step ``2 * inp_bound / (2**inp_bits - 2)`` (None: not quantized).

        With one bit the DAC has a single level (0): the step is infinite."""
        return _resolution(self.inp_bits, self.inp_bound)

    @property
    def out_res(self) -> float | None:
        """Absolute ADC step ``2 * out_bound / (2**out_bits - 2)`` (None: not quantized)."""
        return _resolution(self.out_bits, self.out_bound)

    @property
    def max_bm_reads(self) -> int:
        """Most reads one MVM can take: reductions 1, 2, 4, ... up to the first one beyond the cap."""
        if self.bound_management == "none":
            return 1
        limit = float(self.max_bm_factor)
        if self.inp_res is not None:
            limit = min(limit, self.max_bm_res / self.inp_res)
        reads, reduction = 1, 1.0
        while reduction <= limit:
            reduction *= 2.0
            reads += 1
        return reads


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def _resolution(bits: int | None, bound: float | None) -> float | None:
    if bits is None:
        return None
    if bound is None:
        raise ValueError("a quantized converter needs a finite bound (bits given, bound None)")
    if bits == 1:
        return math.inf
    return 2.0 * bound / (2**bits - 2)


PRESETS = {
    "perfect": PeripheryConfig.perfect(),
    "default": PeripheryConfig(),
    "aihwkit_preset": PeripheryConfig(out_bound=20.0, out_noise=0.1),
}
"""Named peripheries: ``perfect`` (exact ``x @ W``), ``default`` ([RF] Table 4 = aihwkit's
``IOParameters`` defaults) and ``aihwkit_preset`` (aihwkit's ``PresetIOParameters``, used by its
device presets: more output noise, 0.1, over a wider ADC range, +-20)."""


def preset(name: str, **overrides: Any) -> PeripheryConfig:
    """The named periphery of :data:`PRESETS`, with fields replaced by ``overrides``.

    Args:
      name: a key of :data:`PRESETS`.
      **overrides: :class:`PeripheryConfig` fields.

    Returns:
      A :class:`PeripheryConfig`.

    Raises:
      ValueError: unknown name or an invalid field value; TypeError: unknown field.

    Example:
      >>> cfg = preset("default", out_noise=0.1, inp_bits=8)
      >>> cfg.out_noise, cfg.inp_bits, cfg.out_bits
      (0.1, 8, 9)
    """
    if name not in PRESETS:
        raise ValueError(f"unknown periphery preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)


def quantize(x: jax.Array, res: float | None, key: jax.Array | None = None) -> jax.Array:
    """Rounds ``x`` to the grid ``res * Z`` (nearest, or stochastically when ``key`` is given).

    Args:
      x: values.
      res: grid step (``None``: returned unchanged; ``inf``: everything maps to 0).
      key: PRNG key for unbiased stochastic rounding, ``floor(x / res + u)``, u ~ U[0, 1).

    Returns:
      The quantized values, dtype of ``x``.
    """
    if res is None:
        return x
    if math.isinf(res):
        return jnp.zeros_like(x)
    steps = x / res
    if key is None:
        steps = jnp.round(steps)
    else:
        steps = jnp.floor(steps + jax.random.uniform(key, x.shape, x.dtype))
    return steps * jnp.asarray(res, x.dtype)


def _check_key(key: jax.Array | None, cfg: PeripheryConfig) -> jax.Array:
    if key is None:
        raise ValueError(
            "key must be a PRNG key for a non-perfect periphery "
            "(noise, stochastic rounding); got None"
        )
    return key


def _noise_scale(x: jax.Array, cfg: PeripheryConfig) -> jax.Array:
    """Per-sample noise-management scale s (shape (..., 1)); 0 for an all-zero managed vector."""
    if cfg.noise_management == "none":
        return jnp.ones(x.shape[:-1] + (1,), x.dtype)
    abs_max = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
    if cfg.noise_management == "abs_max":
        scale = abs_max
    else:
        plain_max = jnp.max(x, axis=-1, keepdims=True)
        scale = jnp.where(plain_max > 0, plain_max, abs_max)
    if cfg.nm_thres > 0:
        scale = jnp.minimum(scale, cfg.nm_thres)
    return scale


def _read(
    w: jax.Array, x: jax.Array, scale: jax.Array, cfg: PeripheryConfig, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """One managed analog read; returns (clipped output in read units, saturated per sample)."""
    k_dac, k_wnoise, k_onoise, k_adc = jax.random.split(key, 4)
    x_dac = quantize(x / scale, cfg.inp_res, k_dac if cfg.inp_sto_round else None)
    if cfg.inp_bound is not None:
        x_dac = jnp.clip(x_dac, -cfg.inp_bound, cfg.inp_bound)
    y = jnp.matmul(x_dac, w, precision=_HIGHEST)
    if cfg.w_noise > 0:
        x_norm = jnp.linalg.norm(x_dac, axis=-1, keepdims=True)
        y = y + cfg.w_noise * x_norm * jax.random.normal(k_wnoise, y.shape, y.dtype)
    if cfg.out_noise > 0:
        y = y + cfg.out_noise * jax.random.normal(k_onoise, y.shape, y.dtype)
    y = quantize(y, cfg.out_res, k_adc if cfg.out_sto_round else None)
    if cfg.out_bound is None:
        return y, jnp.zeros(y.shape[:-1], bool)
    saturated = jnp.any(jnp.abs(y) > cfg.out_bound, axis=-1)
    return jnp.clip(y, -cfg.out_bound, cfg.out_bound), saturated


def mvm(
    w: ArrayLike, x: ArrayLike, cfg: PeripheryConfig, key: jax.Array | None, transpose: bool = False
) -> jax.Array:
    """Analog matrix-vector product ``x @ w`` (or ``x @ w.T``) through the periphery ``cfg``.

    Args:
      w: weights of one crossbar, shape ``(in, out)`` (the flax kernel layout).
      x: inputs, shape ``(..., in)`` (``(..., out)`` when ``transpose``); every vector along the
        leading axes is one analog read with its own management and noise.
      cfg: the periphery (:class:`PeripheryConfig`, static).
      key: PRNG key for the noise (may be None when ``cfg.is_perfect``).
      transpose: read the crossbar backwards, ``x @ w.T`` (the backward pass of a layer).

    Returns:
      ``(..., out)`` (``(..., in)`` when ``transpose``), dtype of ``x``.

    Example:
      >>> w, x = jnp.eye(3), jnp.ones((5, 3))
      >>> y = mvm(w, x, PeripheryConfig(), jax.random.key(0))   # 5 reads: x @ w plus noise
      >>> y.shape, bool(jnp.allclose(y, 1.0, atol=0.3)), bool(jnp.all(y == x))
      ((5, 3), True, False)
      >>> bool(jnp.all(mvm(w, x, PeripheryConfig.perfect(), None) == x))
      True

    References:
      [AIHWKIT] ``ForwardBackwardPassIOManaged::forwardVector``; [RF] Table 4.
    """
    if not isinstance(cfg, PeripheryConfig):
        raise TypeError(f"cfg must be a PeripheryConfig, got {type(cfg).__name__}")
    w = jnp.asarray(w)
    x = jnp.asarray(x)
    if w.ndim != 2:
        raise ValueError(f"w must be a 2-D (in, out) array, got shape {w.shape}")
    if transpose:
        w = w.T
    if x.ndim < 1 or x.shape[-1] != w.shape[0]:
        raise ValueError(
            f"x has last dimension {x.shape[-1:] or '()'} but the crossbar "
            f"{'(transposed) ' if transpose else ''}takes {w.shape[0]} inputs "
            f"(w shape {(w.T if transpose else w).shape})"
        )
    w = w.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else w
    if cfg.is_perfect:
        return jnp.matmul(x, w, precision=_HIGHEST)
    key = _check_key(key, cfg)

    scale = _noise_scale(x, cfg)
    # With noise management an all-zero vector reads as exactly zero (aihwkit short-cuts it:
    # the managed read would otherwise be pure noise, e.g. the many zero gradients behind a
    # max-pool); scale 1 keeps the division finite and the output is masked at the end.
    silent = scale <= 0
    scale = jnp.where(silent, jnp.ones_like(scale), scale)
    reads = cfg.max_bm_reads
    y, saturated = _read(w, x, scale, cfg, jax.random.fold_in(key, 0))
    reduction = jnp.ones_like(scale)
    if reads == 1:
        return jnp.where(silent, 0.0, y * scale).astype(y.dtype)
    done = ~saturated

    def another_read(carry: tuple[Any, ...]) -> tuple[Any, ...]:
        i, reduction, y, done = carry
        reduction = jnp.where(done[..., None], reduction, 2.0 * reduction)
        y_new, saturated = _read(w, x, scale * reduction, cfg, jax.random.fold_in(key, i))
        y = jnp.where(done[..., None], y, y_new)
        return i + 1, reduction, y, done | ~saturated

    def not_finished(carry: tuple[Any, ...]) -> jax.Array:
        i, _, _, done = carry
        return (i < reads) & ~jnp.all(done)

    _, reduction, y, _ = lax.while_loop(not_finished, another_read, (1, reduction, y, done))
    return jnp.where(silent, 0.0, y * (scale * reduction)).astype(y.dtype)


def _splits(size: int, max_size: int | None) -> list[tuple[int, int]]:
    """Equal-as-possible contiguous chunks of at most max_size (aihwkit splits evenly)."""
    if max_size is None or size <= max_size:
        return [(0, size)]
    n = -(-size // max_size)
    bounds = [round(i * size / n) for i in range(n + 1)]
    return list(itertools.pairwise(bounds))


def tiled_mvm(
    w: ArrayLike,
    x: ArrayLike,
    cfg: PeripheryConfig,
    key: jax.Array | None,
    max_tile: int | None = None,
    transpose: bool = False,
) -> jax.Array:
    """``mvm`` of a layer too large for one crossbar, split into arrays of at most
    ``max_tile x max_tile`` (aihwkit's ``max_input_size``/``max_output_size``, 512 by default).

    Each array is read through its own periphery (its own noise management, bound management
    and noise); partial outputs of arrays sharing output lines are summed digitally.

    Args:
      w: ``(in, out)`` weights of the whole layer.
      x: ``(..., in)`` inputs (``(..., out)`` when ``transpose``).
      cfg: the periphery of every array.
      key: PRNG key; array ``(i, j)`` uses ``fold_in(key, i * n_out + j)``.
      max_tile: largest array side; ``None`` = one array.
      transpose: backward read ``x @ w.T``.

    Returns:
      As :func:`mvm`.

    Example:
      >>> y = tiled_mvm(jnp.full((1024, 10), 0.01), jnp.ones((2, 1024)), PeripheryConfig(),
      ...               jax.random.key(0), max_tile=512)     # two arrays, outputs summed
      >>> y.shape, bool(jnp.allclose(y, 10.24, atol=0.5))
      ((2, 10), True)
    """
    if max_tile is not None and not (isinstance(max_tile, int) and max_tile >= 1):
        raise ValueError(f"max_tile must be a positive integer or None, got {max_tile!r}")
    w = jnp.asarray(w)
    if w.ndim != 2:
        raise ValueError(f"w must be a 2-D (in, out) array, got shape {w.shape}")
    rows, cols = _splits(w.shape[0], max_tile), _splits(w.shape[1], max_tile)
    if len(rows) == 1 and len(cols) == 1:
        return mvm(w, x, cfg, key, transpose)
    x = jnp.asarray(x)
    expected = w.shape[1] if transpose else w.shape[0]
    if x.ndim < 1 or x.shape[-1] != expected:
        raise ValueError(
            f"x has last dimension {x.shape[-1:] or '()'} but the layer "
            f"takes {expected} inputs (w shape {w.shape}, transpose={transpose})"
        )
    if not cfg.is_perfect:
        _check_key(key, cfg)
    n_cols = len(cols)

    def tile_key(i: int, j: int) -> jax.Array | None:
        return None if key is None else jax.random.fold_in(key, i * n_cols + j)

    if not transpose:
        outputs = []
        for j, (c0, c1) in enumerate(cols):
            partial = [
                mvm(w[r0:r1, c0:c1], x[..., r0:r1], cfg, tile_key(i, j))
                for i, (r0, r1) in enumerate(rows)
            ]
            outputs.append(functools.reduce(jnp.add, partial))
        return jnp.concatenate(outputs, axis=-1)
    outputs = []
    for i, (r0, r1) in enumerate(rows):
        partial = [
            mvm(w[r0:r1, c0:c1], x[..., c0:c1], cfg, tile_key(i, j), transpose=True)
            for j, (c0, c1) in enumerate(cols)
        ]
        outputs.append(functools.reduce(jnp.add, partial))
    return jnp.concatenate(outputs, axis=-1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def analog_matmul(
    x: ArrayLike,
    w: ArrayLike,
    key: jax.Array | None,
    forward: PeripheryConfig,
    backward: PeripheryConfig,
    max_tile: int | None = None,
) -> jax.Array:
    """Differentiable analog layer product ``x @ w``, as an analog crossbar trains.

    Forward: ``tiled_mvm(w, x, forward)``. Backward: the input gradient is the transposed noisy
    read ``tiled_mvm(w, g, backward, transpose=True)``; the weight gradient is the exact outer
    product ``sum_b x_b g_b^T`` (in hardware it is never formed: the update is done by pulses
    from ``x`` and ``g``; see ``aimcjax.pulse.outer_update``).

    Args:
      x: ``(..., in)`` inputs.
      w: ``(in, out)`` weights.
      key: PRNG key; the forward read uses ``split(key)[0]``, the backward read ``split(key)[1]``
        (None allowed when both configs are perfect).
      forward: periphery of the forward read (static).
      backward: periphery of the backward read (static; aihwkit turns bound management off
        there, so layers default to ``PeripheryConfig(bound_management="none")``).
      max_tile: largest crossbar side (static), see :func:`tiled_mvm`.

    Returns:
      ``(..., out)``.

    Example:
      >>> x, w, key = jnp.ones((4, 3)), jnp.eye(3), jax.random.key(0)
      >>> g = jax.grad(lambda w: analog_matmul(x, w, key, PeripheryConfig(),
      ...                                      PeripheryConfig()).sum())(w)
      >>> g.tolist()  # the exact weight gradient x.T @ ones
      [[4.0, 4.0, 4.0], [4.0, 4.0, 4.0], [4.0, 4.0, 4.0]]
    """
    forward_key, _ = _split_key(key)
    return tiled_mvm(w, x, forward, forward_key, max_tile)


def _split_key(key: jax.Array | None) -> tuple[jax.Array | None, jax.Array | None]:
    if key is None:
        return None, None
    forward_key, backward_key = jax.random.split(key)
    return forward_key, backward_key


def _analog_matmul_fwd(
    x: jax.Array,
    w: jax.Array,
    key: jax.Array | None,
    forward: PeripheryConfig,
    backward: PeripheryConfig,
    max_tile: int | None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array, jax.Array | None]]:
    return analog_matmul(x, w, key, forward, backward, max_tile), (x, w, key)


def _analog_matmul_bwd(
    forward: PeripheryConfig,
    backward: PeripheryConfig,
    max_tile: int | None,
    residuals: tuple[jax.Array, jax.Array, jax.Array | None],
    g: jax.Array,
) -> tuple[jax.Array, jax.Array, None]:
    x, w, key = residuals
    _, backward_key = _split_key(key)
    dx = tiled_mvm(w, g, backward, backward_key, max_tile, transpose=True).astype(x.dtype)
    dw = jnp.matmul(
        x.reshape(-1, x.shape[-1]).T, g.reshape(-1, g.shape[-1]), precision=_HIGHEST
    ).astype(w.dtype)
    return dx, dw, None


analog_matmul.defvjp(_analog_matmul_fwd, _analog_matmul_bwd)
