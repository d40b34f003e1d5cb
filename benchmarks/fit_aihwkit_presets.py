"""Fit aimcjax device models to pulse-response traces simulated by aihwkit from its presets.

The traces (``benchmarks/data/aihwkit_<preset>.npz``, aimcjax's trace layout) and aihwkit's
per-device truth (``aihwkit_<preset>.json``) come from
``benchmarks/aihwkit/fit_preset_traces.py`` (run in the aihwkit venv). Each file is fitted by
:func:`aimcjax.fit.fit` (constant, softbounds, power, exp and two-node piecewise, additive
and multiplicative noise, ranked by BIC), and the best model's estimates are put beside
aihwkit's preset values and the values of the devices aihwkit actually sampled, in aihwkit's
terms (mapping in the table notes)::

    PYTHONPATH=$PWD python benchmarks/fit_aihwkit_presets.py [--out benchmarks/results/fit_aihwkit_presets.md]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from aimcjax.fit import fit, load_traces

DATA = Path(__file__).resolve().parent / "data"
PRESETS = ("reram_sb", "ecram", "capacitor")
FAMILIES = ("constant", "softbounds", "power", "exp", "piecewise2")


def _mean_se(x):
    x = np.asarray(x, float)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


def _fitted_responses(best, w):
    """Per-device (f_plus, f_minus) of the best fit at weights ``w`` (n_devices,)."""
    fam, pd = best.family, best.per_device
    shape = {k: jnp.asarray(v) for k, v in best.shared.items() if k in ("gamma", "up", "down")}
    w_min = pd.get("w_min", -np.inf * np.ones_like(w))
    w_max = pd.get("w_max", np.inf * np.ones_like(w))
    qp, qm = fam.response(shape, jnp.asarray(w), jnp.asarray(w_min), jnp.asarray(w_max))
    return np.asarray(qp, float), np.asarray(qm, float)


def _fmt(value, se=None, digits=4):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    text = f"{value:.{digits}g}"
    if se is not None and math.isfinite(se):
        text += f" ± {se:.2g}"
    return text


def compare(name: str, families=FAMILIES) -> tuple[list[str], str]:
    traces = load_traces(str(DATA / f"aihwkit_{name}.npz"))
    meta = json.loads((DATA / f"aihwkit_{name}.json").read_text())
    preset, hidden = meta["preset_parameters"], meta["hidden_parameters"]
    t0 = time.perf_counter()
    report = fit(traces, families)
    elapsed = time.perf_counter() - t0
    best, est = report.best, report.params
    top = report.ranking[0]
    n = traces.n_devices
    zero = np.zeros(n)

    # aihwkit's truth per device: step at w = 0 (dwmin_up/down), bounds, slopes.
    su, sd = np.asarray(hidden["dwmin_up"]), np.asarray(hidden["dwmin_down"])
    bmax, bmin = np.asarray(hidden["max_bound"]), np.asarray(hidden["min_bound"])
    gain_true = (su + sd) / 2
    # Ours: step at w = 0 of each device from the fitted response.
    fp0, fm0 = _fitted_responses(best, zero)
    up0 = best.per_device["step_up"] * fp0
    dn0 = best.per_device["step_down"] * fm0
    gain_fit = (up0 + dn0) / 2

    rows = [
        ("model", "–", f"{meta['preset'].replace('PresetDevice', '')}", f"{top.family}/{top.noise}")
    ]

    def row(label, nominal, true_values, fitted, fitted_se=None, relative_spread=False):
        true_values = np.asarray(true_values, float)
        if relative_spread:
            truth = float(true_values.std(ddof=1) / abs(true_values.mean()))
        else:
            truth = float(true_values.mean())
        rows.append((label, _fmt(nominal), _fmt(truth), _fmt(fitted, fitted_se)))

    m, s = _mean_se(gain_fit)
    row("dw_min (mean step at w=0)", preset["dw_min"], gain_true, m, s)
    imb_t = (su - sd) / (su + sd)
    m, s = _mean_se((up0 - dn0) / (up0 + dn0))
    row("up/down imbalance at w=0", preset.get("up_down", 0.0), imb_t, m, s)
    row(
        "dw_min_dtod",
        preset["dw_min_dtod"],
        gain_true,
        est["dw_min_dtod"].value,
        est["dw_min_dtod"].se,
        relative_spread=True,
    )
    rows.append(
        (
            "up_down_dtod",
            _fmt(preset["up_down_dtod"]),
            _fmt(float(imb_t.std(ddof=1))),
            _fmt(est["up_down_dtod"].value, est["up_down_dtod"].se),
        )
    )
    for bound, values in (("w_max", bmax), ("w_min", bmin)):
        e = est[bound]
        row(bound, preset[bound], values, e.value, e.se)
        e = est[f"{bound}_dtod"]
        row(f"{bound}_dtod", preset[f"{bound}_dtod"], values, e.value, e.se, relative_spread=True)
    if "slope_up" in hidden and "gamma_up" in preset:
        # aihwkit LinearStep: step(w) = scale (1 - gamma w / w_ref), w_ref the device's bound
        # (or the nominal one with mean_bound_reference); gamma = 1 - step(w_ref)/step(0).
        mean_ref = bool(preset.get("mean_bound_reference", False))
        ref_up = np.full(n, preset["w_max"]) if mean_ref else bmax
        ref_dn = np.full(n, preset["w_min"]) if mean_ref else bmin
        g_up_t = -np.asarray(hidden["slope_up"]) * ref_up / su
        g_dn_t = -np.asarray(hidden["slope_down"]) * ref_dn / sd
        fit_ref_up = np.full(n, preset["w_max"]) if mean_ref else best.per_device.get("w_max", bmax)
        fit_ref_dn = np.full(n, preset["w_min"]) if mean_ref else best.per_device.get("w_min", bmin)
        fpu, _ = _fitted_responses(best, fit_ref_up)
        _, fmd = _fitted_responses(best, fit_ref_dn)
        m, s = _mean_se(1 - fpu / fp0)
        row("gamma_up", preset["gamma_up"], g_up_t, m, s)
        m, s = _mean_se(1 - fmd / fm0)
        row("gamma_down", preset["gamma_down"], g_dn_t, m, s)
    if "gamma" in est:  # a shape aihwkit's preset does not have (its family is linear)
        rows.append(
            ("gamma (Power/Exponential shape)", "–", "–", _fmt(est["gamma"].value, est["gamma"].se))
        )
    # Cycle-to-cycle noise in aihwkit's units: additive sd = dw_min_std * step(0) per device
    # (ours: sigma * step scale, the step at the response's largest node); multiplicative is
    # the same model in both.
    e = est["dw_min_std"]
    if best.noise == "additive":
        ratio = float(np.mean(best.per_device["step_up"] / np.where(up0 > 0, up0, np.nan)))
        noise = (e.value * ratio, e.se * ratio)
    else:
        noise = (e.value, e.se)
    rows.append(
        (
            f"dw_min_std ({'mult' if preset.get('mult_noise') else 'add'} in aihwkit)",
            _fmt(preset["dw_min_std"]),
            _fmt(preset["dw_min_std"]),
            _fmt(*noise),
        )
    )
    read_true = math.hypot(
        preset.get("write_noise_std", 0.0) * preset["dw_min"], meta["protocol"]["added_read_noise"]
    )
    rows.append(
        (
            "read noise (write noise + added)",
            "–",
            _fmt(read_true),
            _fmt(est["read_noise"].value, est["read_noise"].se),
        )
    )
    # Per-device agreement (fit vs aihwkit's sampled device), relative RMS.
    rel = lambda a, b: float(np.sqrt(np.mean(((a - b) / b) ** 2)))
    per_dev = f"per-device relative RMS error: step at 0 {rel(gain_fit, gain_true):.3f}"
    if "w_max" in best.per_device:
        per_dev += (
            f", w_max {rel(best.per_device['w_max'], bmax):.3f}, "
            f"w_min {rel(best.per_device['w_min'], bmin):.3f}"
        )
    ranking = ", ".join(f"{c.family}/{c.noise} {c.delta:+.0f}" for c in report.ranking[:4])
    lines = (
        [
            f"### {meta['preset']} ({n} devices x {meta['protocol']['cycles']} cycles x "
            f"2x{meta['protocol']['pulses_per_ramp']} pulses; fit {elapsed:.0f} s incl. compile)",
            "",
            "| parameter (aihwkit's terms) | aihwkit preset | aihwkit's sampled devices | aimcjax fit ± SE |",
            "|---|---|---|---|",
        ]
        + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
        + [
            "",
            f"{per_dev}. BIC ranking (Δ): {ranking}.",
            "",
        ]
    )
    return lines, top.family


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", nargs="*", default=list(PRESETS))
    ap.add_argument("--families", nargs="*", default=list(FAMILIES))
    args = ap.parse_args()
    out = [
        f"<!-- benchmarks/fit_aihwkit_presets.py {' '.join(sys.argv[1:])}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} -->",
        "",
    ]
    for name in args.only:
        lines, _ = compare(name, args.families)
        print("\n".join(lines), flush=True)
        out += lines
    if args.out:
        with open(args.out, "a") as fh:
            fh.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
