"""Pulses: turning a requested weight change into device pulses and applying them.

One pulse on an element with weight w (gains s+/s-, bounds [lo, hi]):

    up:    w <- clip(w + s+ * dw_min * resp(q_plus(w)),  lo, hi)
    down:  w <- clip(w - s- * dw_min * resp(q_minus(w)), lo, hi)

where ``resp`` adds the cycle-to-cycle noise of the device's ``noise`` mode. Pulses are
applied one at a time with the response re-evaluated after each; the only shortcuts are
exact closed forms (noise-free constant-step and soft-bounds devices) and, in "outer" mode,
running the per-pulse loop only over the rows and columns that carry pulses (exact). The
per-pulse noise and the stochastic rounding come from a fast counter-based generator by
default (``rng="threefry"``: jax.random, the reference; same distributions).

Modes of :class:`UpdateConfig` (DESIGN §4):
  "expected": the continuous analog update [RF eq. 5], no granularity, no noise.
  "pulse":    n = stochastic_round(dW / dw_min) clipped to +-bl, then n pulses.
  "outer":    aihwkit's stochastic-compressed rank-1 pulse trains per sample, with update
              management and update-BL management (see :func:`outer_update`).
  "ideal":    dW added exactly (digital baseline through the same code path, no clipping).

References:
  [RF] arXiv:2502.06309, eqs. 3, 5, 26.  [AIHWKIT] PulsedRPUDevice / StochasticCompressed
  pulse type, update management (Gokmen & Vlasov 2016).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from aimcjax.devices import ConstantStep, Device, Exponential, Power, SoftBounds
from aimcjax.tile import Tile, as_key, matrix_shape

__all__ = [
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
        (default): the fused Pallas kernel (:mod:`aimcjax.pulse_pallas`, one launch per
        update) when the default backend is a GPU and the update is supported (float32,
        rng="counter", a ConstantStep/SoftBounds/Power/Exponential device with scalar
        parameters), else XLA. "xla": always XLA (the reference, and the CPU path).
        "pallas": always the kernel (interpret mode off GPU: slow, for tests); an error
        for an unsupported update. Noise-free ConstantStep/SoftBounds updates take their
        exact closed form on XLA whatever the choice.
    """

    mode: str = "pulse"
    bl: int = 31
    update_management: bool = True
    update_bl_management: bool = True
    stochastic_rounding: bool = True
    rng: str = "counter"
    kernel: str = "auto"

    def __post_init__(self):
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


jax.tree_util.register_pytree_node(
    UpdateConfig,
    lambda cfg: ((), dataclasses.astuple(cfg)),
    lambda aux, _: UpdateConfig(*aux),
)


def _static_value(x):
    """x as a Python float if it is known at trace time, else None."""
    if isinstance(x, jax.core.Tracer):
        return None
    try:
        arr = np.asarray(x)
    except Exception:
        return None
    return float(arr) if arr.size == 1 else None


def _check_device_tile(tile, device):
    if not isinstance(device, Device):
        raise TypeError(f"device must be an aimcjax device, got {type(device).__name__}")
    if not isinstance(tile, Tile):
        raise TypeError(f"tile must be an aimcjax.tile.Tile, got {type(tile).__name__}")


def _check_same_shape(name, value, tile):
    if value.shape != tile.w.shape:
        raise ValueError(f"{name} has shape {value.shape}, the tile has {tile.w.shape}")


def _check_finite(name, value):
    if not isinstance(value, jax.core.Tracer) and not np.isfinite(np.asarray(value)).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def _closed_form_apply(tile: Tile, device: Device, n):
    """Exact n pulses on noise-free constant-step or soft-bounds elements."""
    w, lo, hi = tile.w, tile.w_min, tile.w_max
    c = device.asymmetry
    dw = device.dw_min
    up_step = tile.gain_up * dw * (1 + c)
    down_step = tile.gain_down * dw * (1 - c)
    n = n.astype(w.dtype)
    if isinstance(device, ConstantStep):
        n_up, n_down = jnp.maximum(n, 0), jnp.maximum(-n, 0)
        # Monotone constant steps: clipping after each pulse equals clipping once.
        return jnp.clip(w + n_up * up_step - n_down * down_step, lo, hi)
    # Soft bounds: the distance to the bound pulsed towards shrinks by a constant factor per
    # pulse; a step larger than the distance lands on the bound (factor clipped at 0).
    up = n > 0
    factor = jnp.where(up, jnp.maximum(1 - up_step / hi, 0), jnp.maximum(1 + down_step / lo, 0))
    target = jnp.where(up, hi, lo)
    count = jnp.abs(n)
    # factor**count via exp/log (XLA's pow is several times slower on CPU); 0**0 stays 1.
    shrink = jnp.where(count == 0, 1.0, jnp.exp(count * jnp.log(factor)))
    return jnp.clip(target - (target - w) * shrink, lo, hi)


