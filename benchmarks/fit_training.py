"""Training with a fitted device vs the true one: test accuracy over seeds on the embedded digits.

A true device (default: aihwkit's ReRAM soft-bounds preset, ``presets.reram_sb``, with its
device-to-device variation and cycle-to-cycle noise) gives pulse-response traces
(:func:`aimcjax.fit.simulate_traces`, read noise 2e-3); :func:`aimcjax.fit.fit` picks a family
and fits it. A 64-32-10 sigmoid network is then trained on scikit-learn's 8x8 digits with
Analog SGD in "pulse" mode, once per seed with each device: the true one, the fitted one and,
as a check that the comparison can tell devices apart, a contrast device (the fitted one with
its asymmetry moved). Seeds change the tiles' device-to-device samples, the pulse noise and
the initial weights; the data order is fixed.

    PYTHONPATH=$PWD python benchmarks/fit_training.py [--seeds 6] [--steps 1500] [--out FILE]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aimcjax import optim, pulse
from aimcjax.app import data
from aimcjax.devices import presets
from aimcjax.fit import fit, simulate_traces

SIZES = (64, 32, 10)


def _model(params, x):
    h = jax.nn.sigmoid(x @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def train(device, seed, ds, steps, lr, batch):
    """Test accuracy after ``steps`` Analog SGD steps (all weights and biases analog)."""
    x_tr = jnp.asarray(ds.x_train.reshape(len(ds.x_train), -1))
    y_tr = jnp.asarray(ds.y_train)
    x_te = jnp.asarray(ds.x_test.reshape(len(ds.x_test), -1))
    y_te = jnp.asarray(ds.y_test)
    k1, k2 = jax.random.split(jax.random.PRNGKey(1000 + seed))
    params = {
        "w1": jax.random.normal(k1, SIZES[:2]) / np.sqrt(SIZES[0]),
        "b1": jnp.zeros((1, SIZES[1])),
        "w2": jax.random.normal(k2, SIZES[1:]) / np.sqrt(SIZES[1]),
        "b2": jnp.zeros((1, SIZES[2])),
    }
    opt = optim.analog_sgd(
        lr,
        device,
        update=pulse.UpdateConfig(mode="pulse"),
        key=seed,
        mask=lambda p: dict.fromkeys(p, True),
    )
    order = (
        np.random.default_rng(0)
        .permutation(np.tile(np.arange(len(y_tr)), steps * batch // len(y_tr) + 1))[: steps * batch]
        .reshape(steps, batch)
    )

    def loss(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(_model(p, xb), yb).mean()

    @jax.jit
    def run(params, order):
        def step(carry, idx):
            p, state = carry
            g = jax.grad(loss)(p, x_tr[idx], y_tr[idx])
            updates, state = opt.update(g, state, p)
            return (optax.apply_updates(p, updates), state), None

        (p, _), _ = jax.lax.scan(step, (params, opt.init(params)), order)
        return jnp.mean(jnp.argmax(_model(p, x_te), -1) == y_te)

    return float(run(params, jnp.asarray(order)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--devices", type=int, default=32, help="devices in the fitted traces")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    true = presets.reram_sb()
    t0 = time.perf_counter()
    traces = simulate_traces(true, args.devices, 2, 500, 2e-3, 11)._replace(read_noise=None)
    report = fit(traces, ("constant", "softbounds", "power"))
    fitted = report.device
    lines = [
        f"# benchmarks/fit_training.py {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"digits 64-32-10 sigmoid, Analog SGD pulse mode, lr {args.lr}, batch {args.batch}, "
        f"{args.steps} steps, {args.seeds} seeds",
        f"true:   {true!r}",
        f"fitted: {fitted!r}  ({args.devices} devices x 2 cycles x 2x500 pulses, "
        f"best {report.ranking[0].family}/{report.ranking[0].noise}; fit {time.perf_counter() - t0:.0f} s)",
    ]
    contrast = fitted.replace(asymmetry=0.5)
    ds = data.digits()
    acc = {}
    for label, dev in (("true", true), ("fitted", fitted), ("contrast (asymmetry 0.5)", contrast)):
        acc[label] = np.array(
            [train(dev, s, ds, args.steps, args.lr, args.batch) for s in range(args.seeds)]
        )
        a = acc[label]
        lines.append(
            f"{label:26s} test accuracy {a.mean():.4f} ± {a.std(ddof=1) / np.sqrt(a.size):.4f} "
            f"(sd {a.std(ddof=1):.4f}; {', '.join(f'{v:.3f}' for v in a)})"
        )
    t, f = acc["true"], acc["fitted"]
    diff_se = np.sqrt(t.var(ddof=1) / t.size + f.var(ddof=1) / f.size)
    lines.append(
        f"fitted - true: {f.mean() - t.mean():+.4f} (standard error of the difference {diff_se:.4f}, "
        f"{(f.mean() - t.mean()) / diff_se:+.1f} SE)"
    )
    c = acc["contrast (asymmetry 0.5)"]
    c_se = np.sqrt(t.var(ddof=1) / t.size + c.var(ddof=1) / c.size)
    lines.append(
        f"contrast - true: {c.mean() - t.mean():+.4f} ({(c.mean() - t.mean()) / c_se:+.1f} SE)"
    )
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(text + "\n\n")


if __name__ == "__main__":
    main()
