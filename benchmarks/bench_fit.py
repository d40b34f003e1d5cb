"""Time aimcjax.fit on an array of 1 000 devices x 20 cycles x 2x200 pulses (8 000 pulses each).

Traces come from :func:`aimcjax.fit.simulate_traces` (SoftBounds with d2d variation and
additive cycle-to-cycle noise, read noise fitted). Timed: ``fit_family`` of the true family
(first call = compile + fit, second call = fit only), and with ``--all`` the whole model
choice (5 families x 2 noise models; ``--screen N``: ranked on N devices, the best refitted to
all, as the CLI does by default; ``--calls 0 --all`` times the model choice from nothing).
Errors of the nominal estimates against the truth are printed beside their standard errors.

    python benchmarks/bench_fit.py [--devices 1000] [--cycles 20] [--pulses 200] [--all]
        [--screen 128] [--calls 2] [--save-traces FILE.npz] [--out benchmarks/results/fit.txt]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax

from aimcjax import devices
from aimcjax.fit import estimate, fit, fit_family, population, save_traces, simulate_traces
from aimcjax.fit.select import DEFAULT_FAMILIES

TRUE = devices.SoftBounds(
    tau=0.6,
    dw_min=0.01,
    dw_min_std=0.3,
    dw_min_dtod=0.1,
    up_down_dtod=0.02,
    w_max_dtod=0.1,
    w_min_dtod=0.1,
)
READ_NOISE = 2e-3


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--pulses", type=int, default=200)
    ap.add_argument("--all", action="store_true", help="also time the full model choice")
    ap.add_argument("--calls", type=int, default=2, help="1: only the first (compiling) call")
    ap.add_argument("--screen", type=int, default=0, help="--all: screen on N devices (0: off)")
    ap.add_argument("--save-traces", default=None, help="write the traces (for the aihwkit side)")
    ap.add_argument("--out", default=None, help="append the result lines to this file")
    args = ap.parse_args()

    lines = [
        f"# bench_fit {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()} "
        f"({os.cpu_count()} CPUs, jax {jax.__version__}, {jax.default_backend()})",
        f"# {args.devices} devices x {args.cycles} cycles x 2x{args.pulses} pulses; truth {TRUE!r}, "
        f"read noise {READ_NOISE}",
    ]
    lines.append(f"# load average at start: {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    traces = simulate_traces(TRUE, args.devices, args.cycles, args.pulses, READ_NOISE, 0)._replace(
        read_noise=None
    )
    lines.append(f"simulate: {time.perf_counter() - t0:.1f} s")
    if args.save_traces:
        save_traces(traces, args.save_traces)

    # Count the calls of the fit's two compiled programs (the forward pass with derivatives:
    # every scoring step and the adjustment; the plain forward pass: the step checks).
    calls = {"score": [0, 0.0], "loglik": [0, 0.0]}
    originals = {
        "score": estimate._Objective.score_information,
        "loglik": estimate._Objective.logliks,
    }

    def counted(name):
        def method(self, *args):
            t = time.perf_counter()
            out = originals[name](self, *args)
            calls[name][0] += 1
            calls[name][1] += time.perf_counter() - t
            return out

        return method

    estimate._Objective.score_information = counted("score")
    estimate._Objective.logliks = counted("loglik")
    for label in ("first call (compile + fit)", "second call (fit)")[: args.calls]:
        for c in calls.values():
            c[:] = [0, 0.0]
        t0, c0 = time.perf_counter(), time.process_time()
        fitted = fit_family(traces, "softbounds", "additive")
        lines.append(
            f"fit_family softbounds/additive, {label}: {time.perf_counter() - t0:.1f} s wall, "
            f"{time.process_time() - c0:.1f} s CPU (all threads) "
            f"(scoring steps {fitted.n_iter}, converged {fitted.converged}; "
            f"{calls['score'][0]} scoring passes, {calls['score'][1]:.1f} s; "
            f"{calls['loglik'][0]} plain passes, {calls['loglik'][1]:.1f} s)"
        )
    estimate._Objective.score_information = originals["score"]
    estimate._Objective.logliks = originals["loglik"]
    if args.calls:
        lines += _estimates(fitted, traces)
    if args.all:
        t0 = time.perf_counter()
        report = fit(traces, screen=args.screen or None)
        how = f"screened on {report.screened_devices} devices, " if report.screening else ""
        lines.append(
            f"fit ({len(DEFAULT_FAMILIES)} families x 2 noise models, {how}compile included): "
            f"{time.perf_counter() - t0:.1f} s; best {report.ranking[0].family}/"
            f"{report.ranking[0].noise}; refitted: "
            + ", ".join(f"{c.family}/{c.noise} (Δ {c.delta:.1f})" for c in report.ranking)
        )
        if report.screening:
            lines.append(
                "  screen ranking: "
                + ", ".join(f"{c.family}/{c.noise} ({c.delta:.1f})" for c in report.screening)
            )
        lines += _estimates(report.best, traces)
    lines.append(f"# load average at end: {os.getloadavg()[0]:.1f}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n\n")


def _estimates(fitted, traces):
    est = population(fitted, traces)
    lines = [f"estimate vs truth ({fitted.family.name}/{fitted.noise}; value ± SE, error in SEs):"]
    for name in (
        "dw_min",
        "asymmetry",
        "w_max",
        "w_min",
        "dw_min_dtod",
        "up_down_dtod",
        "w_max_dtod",
        "w_min_dtod",
        "dw_min_std",
    ):
        if name not in est:  # a family without bounds or imbalance
            continue
        true = float(getattr(TRUE, name))
        e = est[name]
        lines.append(
            f"  {name:13s} {e.value:.5g} ± {e.se:.2g}  true {true:.5g}  ({(e.value - true) / e.se:+.1f} SE)"
        )
    e = est["read_noise"]
    lines.append(
        f"  {'read_noise':13s} {e.value:.5g} ± {e.se:.2g}  true {READ_NOISE:.5g}  "
        f"({(e.value - READ_NOISE) / e.se:+.1f} SE)"
    )
    return lines


if __name__ == "__main__":
    main()
