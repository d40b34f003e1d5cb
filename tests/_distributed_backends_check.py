"""Run by tests/test_distributed_backends.py in a fresh process with 8 CPU devices.

Trains softmax regression (a pytree of params) for a few steps with the growing, masked
batch on 8 workers through the vmap, pmap and shard_map backends and prints, per mode, the
largest parameter difference to the vmap simulation and whether the upload patterns agree.
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aimcjax import distributed as dist

WORKERS, FEATURES, CLASSES, STEPS = 8, 6, 3, 12


def loss_fn(params, example):
    logits = example["x"] @ params["w"] + params["b"]
    return -jax.nn.log_softmax(logits)[example["label"]]


def batches(config):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(CLASSES, FEATURES)) * 2
    for k in range(STEPS):
        # One padded shape for the whole run (a fixed maximum with a mask): one compilation.
        row = np.arange(config.batch_max) < dist.batch_size(config, k)
        mask = np.broadcast_to(row, (WORKERS, config.batch_max))
        labels = rng.integers(0, CLASSES, size=mask.shape)
        x = centers[labels] + rng.normal(size=mask.shape + (FEATURES,))
        yield {"x": x.astype(np.float32), "label": labels.astype(np.int32)}, mask


def run(mode, backend):
    # slack 40 after the authors' 1 / M^2 (M = 8)
    config = dist.CensorConfig(
        mode=mode,
        learning_rate=0.5,
        sigma0=40.0 * WORKERS**2,
        sigma_decay=0.9,
        batch0=3,
        batch_growth=1.3,
        batch_max=16,
        max_staleness=6,
    )
    tx = dist.csgd(optax.sgd(0.5), config)
    kwargs = {"num_workers": WORKERS} if backend == "vmap" else {}
    train = dist.make_train_step(loss_fn, tx, backend=backend, **kwargs)
    params = {"w": jnp.zeros((FEATURES, CLASSES)), "b": jnp.zeros(CLASSES)}
    params, state = train.init(params)
    history, sent = [], []
    for batch, mask in batches(config):
        params, state, metrics = train.step(params, state, batch, mask)
        host = train.server_params(params)
        history.append(np.concatenate([host["w"].ravel(), host["b"]]))
        sent.append(np.asarray(metrics.sent))
    if backend in ("vmap", "pmap"):  # every worker must hold the same server parameters
        w = np.asarray(params["w"])
        assert np.array_equal(w, np.broadcast_to(w[0], w.shape)), "workers' parameters diverged"
    return np.stack(history), np.stack(sent), float(metrics.ratio_to_sgd)


def main():
    assert jax.device_count() == WORKERS, jax.devices()
    report = {}
    for mode in ("csgd", "lag", "sgd"):
        reference, sent_ref, ratio = run(mode, "vmap")
        report[mode] = {"ratio_to_sgd": ratio, "uploads": int(sent_ref.sum())}
        for backend in ("pmap", "shard_map"):
            iterates, sent, _ = run(mode, backend)
            report[mode][backend] = {
                "max_abs_diff": float(np.max(np.abs(iterates - reference))),
                "scale": float(np.max(np.abs(reference))),
                "same_uploads": bool(np.array_equal(sent, sent_ref)),
            }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
