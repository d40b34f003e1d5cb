"""Transfer rules: how the read of a faster store moves the next slower analog array.

Every algorithm with more than one store (a residual array P, a digital accumulator) moves
what the fast store learned into the slower array W by a *transfer*: some input lines of the
fast store are read (one one-hot vector per line, see :mod:`aimcjax.optim._read`), the read
``values`` become a *signal*, and the signal moves W. A rule is the part that differs:

- :class:`Direct`: ``W[rows] <- analog_update(W[rows], beta * s)`` (Tiki-Taka, residual
  learning version 1, multi-tile residual learning).
- :class:`Buffered`: a digital buffer ``H <- decay * H + beta * s``; where ``|H| >= theta``,
  ``n = trunc(H / theta)`` pulses (capped at the transfer BL) fire on W and ``H <- H - n *
  theta`` (TTv2, residual learning version 2, c-TTv2, AGAD).
- :class:`Chopped`: wraps either: the gradient written into the fast array and the signal read
  from it are multiplied by a sign per input line, which flips after reads (c-TTv2); with
  ``dynamic`` the signal is relative to the previous chopper period's mean (AGAD).
- :class:`Accumulator`: the fast store is digital: the gradient accumulates there, whole pulses
  go to W (mixed precision).

A rule is static (hashable) configuration; what it keeps between steps is one
:class:`LeafAux` per analog leaf and transfer stage, with ``None`` in the fields it does not use.

References:
  [TTv1] Gokmen & Haensch 2020; [TTv2] Gokmen 2021; [cTTv2/AGAD] Rasch et al., Nat. Commun.
  15, 7133 (2024); [MP] Nandakumar et al., Front. Neurosci. 14:406 (2020); [AIHWKIT]
  TransferCompound, BufferedTransferCompound, ChoppedTransferCompound,
  DynamicTransferCompound, MixedPrecisionCompound.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from aimcjax import pulse
from aimcjax._typing import ArrayLike, DTypeLike, Shape
from aimcjax.devices import Device
from aimcjax.tile import Tile

__all__ = ["Accumulator", "Buffered", "Chopped", "Direct", "LeafAux", "Line", "quantize_factors"]

# LeafAux fields shaped like the leaf (viewed as the (in, out) matrix inside the kernel); the
# others have one entry per input line.
LEAF_SHAPED = ("buffer", "running_mean", "past_mean")


class LeafAux(NamedTuple):
    """What a transfer rule keeps for one analog leaf and one transfer stage.

    Attributes:
      buffer: the digital buffer H (:class:`Buffered`) or accumulator chi
        (:class:`Accumulator`), shaped like the leaf.
      chopper: :class:`Chopped`: the sign per input line (+1 / -1).
      reads: :class:`Chopped`: how many times each line has been read.
      running_mean: AGAD: running mean of each element's reads.
      past_mean: AGAD: the running mean at the line's last chopper switch (the reference).
      switched: AGAD: whether a line's chopper switched at its previous read.
    """

    buffer: Any = None
    chopper: Any = None
    reads: Any = None
    running_mean: Any = None
    past_mean: Any = None
    switched: Any = None


class Line(NamedTuple):
    """One transfer of some input lines into a destination array (2-D views).

    Attributes:
      device: the destination array's device.
      rows: indices of the transferred input lines.
      beta: the transfer rate (may be traced).
      period: steps between two reads of the same line (for ``auto_granularity``).
      cfg: :class:`aimcjax.pulse.UpdateConfig` of the transfer writes.
      key_write: key of the writes into the destination.
      key_chop: key of the chopper flips.
    """

    device: Device
    rows: jax.Array
    beta: Any
    period: int
    cfg: pulse.UpdateConfig
    key_write: jax.Array
    key_chop: jax.Array


def write_lines(dst: Tile, line: Line, signal: jax.Array) -> Tile:
    """The direct transfer ``W[rows] <- analog_update(W[rows], beta * signal)``.

    In "outer" mode each line is one rank-1 sample ``(e_i, signal_i)`` of aihwkit's transfer
    write. A one-hot sample touches only its own row, so the samples are applied to their
    rows independently (vmap over rows, one key per row) rather than in sequence.
    """
    device, rows, cfg = line.device, line.rows, line.cfg
    if cfg.mode == "outer":
        row_tiles = Tile(*(f[rows][:, None, :] for f in dst))  # (k, 1, out)
        one = jnp.ones((1, 1), dst.w.dtype)

        def write_row(t_row: Tile, s_row: jax.Array, k: jax.Array) -> Tile:
            return pulse.outer_update(t_row, device, one, -s_row[None], line.beta, k, cfg)

        keys = jax.random.split(line.key_write, rows.shape[0])
        new_rows = jax.vmap(write_row)(row_tiles, signal, keys)
        return dst._replace(w=dst.w.at[rows].set(new_rows.w[:, 0, :]))
    dW = jnp.zeros_like(dst.w).at[rows].set(line.beta * signal)
    return pulse.update(dst, device, dW, line.key_write, cfg)


def fire(
    dst: Tile, line: Line, h: jax.Array, theta: ArrayLike, cap: int | None
) -> tuple[Tile, jax.Array]:
    """Fire ``n = trunc(h / theta)`` pulses (capped at ``±cap`` when given) on the given rows.

    Each pulse moves an element by one dw_min of the destination; in "expected"/"ideal" mode
    the change ``n * dw_min`` goes through :func:`aimcjax.pulse.update`. Returns
    ``(dst, n)``; the rule decides what its buffer keeps.
    """
    n = jnp.trunc(h / theta)
    if cap is not None:
        n = jnp.clip(n, -cap, cap)
    n_all = jnp.zeros(dst.w.shape, jnp.int32).at[line.rows].set(n.astype(jnp.int32))
    if line.cfg.mode in ("pulse", "outer"):
        return pulse.apply(dst, line.device, n_all, line.key_write), n
    dw = jnp.asarray(line.device.dw_min, dst.w.dtype)
    return pulse.update(
        dst, line.device, n_all.astype(dst.w.dtype) * dw, line.key_write, line.cfg
    ), n


@dataclasses.dataclass(frozen=True)
class Direct:
    """Tiki-Taka's transfer: the signal times beta is written straight into W."""

    digital_source = False

    def init(self, shape: Shape, n_lines: int, dtype: DTypeLike) -> LeafAux:
        return LeafAux()

    def signs(self, aux: LeafAux) -> jax.Array | None:
        return None

    def transfer(
        self,
        dst: Tile,
        aux: LeafAux,
        values: Any,
        line: Line,
        active: jax.Array | None = None,
    ) -> tuple[Tile, LeafAux]:
        return write_lines(dst, line, values), aux