# lowbias32 (C. Wellons, "hash-prospector"): a bijective 32-bit integer mixer.
_MIX_SHIFTS = (16, 15, 15)
_MIX_MULTS = (0x21F0AAAD, 0x735A2D97)


def _mix32(x):
    s0, s1, s2 = _MIX_SHIFTS
    x = x ^ (x >> s0)
    x = x * jnp.uint32(_MIX_MULTS[0])
    x = x ^ (x >> s1)
    x = x * jnp.uint32(_MIX_MULTS[1])
    return x ^ (x >> s2)


def _counter_bits(key, counter):
    """32 random bits per entry of ``counter`` (distinct uint32 element ids) from a keyed
    counter-based generator: mix(mix(id ^ k0) ^ k1) with (k0, k1) drawn from ``key`` by
    threefry. Both mixing rounds are bijections, so the ids of one draw give distinct bit
    patterns; a fresh key gives an independent stream. It costs a few integer operations per
    element, ~15x less than threefry's 20 rounds on CPU."""
    k0, k1 = _counter_words(key)
    return _keyed_bits(k0, k1, counter)


def _counter_words(key):
    """The two uint32 words (k0, k1) that key the counter generator (see :func:`_counter_bits`)."""
    return jax.random.bits(key, (2,), jnp.uint32)


def _keyed_bits(k0, k1, counter):
    """:func:`_counter_bits` from its key words: elementwise integer arithmetic only (so a
    Pallas kernel, given the words, draws the same bits)."""
    return _mix32(_mix32(counter ^ k0) ^ k1)


def _unit_uniform(bits):
    """The top 23 bits as a float32 in [0, 1) (the resolution of jax.random.uniform's)."""
    return jax.lax.bitcast_convert_type((bits >> 9) | jnp.uint32(0x3F800000), jnp.float32) - 1.0


def _counter_normal(key, counter, dtype):
    """Standard normals, one per entry of ``counter``: sqrt(2) erfinv(u) of the symmetric
    uniform u = 2 u0 - 1 + 2^-23 in (-1, 1) (odd multiples of 2^-23), u0 from
    :func:`_counter_bits`."""
    return _normal_from_bits(_counter_bits(key, counter), dtype)


def _normal_from_bits(bits, dtype):
    """:func:`_counter_normal` of given random bits (elementwise; shared with the Pallas kernel)."""
    u = 2.0 * _unit_uniform(bits) - 1.0 + 2.0**-23
    return (np.sqrt(2.0) * jax.lax.erf_inv(u)).astype(dtype)


def _counter_ok(rng, dtype):
    # 23 random bits serve float32 and narrower; float64 keeps the reference generator.
    return rng == "counter" and jnp.finfo(dtype).bits <= 32


def _element_ids(shape):
    return jax.lax.iota(jnp.uint32, int(np.prod(shape))).reshape(shape)


def _materialized(x, key):
    """``x``, computed once into memory.

    XLA fuses a cheap-looking producer into every consumer and recomputes it per output
    element: a draw keyed by a sweep-shared key would be re-hashed for each member of a
    vmapped sweep, counts read by several passes re-derived in each. XLA CPU drops
    optimization barriers before fusion, but a conditional's results are buffers, so ``x``
    goes through a two-way conditional whose branches both return it (correct whichever runs;
    the predicate comes from ``key`` so that it stays unbatched under a vmap with a shared key).
    """
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    pick = data.reshape(-1)[0] % 2 == 0
    return jax.lax.cond(pick, lambda v: v, lambda v: v * 1, x)  # distinct, or JAX inlines


