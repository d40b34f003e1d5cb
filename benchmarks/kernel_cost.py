"""What the pulsed update of a W1/W3 step costs, by XLA's count, against a fused kernel's floor.

    .venv/bin/python benchmarks/kernel_cost.py            # prints the table (no timings)

For each case (W1: FCN 784-256-128-10, its three layers' updates at batch 10 and 64; W3: the
784x256 layer's update swept over 16 Power configs under vmap), "pulse" and "outer" modes on
the W1 devices (multiplicative cycle-to-cycle noise, bl = 31):

- XLA: ``jax.jit(update).lower(...).compile().cost_analysis()`` of the XLA path (compiled for
  this machine's backend): flops and bytes accessed, and the H200 time they predict: bytes /
  4.8 TB/s (HBM bandwidth floor) and flops / 67 TFLOP/s (FP32 peak). XLA's cost analysis
  counts the body of a while loop ONCE (its trip count is data-dependent): the per-pulse loop
  runs up to bl = 31 passes per update ("pulse") or per sample ("outer"), each pass reading
  and writing the whole tile (or block) again, so these are per-pass numbers, a lower bound;
  "x passes" is the HBM time of that many bytes times the passes' upper bound (bl per update
  or per sample; "outer" passes cover live lines only, so it overstates "outer" more).
- fused: the bytes a one-launch kernel must move (read w, gains, bounds and the counts (int8)
  or the samples' trains (int8, each block reads its rows' and columns' trains); write w) and
  its arithmetic: XLA's flop count of one pulse on one element (the kernel's per-element
  step) times the element-pulses of the update's upper bound (every element bl pulses per
  update, or per sample in "outer"; the kernel loops to each block's largest count).

Nothing is timed; the predictions are floors, not measurements.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "aihwkit"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common as C
import jax
import jax.numpy as jnp

from aimcjax import devices, pulse, tile
from aimcjax.pulse import loop, rng

HBM_BYTES_PER_S = 4.8e12  # H200 SXM
FP32_FLOPS_PER_S = 67e12  # H200 SXM, non-tensor-core FP32
F32 = 4
LAYERS = tuple(zip(C.FCN_SIZES[:-1], C.FCN_SIZES[1:]))  # (in, out) per layer
SLOTS = (
    -(-C.BL // 4) * 4
)  # pulse-train slots per sample (chunks of 4, see trains._sample_pulse_trains)


def _device(gamma=None, tau=C.TAU):
    if gamma is None:
        return devices.SoftBounds(
            tau=tau, dw_min=C.DW_MIN, dw_min_std=C.DW_MIN_STD, noise="multiplicative"
        )
    return devices.Power(
        tau=tau, gamma=gamma, dw_min=C.DW_MIN, dw_min_std=C.DW_MIN_STD, noise="multiplicative"
    )


def _cost(fn, *args) -> tuple[float, float, float]:
    """(flops, transcendentals, bytes accessed) of ``fn`` compiled by XLA."""
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older JAX: one dict per computation
        analysis = analysis[0]
    return (
        float(analysis.get("flops", 0.0)),
        float(analysis.get("transcendentals", 0.0)),
        float(analysis.get("bytes accessed", 0.0)),
    )


def _layer_update(mode: str, dev, shape, batch: int):
    """(update function, its arguments) of one layer: the tile, the factors, a key."""
    cfg = pulse.UpdateConfig(mode=mode, bl=C.BL, kernel="xla")
    t = tile.init(0, dev, shape)
    x = jax.random.uniform(jax.random.PRNGKey(1), (batch, shape[0]))
    d = 0.1 * jax.random.normal(jax.random.PRNGKey(2), (batch, shape[1]))

    def update(t, dev, x, d, key):
        return pulse.outer_update(t, dev, x, d, C.LR, key, cfg).w

    return update, (t, dev, x, d, jax.random.PRNGKey(3))


def _per_element_pulse(dev) -> tuple[float, float]:
    """XLA's (flops, transcendentals) of one noisy pulse on one element (the kernel's step):
    the counter generator's draw and the step of ``loop._pulse_step``."""
    n_el = 1 << 16
    t = tile.init(0, dev, (n_el,))
    ids = jnp.arange(n_el, dtype=jnp.uint32)

    def one_pulse(t, n, words):
        noise = loop._noise_term(dev, jnp.float32)(
            rng._normal_from_bits(rng._keyed_bits(words[0], words[1], ids), jnp.float32)
        )
        return loop._pulse_step(dev, t.w, n, 0, t, lambda _: noise)

    flops, trans, _ = _cost(one_pulse, t, jnp.ones((n_el,), jnp.int32), jnp.zeros((2,), jnp.uint32))
    return flops / n_el, trans / n_el


