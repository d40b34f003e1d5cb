"""Fidelity cross-check: the same tile, the same x/d sequences, in aihwkit and in aimcjax.

    /work/main/.venv/bin/python benchmarks/aihwkit/fidelity.py [--seeds 300] [--only NAME]
        [--json benchmarks/results/fidelity_<date>.json]

Every case is one 16x8 tile (initial weights U(-0.3, 0.3) programmed exactly), 100 updates
of a batch of 4 (x ~ U(0, 1), d ~ N(0, d_std^2)), the same x/d in both libraries, with
multiplicative cycle-to-cycle noise (sigma 0.3), desired BL 31, update management and
update-BL management. Cases (``CASES``): every device family (ConstantStep, SoftBounds,
PowStep/Power gamma 0.5 and 2, ExpStep, PiecewiseStep), device-to-device variation,
saturation (k = lr max|x| max|d| / granularity > BL), Tiki-Taka (TransferCompound: fast
array A, one input line of A read exactly and written into C per update; same and different
fast/slow devices; saturating transfers).

Device-to-device variation is drawn by aihwkit (fixed ``construction_seed``, so every
repetition has the same devices) and copied into the aimcjax tiles (bounds and step gains,
element by element), so that each element is the same device in both libraries.

Each library runs ``--seeds`` independent repetitions; after 1, 10 and 100 updates we
compare, per element, the mean and the standard deviation over repetitions, in units of
their standard errors:

    z_mean = (m_a - m_b) / sqrt(s_a^2/S + s_b^2/S)
    z_std  = (s_a - s_b) / sqrt(V_a + V_b),  V = s^2 (kappa - (S-3)/(S-1)) / (4S)

where kappa is the element's kurtosis (pooled over both libraries, each centred on its own
mean): the delta-method variance of a sample std, which is 1/(2(S-1)) s^2 for a normal law
and larger for the few-point laws of an element after a handful of pulses. Under "same law"
each z is ~N(0, 1): rms ~ 1, max over 128 elements ~ 2.5-3.5, ~0.3% beyond 3. "Same law"
(``same_law``): rms within the chi-square band for the number of live elements (at least
0.75-1.3, see ``rms_band``), max |z| < 4.5, KS p >= 0.01.

Pooled two-sample KS: each element's values are standardised with the mean and std of
both libraries' values together, all elements of one library are pooled, and the KS
distance of the two pools is compared with its permutation distribution (whole repetitions
exchanged between the libraries, ``--permutations``): elements of one repetition are
correlated, which the permutation keeps, so the p-value is valid.

The aihwkit side runs in its own venv (``--side aihwkit``, called by this script via
subprocess).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common as C

N_IN, N_OUT, BATCH = 16, 8, 4
RECORD_AT = (1, 10, 100)
STEPS = max(RECORD_AT)
SEED = 1234  # aihwkit construction_seed: the devices' d2d draw
# Spread over repetitions below which an element counts as never moved: the float32 mean of
# 600 equal values is off by ~1e-8; one pulse moves an element by ~1e-3.
MOVED = 1e-6
NO_D2D = dict(dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0)
D2D = dict(dw_min_dtod=0.3, up_down_dtod=0.05, w_max_dtod=0.3, w_min_dtod=0.3)
PIECEWISE = dict(
    up=[1.6, 1.3, 0.8, 0.5, 0.3], down=[0.3, 0.5, 0.8, 1.3, 1.6]
)  # granularity 0.8 dw_min


def _dev(family, d2d=NO_D2D, **params):
    return {"family": family, "d2d": d2d, "params": params}


# name -> case. "dev": the (slow) device; "fast": Tiki-Taka's fast device; "jx": options of
# the aimcjax device only; "note": what the row shows when it is not "same law".
CASES = {
    "constant_step": dict(dev=_dev("constant")),
    "softbounds": dict(dev=_dev("softbounds")),
    "softbounds_d2d": dict(dev=_dev("softbounds", D2D)),
    "power_g0.5": dict(dev=_dev("power", gamma=0.5)),
    "power_g2": dict(dev=_dev("power", gamma=2.0)),
    "power_g2_d2d": dict(dev=_dev("power", D2D, gamma=2.0), jx=dict(range_normalization="aihwkit")),
    "power_g2_d2d_per_bound": dict(
        dev=_dev("power", D2D, gamma=2.0),
        note="documented option: per-bound normalisation (aimcjax default) vs PowStep's whole range",
    ),
    "expstep": dict(dev=_dev("expstep")),
    "expstep_updown_d2d": dict(dev=_dev("expstep", D2D, up_down=0.2)),
    "piecewise": dict(dev=_dev("piecewise", **PIECEWISE)),
    "piecewise_d2d": dict(dev=_dev("piecewise", D2D, **PIECEWISE)),
    "constant_step_saturated": dict(dev=_dev("constant"), lr=1.0),
    "softbounds_saturated": dict(dev=_dev("softbounds"), lr=1.0),
    "tiki_taka_softbounds": dict(dev=_dev("softbounds"), fast=_dev("softbounds"), beta=0.1),
    # aihwkit sizes the gradient's pulse trains into A with the compound's granularity, the
    # mean of A's and C's devices' (B.5): aimcjax's default gradient_granularity="average".
    "tiki_taka_piecewise_power": dict(
        dev=_dev("power", gamma=2.0), fast=_dev("piecewise", **PIECEWISE), beta=0.1
    ),
    # aimcjax's option: A's own granularity (what a fast device alone would use).
    "tiki_taka_piecewise_power_own_granularity": dict(
        dev=_dev("power", gamma=2.0),
        fast=_dev("piecewise", **PIECEWISE),
        beta=0.1,
        jx_opt=dict(gradient_granularity="own"),
        note="documented option gradient_granularity='own' vs aihwkit's mean granularity (B.5)",
    ),
    "tiki_taka_saturated_transfer": dict(dev=_dev("softbounds"), fast=_dev("softbounds"), beta=3.0),
    # aihwkit's default noisy transfer read (transfer_forward = IOParameters(): output noise
    # 0.06, 7/9-bit converters, bound management off) against aimcjax read="aihwkit" (B.6).
    "tiki_taka_aihwkit_read": dict(
        dev=_dev("softbounds"), fast=_dev("softbounds"), beta=0.1, read="aihwkit"
    ),
}
LR, D_STD = 0.1, 0.03  # k = lr max|x| max|d| / dw_min ~ 5-10: BL 5-10, some samples saturate


def case_settings(case):
    return case.get("lr", LR), case.get("d_std", D_STD)


def inputs(case, seed=0):
    _, d_std = case_settings(case)
    rng = np.random.default_rng(seed)
    w0 = rng.uniform(-0.3, 0.3, (N_IN, N_OUT)).astype(np.float32)
    xs = rng.uniform(0, 1, (STEPS, BATCH, N_IN)).astype(np.float32)
    ds = rng.normal(0, d_std, (STEPS, BATCH, N_OUT)).astype(np.float32)
    return w0, xs, ds


# -- aihwkit side (its own venv) ------------------------------------------------------------------


def aihwkit_device(spec):
    from aihwkit.simulator import configs as K

    p = dict(spec["params"])
    common = dict(
        dw_min=C.DW_MIN,
        w_max=C.TAU,
        w_min=-C.TAU,
        dw_min_std=C.DW_MIN_STD,
        up_down=p.pop("up_down", 0.0),
        construction_seed=SEED,
        **spec["d2d"],
    )
    family = spec["family"]
    if family == "constant":
        return K.ConstantStepDevice(**common)
    if family == "softbounds":
        return K.SoftBoundsDevice(mult_noise=True, **common)
    if family == "power":  # aimcjax Power(dw_min=x) is PowStep(dw_min=x 2^gamma)
        g = p["gamma"]
        return K.PowStepDevice(
            **dict(common, dw_min=C.DW_MIN * 2.0**g),
            pow_gamma=g,
            pow_gamma_dtod=0.0,
            pow_up_down=0.0,
            pow_up_down_dtod=0.0,
        )
    if family == "expstep":
        return K.ExpStepDevice(**common, **p)
    if family == "piecewise":
        return K.PiecewiseStepDevice(piecewise_up=p["up"], piecewise_down=p["down"], **common)
    raise ValueError(family)


def _hidden(tile):
    params = tile.get_hidden_parameters()
    return {k: v.numpy().T.copy() for k, v in params.items()}  # (out, in) -> (in, out)


def _device_arrays(hidden, spec, suffix=""):
    """Per-element bounds and step gains, (in, out): aihwkit's scales over its dw_min (2^gamma
    times ours for PowStep) and over the up_down factors the aimcjax device applies itself."""
    dw_min = C.DW_MIN * (2.0 ** spec["params"]["gamma"] if spec["family"] == "power" else 1.0)
    u = spec["params"].get("up_down", 0.0)
    return {
        "w_min": hidden["min_bound" + suffix],
        "w_max": hidden["max_bound" + suffix],
        "gain_up": hidden["dwmin_up" + suffix] / (dw_min * (1 + min(u, 0.0))),
        "gain_down": hidden["dwmin_down" + suffix] / (dw_min * (1 - max(u, 0.0))),
    }


def run_aihwkit_side(name: str, seeds: int, out: Path):
    import torch
    from aihwkit.simulator.configs import SingleRPUConfig, TransferCompound, UnitCellRPUConfig
    from aihwkit.simulator.parameters import IOParameters
    from aihwkit.simulator.tiles import AnalogTile

    torch.set_num_threads(1)
    case = CASES[name]
    lr, _ = case_settings(case)
    slow = aihwkit_device(case["dev"])
    if "fast" in case:
        compound = TransferCompound(
            unit_cell_devices=[aihwkit_device(case["fast"]), slow],
            gamma=0.4,
            transfer_every=1,
            units_in_mbatch=True,
            n_reads_per_transfer=1,
            transfer_columns=True,
            fast_lr=1.0,
            transfer_lr=case["beta"] / lr,
            scale_transfer_lr=True,
            transfer_forward=IOParameters()
            if case.get("read") == "aihwkit"
            else IOParameters(is_perfect=True),
        )
        config = UnitCellRPUConfig(device=compound)
    else:
        config = SingleRPUConfig(device=slow)
    w0, xs, ds = inputs(case)
    arrays = ("C", "A") if "fast" in case else ("C",)
    result = {a: np.zeros((len(RECORD_AT), seeds, N_IN, N_OUT), np.float32) for a in arrays}
    devices_seen = None
    for s in range(seeds):
        # aihwkit seeds each tile's update RNG from the clock: every tile is an independent
        # run; construction_seed fixes the d2d draw (checked below).
        tile = AnalogTile(N_OUT, N_IN, config)
        tile.set_learning_rate(lr)
        tile.set_weights(torch.from_numpy(w0.T.copy()))
        hidden = _hidden(tile)
        if devices_seen is None:
            devices_seen = hidden
        else:
            for k, v in hidden.items():
                if "bound" in k or "dwmin" in k:
                    assert np.array_equal(v, devices_seen[k]), (
                        f"d2d of {k} differs between repetitions"
                    )
        for t in range(STEPS):
            tile.update(torch.from_numpy(xs[t]), torch.from_numpy(ds[t]))
            if t + 1 in RECORD_AT:
                if "fast" in case:
                    h = _hidden(tile)
                    result["C"][RECORD_AT.index(t + 1), s] = h["hidden_weights_1"]
                    result["A"][RECORD_AT.index(t + 1), s] = h["hidden_weights_0"]
                else:
                    result["C"][RECORD_AT.index(t + 1), s] = tile.get_weights()[0].numpy().T
    if "fast" in case:
        dev_slow = _device_arrays(devices_seen, case["dev"], "_1")
        dev_fast = _device_arrays(devices_seen, case["fast"], "_0")
    else:
        dev_slow, dev_fast = _device_arrays(devices_seen, case["dev"]), {}
    np.savez(
        out,
        **{f"w_{a}": v for a, v in result.items()},
        **{f"slow_{k}": v for k, v in dev_slow.items()},
        **{f"fast_{k}": v for k, v in dev_fast.items()},
    )


# -- aimcjax side ----------------------------------------------------------------------------------


def aimcjax_device(spec, options=None):
    from aimcjax import devices

    p = dict(spec["params"])
    common = dict(
        dw_min=C.DW_MIN, w_min=-C.TAU, w_max=C.TAU, dw_min_std=C.DW_MIN_STD, noise="multiplicative"
    )
    family = spec["family"]
    if family == "constant":
        return devices.ConstantStep(**common)
    if family == "softbounds":
        return devices.SoftBounds(tau=C.TAU, **common)
    if family == "power":
        return devices.Power(tau=C.TAU, gamma=p["gamma"], **common, **(options or {}))
    if family == "expstep":
        return devices.ExpStep(**common, **p)
    if family == "piecewise":
        return devices.Piecewise(up=p["up"], down=p["down"], **common)
    raise ValueError(family)


def _tile(arrays, prefix, w0):
    import jax.numpy as jnp

    from aimcjax import tile

    f = {
        k: jnp.asarray(arrays[f"{prefix}_{k}"]) for k in ("w_min", "w_max", "gain_up", "gain_down")
    }
    w = jnp.clip(jnp.asarray(w0), f["w_min"], f["w_max"])
    return tile.Tile(w=w, ref=jnp.zeros_like(w), **f)


def run_aimcjax_side(name: str, seeds: int, arrays):
    sys.path.insert(0, str(C.REPO))
    import jax
    import jax.numpy as jnp
    import optax

    from aimcjax import optim, pulse, tile

    case = CASES[name]
    lr, _ = case_settings(case)
    slow = aimcjax_device(case["dev"], case.get("jx"))
    cfg = pulse.UpdateConfig(mode="outer", bl=C.BL)
    w0, xs, ds = inputs(case)
    record = jnp.asarray(RECORD_AT) - 1

    if "fast" not in case:
        t0 = _tile(arrays, "slow", w0)

        def one_seed(key):
            def step(t, inp):
                x, d, k = inp
                t = pulse.outer_update(t, slow, x, d, lr, k, cfg)
                return t, tile.weights(t)

            _, ws = jax.lax.scan(step, t0, (xs, ds, jax.random.split(key, STEPS)))
            return {"C": ws[record]}
    else:
        fast = aimcjax_device(case["fast"], case.get("jx"))
        opt = optim.tiki_taka(
            lr,
            case["beta"],
            slow,
            residual_device=fast,
            gamma=0.0,
            transfer="column",
            update=cfg,
            read=case.get("read"),
            key=0,
            **case.get("jx_opt", {}),
        )
        params = {"w": jnp.asarray(w0)}
        state0 = opt.init(params)
        # tiles: slowest first (C, then A), each element the device aihwkit drew.
        state0 = state0._replace(
            tiles=(
                {"w": _tile(arrays, "slow", w0)},
                {"w": _tile(arrays, "fast", np.zeros_like(w0))},
            )
        )

        def one_seed(key):
            def step(carry, inp):
                state, params = carry
                x, d = inp
                updates, state = opt.update({"w": x.T @ d}, state, params, factors={"w": (x, d)})
                # The optimizer checks that params stay its visible weights (C, gamma 0).
                params = optax.apply_updates(params, updates)
                return (state, params), (
                    tile.weights(state.tiles[0]["w"]),
                    tile.weights(state.tiles[1]["w"]),
                )

            state = state0._replace(
                key=jax.random.key_data(key)
                if jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                else key
            )
            params = {"w": tile.weights(state.tiles[0]["w"])}
            _, (cs, as_) = jax.lax.scan(step, (state, params), (xs, ds))
            return {"C": cs[record], "A": as_[record]}

    # A key of its own per case (a stable hash of its name): with one fixed key every case
    # reused the same draws, so one unlucky draw showed up in every case's KS test.
    case_key = jax.random.fold_in(jax.random.PRNGKey(12345), zlib.crc32(name.encode()))
    keys = jax.random.split(case_key, seeds)
    out = jax.jit(jax.vmap(one_seed))(keys)  # (seeds, len(RECORD_AT), in, out)
    return {k: np.asarray(jnp.moveaxis(v, 0, 1)) for k, v in out.items()}


# -- statistics ------------------------------------------------------------------------------------


def _ks_distance(a, b):
    """Two-sample KS distance of 1-D samples."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    return np.abs(
        np.searchsorted(a, grid, "right") / a.size - np.searchsorted(b, grid, "right") / b.size
    ).max()


