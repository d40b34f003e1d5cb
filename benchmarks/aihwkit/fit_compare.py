"""aihwkit's fitting (``aihwkit.utils.fitting.fit_measurements``, lmfit, its recommended
"powell" method on the mean response with device noise suppressed) on the traces written by
``benchmarks/bench_fit.py --save-traces FILE.npz``: time and parameter error.

Run in the aihwkit venv (lmfit is a benchmark-only dependency there)::

    OMP_NUM_THREADS=1 /work/aihwkit-venv/bin/python benchmarks/aihwkit/fit_compare.py FILE.npz [--cycles 2]

aihwkit's ``fit_measurements`` simulates the model pulse by pulse in Python for every
objective evaluation, so it is given the mean trace of the first ``--cycles`` cycles only
(aimcjax fits every device's full trace). Truth: SoftBounds dw_min 0.01, w_max 0.6,
w_min -0.6, no asymmetry (aihwkit up_down 0).
"""

import argparse
import time

import numpy as np
from aihwkit.simulator.configs.devices import SoftBoundsDevice
from aihwkit.utils.fitting import fit_measurements

TRUE = {"dw_min": 0.01, "up_down": 0.0, "w_max": 0.6, "w_min": -0.6}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("traces")
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--pulses", type=int, default=200)
    args = ap.parse_args()
    z = np.load(args.traces)
    reads, direction = z["reads"].astype(np.float64), z["direction"].astype(np.float64)
    n = 2 * args.pulses * args.cycles
    response = reads[:, : n + 1].mean(0)
    pulses = np.concatenate([direction[0, :n], [0.0]])  # pulse i acts between response i and i+1
    params = {
        "dw_min": (0.005, 0.0001, 0.1),
        "up_down": (0.0, -0.99, 0.99),
        "w_max": (1.0, 0.05, 5.0),
        "w_min": (-1.0, -5.0, -0.05),
    }
    t0 = time.perf_counter()
    result, _, _ = fit_measurements(params, pulses, response, SoftBoundsDevice(), method="powell")
    elapsed = time.perf_counter() - t0
    values = result.params.valuesdict()
    print(
        f"aihwkit fit_measurements (powell, mean of {reads.shape[0]} devices, {n} pulses): {elapsed:.1f} s, "
        f"{result.nfev} evaluations"
    )
    for k, true in TRUE.items():
        print(f"  {k:8s} {values[k]:.5g}  true {true:.5g}  error {values[k] - true:+.3g}")
    print("  (no standard errors, no device-to-device or cycle-to-cycle parameters)")


if __name__ == "__main__":
    main()
