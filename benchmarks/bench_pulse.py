"""Time the pulse kernel on one 512x512 tile: pulse.update ("pulse", "expected") and
pulse.outer_update ("outer", batch 64, BL 31), SoftBounds and Power devices, compiled,
median of repeated runs.

    python benchmarks/bench_pulse.py [--repeats 20] [--size 512] [--batch 64] [--cpu]

Prints a markdown table (milliseconds per call) to paste into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax

from aimcjax import devices as D
from aimcjax import pulse as P
from aimcjax import tile as T


def _median_ms(fn, args, repeats, clock=time.perf_counter):
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        t0 = clock()
        jax.block_until_ready(fn(*args))
        times.append(clock() - t0)
    return 1e3 * statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument(
        "--cpu",
        action="store_true",
        help="process CPU time instead of wall time (robust on a shared machine)",
    )
    args = ap.parse_args(argv)
    clock = time.process_time if args.cpu else time.perf_counter

    n = args.size
    kx, kd, kg = jax.random.split(jax.random.PRNGKey(0), 3)
    # Realistic magnitudes: inputs O(1), errors O(1e-2), lr 0.1, dw_min 1e-3 -> ~1-3 pulses.
    x = jax.random.uniform(kx, (args.batch, n), minval=-1.0, maxval=1.0)
    d = 0.01 * jax.random.normal(kd, (args.batch, n))
    lr = 0.1
    dW = -lr * x.T @ d
    devices = {
        "SoftBounds": D.SoftBounds(tau=0.6, dw_min=1e-3),
        "SoftBounds+noise": D.SoftBounds(tau=0.6, dw_min=1e-3, dw_min_std=0.3),
        "Power g=2": D.Power(tau=0.6, gamma=2.0, dw_min=1e-3),
        "Power g=2+noise": D.Power(tau=0.6, gamma=2.0, dw_min=1e-3, dw_min_std=0.3),
    }
    print(
        f"# bench_pulse: {n}x{n} tile, batch {args.batch}, BL 31, median of {args.repeats}, "
        f"{'CPU' if args.cpu else 'wall'} time"
    )
    print(
        f"# jax {jax.__version__} on {jax.devices()[0].platform}, {platform.processor() or platform.machine()}"
    )
    print(
        "| device | update pulse (ms) | update expected (ms) | outer_update (ms) | outer per sample (ms) |"
    )
    print("|---|---|---|---|---|")
    for name, dev in devices.items():
        t = T.init(kg, dev, (n, n))
        upd = {
            m: jax.jit(lambda t, k, m=m: P.update(t, dev, dW, k, P.UpdateConfig(mode=m, bl=31)))
            for m in ("pulse", "expected")
        }
        outer = jax.jit(
            lambda t, k: P.outer_update(t, dev, x, d, lr, k, P.UpdateConfig(mode="outer", bl=31))
        )
        key = jax.random.PRNGKey(1)
        ms_pulse = _median_ms(upd["pulse"], (t, key), args.repeats, clock)
        ms_expected = _median_ms(upd["expected"], (t, key), args.repeats, clock)
        ms_outer = _median_ms(outer, (t, key), max(3, args.repeats // 4), clock)
        print(
            f"| {name} | {ms_pulse:.2f} | {ms_expected:.2f} | {ms_outer:.1f} | {ms_outer / args.batch:.2f} |"
        )


if __name__ == "__main__":
    main()