@jax.custom_batching.custom_vmap
def _sweep_max(count):
    """``count`` (an integer loop bound); under vmap, its maximum over the batch, unbatched.

    Used only as the trip count of a loop whose surplus iterations leave a member unchanged
    (each pass masks elements by their own count). A batched trip count would make the loop
    counter batched too, and with it every draw keyed by the counter: one per member instead
    of one shared by a sweep that passes all members the same key.
    """
    return count


@_sweep_max.def_vmap
def _sweep_max_rule(axis_size, in_batched, count):
    del axis_size
    return (jnp.max(count, axis=0) if in_batched[0] else count), False


def _uniform(key, shape, dtype, rng):
    """U[0, 1) of ``shape``: the counter generator or jax.random.uniform (the reference)."""
    if _counter_ok(rng, dtype):
        return _materialized(
            _unit_uniform(_counter_bits(key, _element_ids(shape))).astype(dtype), key
        )
    return jax.random.uniform(key, shape, dtype)


def _noise_sampler(key, shape, dtype, rng, ids=None, term=lambda xi: xi):
    """A function t -> ``term`` of the standard normals of ``shape`` for loop iteration t.

    With the counter generator the normal of pulse t on an element depends only on (key, t,
    the element's id): ``ids`` (uint32, ``shape``) are the elements' flat indices in the whole
    tile (default: a tile of ``shape``), so a part of a tile pulsed on its own draws exactly
    the numbers the whole tile would (the block-wise "outer" path and a fused kernel agree
    with :func:`apply` on the full tile bit for bit)."""
    if _counter_ok(rng, dtype):
        ids = _element_ids(shape) if ids is None else ids
        return lambda t: _materialized(
            term(_counter_normal(jax.random.fold_in(key, t), ids, dtype)), key
        )
    return lambda t: term(jax.random.normal(jax.random.fold_in(key, t), shape, dtype))


def _directed_response(device: Device, up, w_min, w_max):
    """A function w -> each element's response to a pulse in its direction ``up`` (q_plus
    where up, else q_minus), built so that the per-pulse loop evaluates one side only."""
    per_bound = getattr(device, "range_normalization", "per_bound") == "per_bound"
    if type(device) in (SoftBounds, Power, Exponential) and per_bound:
        # These families have q_plus = (1+c) f(1 - w/w_max) and q_minus = (1-c) f(1 - w/w_min)
        # with one f: q_plus taken against the bound pulsed towards gives either side, with one
        # f per element instead of two (for Power one pow instead of two). Power's "aihwkit"
        # form measures both sides against the whole range, so it takes the general path.
        c = device.asymmetry
        bound = jnp.where(up, w_max, w_min)
        down_ratio = (1 - c) / (1 + c)
        return lambda w: jnp.where(up, 1, down_ratio) * device.response(w, bound, bound)[0]
    return lambda w: jnp.where(up, *device.response(w, w_min, w_max))


def _noise_term(device: Device, dtype):
    """xi -> the cycle-to-cycle noise term of a pulse from standard normals xi: sigma*xi
    (added to the response) or 1 + sigma*xi (multiplying it), see :func:`_pulse_step`."""
    sigma = jnp.asarray(device.dw_min_std, dtype)
    return (lambda xi: sigma * xi) if device.noise == "additive" else (lambda xi: 1 + sigma * xi)


def _pulse_step(device: Device, w, n, t, part, noise):
    """Pulse number ``t`` (0-based) on the elements with |n| > t, the others unchanged.

    ``part`` holds the elements' gains and bounds (a :class:`Tile` or any object with those
    fields), ``noise(t)`` their noise terms (:func:`_noise_term`; None: noise-free). Shared by
    the per-pulse loop and the fused Pallas kernel, so that both do the same float
    operations. The noise term is drawn whole into a buffer (see :func:`_noise_sampler`):
    then XLA rounds ``sigma * xi`` alike wherever it fuses the step (an FMA contraction of it
    with its consumer would round differently)."""
    up = n > 0
    amp = jnp.where(up, part.gain_up, -part.gain_down) * device.dw_min
    q = _directed_response(device, up, part.w_min, part.w_max)(w)
    if noise is not None:
        q = q + noise(t) if device.noise == "additive" else q * noise(t)
    stepped = jnp.clip(w + amp * q, part.w_min, part.w_max)
    return jnp.where(jnp.abs(n) > t, stepped, w)