def pooled_ks(a, b, permutations: int, rng):
    """KS distance of the per-element standardised, pooled values and its permutation p-value
    (whole repetitions exchanged between the two libraries)."""
    both = np.concatenate([a, b]).astype(np.float64).reshape(2 * a.shape[0], -1)
    live = both.std(0) > MOVED  # moved at all (not a constant up to float32 rounding)
    z = (both[:, live] - both[:, live].mean(0)) / both[:, live].std(0)
    s = a.shape[0]
    d0 = _ks_distance(z[:s].ravel(), z[s:].ravel())
    hits = 0
    for _ in range(permutations):
        order = rng.permutation(2 * s)
        hits += _ks_distance(z[order[:s]].ravel(), z[order[s:]].ravel()) >= d0
    return float(d0), float((1 + hits) / (1 + permutations))


def compare(a: np.ndarray, b: np.ndarray, w0, permutations: int, rng):
    """Per-checkpoint discrepancy statistics of two (S, in, out) samples."""
    # float64: the float32 std of 600 equal values of ~0.3 exceeds MOVED (it made 26 never
    # written elements of C count as live after one Tiki-Taka update, with z = 0).
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    s = a.shape[0]
    ma, mb = a.mean(0), b.mean(0)
    sa, sb = a.std(0, ddof=1), b.std(0, ddof=1)
    se_mean = np.sqrt((sa**2 + sb**2) / s)
    centred = np.concatenate([a - ma, b - mb])
    m2 = (centred**2).mean(0)
    kappa = np.where(m2 > 0, (centred**4).mean(0) / np.where(m2 > 0, m2, 1) ** 2, 3.0)
    factor = np.maximum(kappa - (s - 3) / (s - 1), 1e-12) / (4 * s)
    se_std = np.sqrt((sa**2 + sb**2) * factor)
    # Elements that no repetition moved in either library (equal constants, e.g. the lines of
    # C not yet transferred into) carry no information: left out of every statistic.
    live = np.concatenate([a, b]).std(0) > MOVED
    z_mean = (ma - mb)[live] / se_mean[live]
    z_std = (sa - sb)[live] / se_std[live]
    ks, ks_p = pooled_ks(a, b, permutations, rng)
    return {
        "live_elements": int(live.sum()),
        "max_abs_z_mean": float(np.abs(z_mean).max()),
        "frac_abs_z_mean_gt3": float((np.abs(z_mean) > 3).mean()),
        "rms_z_mean": float(np.sqrt((z_mean**2).mean())),
        "max_abs_z_std": float(np.abs(z_std).max()),
        "frac_abs_z_std_gt3": float((np.abs(z_std) > 3).mean()),
        "rms_z_std": float(np.sqrt((z_std**2).mean())),
        "ks": ks,
        "ks_p": ks_p,
        "mean_drift_aihwkit": float(np.abs(ma - w0).mean()),
        "mean_std_aihwkit": float(sa.mean()),
        "mean_std_aimcjax": float(sb.mean()),
    }


