"""The pulsed update on its own: XLA path vs the fused Pallas kernel (run on a GPU).

    python benchmarks/kernel_bench.py [--steps 10] [--repeats 5] [--out DIR]
    python benchmarks/kernel_bench.py --smoke        # tiny shapes: checks the script on CPU

Cases (W1 devices: multiplicative cycle-to-cycle noise, bl = 31): the 784x256 layer's
"pulse" update (the batch's dW) and "outer" update at batch 10 and 64, and both swept over
16 Power configs under vmap (W3). Each timed call is one jitted ``lax.scan`` over ``--steps``
updates (dispatch paid once per call); the median of ``--repeats`` calls per update is
reported with the compile time, and how far the two paths' weights are apart after the
warm-up call's ``--steps`` updates (same keys) (on a GPU the kernel's float ops round as Triton's, not bit for bit as XLA's).
Prints a table and one JSON line per case (also written to DIR/kernel_bench.jsonl).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "aihwkit"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common as C
import jax
import jax.numpy as jnp
import numpy as np

from aimcjax import devices, pulse, tile


def _device(gamma=None, tau=C.TAU):
    if gamma is None:
        return devices.SoftBounds(
            tau=tau, dw_min=C.DW_MIN, dw_min_std=C.DW_MIN_STD, noise="multiplicative"
        )
    return devices.Power(
        tau=tau, gamma=gamma, dw_min=C.DW_MIN, dw_min_std=C.DW_MIN_STD, noise="multiplicative"
    )


def _case(mode: str, shape, batch: int, configs: int):
    """(update(t, dev, x, d, key) -> new w, tiles, devices, x, d) for one case; with
    ``configs`` > 0 everything carries a leading sweep axis (and update is vmapped)."""
    n_in, n_out = shape
    lead = (configs,) if configs else ()
    x = jax.random.uniform(jax.random.PRNGKey(1), (*lead, batch, n_in))
    d = 0.02 * jax.random.normal(jax.random.PRNGKey(2), (*lead, batch, n_out))
    if configs:
        grid = C.w3_grid()[:configs]
        dev = devices.stack([_device(gamma=g, tau=t) for g, t in grid])
        t = jax.vmap(lambda k, dv: tile.init(k, dv, shape))(
            jax.random.split(jax.random.PRNGKey(0), configs), dev
        )
    else:
        dev = _device()
        t = tile.init(0, dev, shape)

    def update(kernel):
        cfg = pulse.UpdateConfig(mode=mode, bl=C.BL, kernel=kernel)

        def one(t, dev, x, d, key):
            if mode == "pulse":
                return pulse.update(t, dev, -C.LR * x.T @ d, key, cfg)
            return pulse.outer_update(t, dev, x, d, C.LR, key, cfg)

        return jax.vmap(one, in_axes=(0, 0, 0, 0, None)) if configs else one

    return update, t, dev, x, d


def _timed(update, t, dev, x, d, steps: int, repeats: int):
    def many(t, key):
        def step(t, i):
            return update(t, dev, x, d, jax.random.fold_in(key, i)), None

        return jax.lax.scan(step, t, jnp.arange(steps))[0]

    start = time.perf_counter()
    compiled = jax.jit(many).lower(t, jax.random.PRNGKey(7)).compile()
    compile_s = time.perf_counter() - start
    first = jax.block_until_ready(compiled(t, jax.random.PRNGKey(8)))  # warm-up, compared
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(t, jax.random.PRNGKey(9 + r)))
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times), times, compile_s, np.asarray(first.w)


def run_case(name, mode, shape, batch, configs, steps, repeats):
    update, t, dev, x, d = _case(mode, shape, batch, configs)
    row = {
        "case": name,
        "mode": mode,
        "shape": list(shape),
        "batch": batch,
        "configs": configs,
        "backend": jax.default_backend(),
        "jax": jax.__version__,
    }
    weights = {}
    for kernel in ("xla", "pallas"):
        try:
            median, times, compile_s, weights[kernel] = _timed(
                update(kernel), t, dev, x, d, steps, repeats
            )
            row[kernel] = {"median_s": median, "times_s": times, "compile_s": compile_s}
        except Exception as err:
            row[kernel] = {"error": f"{type(err).__name__}: {err}"[:2000]}
            traceback.print_exc()
    if len(weights) == 2:
        diff = np.abs(weights["xla"] - weights["pallas"])
        moved = np.abs(weights["xla"] - np.asarray(t.w))
        row["max_abs_diff"] = float(diff.max())
        row["equal_fraction"] = float(np.mean(diff == 0))
        row["max_abs_change"] = float(moved.max())
    return row


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--smoke", action="store_true", help="tiny shapes, 2 configs, 1 step (CPU check)"
    )
    a = p.parse_args(argv)
    print(f"jax {jax.__version__}, devices {jax.devices()}", flush=True)
    shape, configs = ((40, 24), 2) if a.smoke else ((784, 256), 16)
    steps, repeats = (1, 1) if a.smoke else (a.steps, a.repeats)
    cases = [
        ("pulse_b10", "pulse", shape, 10, 0),
        ("outer_b10", "outer", shape, 10, 0),
        ("outer_b64", "outer", shape, 64 if not a.smoke else 3, 0),
        (f"sweep{configs}_pulse_b10", "pulse", shape, 10, configs),
        (f"sweep{configs}_outer_b10", "outer", shape, 10 if not a.smoke else 2, configs),
    ]
    out = None
    if a.out is not None:
        a.out.mkdir(parents=True, exist_ok=True)
        out = (a.out / "kernel_bench.jsonl").open("a")
    print(
        f"{'case':22s} {'xla s/update':>13s} {'pallas s/update':>16s} {'speed-up':>9s} {'compile xla/pallas s':>21s} {'max|diff|':>10s} {'equal':>6s}",
        flush=True,
    )
    for case in cases:
        row = run_case(*case, steps, repeats)
        line = json.dumps(row)
        if out is not None:
            out.write(line + "\n")
            out.flush()
        xla, pal = row["xla"].get("median_s"), row["pallas"].get("median_s")
        speed = f"{xla / pal:9.2f}" if xla and pal else f"{'-':>9s}"
        comp = f"{row['xla'].get('compile_s', float('nan')):.1f}/{row['pallas'].get('compile_s', float('nan')):.1f}"
        print(
            f"{row['case']:22s} {xla or float('nan'):13.3e} {pal or float('nan'):16.3e} {speed} {comp:>21s} "
            f"{row.get('max_abs_diff', float('nan')):10.2e} {row.get('equal_fraction', float('nan')):6.3f}",
            flush=True,
        )
        print(line, flush=True)


if __name__ == "__main__":
    main()