def _fused_bytes(mode: str, shape, batch: int, configs: int = 1) -> float:
    """Bytes a one-launch kernel must move: w (read, write), gains and bounds (read), and
    the counts (int8) or, per program block (16 x 128), its rows' and columns' trains (int8)."""
    n_in, n_out = shape
    elements = n_in * n_out
    fields = elements * F32 * (2 + 4)
    if mode == "pulse":
        return configs * (fields + elements)
    row_blocks, col_blocks = -(-n_in // 16), -(-n_out // min(128, n_out))
    trains = batch * SLOTS * (col_blocks * n_in + row_blocks * n_out)
    return configs * (fields + trains)


def _passes(mode: str, batch: int) -> int:
    """Upper bound of the XLA path's loop passes per update: bl, or bl per sample."""
    return C.BL * (batch if mode == "outer" else 1)


def _row(name, mode, xla, fused_bytes, element_pulses, per_pulse, passes):
    flops, _, nbytes = xla
    k_flops = element_pulses * per_pulse[0]
    print(
        f"{name:26s} {mode:6s} {flops:10.3g} {nbytes:10.3g} {nbytes / HBM_BYTES_PER_S * 1e6:9.2f} "
        f"{flops / FP32_FLOPS_PER_S * 1e6:9.2f} {passes * nbytes / HBM_BYTES_PER_S * 1e6:10.1f} | "
        f"{fused_bytes:10.3g} {fused_bytes / HBM_BYTES_PER_S * 1e6:9.2f} "
        f"{k_flops:10.3g} {k_flops / FP32_FLOPS_PER_S * 1e6:9.2f}"
    )


def main(argv=None):
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    print(
        f"jax {jax.__version__}, backend {jax.default_backend()}; H200: {HBM_BYTES_PER_S / 1e12:.1f} TB/s, "
        f"{FP32_FLOPS_PER_S / 1e12:.0f} TFLOP/s FP32; bl = {C.BL}, {SLOTS} train slots per sample"
    )
    per_pulse = _per_element_pulse(_device())
    per_pulse_power = _per_element_pulse(_device(gamma=0.5))
    print(
        f"one pulse on one element (counter draw + step), XLA's count: SoftBounds {per_pulse[0]:.0f} flops "
        f"+ {per_pulse[1]:.0f} transcendentals; Power {per_pulse_power[0]:.0f} + {per_pulse_power[1]:.0f}"
    )
    print()
    print(
        f"{'':26s} {'':6s} {'XLA path (cost analysis, loop bodies once)':65s} | fused kernel (upper bound: bl pulses per element)"
    )
    print(
        f"{'case':26s} {'mode':6s} {'flops':>10s} {'bytes':>10s} {'us@HBM':>9s} {'us@FP32':>9s} {'x passes':>10s} | "
        f"{'bytes':>10s} {'us@HBM':>9s} {'flops':>10s} {'us@FP32':>9s}"
    )
    for batch in (10, 64):
        for mode in ("pulse", "outer"):
            totals = [0.0, 0.0, 0.0]
            fused = 0.0
            element_pulses = 0.0
            for shape in LAYERS:
                fn, args = _layer_update(mode, _device(), shape, batch)
                totals = [a + b for a, b in zip(totals, _cost(fn, *args))]
                fused += _fused_bytes(mode, shape, batch)
                element_pulses += shape[0] * shape[1] * C.BL * (batch if mode == "outer" else 1)
            _row(
                f"W1 b{batch} (3 layers)",
                mode,
                totals,
                fused,
                element_pulses,
                per_pulse,
                _passes(mode, batch),
            )
    grid = C.w3_grid()
    devs = devices.stack([_device(gamma=g, tau=t) for g, t in grid])
    shape = LAYERS[0]
    for mode in ("pulse", "outer"):
        fn, (_, _, x, d, key) = _layer_update(mode, _device(), shape, C.W3_BATCH)
        tiles = jax.vmap(lambda k, dv: tile.init(k, dv, shape))(
            jax.random.split(key, len(grid)), devs
        )
        xs, ds = (
            jnp.broadcast_to(x, (len(grid), *x.shape)),
            jnp.broadcast_to(d, (len(grid), *d.shape)),
        )
        sweep = jax.vmap(fn, in_axes=(0, 0, 0, 0, None))
        element_pulses = (
            len(grid) * shape[0] * shape[1] * C.BL * (C.W3_BATCH if mode == "outer" else 1)
        )
        _row(
            f"W3 {len(grid)} Power x 784x256",
            mode,
            _cost(sweep, tiles, devs, xs, ds, key),
            _fused_bytes(mode, shape, C.W3_BATCH, len(grid)),
            element_pulses,
            per_pulse_power,
            _passes(mode, C.W3_BATCH),
        )


if __name__ == "__main__":
    main()