def _pulse_loop_apply(tile: Tile, device: Device, n, key, rng: str = "counter", ids=None):
    """n pulses one at a time, response and noise re-drawn per pulse; loops max|n| times.
    ``ids``: the elements' ids in the whole tile (see :func:`_noise_sampler`)."""
    w0 = tile.w
    dtype = w0.dtype
    noisy = _static_value(device.dw_min_std) != 0.0  # unknown (traced) counts as noisy
    noise = _noise_sampler(key, w0.shape, dtype, rng, ids, _noise_term(device, dtype))

    def pulse_number(t, w, part=tile, n=n):
        # The per-element factors are recomputed in every pass rather than hoisted: as loop
        # invariants they would be materialized tile-sized arrays (memory and an extra pass
        # each), which under vmap (a sweep) cost more than the arithmetic.
        return _pulse_step(device, w, n, t, part, noise if noisy else None)

    def later_pulse(carry):
        t, w = carry
        # Tying the tile and the counts to the loop-carried w keeps XLA from hoisting the
        # factors above (and |n|, n > 0) out of the loop.
        part, counts, w = jax.lax.optimization_barrier((tile, n, w))
        return t + 1, pulse_number(t, w, part, counts)

    # The first pulse is peeled out of the loop: its noise depends on the key alone, so under
    # vmap over devices or states with a shared key (a sweep) it is drawn once for all members
    # (inside the loop the counter becomes batched with the loop's predicate). Same stream.
    w = pulse_number(jnp.zeros((), n.dtype), w0)
    max_count = _sweep_max(jnp.max(jnp.abs(n)))
    _, w = jax.lax.while_loop(lambda c: c[0] < max_count, later_pulse, (jnp.ones((), n.dtype), w))
    return w


def _has_closed_form(device: Device) -> bool:
    """Noise-free constant-step and soft-bounds devices: n pulses in closed form."""
    return (
        isinstance(device, (ConstantStep, SoftBounds)) and _static_value(device.dw_min_std) == 0.0
    )


_BLOCK = (128, 64)  # (rows, columns) per pass of the per-pulse loop of "outer" mode


def _live_first(live):
    """The indices of a boolean vector with the True ones first, each group in order (a
    stable partition; XLA CPU's sort takes ~10-20x longer)."""
    size = live.shape[0]
    before = jnp.cumsum(live.astype(jnp.int32))  # live entries up to and including each
    position = jnp.where(live, before - 1, before[-1] + jnp.arange(size, dtype=jnp.int32) - before)
    return (
        jnp.zeros(size, jnp.int32)
        .at[position]
        .set(jnp.arange(size, dtype=jnp.int32), unique_indices=True)
    )


