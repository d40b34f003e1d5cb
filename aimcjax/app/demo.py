"""A short tour of the pulse kernel: response curves, and the drift of weights fed pure
zero-mean noise towards each device's symmetric point (the root of Analog SGD's implicit
penalty [RF §3]).

Run: ``python -m aimcjax.app.demo [--out DIR] [--steps N]``.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from aimcjax import devices as D
from aimcjax import pulse as P
from aimcjax import tile as T
from aimcjax.devices import presets

DEMO_DEVICES = {
    "SoftBounds c=0.3": D.SoftBounds(tau=0.6, asymmetry=0.3, dw_min=1e-3),
    "Power gamma=2 c=0.2": D.Power(tau=0.6, gamma=2.0, asymmetry=0.2, dw_min=1e-3),
    "Exponential gamma=3 c=-0.2": D.Exponential(tau=0.6, gamma=3.0, asymmetry=-0.2, dw_min=1e-3),
    "ReRAM-SB preset (noisy, d2d)": presets.reram_sb(),
}


def drift(device, steps: int, key, shape=(64, 64), w0=0.4, request_std=0.01):
    """Weights start at ``w0`` and receive zero-mean random requests in "pulse" mode.

    Returns the mean effective weight after every step (a jitted scan)."""
    k_init, k_run = jax.random.split(key)
    tile = T.init(k_init, device, shape, w0=w0)
    cfg = P.UpdateConfig(mode="pulse", bl=31)

    def step(t, k):
        k_req, k_pulse = jax.random.split(k)
        dW = request_std * jax.random.normal(k_req, shape)
        t = P.update(t, device, dW, k_pulse, cfg)
        return t, T.weights(t).mean()

    _, means = jax.jit(lambda t, ks: jax.lax.scan(step, t, ks))(
        tile, jax.random.split(k_run, steps)
    )
    return np.asarray(means)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out/demo", help="folder for the plot (default out/demo)")
    parser.add_argument("--steps", type=int, default=3000, help="update steps per device")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")

    key = jax.random.PRNGKey(0)
    print(f"{'device':32s} {'w* (theory)':>12s} {'mean w after':>13s} {'seconds':>8s}")
    curves = {}
    for i, (name, dev) in enumerate(DEMO_DEVICES.items()):
        t0 = time.perf_counter()
        means = drift(dev, args.steps, jax.random.fold_in(key, i))
        curves[name] = means
        print(
            f"{name:32s} {float(dev.symmetric_point()):12.4f} {means[-1]:13.4f} {time.perf_counter() - t0:8.2f}"
        )

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot written")
        return 0
    os.makedirs(args.out, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    w = jnp.linspace(-0.6, 0.6, 241)
    for name, dev in DEMO_DEVICES.items():
        line = axes[0].plot(w, dev.q_plus(w), label=f"{name}: q+")[0]
        axes[0].plot(w, dev.q_minus(w), "--", color=line.get_color())
        axes[1].plot(curves[name], color=line.get_color(), label=name)
        axes[1].axhline(float(dev.symmetric_point()), color=line.get_color(), lw=0.8, ls=":")
    axes[0].set(xlabel="w", ylabel="response (q+ solid, q- dashed)", title="Response functions")
    axes[1].set(
        xlabel="step", ylabel="mean weight", title="Drift under zero-mean requests (dotted: w*)"
    )
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(args.out, "demo.png")
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
