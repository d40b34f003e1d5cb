"""A sweep of 8 configurations: one vmapped program vs the 8 runs one by one.

Both paths reuse their compiled program (the one-by-one path compiles once and runs 8 times),
so the comparison is of execution, with compile times reported separately. The metrics of
both paths are checked to be equal before any time is reported.

Usage: python benchmarks/bench_sweep.py [--model mlp|fcn] [--epochs 2] [--train-size 500]
         [--algorithm analog-sgd] [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import numpy as np

from aimcjax.app import data, specs
from aimcjax.app.experiments import training


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="mlp", choices=["mlp", "fcn"])
    p.add_argument("--algorithm", default="analog-sgd")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-size", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    ds = data.standardize(data.load("digits" if args.model == "mlp" else "mnist5k"))
    grid = specs.parse_grid("softbounds:asymmetry=0/0.1/0.2/0.3,dw_min_std=0.3")
    devices = [d for _, d in grid for _ in (0, 1)]
    seeds = [s for _ in grid for s in (0, 1)]
    cfg = training.TrainConfig(
        model=args.model,
        algorithm=args.algorithm,
        epochs=args.epochs,
        train_size=args.train_size,
        lr=0.1,
    )

    def one_by_one():
        return [training.train(cfg, ds, d, s) for d, s in zip(devices, seeds)]

    def swept():
        return training.sweep(cfg, ds, devices, seeds)

    t0 = time.perf_counter()
    first = one_by_one()  # compiles the single-run program once, then runs 8 times
    t_single_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    batch = swept()
    t_sweep_first = time.perf_counter() - t0
    for r, h in enumerate(first):
        np.testing.assert_array_equal(h["test_acc"], batch["test_acc"][r])

    def best(fn):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            times.append(time.perf_counter() - t0)
        return min(times)

    t_single = best(one_by_one)
    t_sweep = best(swept)
    result = {
        "configs": 8,
        "model": args.model,
        "algorithm": args.algorithm,
        "epochs": args.epochs,
        "train_size": args.train_size,
        "steps_per_run": args.epochs * (args.train_size // cfg.batch_size),
        "one_by_one_s": round(t_single, 3),
        "vmapped_sweep_s": round(t_sweep, 3),
        "speedup": round(t_single / t_sweep, 2),
        "first_call_incl_compile_s": {
            "one_by_one": round(t_single_first, 2),
            "vmapped": round(t_sweep_first, 2),
        },
        "metrics_equal": True,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, jax {jax.__version__}, {jax.default_backend()}",
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
