"""The aimcjax side of the workloads (runs in the project venv; also used by gpu.sh).

    python benchmarks/aihwkit/aimcjax_side.py w2 --mode outer
    python benchmarks/aihwkit/aimcjax_side.py w1 --batch 10 --algo sgd --device softbounds --mode pulse
    python benchmarks/aihwkit/aimcjax_side.py w3 --mode outer

Prints one JSON line (median seconds per step, raw timings, compile time). Every timed call
is one jitted program over ``--steps`` steps (a ``lax.scan``), so host round trips and
dispatch are paid once per call, as a training loop written with aimcjax would.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import jax
import jax.numpy as jnp

from aimcjax import devices, pulse, tile


def _rss_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


BASELINE_RSS_MB = _rss_mb()  # after importing jax: the runtime's own footprint

import common as C
import fcn


def softbounds(tau=C.TAU):
    return devices.SoftBounds(
        tau=tau, dw_min=C.DW_MIN, dw_min_std=C.DW_MIN_STD, noise="multiplicative"
    )


def power(gamma=1.0, tau=C.TAU):
    return devices.Power(
        tau=tau, gamma=gamma, dw_min=C.DW_MIN, dw_min_std=C.DW_MIN_STD, noise="multiplicative"
    )


def block(tree):
    return jax.block_until_ready(tree)


def timed_compile(fn, *args):
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def w2(a):
    dev = softbounds()
    cfg = pulse.UpdateConfig(mode=a.mode, bl=C.BL)
    outer = pulse.outer_update
    t0 = tile.init(0, dev, (C.W2_SIZE, C.W2_SIZE))
    kx, kd = jax.random.split(jax.random.PRNGKey(0))
    xs = jax.random.uniform(kx, (8, C.W2_BATCH, C.W2_SIZE))
    ds = jax.random.normal(kd, (8, C.W2_BATCH, C.W2_SIZE)) * C.W2_D_STD

    def many(t, key, n_steps):
        def step(t, i):
            k = jax.random.fold_in(key, i)
            return outer(t, dev, xs[i % 8], ds[i % 8], C.LR, k, cfg), None

        t, _ = jax.lax.scan(step, t, jnp.arange(n_steps))
        return t

    state = {"t": t0, "key": jax.random.PRNGKey(1)}
    compiled, compile_s = timed_compile(lambda t, k: many(t, k, a.steps), t0, state["key"])

    def run(_):
        state["key"], k = jax.random.split(state["key"])
        state["t"] = compiled(state["t"], k)
        return state["t"]

    out = C.time_runs(run, a.steps, a.repeats, warmup=1, sync=block)
    out["compile_s"] = compile_s
    return out


def w1_trainer(algo, device, mode, batch, gamma=1.0):
    """The W1 model on one SoftBounds or Power device."""
    dev = softbounds() if device == "softbounds" else power(gamma=gamma)
    return fcn.Trainer(dev, algo, mode, batch)


def w3_trainer(mode):
    """The W3 sweep: the W1 model (Analog SGD, batch 10) on the 16 stacked Power devices."""
    devs = devices.stack([power(gamma=g, tau=t) for g, t in C.w3_grid()])
    return fcn.Trainer(devs, "sgd", mode, C.W3_BATCH, n_configs=len(C.w3_grid()))


def w1(a):
    return w1_trainer(a.algo, a.device, a.mode, a.batch, a.gamma).time(a.steps, a.repeats)


def w3(a):
    trainer = w3_trainer(a.mode)
    out = trainer.time(a.steps, a.repeats)
    out["per_config_step_s"] = out["median_s"] / len(C.w3_grid())
    out["state_bytes"] = trainer.state_bytes()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("workload", choices=["w1", "w2", "w3"])
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--algo", choices=["sgd", "tiki_taka"], default="sgd")
    p.add_argument("--device", choices=["softbounds", "power"], default="softbounds")
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--mode", choices=["outer", "pulse", "expected", "ideal"], default="outer")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    result = {"w1": w1, "w2": w2, "w3": w3}[a.workload](a)
    result.update(
        baseline_rss_mb=BASELINE_RSS_MB,
        library="aimcjax",
        jax=jax.__version__,
        backend=jax.default_backend(),
    )
    C.emit(result)


if __name__ == "__main__":
    main()
