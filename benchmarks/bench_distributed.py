"""Growing batch: compilations and wall time of three ways to feed B^k to a jitted CSGD step.

    python benchmarks/bench_distributed.py [--iterations 60] [--batch-max 4096]

* exact: every iteration's batch has its true size B^k (one compilation per distinct B^k);
* buckets: padded to the next power of two with a mask (aimcjax's default);
* fixed: padded to B_max with a mask (one compilation, the most padding).

Least squares, 10 workers simulated with vmap on one device, d = 10,
B^k = floor(1.2^{k+1}) capped at --batch-max. Results recorded in docs/README-distributed.md.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aimcjax import distributed as dist

WORKERS, DIM = 10, 10


def run(config, iterations, padded_size):
    tx = dist.csgd(optax.sgd(0.2), config)
    loss = lambda p, ex: (ex["a"] @ p - ex["y"]) ** 2
    train = dist.make_train_step(loss, tx, backend="vmap", num_workers=WORKERS)
    params, state = train.init(jnp.zeros(DIM))
    rng = np.random.default_rng(0)
    x_star = rng.normal(size=DIM).astype(np.float32)
    start = time.perf_counter()
    for k in range(iterations):
        padded = padded_size(k)
        mask = np.broadcast_to(np.arange(padded) < dist.batch_size(config, k), (WORKERS, padded))
        a = rng.standard_normal((WORKERS, padded, DIM), dtype=np.float32)
        params, state, _ = train.step(params, state, {"a": a, "y": a @ x_star}, mask)
    jax.block_until_ready(params)
    return time.perf_counter() - start, train.step.compiled._cache_size()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--batch-max", type=int, default=4096)
    args = parser.parse_args()
    config = dist.CensorConfig(
        learning_rate=0.2,
        sigma0=425.0,
        sigma_decay=0.85,
        batch0=1.2,
        batch_growth=1.2,
        batch_max=args.batch_max,
    )
    ways = {
        "exact": lambda k: dist.batch_size(config, k),
        "buckets": lambda k: dist.padded_batch_size(config, k),
        "fixed": lambda k: config.batch_max,
    }
    print(f"{args.iterations} iterations, B_max = {args.batch_max}, {jax.devices()[0].platform}")
    print("| padding | compilations | wall time (s) |\n|---|---|---|")
    for name, padded_size in ways.items():
        seconds, compiles = run(config, args.iterations, padded_size)
        print(f"| {name} | {compiles} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