def _apply_blocks(tile: Tile, device: Device, live_rows, live_cols, counts_at, key, rng: str):
    """:func:`apply` on the live rows x live columns of the tile, a block at a time.

    ``counts_at(rows, cols)`` gives the pulse counts of one block (a (rows, cols) grid of
    indices); elements outside the live lines must have none. Elements without pulses are
    unchanged by :func:`apply` anyway, and every pulsed element still gets fresh noise per
    pulse (streams keyed per block), so the law is that of :func:`apply` on the whole tile.
    """
    n_rows, n_cols = tile.w.shape
    rb, cb = min(_BLOCK[0], n_rows), min(_BLOCK[1], n_cols)
    row_order = _live_first(live_rows)
    col_order = _live_first(live_cols)
    row_blocks = (jnp.sum(live_rows) + rb - 1) // rb
    col_blocks = (jnp.sum(live_cols) + cb - 1) // cb

    def take(order, index, size, total):
        # The last block is shifted back to fit; lines it shares with the previous block
        # were pulsed there and get no pulses here.
        start = jnp.minimum(index * size, total - size)
        fresh = start + jnp.arange(size) >= index * size
        return jax.lax.dynamic_slice_in_dim(order, start, size), fresh

    def one_block(carry):
        k, w = carry
        rows, fresh_r = take(row_order, k // col_blocks, rb, n_rows)
        cols, fresh_c = take(col_order, k % col_blocks, cb, n_cols)
        at = (rows[:, None], cols[None, :])
        part = tile._replace(
            w=w[at], **{f: getattr(tile, f)[at] for f in ("gain_up", "gain_down", "w_min", "w_max")}
        )
        n_part = jnp.where(fresh_r[:, None] & fresh_c[None, :], counts_at(rows, cols), 0)
        if _counter_ok(rng, w.dtype):
            # Noise indexed by the element's id in the whole tile: the same numbers as
            # apply() on the full tile with this key (each element is fresh in one block).
            ids = (rows[:, None] * n_cols + cols[None, :]).astype(jnp.uint32)
            w_part = _pulse_loop_apply(part, device, n_part, key, rng, ids)
        else:
            w_part = _pulse_loop_apply(part, device, n_part, jax.random.fold_in(key, k), rng)
        return k + 1, w.at[at].set(w_part, unique_indices=True)

    # Surplus blocks of a member (under vmap the loop runs to the batch's largest count) hold
    # dead lines only, whose counts are zero: they leave w as it is.
    n_blocks = _sweep_max(row_blocks * col_blocks)
    _, w = jax.lax.while_loop(
        lambda c: c[0] < n_blocks, one_block, (jnp.zeros((), n_blocks.dtype), tile.w)
    )
    return tile._replace(w=w)


def _apply_active_block(tile: Tile, device: Device, n, key, rng: str):
    """:func:`apply` of counts ``n`` on the rows and columns that carry pulses only.

    One sample's coincidences n_ij can be non-zero only where row j's x-train and column i's
    d-train both fired (typically a third of the rows and a fifth of the columns; for a
    one-hot x, as in a transfer, one row), so the per-pulse loop, whose cost is one noise
    draw per element and pulse, runs over those only (see :func:`_apply_blocks`).
    """
    pulsed = n != 0
    return _apply_blocks(
        tile,
        device,
        jnp.any(pulsed, axis=1),
        jnp.any(pulsed, axis=0),
        lambda rows, cols: n[rows[:, None], cols[None, :]],
        key,
        rng,
    )


def _apply_trains(tile: Tile, device: Device, trains_x, trains_d, key, rng: str):
    """:func:`_apply_active_block` of the coincidences n = trains_x @ trains_d without forming
    n: the live lines follow from the trains (row j is live when its train fires in a slot in
    which some column's fires) and each block's counts are a small matmul of its lines."""
    fired_x, fired_d = jnp.abs(trains_x), jnp.abs(trains_d)  # entries are -1, 0, +1
    live_rows = fired_x @ jnp.max(fired_d, axis=1) > 0
    live_cols = jnp.max(fired_x, axis=0) @ fired_d > 0

    def counts_at(rows, cols):
        # Sums of at most a few dozen +-1 terms: exact in float32.
        return (trains_x[rows] @ trains_d[:, cols]).astype(jnp.int32)

    return _apply_blocks(tile, device, live_rows, live_cols, counts_at, key, rng)


def apply(tile: Tile, device: Device, n, key, rng: str = "counter") -> Tile:
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
      >>> t = tile.init(0, SoftBounds(tau=0.6), (2, 2))
      >>> t = apply(t, SoftBounds(tau=0.6), jnp.full((2, 2), 3), 0)
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


def _fused_kernel(cfg: UpdateConfig, device: Device, dtype):
    """The fused-kernel module when ``cfg.kernel`` sends this update to it, else None."""
    if cfg.kernel == "xla" or _has_closed_form(device):
        return None
    from aimcjax import pulse_pallas  # imports this module

    return pulse_pallas if pulse_pallas.use_kernel(cfg.kernel, device, dtype, cfg.rng) else None


def _expected(tile: Tile, device: Device, dW):
    qp, qm = device.response(tile.w, tile.w_min, tile.w_max)
    gain = jnp.where(dW > 0, tile.gain_up * qp, tile.gain_down * qm)
    return jnp.clip(tile.w + dW * gain, tile.w_min, tile.w_max)


def pulse_counts(dW, dw_min, bl: int, key, stochastic: bool = True, rng: str = "counter"):
    """Signed pulse counts for a requested change: round(dW/dw_min), capped at +-bl.

    ``rng`` picks the generator of the stochastic rounding's uniforms (see :data:`RNGS`);
    both give U[0, 1) with 23-bit resolution."""
    if rng not in RNGS:
        raise ValueError(f"rng must be one of {RNGS}, got {rng!r}")
    x = dW / dw_min
    if stochastic:
        x = jnp.floor(x + _uniform(as_key(key), x.shape, x.dtype, rng))
    else:
        x = jnp.round(x)
    return jnp.clip(x, -bl, bl).astype(jnp.int32)


def update(tile: Tile, device: Device, dW, key, cfg: UpdateConfig = UpdateConfig()) -> Tile:
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
      >>> dev = SoftBounds(tau=0.6, dw_min=1e-3)
      >>> t = tile.init(0, dev, (3,))
      >>> t = update(t, dev, jnp.array([0.01, -0.002, 0.0004]), 1, UpdateConfig(mode="pulse"))
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


_SLOT_CHUNK = 4  # pulse-train slots drawn per coincidence matmul


def _pulse_probabilities(x, d, lr, granularity, cfg: UpdateConfig):
    """One sample's bit probabilities and train length, as aihwkit 1.2.0 computes them
    (``PulsedUpdateMetaParameter::calculateBlAB`` and ``performUpdateManagement``):

        k = |lr| x* d* / g   (x* = max|x|, d* = max|d|, g = the device's update granularity)
        BL = min(ceil(k), bl) with update-BL management, else bl
        A = B = sqrt(|lr| / (g BL))
        update management: d' = d* (bl/k if k > bl, else 1);  B *= sqrt(d'/x*),  A *= sqrt(x*/d')
        p_x = min(|x| B, 1),  p_d = min(|d| A, 1)

    Above saturation (k > bl) the largest x fires in every slot and only the d entries with
    |d| > d* bl/k are clipped at probability 1 (aihwkit fires a bit when p > u with u in
    [0, 1)): the smaller entries keep E[n_ij] = |lr x_j d_i| / g. aihwkit turns update
    management on whenever update-BL management is on; here the two flags act separately.

    Returns:
      (p_x, p_d, BL): probabilities shaped like x and d, and the train length (a scalar).
    """
    x_abs, d_abs = jnp.abs(x), jnp.abs(d)
    x_max, d_max = jnp.max(x_abs), jnp.max(d_abs)
    lr_abs = jnp.abs(lr)
    k = lr_abs * x_max * d_max / granularity  # expected pulses of the largest element
    if cfg.update_bl_management:
        sample_bl = jnp.clip(jnp.ceil(k), 1, cfg.bl)
    else:
        sample_bl = jnp.asarray(cfg.bl, x.dtype)
    base = jnp.sqrt(lr_abs / (granularity * sample_bl))
    p_x, p_d = x_abs * base, d_abs * base
    if cfg.update_management:
        safe = lambda v: jnp.where(v > 0, v, 1)
        d_val = d_max * jnp.where(k > cfg.bl, cfg.bl / safe(k), 1.0)  # "avoid clipping of x"
        p_x = p_x * jnp.sqrt(safe(d_val) / safe(x_max))
        p_d = p_d * jnp.sqrt(safe(x_max) / safe(d_val))
    return jnp.minimum(p_x, 1), jnp.minimum(p_d, 1), sample_bl


def _sample_pulse_trains(x, d, lr, dw_min, key, cfg: UpdateConfig):
    """One sample's signed pulse trains as aihwkit's stochastic-compressed ones with update
    (BL) management: (trains_x (in, S), trains_d (S, out), n_chunks), S = cfg.bl rounded up
    to whole chunks of slots; entries are -1, 0, +1 and zero beyond the sample's BL (only
    the first n_chunks chunks are drawn). The coincidences are n = trains_x @ trains_d.
    ``dw_min``: the granularity the probabilities are balanced with (see
    :func:`_pulse_probabilities`)."""
    dtype = x.dtype
    bl = cfg.bl
    p_x, p_d, sample_bl = _pulse_probabilities(x, d, lr, dw_min, cfg)
    # Slots are drawn in chunks, and only as many chunks as this sample's BL needs: the cost
    # follows the actual train length rather than cfg.bl (and, unlike a switch over sizes,
    # stays one loop under vmap).
    chunk = min(_SLOT_CHUNK, bl)
    n_chunks = _sweep_max(jnp.ceil(sample_bl / chunk).astype(jnp.int32))

    # sign(lr * x_j * d_i) > 0 fires a down pulse (W <- W - lr * x d^T): with the signs on the
    # bits, the trains' product yields the signed count directly (all terms of n_ij share one
    # sign).
    sign_x = (-jnp.sign(lr) * jnp.sign(x)).astype(dtype)
    sign_d = jnp.sign(d).astype(dtype)

    def chunk_trains(c):
        k_x, k_d = jax.random.split(jax.random.fold_in(key, c))
        slots = c * chunk + jnp.arange(chunk) < sample_bl
        bits_x = (_uniform(k_x, (x.shape[0], chunk), dtype, cfg.rng) < p_x[:, None]) & slots[
            None, :
        ]
        bits_d = (_uniform(k_d, (chunk, d.shape[0]), dtype, cfg.rng) < p_d[None, :]) & slots[
            :, None
        ]
        return jnp.where(bits_x, sign_x[:, None], 0), jnp.where(bits_d, sign_d[None, :], 0)

    def add_chunk(carry):
        c, trains_x, trains_d = carry
        tx, td = chunk_trains(c)
        return (
            c + 1,
            jax.lax.dynamic_update_slice_in_dim(trains_x, tx, c * chunk, 1),
            jax.lax.dynamic_update_slice_in_dim(trains_d, td, c * chunk, 0),
        )

    # Every sample has at least one chunk (BL >= 1): the first is drawn outside the loop.
    slots = -(-bl // chunk) * chunk
    tx, td = chunk_trains(jnp.int32(0))
    trains_x = jnp.zeros((x.shape[0], slots), dtype).at[:, :chunk].set(tx)
    trains_d = jnp.zeros((slots, d.shape[0]), dtype).at[:chunk].set(td)
    _, trains_x, trains_d = jax.lax.while_loop(
        lambda c: c[0] < n_chunks, add_chunk, (jnp.int32(1), trains_x, trains_d)
    )
    return trains_x, trains_d, n_chunks


def _coincidences(trains_x, trains_d, n_chunks):
    """n = trains_x @ trains_d, a chunk of slots at a time up to the trains' length."""
    chunk = min(_SLOT_CHUNK, trains_x.shape[1])

    def add_chunk(carry):
        c, counts = carry
        tx = jax.lax.dynamic_slice_in_dim(trains_x, c * chunk, chunk, 1)
        td = jax.lax.dynamic_slice_in_dim(trains_d, c * chunk, chunk, 0)
        return c + 1, counts + tx @ td

    counts = trains_x[:, :chunk] @ trains_d[:chunk]
    _, counts = jax.lax.while_loop(lambda c: c[0] < n_chunks, add_chunk, (jnp.int32(1), counts))
    return counts.astype(jnp.int32)


def _sample_pulse_counts(x, d, lr, dw_min, key, cfg: UpdateConfig):
    """One sample's signed coincidence counts n_ij (see :func:`_sample_pulse_trains`)."""
    return _coincidences(*_sample_pulse_trains(x, d, lr, dw_min, key, cfg))


def outer_update(
    tile: Tile, device: Device, x, d, lr, key, cfg: UpdateConfig = UpdateConfig(mode="outer")
) -> Tile:
    """Rank-1 stochastic pulse trains per sample: W <- W - lr * sum_b x_b d_b^T in expectation.

    For each sample, in sequence [AIHWKIT StochasticCompressed]: with x* = max|x|,
    d* = max|d| and k = lr*x*d*/dw_min, the train length is BL = min(ceil(k), cfg.bl)
    (update-BL management); probabilities p_x = |x| B, p_d = |d| A with
    A = B = sqrt(lr/(g BL)) balanced by sqrt(x*/d*) (update management), g the device's
    :meth:`~aimcjax.devices.Device.update_granularity`; above cfg.bl the largest x fires
    in every slot and the d probabilities above 1 are clipped (only the largest d entries
    saturate, see :func:`_pulse_probabilities`); bits b_jt ~ Bern(p_x,j), c_it ~ Bern(p_d,i)
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
      >>> dev = ConstantStep(dw_min=1e-3)
      >>> t = tile.init(0, dev, (4, 2))
      >>> t = outer_update(t, dev, jnp.ones((8, 4)), 0.1 * jnp.ones((8, 2)), 0.01, 1)
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

    def one_sample(t, inputs):
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