@dataclasses.dataclass(frozen=True)
class Buffered:
    """A digital buffer with threshold: ``H <- decay * H + beta * s``, whole pulses go to W.

    Attributes:
      decay: "sum" (``H <- H + beta s``: TTv2, c-TTv2) or "ema" (``H <- (1 - beta) H + beta
        s``: residual learning version 2).
      granularity: the threshold theta in units of dw_min of W (> 0).
      auto_granularity: if > 0, theta is further scaled by ``auto_granularity / period``.
      forget: reset a line's buffer entry to 0 after it fires, instead of subtracting what was
        transferred (with ``forget=False`` nothing is lost).
    """

    decay: str = "sum"
    granularity: float = 1.0
    auto_granularity: float = 0.0
    forget: bool = False

    digital_source = False

    def init(self, shape: Shape, n_lines: int, dtype: DTypeLike) -> LeafAux:
        return LeafAux(buffer=jnp.zeros(shape, dtype))

    def signs(self, aux: LeafAux) -> jax.Array | None:
        return None

    def threshold(self, line: Line, dtype: DTypeLike) -> jax.Array:
        theta = self.granularity * jnp.asarray(line.device.dw_min, dtype)
        if self.auto_granularity > 0:
            theta = theta * self.auto_granularity / line.period
        return theta

    def transfer(
        self,
        dst: Tile,
        aux: LeafAux,
        values: Any,
        line: Line,
        active: jax.Array | None = None,
    ) -> tuple[Tile, LeafAux]:
        H, rows = aux.buffer, line.rows
        theta = self.threshold(line, dst.w.dtype)
        decay = (1 - line.beta) if self.decay == "ema" else 1.0
        h = decay * H[rows] + line.beta * values
        if active is not None:
            h = jnp.where(active, h, H[rows])
        dst, n = fire(dst, line, h, theta, line.cfg.bl)
        h = jnp.where(n != 0, 0.0, h) if self.forget else h - n * theta
        return dst, aux._replace(buffer=H.at[rows].set(h))


