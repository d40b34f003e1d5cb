"""One fused Pallas kernel per pulsed update ("pulse" and "outer" modes) for accelerators.

The XLA path of :mod:`aimcjax.pulse` runs the per-pulse loop as a loop of whole-tile passes:
each pulse reads and writes the tile (and its gains and bounds) once, and "outer" mode does so
per sample. Here one kernel launch does the whole update: each program takes a block of the
tile into registers, loops over the samples (in order) and over their pulses per element,
and writes the block once. The arithmetic per pulse is the XLA path's own
(:func:`aimcjax.pulse.loop._pulse_step`), and the per-pulse noise comes from the same counter
generator indexed by (key of the pulse, element id in the whole tile): only the two key
words of each pulse, ``jax.random.bits(fold_in(key, t), (2,), uint32)``, are computed
outside (a tiny array), so the kernel gives the XLA path's result bit for bit wherever both
run the same float operations (tested in Pallas interpret mode on CPU). On GPU the kernel is
lowered by Triton (its division and transcendental functions may round differently from
XLA's in the last ulp).

Chosen by :class:`aimcjax.pulse.UpdateConfig` ``kernel``: "auto" (default) uses it when the
default backend is a GPU and the update is supported (:func:`unsupported`), "xla" never,
"pallas" always (off GPU in interpret mode: slow, for tests). TPUs keep the XLA path: the
kernel is written for Triton (scalar loads, 16 x 128 int8/float32 blocks) and has not been
lowered with Mosaic.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.typing import ArrayLike, DTypeLike

from aimcjax.devices import ConstantStep, Device, Exponential, Power, SoftBounds
from aimcjax.pulse.loop import _noise_term, _pulse_step
from aimcjax.pulse.rng import _counter_words, _keyed_bits, _normal_from_bits
from aimcjax.pulse.trains import _sample_pulse_trains
from aimcjax.pulse.xla import _materialized, _static_value
from aimcjax.tile import Tile, as_key, matrix_shape

if TYPE_CHECKING:
    from aimcjax.pulse.modes import KeyLike, UpdateConfig

__all__ = ["BLOCK", "outer_update", "pulse_update", "unsupported", "use_kernel"]

# Triton's compiler parameters moved between JAX releases; the kernel runs without them.
_TritonParams: Any
try:  # JAX >= 0.7
    from jax.experimental.pallas import triton as _pl_triton

    _TritonParams = _pl_triton.CompilerParams
except (ImportError, AttributeError):  # pragma: no cover - older JAX
    try:
        _pl_gpu = importlib.import_module("jax.experimental.pallas.gpu")
        _TritonParams = _pl_gpu.TritonCompilerParams
    except (ImportError, AttributeError):
        _TritonParams = None

# (rows, columns) of the tile per program: Triton needs powers of two. 16 x 128 = 2048
# elements (16 per thread at 4 warps) keeps a 784 x 256 layer at ~100 programs.
BLOCK = (16, 128)
_NUM_WARPS = 4
_FAMILIES = (ConstantStep, SoftBounds, Power, Exponential)  # elementwise jnp responses


def unsupported(device: Device, dtype: DTypeLike, rng: str) -> str | None:
    """Why the fused kernel cannot run this update (None when it can).

    float64 keeps the reference generator (threefry) in the XLA path, and Triton has no
    threefry; bfloat16/float16 arithmetic is widened differently by XLA and Triton, so the two
    paths would not agree: both stay on XLA. Piecewise (a gather of node values) and Custom
    (arbitrary user functions) responses stay on XLA too, as do device parameters given per
    element rather than as scalars.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices
      >>> from aimcjax.pulse import pallas
      >>> pallas.unsupported(devices.SoftBounds(), jnp.float32, "counter") is None
      True
      >>> pallas.unsupported(devices.SoftBounds(), jnp.float32, "threefry")
      "the kernel draws its noise with the counter generator (rng='counter'), got rng='threefry'"
    """
    if rng != "counter":
        return f"the kernel draws its noise with the counter generator (rng='counter'), got rng={rng!r}"
    if jnp.dtype(dtype) != jnp.float32:
        return f"the kernel computes in float32, the tile is {jnp.dtype(dtype).name}"
    if type(device) not in _FAMILIES:
        return f"the kernel supports {[f.__name__ for f in _FAMILIES]}, got {type(device).__name__}"
    for leaf in jax.tree_util.tree_leaves(device):
        if np.ndim(leaf) != 0:
            return f"device parameters must be scalars, got one of shape {np.shape(leaf)}"
        if isinstance(leaf, jax.core.Tracer) and leaf.dtype != jnp.float32:
            return f"device parameters must be float32, got {leaf.dtype}"
    return None


def use_kernel(kernel: str, device: Device, dtype: DTypeLike, rng: str) -> bool:
    """Whether an update with ``UpdateConfig(kernel=kernel)`` runs the fused kernel.

    Raises:
      ValueError: ``kernel="pallas"`` for an update the kernel does not support.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices
      >>> from aimcjax.pulse import pallas
      >>> pallas.use_kernel("pallas", devices.SoftBounds(), jnp.float32, "counter")
      True
      >>> pallas.use_kernel("xla", devices.SoftBounds(), jnp.float32, "counter")
      False
    """
    if kernel == "xla":
        return False
    reason = unsupported(device, dtype, rng)
    if kernel == "pallas":
        if reason is not None:
            raise ValueError(f"kernel='pallas' cannot run this update: {reason}")
        return True
    return reason is None and jax.default_backend() == "gpu"


def _pow2(k: int) -> int:
    return 1 << max(int(k) - 1, 0).bit_length()


def _pad_to(x: jax.Array, shape: tuple[int, ...], value: float) -> jax.Array:
    pads = [(0, s - d) for d, s in zip(x.shape, shape)]
    return jnp.pad(x, pads, constant_values=value) if any(p for _, p in pads) else x


class _Elements(NamedTuple):
    """The per-element fields :func:`aimcjax.pulse.loop._pulse_step` reads."""

    gain_up: jax.Array
    gain_down: jax.Array
    w_min: jax.Array
    w_max: jax.Array


def _split_device(device: Device) -> tuple[jax.Array, Callable[[Any], Device]]:
    """(params, rebuild): the device's traced leaves as one float32 vector (a kernel input;
    under vmap over devices, one per member), and a function that rebuilds the device inside
    the kernel from that vector's Ref. Known leaves stay Python/numpy constants, so the
    kernel evaluates the response exactly as the XLA path does (e.g. ``**`` for a known
    exponent, exp/log for a traced one, see ``devices._nonneg_power``)."""
    leaves, treedef = jax.tree_util.tree_flatten(device)
    traced = [i for i, leaf in enumerate(leaves) if isinstance(leaf, jax.core.Tracer)]
    consts = [
        None if i in traced else leaf if isinstance(leaf, (int, float)) else np.asarray(leaf)
        for i, leaf in enumerate(leaves)
    ]
    params = jnp.stack([leaves[i] for i in traced]) if traced else jnp.zeros((1,), jnp.float32)
    params = _pad_to(params.astype(jnp.float32), (_pow2(params.shape[0]),), 0.0)

    def rebuild(params_ref: Any) -> Device:
        values = list(consts)
        for k, i in enumerate(traced):
            values[i] = params_ref[k]
        return jax.tree_util.tree_unflatten(treedef, values)

    return params, rebuild


def _pulse_words(key: jax.Array, pulses: int) -> jax.Array:
    """(pulses, 2) uint32: the counter generator's key words of pulse t = 0..pulses-1, i.e.
    those of ``fold_in(key, t)`` (the XLA path's per-pulse key)."""
    return jax.vmap(lambda t: _counter_words(jax.random.fold_in(key, t)))(
        jnp.arange(pulses, dtype=jnp.uint32)
    )


def _blocks(n_rows: int, n_cols: int, block: tuple[int, int]) -> tuple[int, int, int, int]:
    br, bc = min(block[0], _pow2(n_rows)), min(block[1], _pow2(n_cols))
    return br, bc, -(-n_rows // br) * br, -(-n_cols // bc) * bc


def _element_fields(tile: Tile, padded: tuple[int, int]) -> tuple[jax.Array, ...]:
    """w, gains and bounds as 2-D arrays padded to ``padded`` (padding: w 0, gains 1, bounds
    -1/1, so that padded elements stay finite; they get no pulses and are cut off after)."""
    rows, cols = matrix_shape(tile.w.shape)
    view = lambda x, v: _pad_to(x.reshape(rows, cols), padded, v)
    return (
        view(tile.w, 0.0),
        view(tile.gain_up, 1.0),
        view(tile.gain_down, 1.0),
        view(tile.w_min, -1.0),
        view(tile.w_max, 1.0),
    )


def _compiler_params() -> Any:
    return None if _TritonParams is None else _TritonParams(num_warps=_NUM_WARPS, num_stages=1)


def _call(
    kernel: Callable[..., None],
    grid: tuple[int, int],
    small_inputs: Sequence[jax.Array],
    tile_inputs: Sequence[jax.Array],
    tile_specs: Sequence[Any],
    out: jax.ShapeDtypeStruct,
    interpret: bool,
) -> jax.Array:
    """pallas_call of ``kernel`` over ``grid``: ``small_inputs`` whole in every program,
    ``tile_inputs`` by ``tile_specs``, whose last five are the element fields (w, gains,
    bounds); the output, the new w, is aliased onto the old w and blocked as it."""
    whole = [pl.BlockSpec(x.shape, lambda *_, nd=x.ndim: (0,) * nd) for x in small_inputs]
    w_index = len(small_inputs) + len(tile_inputs) - 5  # w is the first of the 5 element fields
    return pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct(out.shape, out.dtype),
        grid=grid,
        in_specs=whole + list(tile_specs),
        out_specs=tile_specs[-5],
        input_output_aliases={w_index: 0},
        interpret=interpret,
        compiler_params=None if interpret else _compiler_params(),
        name="aimcjax_fused_pulses",
    )(*small_inputs, *tile_inputs)


def _block_ids(br: int, bc: int, n_cols: int) -> jax.Array:
    """The block's elements' flat indices in the whole (unpadded) tile, uint32: the noise
    counter of :func:`aimcjax.pulse.rng._noise_sampler`."""
    rows = pl.program_id(0) * br + jnp.arange(br, dtype=jnp.int32)
    cols = pl.program_id(1) * bc + jnp.arange(bc, dtype=jnp.int32)
    return (rows[:, None] * n_cols + cols[None, :]).astype(jnp.uint32)


def _pulses(
    device: Device,
    w: jax.Array,
    n: jax.Array,
    elements: _Elements,
    words_at: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
    ids: jax.Array,
    noisy: bool,
    interpret: bool,
) -> jax.Array:
    """All pulses of counts ``n`` on a block, one at a time up to the block's largest count;
    ``words_at(t) = (k0, k1)``: the counter generator's key words of pulse t.

    In interpret mode XLA compiles this loop, and the kernel mirrors the XLA path's loop
    (``pulse.loop._pulse_loop_apply``) where it matters for rounding: the loop's operands are tied
    to the carried weights (an optimization barrier, so nothing is hoisted out of the loop,
    e.g. the noise term when a block has one pulse), and each pulse's noise term is drawn
    into a buffer as there (``pulse.xla._materialized``; without it XLA would fold the noise's
    constant factor into sigma and contract ``sigma * xi`` into an FMA with its consumer).
    Then both round alike, bit for bit. Triton keeps the values in registers and does neither
    rewrite (its FMAs and division are the GPU's own rounding), so it needs neither.
    """
    dtype = w.dtype
    term = _noise_term(device, dtype)

    def one_pulse(t: jax.Array, w: jax.Array) -> jax.Array:
        words: tuple[jax.Array, ...] = words_at(t) if noisy else ()
        part, counts, words, w = (
            jax.lax.optimization_barrier((elements, n, words, w))
            if interpret
            else (elements, n, words, w)
        )
        noise = None
        if noisy:
            noise_t = term(_normal_from_bits(_keyed_bits(words[0], words[1], ids), dtype))
            noise_t = _materialized(noise_t, words[0]) if interpret else noise_t
            noise = lambda _: noise_t
        return _pulse_step(device, w, counts, t, part, noise)

    return jax.lax.fori_loop(0, jnp.max(jnp.abs(n)), one_pulse, w)


def _interpret_default(interpret: bool | None) -> bool:
    return jax.default_backend() != "gpu" if interpret is None else interpret


def pulse_update(
    tile: Tile,
    device: Device,
    n: ArrayLike,
    key: KeyLike,
    max_pulses: int,
    *,
    interpret: bool | None = None,
    block: tuple[int, int] = BLOCK,
) -> jax.Array:
    """The new weights after signed pulse counts ``n`` (|n| <= ``max_pulses``), in one kernel.

    Equals ``aimcjax.pulse.apply(tile, device, n, key, rng="counter").w`` (the per-pulse loop)
    for devices without a closed form.

    Args:
      tile: the array state (any shape; viewed as 2-D, see :func:`aimcjax.tile.matrix_shape`).
      device: its device (see :func:`unsupported`).
      n: integer pulse counts shaped like the tile.
      key: PRNG key of the per-pulse noise.
      max_pulses: static bound on |n| (the update's bl).
      interpret: run in Pallas interpret mode (default: unless the backend is a GPU).
      block: (rows, columns) per program, powers of two.

    Returns:
      The updated stored weights, shaped like ``tile.w``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from aimcjax import devices, pulse, tile
      >>> from aimcjax.pulse import pallas
      >>> dev = devices.SoftBounds(dw_min=0.01, dw_min_std=0.3)
      >>> t = tile.init(0, dev, (2, 3))
      >>> n = jnp.array([[1, -2, 0], [3, 0, -1]], jnp.int8)
      >>> w = jax.jit(lambda t: pallas.pulse_update(t, dev, n, 1, 3))(t)
      >>> w_xla = jax.jit(lambda t: pulse.apply(t, dev, n, 1).w)(t)
      >>> bool(jnp.allclose(w, w_xla, rtol=0, atol=1e-6))
      True
    """
    dtype = tile.w.dtype
    interpret = _interpret_default(interpret)
    n_rows, n_cols = matrix_shape(tile.w.shape)
    br, bc, rows_p, cols_p = _blocks(n_rows, n_cols, block)
    params, rebuild = _split_device(device)
    noisy = _static_value(device.dw_min_std) != 0.0  # as the XLA path decides
    words = _pad_to(_pulse_words(as_key(key), max_pulses), (_pow2(max_pulses), 2), 0)
    counts = _pad_to(
        jnp.asarray(n).reshape(n_rows, n_cols), (rows_p, cols_p), 0
    )  # int8 when bl <= 127

    def kernel(
        words_ref: Any,
        params_ref: Any,
        n_ref: Any,
        w_ref: Any,
        gu_ref: Any,
        gd_ref: Any,
        lo_ref: Any,
        hi_ref: Any,
        out_ref: Any,
    ) -> None:
        elements = _Elements(gu_ref[...], gd_ref[...], lo_ref[...], hi_ref[...])
        out_ref[...] = _pulses(
            rebuild(params_ref),
            w_ref[...],
            n_ref[...].astype(jnp.int32),
            elements,
            lambda t: (words_ref[t, 0], words_ref[t, 1]),
            _block_ids(br, bc, n_cols),
            noisy,
            interpret,
        )

    spec = pl.BlockSpec((br, bc), lambda i, j: (i, j))
    w = _call(
        kernel,
        (rows_p // br, cols_p // bc),
        (words, params),
        (counts, *_element_fields(tile, (rows_p, cols_p))),
        [spec] * 6,
        jax.ShapeDtypeStruct((rows_p, cols_p), dtype),
        interpret,
    )
    return w[:n_rows, :n_cols].reshape(tile.w.shape)


def outer_update(
    tile: Tile,
    device: Device,
    x: jax.Array,
    d: jax.Array,
    lr: ArrayLike,
    key: KeyLike,
    cfg: UpdateConfig,
    *,
    interpret: bool | None = None,
    block: tuple[int, int] = BLOCK,
) -> jax.Array:
    """The new weights after "outer" mode's pulse trains of all samples, in one kernel.

    The trains and the per-sample keys are those of :func:`aimcjax.pulse.outer_update` (keys
    split per sample, then into a train key and a noise key); each program loops over the
    samples in order, forms a sample's coincidence counts for its block from the trains and
    applies them pulse by pulse, with the noise of pulse t of sample b drawn from
    ``fold_in(noise_key_b, t)`` at the element's id, as the XLA path does.

    Args:
      tile: the array state, shape (in, out) (or a kernel's 2-D view of it).
      device: its device (see :func:`unsupported`); no closed form (else use the XLA path).
      x, d: per-sample factors, (B, in) and (B, out), validated by the caller.
      lr: learning rate.
      key: PRNG key.
      cfg: the :class:`aimcjax.pulse.UpdateConfig` (mode "outer").
      interpret, block: as in :func:`pulse_update`.

    Returns:
      The updated stored weights, shaped like ``tile.w``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from aimcjax import devices, pulse, tile
      >>> from aimcjax.pulse import pallas
      >>> dev = devices.SoftBounds(dw_min=0.01, dw_min_std=0.3)
      >>> cfg = pulse.UpdateConfig(mode="outer", bl=4, kernel="xla")
      >>> t = tile.init(0, dev, (3, 2))
      >>> x, d = jnp.array([[1.0, -0.5, 0.2]]), jnp.array([[0.3, -1.0]])
      >>> w = jax.jit(lambda t: pallas.outer_update(t, dev, x, d, 0.05, 2, cfg))(t)
      >>> w_xla = jax.jit(lambda t: pulse.outer_update(t, dev, x, d, 0.05, 2, cfg).w)(t)
      >>> bool(jnp.allclose(w, w_xla, rtol=0, atol=1e-6))
      True
    """
    dtype = tile.w.dtype
    interpret = _interpret_default(interpret)
    n_rows, n_cols = matrix_shape(tile.w.shape)
    samples = x.shape[0]
    keys = jax.vmap(jax.random.split)(jax.random.split(as_key(key), samples))  # (B, 2): bits, noise
    granularity = device.update_granularity()  # as outer_update: aihwkit balances x and d with it
    trains_x, trains_d, _ = jax.vmap(
        lambda xb, db, kb: _sample_pulse_trains(xb, db, lr, granularity, kb, cfg)
    )(x, d, keys[:, 0])
    slots = trains_x.shape[2]
    br, bc, rows_p, cols_p = _blocks(n_rows, n_cols, block)
    b_p, s_p = _pow2(samples), _pow2(slots)
    # Trains as int8 with the slot axis before the line axis (a slot's line is contiguous).
    tx = _pad_to(jnp.swapaxes(trains_x, 1, 2).astype(jnp.int8), (b_p, s_p, rows_p), 0)
    td = _pad_to(trains_d.astype(jnp.int8), (b_p, s_p, cols_p), 0)
    words = jax.vmap(lambda k: _pulse_words(k, cfg.bl))(keys[:, 1])
    words = _pad_to(words, (b_p, _pow2(cfg.bl), 2), 0)
    params, rebuild = _split_device(device)
    noisy = _static_value(device.dw_min_std) != 0.0

    def kernel(
        words_ref: Any,
        params_ref: Any,
        tx_ref: Any,
        td_ref: Any,
        w_ref: Any,
        gu_ref: Any,
        gd_ref: Any,
        lo_ref: Any,
        hi_ref: Any,
        out_ref: Any,
    ) -> None:
        dev = rebuild(params_ref)
        elements = _Elements(gu_ref[...], gd_ref[...], lo_ref[...], hi_ref[...])
        ids = _block_ids(br, bc, n_cols)

        def sample(b: jax.Array, w: jax.Array) -> jax.Array:
            def slot(
                s: jax.Array, n: jax.Array
            ) -> jax.Array:  # coincidences: n += outer(x train, d train) of slot s
                return (
                    n
                    + tx_ref[b, s, :].astype(jnp.int32)[:, None]
                    * td_ref[b, s, :].astype(jnp.int32)[None, :]
                )

            n = jax.lax.fori_loop(0, slots, slot, jnp.zeros((br, bc), jnp.int32))
            return _pulses(
                dev,
                w,
                n,
                elements,
                lambda t: (words_ref[b, t, 0], words_ref[b, t, 1]),
                ids,
                noisy,
                interpret,
            )

        out_ref[...] = jax.lax.fori_loop(0, samples, sample, w_ref[...])

    tile_spec = pl.BlockSpec((br, bc), lambda i, j: (i, j))
    specs = [
        pl.BlockSpec((b_p, s_p, br), lambda i, j: (0, 0, i)),
        pl.BlockSpec((b_p, s_p, bc), lambda i, j: (0, 0, j)),
    ]
    w = _call(
        kernel,
        (rows_p // br, cols_p // bc),
        (words, params),
        (tx, td, *_element_fields(tile, (rows_p, cols_p))),
        specs + [tile_spec] * 5,
        jax.ShapeDtypeStruct((rows_p, cols_p), dtype),
        interpret,
    )
    return w[:n_rows, :n_cols].reshape(tile.w.shape)
