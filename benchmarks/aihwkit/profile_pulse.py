"""Where the pulse kernel spends its time on CPU: times the pieces of one update.

    python benchmarks/aihwkit/profile_pulse.py [--repeats 20]

Cases: the W1 first layer (784x256, batch 10, W1's gradient magnitudes) and the W2 tile
(512x512, batch 64). Pieces: the whole outer_update; the pulse counts of all samples alone;
the per-pulse loop alone; one draw of the per-element noise (threefry vs rbg keys); and how
many loop iterations the batch costs (sum over samples of max n_ij) against the pulses that
actually fire (what aihwkit's cost scales with).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common as C
import jax
import jax.numpy as jnp

from aimcjax import devices, pulse, tile
from aimcjax.pulse import rng, trains


def bench(fn, *args, repeats):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.process_time()  # CPU time: robust on the shared machine
        jax.block_until_ready(fn(*args))
        times.append(time.process_time() - start)
    return statistics.median(times) * 1e3


def case(name, n_in, n_out, batch, d_std, repeats):
    dev = devices.SoftBounds(
        tau=C.TAU, dw_min=C.DW_MIN, dw_min_std=C.DW_MIN_STD, noise="multiplicative"
    )
    cfg = pulse.UpdateConfig(mode="outer", bl=C.BL)
    t0 = tile.init(0, dev, (n_in, n_out))
    kx, kd = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.uniform(kx, (batch, n_in))
    d = jax.random.normal(kd, (batch, n_out)) * d_std
    key = jax.random.PRNGKey(1)

    full = jax.jit(lambda t, k: pulse.outer_update(t, dev, x, d, C.LR, k, cfg))
    counts = jax.jit(
        jax.vmap(
            lambda xb, db, kb: trains._sample_pulse_counts(xb, db, C.LR, dev.dw_min, kb, cfg),
            in_axes=(0, 0, 0),
        )
    )
    keys = jax.random.split(key, batch)
    n = counts(x, d, keys)
    loop_iters = int(jnp.sum(jnp.max(jnp.abs(n), axis=(1, 2))))
    fired = int(jnp.sum(jnp.abs(n)))
    max_total = int(jnp.max(jnp.sum(jnp.abs(n), axis=0)))

    def apply_all(t, n, k, rng):
        def body(t, inp):
            nb, kb = inp
            return pulse.apply(t, dev, nb, kb, rng), None

        return jax.lax.scan(body, t, (n, jax.random.split(k, batch)))[0]

    apply_jit = jax.jit(apply_all, static_argnums=3)
    counter = jax.lax.iota(jnp.uint32, n_in * n_out).reshape(n_in, n_out)
    normal_counter = jax.jit(lambda k: rng._counter_normal(k, counter, jnp.float32))
    normal_tf = jax.jit(lambda k: jax.random.normal(k, (n_in, n_out)))
    normal_rbg = jax.jit(lambda k: jax.random.normal(k, (n_in, n_out)))
    rbg_key = jax.random.key(1, impl="rbg")
    rows = {
        "outer_update (whole batch)": bench(full, t0, key, repeats=repeats),
        "pulse counts of all samples": bench(counts, x, d, keys, repeats=repeats),
        "per-pulse loops, counter noise": bench(apply_jit, t0, n, key, "counter", repeats=repeats),
        "per-pulse loops, threefry noise": bench(
            apply_jit, t0, n, key, "threefry", repeats=repeats
        ),
        "one normal draw, counter": bench(normal_counter, key, repeats=repeats),
        "one normal draw, threefry": bench(normal_tf, key, repeats=repeats),
        "one normal draw, rbg": bench(normal_rbg, rbg_key, repeats=repeats),
    }
    print(f"\n{name}: {n_in}x{n_out}, batch {batch}, d ~ N(0, {d_std}^2)")
    for label, ms in rows.items():
        print(f"  {label:34s} {ms:9.3f} ms")
    print(
        f"  loop iterations (sum of per-sample max|n|): {loop_iters}; pulses fired: {fired} "
        f"({fired / (batch * n_in * n_out):.4f} per element and sample); "
        f"max pulses on one element over the batch: {max_total}"
    )
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=10)
    a = p.parse_args()
    case("W1 layer 1", 784, 256, 10, 0.003, a.repeats)
    case("W2 tile", C.W2_SIZE, C.W2_SIZE, C.W2_BATCH, C.W2_D_STD, a.repeats)


if __name__ == "__main__":
    main()