def quantize_factors(v: jax.Array, n_bins: int, key: jax.Array | None = None) -> jax.Array:
    """Quantize each row of ``v`` (shape (B, n)) to ``n_bins`` levels of its absolute maximum.

    ``round(v / s) * s`` with ``s = max|v_b| / n_bins``; stochastic rounding when ``key`` is
    given; ``n_bins = 0`` returns ``v`` unchanged (aihwkit's MixedPrecisionCompound ``n_x_bins``
    / ``n_d_bins``).

    Example:
      >>> quantize_factors(jnp.array([[0.1, -1.0, 0.55]]), 2)
      Array([[ 0. , -1. ,  0.5]], dtype=float32)
    """
    if n_bins == 0:
        return v
    scale = jnp.max(jnp.abs(v), axis=-1, keepdims=True) / n_bins
    safe = jnp.where(scale > 0, scale, 1)
    r = v / safe
    r = (
        jnp.floor(r + jax.random.uniform(key, r.shape, r.dtype))
        if key is not None
        else jnp.round(r)
    )
    return jnp.where(scale > 0, r * safe, 0.0)


@dataclasses.dataclass(frozen=True)
class Accumulator:
    """Mixed precision's digital accumulator chi: ``chi <- chi - lr * Q(x)^T Q(d)`` (or
    ``- lr * g``); at a transfer ``n = trunc(chi / eps)`` pulses (capped at ``max_pulses``)
    fire on W and ``chi <- chi - n * eps``.

    Attributes:
      granularity: eps, the weight change one pulse is booked as (None: dw_min of W).
      max_pulses: cap on pulses per element and transfer (None: no cap).
      n_x_bins, n_d_bins: quantization levels of the per-sample x and d (0: none).
      stochastic_rounding: round x and d stochastically when quantizing.
    """

    granularity: float | None = None
    max_pulses: int | None = None
    n_x_bins: int = 0
    n_d_bins: int = 0
    stochastic_rounding: bool = False

    digital_source = True

    def init(self, shape: Shape, n_lines: int, dtype: DTypeLike) -> LeafAux:
        return LeafAux(buffer=jnp.zeros(shape, dtype))

    def signs(self, aux: LeafAux) -> jax.Array | None:
        return None

    def accumulate(
        self,
        aux: LeafAux,
        grad2: jax.Array,
        factor: tuple[jax.Array, jax.Array] | None,
        lr: ArrayLike,
        key: jax.Array,
    ) -> LeafAux:
        """The gradient step into the digital accumulator (2-D view)."""
        if factor is not None:
            k_x, k_d = jax.random.split(key)
            dtype = aux.buffer.dtype
            x, d = (jnp.asarray(a, dtype) for a in factor)
            x = quantize_factors(x, self.n_x_bins, k_x if self.stochastic_rounding else None)
            d = quantize_factors(d, self.n_d_bins, k_d if self.stochastic_rounding else None)
            grad2 = x.T @ d
        return aux._replace(buffer=aux.buffer - lr * grad2)

    def transfer(
        self,
        dst: Tile,
        aux: LeafAux,
        values: Any,
        line: Line,
        active: jax.Array | None = None,
    ) -> tuple[Tile, LeafAux]:
        del values, active  # the accumulator is its own signal
        eps = jnp.asarray(
            line.device.dw_min if self.granularity is None else self.granularity, dst.w.dtype
        )
        h = aux.buffer[line.rows]
        dst, n = fire(dst, line, h, eps, self.max_pulses)
        return dst, aux._replace(buffer=aux.buffer.at[line.rows].set(h - n * eps))


