"""A small, deterministic CSGD run over every device of every process (``shard_map``).

Same script on one process (``XLA_FLAGS=--xla_force_host_platform_device_count=4``), on N
local processes (``python -m aimcjax.distributed.launch -n 2 --local-devices 2 -m
aimcjax.app.distributed_example --out r.npz``) or on a cluster (one process per host, after
``initialize``). Every process generates the same least-squares data from ``--seed``;
process 0 writes the final parameters and the upload pattern to ``--out``.
"""

from __future__ import annotations

import argparse
import sys


def run(
    mode: str = "csgd", steps: int = 20, dim: int = 5, seed: int = 0, backend: str = "shard_map"
):
    """Train least squares on all global devices; returns host numpy results (process-local)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    from aimcjax import distributed as dist

    workers = jax.device_count()
    # the threshold divides the slack by M^2: this keeps 1.25 after it for any worker count
    config = dist.CensorConfig(
        mode=mode,
        learning_rate=0.1,
        sigma0=1.25 * workers**2,
        sigma_decay=0.9,
        batch0=4,
        batch_growth=1.25,
        batch_max=64,
    )
    rng = np.random.default_rng(seed)
    x_star = rng.normal(size=dim).astype(np.float32)

    def loss_fn(params, example):
        return 0.5 * (example["a"] @ params - example["y"]) ** 2

    train = dist.make_train_step(
        loss_fn,
        dist.csgd(optax.sgd(0.1), config),
        backend=backend,
        num_workers=None if backend != "vmap" else workers,
    )
    params, state = train.init(jnp.zeros(dim, jnp.float32))
    sent, losses = [], []
    for k in range(steps):
        mask = dist.batch_mask(config, k, workers)
        a = rng.normal(size=mask.shape + (dim,)).astype(np.float32)
        a[0] += 1.0  # a heterogeneous worker
        batch = {"a": a, "y": (a @ x_star).astype(np.float32)}
        params, state, metrics = train.step(params, state, batch, mask)
        local = lambda x: (
            np.asarray(x.addressable_data(0)) if backend == "shard_map" else np.asarray(x)
        )
        sent.append(local(metrics.sent))
        losses.append(local(metrics.loss))
    return {
        "params": train.server_params(params),
        "sent": np.stack(sent),
        "loss": np.stack(losses),
        "x_star": x_star,
        "process_count": jax.process_count(),
        "workers": workers,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aimcjax.app.distributed_example")
    parser.add_argument("--out", required=True, help=".npz written by process 0")
    parser.add_argument("--mode", default="csgd", choices=("csgd", "lag", "sgd"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from aimcjax.distributed import initialize

    initialize()
    import jax
    import numpy as np

    result = run(args.mode, args.steps, seed=args.seed)
    if jax.process_index() == 0:
        np.savez(args.out, **result)
    print(
        f"process {jax.process_index()}/{jax.process_count()}: {result['workers']} workers, "
        f"uploads {int(result['sent'].sum())}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
