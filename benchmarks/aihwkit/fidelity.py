"""Fidelity cross-check: the same tile, the same x/d sequences, in aihwkit and in aimcjax.

    /work/main/.venv/bin/python benchmarks/aihwkit/fidelity.py [--seeds 300] [--json out.json]

Matched parameters: ConstantStep and SoftBounds devices with multiplicative cycle-to-cycle
noise (sigma 0.3), dw_min 1e-3, bounds +-0.6, desired BL 31 with update management and
update-BL management, no device-to-device variation. One 16x8 tile, initial weights
U(-0.3, 0.3) programmed exactly, 100 updates of a batch of 4 (x ~ U(0, 1), d ~ N(0, 0.03^2),
lr 0.1: k = lr*max|x|*max|d|/dw_min ~ 5-10, so BL ~ 5-10 and some samples saturate).
Each library runs ``--seeds`` independent repetitions; after 1, 10 and 100 updates we
compare, per element, the mean and the standard deviation over repetitions and express the
difference in units of its standard error:

    z_mean = (m_a - m_b) / sqrt(s_a^2/S + s_b^2/S)
    z_std  = (s_a - s_b) / sqrt(s_a^2/(2(S-1)) + s_b^2/(2(S-1)))   (normal-theory SE of s)

Under "same distribution" each z is ~N(0, 1): over 128 elements max|z| is ~2.5-3.5 and about
0.3% exceed 3. The aihwkit side runs in its own venv (``--side aihwkit``, called by this
script via subprocess).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common as C  # noqa: E402

N_IN, N_OUT, BATCH, STEPS = 16, 8, 4, 100
LR, D_STD = 0.1, 0.03
RECORD_AT = (1, 10, 100)
DEVICES = ("constant_step", "softbounds")


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    w0 = rng.uniform(-0.3, 0.3, (N_IN, N_OUT)).astype(np.float32)
    xs = rng.uniform(0, 1, (STEPS, BATCH, N_IN)).astype(np.float32)
    ds = (rng.normal(0, D_STD, (STEPS, BATCH, N_OUT))).astype(np.float32)
    return w0, xs, ds


def run_aihwkit_side(device: str, seeds: int, out: Path):
    import torch
    from aihwkit.simulator.configs import ConstantStepDevice, SingleRPUConfig, SoftBoundsDevice
    from aihwkit.simulator.tiles import AnalogTile

    torch.set_num_threads(1)
    common = dict(dw_min=C.DW_MIN, w_max=C.TAU, w_min=-C.TAU, dw_min_std=C.DW_MIN_STD,
                  dw_min_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0, up_down=0.0,
                  up_down_dtod=0.0)
    dev = (ConstantStepDevice(**common) if device == "constant_step"
           else SoftBoundsDevice(mult_noise=True, **common))
    w0, xs, ds = inputs()
    result = np.zeros((len(RECORD_AT), seeds, N_IN, N_OUT), np.float32)
    for s in range(seeds):
        # aihwkit seeds each tile's RNG from the clock; every tile is an independent run.
        tile = AnalogTile(N_OUT, N_IN, SingleRPUConfig(device=dev))
        tile.set_learning_rate(LR)
        tile.set_weights(torch.from_numpy(w0.T.copy()))
        for t in range(STEPS):
            tile.update(torch.from_numpy(xs[t]), torch.from_numpy(ds[t]))
            if t + 1 in RECORD_AT:
                result[RECORD_AT.index(t + 1), s] = tile.get_weights()[0].numpy().T
    np.save(out, result)


def run_aimcjax_side(device: str, seeds: int):
    sys.path.insert(0, str(C.REPO))
    import jax
    import jax.numpy as jnp

    from aimcjax import devices, pulse, tile

    outer_update = pulse.outer_update

    common = dict(dw_min=C.DW_MIN, dw_min_std=C.DW_MIN_STD, noise="multiplicative")
    dev = (devices.ConstantStep(w_min=-C.TAU, w_max=C.TAU, **common)
           if device == "constant_step" else devices.SoftBounds(tau=C.TAU, **common))
    cfg = pulse.UpdateConfig(mode="outer", bl=C.BL)
    w0, xs, ds = inputs()
    t0 = tile.init(0, dev, (N_IN, N_OUT), w0=jnp.asarray(w0))

    def one_seed(key):
        def step(t, inp):
            x, d, k = inp
            t = outer_update(t, dev, x, d, LR, k, cfg)
            return t, tile.weights(t)
        _, ws = jax.lax.scan(step, t0, (xs, ds, jax.random.split(key, STEPS)))
        return ws[jnp.asarray(RECORD_AT) - 1]

    keys = jax.random.split(jax.random.PRNGKey(12345), seeds)
    ws = jax.jit(jax.vmap(one_seed))(keys)  # (seeds, len(RECORD_AT), in, out)
    return np.asarray(jnp.moveaxis(ws, 0, 1))


def compare(a: np.ndarray, b: np.ndarray):
    """Per-checkpoint discrepancy statistics of two (S, in, out) samples."""
    s = a.shape[0]
    ma, mb = a.mean(0), b.mean(0)
    sa, sb = a.std(0, ddof=1), b.std(0, ddof=1)
    se_mean = np.sqrt((sa**2 + sb**2) / s)
    se_std = np.sqrt((sa**2 + sb**2) / (2 * (s - 1)))
    ok = se_mean > 0
    z_mean = np.where(ok, (ma - mb) / np.where(ok, se_mean, 1), 0.0)
    z_std = np.where(ok, (sa - sb) / np.where(ok, se_std, 1), 0.0)
    return {
        "max_abs_z_mean": float(np.abs(z_mean).max()),
        "frac_abs_z_mean_gt3": float((np.abs(z_mean) > 3).mean()),
        "rms_z_mean": float(np.sqrt((z_mean**2).mean())),
        "max_abs_z_std": float(np.abs(z_std).max()),
        "frac_abs_z_std_gt3": float((np.abs(z_std) > 3).mean()),
        "rms_z_std": float(np.sqrt((z_std**2).mean())),
        "mean_drift_aihwkit": float(np.abs(ma - inputs()[0]).mean()),
        "mean_std_aihwkit": float(sa.mean()),
        "mean_std_aimcjax": float(sb.mean()),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--side", choices=["driver", "aihwkit"], default="driver")
    p.add_argument("--device", choices=DEVICES, default=None)
    p.add_argument("--seeds", type=int, default=300)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    if a.side == "aihwkit":
        run_aihwkit_side(a.device, a.seeds, a.out)
        return 0
    rows = []
    for device in ([a.device] if a.device else DEVICES):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "aihwkit.npy"
            subprocess.run([str(C.AIHWKIT_PYTHON), __file__, "--side", "aihwkit", "--device",
                            device, "--seeds", str(a.seeds), "--out", str(out)], check=True)
            hw = np.load(out)
        jx = run_aimcjax_side(device, a.seeds)
        for i, n in enumerate(RECORD_AT):
            rows.append({"device": device, "updates": n, **compare(hw[i], jx[i])})
    print(f"\nfidelity: {N_IN}x{N_OUT} tile, batch {BATCH}, lr {LR}, {a.seeds} seeds per library;"
          f" aimcjax pulse.outer_update; z = difference / standard error, per element"
          " (128 elements)")
    print(f"{'device':14s} {'upd':>4s} {'max|z| mean':>12s} {'>3':>6s} {'rms z':>6s} "
          f"{'max|z| std':>11s} {'>3':>6s} {'rms z':>6s} {'drift':>8s} {'std hw':>8s} "
          f"{'std jx':>8s}")
    for r in rows:
        print(f"{r['device']:14s} {r['updates']:4d} {r['max_abs_z_mean']:12.2f} "
              f"{r['frac_abs_z_mean_gt3']:6.3f} {r['rms_z_mean']:6.2f} {r['max_abs_z_std']:11.2f} "
              f"{r['frac_abs_z_std_gt3']:6.3f} {r['rms_z_std']:6.2f} {r['mean_drift_aihwkit']:8.5f} "
              f"{r['mean_std_aihwkit']:8.5f} {r['mean_std_aimcjax']:8.5f}")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