def rms_band(live: int, level: float = 1e-3) -> tuple[float, float]:
    """Range of the rms of ``live`` independent N(0, 1) z-values outside which "same law" is
    rejected: sqrt(chi2_k / k) at ``level`` two-sided, never narrower than 0.75-1.3 (the band
    used for 128 elements; with few live elements, e.g. the 8 elements of C one column
    transfer writes, rms has a wide spread: 0.30-1.87 for k = 8)."""
    from scipy import stats

    k = max(int(live), 1)
    lo = math.sqrt(stats.chi2.ppf(level / 2, k) / k)
    hi = math.sqrt(stats.chi2.ppf(1 - level / 2, k) / k)
    return min(lo, 0.75), max(hi, 1.3)


def same_law(row) -> bool:
    lo, hi = rms_band(row.get("live_elements", N_IN * N_OUT))
    return (
        lo <= row["rms_z_mean"] <= hi
        and lo <= row["rms_z_std"] <= hi
        and row["max_abs_z_mean"] < 4.5
        and row["max_abs_z_std"] < 4.5
        and row["ks_p"] >= 0.01
    )


def print_table(rows, seeds):
    print(
        f"\nfidelity: {N_IN}x{N_OUT} tile, batch {BATCH}, {seeds} repetitions per library; z = difference /"
        " standard error per element (128 elements); KS p by permutation of repetitions"
    )
    head = (
        f"{'case':42s} {'arr':>3s} {'upd':>4s} {'live':>4s} {'max|z|m':>8s} {'>3':>6s} {'rms':>5s} {'max|z|s':>8s} "
        f"{'>3':>6s} {'rms':>5s} {'KS':>6s} {'KS p':>5s} {'std hw':>8s} {'std jx':>8s}  law"
    )
    print(head)
    for r in rows:
        print(
            f"{r['case']:42s} {r['array']:>3s} {r['updates']:4d} {r.get('live_elements', 128):4d} {r['max_abs_z_mean']:8.2f} "
            f"{r['frac_abs_z_mean_gt3']:6.3f} {r['rms_z_mean']:5.2f} {r['max_abs_z_std']:8.2f} "
            f"{r['frac_abs_z_std_gt3']:6.3f} {r['rms_z_std']:5.2f} {r['ks']:6.4f} {r['ks_p']:5.2f} "
            f"{r['mean_std_aihwkit']:8.5f} {r['mean_std_aimcjax']:8.5f}  {'same' if r['same_law'] else 'DIFFERS'}"
        )