@dataclasses.dataclass(frozen=True)
class Chopped:
    """Sign choppers around a :class:`Direct` or :class:`Buffered` transfer (c-TTv2, AGAD).

    The gradient into the fast array is written times ``c_i`` per input line; a read of line
    i is demodulated, ``s_i = c_i * read_i`` (c-TTv2) or ``s_i = c_i * (read_i - mu_i)``
    (``dynamic``, AGAD: ``mu_i`` is the running mean of line i's reads over the chopper
    period before the last switch; no transfer before the first period has ended). After each
    read, ``c_i`` flips (randomly with probability ``in_chop_prob``, or regularly every
    ``max(ceil(1 / in_chop_prob), 2)`` reads). With ``in_chop_prob = 0`` the chopper stays +1
    and the inner rule's numbers are unchanged.

    Attributes:
      inner: the wrapped rule.
      in_chop_prob: flip probability or frequency in [0, 1].
      in_chop_random: random (True) or regular flips.
      dynamic: AGAD's reference of the previous chopper period.
      tail_weighting: AGAD: the running mean's rate is ``min(tail_weighting / period, 1)``.
    """

    inner: Direct | Buffered
    in_chop_prob: float
    in_chop_random: bool = True
    dynamic: bool = False
    tail_weighting: float = 1.0

    digital_source = False

    @property
    def period_reads(self) -> int:
        # Regular chopping: a line's chopper flips after every `period_reads`-th read of it.
        return max(math.ceil(1 / self.in_chop_prob), 2) if self.in_chop_prob > 0 else 0

    def init(self, shape: Shape, n_lines: int, dtype: DTypeLike) -> LeafAux:
        aux = self.inner.init(shape, n_lines, dtype)
        aux = aux._replace(
            chopper=jnp.ones((n_lines,), dtype), reads=jnp.zeros((n_lines,), jnp.int32)
        )
        if self.dynamic:
            aux = aux._replace(
                running_mean=jnp.zeros(shape, dtype),
                past_mean=jnp.zeros(shape, dtype),
                switched=jnp.zeros((n_lines,), bool),
            )
        return aux

    def signs(self, aux: LeafAux) -> jax.Array | None:
        return aux.chopper

    def transfer(
        self,
        dst: Tile,
        aux: LeafAux,
        values: Any,
        line: Line,
        active: jax.Array | None = None,
    ) -> tuple[Tile, LeafAux]:
        rows = line.rows
        sign = aux.chopper[rows][:, None]
        if self.dynamic:
            # First read after a switch: the mean of the period just ended becomes the reference.
            past_rows = jnp.where(
                aux.switched[rows][:, None], aux.running_mean[rows], aux.past_mean[rows]
            )
            signal = sign * (values - past_rows)
            rate = min(self.tail_weighting / self.period_reads, 1.0)
            aux = aux._replace(
                past_mean=aux.past_mean.at[rows].set(past_rows),
                running_mean=aux.running_mean.at[rows].set(
                    (1 - rate) * aux.running_mean[rows] + rate * values
                ),
            )
            # No reference exists before the first period has ended.
            active = (aux.reads[rows] >= self.period_reads)[:, None]
        else:
            signal = sign * values
        dst, aux = self.inner.transfer(dst, aux, signal, line, active)

        reads = aux.reads.at[rows].add(1)
        if self.in_chop_prob == 0:
            flip = jnp.zeros(rows.shape, bool)
        elif self.in_chop_random:
            flip = jax.random.uniform(line.key_chop, rows.shape, values.dtype) < self.in_chop_prob
        else:
            flip = reads[rows] % self.period_reads == 0
        chopper = aux.chopper.at[rows].multiply(jnp.where(flip, -1, 1).astype(aux.chopper.dtype))
        aux = aux._replace(reads=reads, chopper=chopper)
        if self.dynamic:
            aux = aux._replace(switched=aux.switched.at[rows].set(flip))
        return dst, aux


# Any transfer rule (the kernel only calls ``accumulate`` where ``digital_source`` holds).
TransferRule = Direct | Buffered | Chopped | Accumulator