def markdown(rows) -> str:
    """The rows as a markdown table (RESULTS.md)."""
    lines = [
        "| case | array | updates | live | max\\|z\\| mean | >3 | rms z | max\\|z\\| std | >3 | rms z | KS | KS p "
        "| std aihwkit | std aimcjax | law |",
        "|" + "---|" * 15,
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['array']} | {r['updates']} | {r.get('live_elements', 128)} "
            f"| {r['max_abs_z_mean']:.2f} | {r['frac_abs_z_mean_gt3']:.3f} | {r['rms_z_mean']:.2f} "
            f"| {r['max_abs_z_std']:.2f} | {r['frac_abs_z_std_gt3']:.3f} | {r['rms_z_std']:.2f} "
            f"| {r['ks']:.4f} | {r['ks_p']:.2f} | {r['mean_std_aihwkit']:.5f} | {r['mean_std_aimcjax']:.5f} "
            f"| {'same' if r['same_law'] else '**differs**'} |"
        )
    return "\n".join(lines)


def merged_rows(paths):
    """Rows of several JSON results; a later file's rows replace an earlier one's of the same case."""
    by_case = {}
    for path in paths:
        rows = json.loads(Path(path).read_text())["rows"]
        for c in {r["case"] for r in rows}:
            by_case[c] = [r for r in rows if r["case"] == c]
    return [r for c in CASES if c in by_case for r in by_case[c]]


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--side", choices=["driver", "aihwkit"], default="driver")
    p.add_argument(
        "--case", choices=list(CASES), default=None, help="(aihwkit side) the case to run"
    )
    p.add_argument(
        "--only", default=None, help="run the cases whose name contains this (comma-separated)"
    )
    p.add_argument(
        "--skip",
        default=None,
        help="leave out the cases whose name contains this (comma-separated)",
    )
    p.add_argument("--seeds", type=int, default=300)
    p.add_argument("--permutations", type=int, default=100)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument(
        "--markdown",
        type=Path,
        nargs="+",
        default=None,
        help="print the rows of these JSON results as one markdown table (later files win per case)",
    )
    a = p.parse_args(argv)
    if a.markdown:
        print(markdown(merged_rows(a.markdown)))
        return 0
    if a.side == "aihwkit":
        run_aihwkit_side(a.case, a.seeds, a.out)
        return 0
    names = [
        n
        for n in CASES
        if (a.only is None or any(s in n for s in a.only.split(",")))
        and not (a.skip and any(s in n for s in a.skip.split(",")))
    ]
    rows, rng = [], np.random.default_rng(0)
    for name in names:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "aihwkit.npz"
            subprocess.run(
                [
                    str(C.AIHWKIT_PYTHON),
                    __file__,
                    "--side",
                    "aihwkit",
                    "--case",
                    name,
                    "--seeds",
                    str(a.seeds),
                    "--out",
                    str(out),
                ],
                check=True,
                env=dict(os.environ, OMP_NUM_THREADS="1"),
            )
            hw = dict(np.load(out))
        hw_s = time.perf_counter() - start
        jx = run_aimcjax_side(name, a.seeds, hw)
        w0 = inputs(CASES[name])[0]
        for array in jx:
            for i, n in enumerate(RECORD_AT):
                ref = w0 if array == "C" else np.zeros_like(w0)
                row = {
                    "case": name,
                    "array": array,
                    "updates": n,
                    **compare(hw[f"w_{array}"][i], jx[array][i], ref, a.permutations, rng),
                }
                row["same_law"] = same_law(row)
                row["note"] = CASES[name].get("note", "")
                rows.append(row)
        print(
            f"{name}: aihwkit {hw_s:.0f} s, total {time.perf_counter() - start:.0f} s", flush=True
        )
    print_table(rows, a.seeds)
    if a.json:
        a.json.write_text(
            json.dumps({"seeds": a.seeds, "permutations": a.permutations, "rows": rows}, indent=1)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
