"""Shared pieces of the side-by-side benchmarks (stdlib only: imported from both venvs).

Workload definitions live here once, so that the aihwkit side (run in its own venv, see
setup.sh) and the aimcjax side use the same sizes, rates and device parameters.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
import itertools

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
AIHWKIT_PYTHON = Path(os.environ.get("AIHWKIT_VENV", "/work/aihwkit-venv")) / "bin" / "python"
RECORDED = HERE / "recorded.json"
# aihwkit is measured at 1 and 2 threads (side_by_side's --aihwkit) and compared at its
# fastest: on this 2-core machine one thread is 5-15x faster than two (OpenMP on two busy
# cores). A sweep (W3) is compared with one single-thread process per core.
CORES = os.cpu_count() or 1

# Workload constants ([RF] arXiv:2502.06309 FCN on MNIST; docs/references.md).
FCN_SIZES = (784, 256, 128, 10)
LR = 0.05  # alpha: analog learning rate of the FCN
TRANSFER_LR = 0.01  # beta
GAMMA = 0.4
DW_MIN = 1e-3
TAU = 0.6
DW_MIN_STD = 0.3  # multiplicative cycle-to-cycle noise, aihwkit's default magnitude
BL = 31

# W2: 512x512 tile, batch 64. "Realistic" gradients: x are sigmoid activations in [0, 1],
# d are backpropagated errors of a few 1e-3..1e-2 (N(0, 0.01^2)): k = lr*max|x|*max|d|/dw_min ~ 2,
# so aihwkit's update-BL management picks BL ~ 2 of 31.
W2_SIZE = 512
W2_BATCH = 64
W2_D_STD = 0.01

# W3: 16 device configurations (Power response, RF Table 8 grid) x the W1 model x 200 steps.
W3_GAMMAS = (0.5, 1.0, 2.0, 3.0)
W3_TAUS = (0.6, 0.7, 0.8, 1.0)
W3_STEPS = 200
W3_BATCH = 10


def w3_grid():
    """The 16 (gamma, tau) pairs of W3, in order."""
    return [(g, t) for g in W3_GAMMAS for t in W3_TAUS]


def time_runs(run, n_steps: int, repeats: int, warmup: int = 1, sync=lambda out: out):
    """Median wall and CPU seconds per step of `repeats` timed calls of `run(n_steps)`.

    CPU time (all threads of the process) is reported beside wall time because the benchmark
    machine is shared: other processes stretch wall time by up to 3x, CPU time much less.
    """
    for _ in range(warmup):
        sync(run(n_steps))
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        sync(run(n_steps))
        times.append((time.perf_counter() - start) / n_steps)
        cpu.append((time.process_time() - start_cpu) / n_steps)
    return {
        "median_s": statistics.median(times),
        "times_s": times,
        "median_cpu_s": statistics.median(cpu),
        "cpu_s": cpu,
    }


def _aihwkit_command(args: list[str], threads: int):
    if not AIHWKIT_PYTHON.exists():
        raise SystemExit(
            f"aihwkit venv not found at {AIHWKIT_PYTHON}: run benchmarks/aihwkit/setup.sh "
            "or set AIHWKIT_VENV"
        )
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        AIHWKIT_THREADS=str(threads),
    )
    return [str(AIHWKIT_PYTHON), str(HERE / "aihwkit_side.py"), *args], env


def _side_result(stdout: str, stderr: str, returncode: int, side: str) -> dict:
    if returncode != 0:
        raise RuntimeError(f"{side} side failed ({returncode}):\n{stderr[-4000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def run_aihwkit(
    args: list[str], threads: int = 1, processes: int = 1, timeout: float = 3600
) -> dict:
    """Run aihwkit_side.py in the aihwkit venv with ``threads`` OpenMP/torch threads.

    With ``processes`` > 1 (W3 only) the sweep's configurations are split over that many
    concurrent single-configuration-range processes, as a user with one core per process
    would run it: the sweep's wall time per step is the slowest process's, its CPU time the
    sum of theirs.
    """
    if processes == 1:
        command, env = _aihwkit_command(args, threads)
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        return _side_result(proc.stdout, proc.stderr, proc.returncode, "aihwkit")
    n = len(w3_grid())
    bounds = [round(i * n / processes) for i in range(processes + 1)]
    procs = []
    for first, last in itertools.pairwise(bounds):
        command, env = _aihwkit_command([*args, "--configs", f"{first}:{last}"], threads)
        procs.append(
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
        )
    parts = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        parts.append(_side_result(out, err, proc.returncode, "aihwkit"))
    return {
        "median_s": max(r["median_s"] for r in parts),
        "median_cpu_s": sum(r["median_cpu_s"] for r in parts),
        "processes": parts,
        "threads": threads,
    }


def run_aihwkit_launches(
    args: list[str], launches: int, threads: int = 1, processes: int = 1
) -> dict:
    """aihwkit's medians over ``launches`` separate launches (median of their medians).

    One process's time per step depends on its training trajectory: aihwkit seeds its weights
    and pulse trains afresh per process and its cost follows the number of coincidences, so
    one and the same case measured 0.0045 and 0.011-0.013 s/step in consecutive launches.
    """
    runs = [run_aihwkit(args, threads, processes) for _ in range(launches)]
    return {
        "median_s": statistics.median(r["median_s"] for r in runs),
        "median_cpu_s": statistics.median(r["median_cpu_s"] for r in runs),
        "launch_medians_s": [r["median_s"] for r in runs],
        "launch_medians_cpu_s": [r["median_cpu_s"] for r in runs],
        "threads": threads,
        "processes": processes,
        "launches": runs,
    }


def aihwkit_settings(spec: str) -> list[tuple[int, int]]:
    """``"1,2,1x2"`` -> [(threads, processes)]: "T" is one process of T threads, "TxP" P
    concurrent processes of T threads (W3 only)."""
    settings = []
    for part in spec.split(","):
        threads, _, processes = part.strip().partition("x")
        settings.append((int(threads), int(processes or 1)))
    if any(t < 1 or p < 1 for t, p in settings):
        raise ValueError(f"aihwkit settings must be positive, got {spec!r}")
    return settings


def report(workload: str, rows: list[dict], check: bool, tolerance: float = 0.5) -> int:
    """Print a ratio table; with `check`, compare CPU-time ratios to recorded.json.

    A case fails the check when its CPU-time ratio falls below (1 - tolerance) x the recorded one
    (timings on a shared 2-core machine wobble by tens of percent, so the default is loose).
    Returns the process exit status.
    """
    print(
        f"\n{workload}: median wall / CPU seconds per step; speed-up of aimcjax over aihwkit at "
        "aihwkit's fastest measured setting (column 'best'); CPU ratio = per-core ratio"
    )
    for row in rows:
        settings = ", ".join(
            f"{name} {v['median_s']:.5f} s (CPU {v['median_cpu_s']:.5f})"
            for name, v in row.get("aihwkit_settings", {}).items()
        )
        print(
            f"  {row['case']}: aihwkit {settings}; best {row.get('aihwkit_best', '?')}; "
            f"aimcjax compile {row.get('compile_s', float('nan')):.1f} s"
        )
    print(
        f"{'case':46s} {'aihwkit':>9s} {'aimcjax':>9s} {'ratio':>6s} {'hw cpu':>9s} "
        f"{'jx cpu':>9s} {'cpu ratio':>9s}"
    )
    for row in rows:
        print(
            f"{row['case']:46s} {row['aihwkit_s']:9.5f} {row['aimcjax_s']:9.5f} "
            f"{row['ratio']:6.2f} {row['aihwkit_cpu_s']:9.5f} {row['aimcjax_cpu_s']:9.5f} "
            f"{row['cpu_ratio']:9.2f}"
        )
    status = 0
    if check:
        recorded = json.loads(RECORDED.read_text()).get(workload, {}) if RECORDED.exists() else {}
        for row in rows:
            ref = recorded.get(row["case"])
            if ref is None:
                print(f"check: no recorded ratio for {row['case']!r}")
                continue
            ok = row["cpu_ratio"] >= (1 - tolerance) * ref
            print(
                f"check: {row['case']:44s} CPU ratio {row['cpu_ratio']:.2f} vs recorded {ref:.2f}: "
                f"{'ok' if ok else 'REGRESSED'}"
            )
            status |= 0 if ok else 1
    return status


def record(workload: str, rows: list[dict]) -> None:
    """Store the CPU-time ratios of `rows` in recorded.json (used by --check)."""
    data = json.loads(RECORDED.read_text()) if RECORDED.exists() else {}
    data.setdefault(workload, {}).update({r["case"]: round(r["cpu_ratio"], 3) for r in rows})
    RECORDED.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def emit(result: dict) -> None:
    """Last stdout line of a side script: its JSON result (plus the process's peak RSS)."""
    import resource

    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stdout.write(json.dumps(result) + "\n")


def run_aimcjax(args: list[str], timeout: float = 3600) -> dict:
    """Run aimcjax_side.py in this interpreter's venv (a fresh process per case)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, str(HERE / "aimcjax_side.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"aimcjax side failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def side_by_side(
    workload: str,
    cases: list[tuple[str, list[str], list[str]]],
    argv=None,
    defaults: list[str] = (),
    aihwkit_default: str = "1,2",
) -> int:
    """The driver of one workload: runs every case in both libraries, prints the table.

    Args:
      workload: "w1" | "w2" | "w3" (key in recorded.json).
      cases: (name, aihwkit_args, aimcjax_args) per case; the workload name is prepended.
      argv: command line (--check, --record, --steps, --repeats, --only SUBSTRING,
        --launches N, --aihwkit SETTINGS).
      defaults: side arguments placed before the case's own (e.g. --steps for this workload).
      aihwkit_default: the aihwkit settings measured (see :func:`aihwkit_settings`); each case
        is compared with the fastest of them.
    """
    import argparse

    p = argparse.ArgumentParser(description=f"{workload}: aihwkit vs aimcjax, side by side")
    p.add_argument("--check", action="store_true", help="compare ratios to recorded.json")
    p.add_argument("--record", action="store_true", help="store the ratios in recorded.json")
    p.add_argument("--steps", type=int, default=None, help="steps per timed call")
    p.add_argument("--repeats", type=int, default=None, help="timed calls (median taken)")
    p.add_argument("--only", default=None, help="run only cases whose name contains this")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    p.add_argument(
        "--launches",
        type=int,
        default=3,
        help="aihwkit processes per case (median of their medians; default 3)",
    )
    p.add_argument(
        "--aihwkit",
        default=aihwkit_default,
        help=f"aihwkit settings to measure, 'T' threads or 'TxP' T threads x P "
        f"processes (W3), comma-separated; the fastest is compared "
        f"(default {aihwkit_default})",
    )
    a = p.parse_args(argv)
    settings = aihwkit_settings(a.aihwkit)
    if a.launches < 1:
        p.error(f"--launches must be >= 1, got {a.launches}")
    extra = []
    if a.steps is not None:
        extra += ["--steps", str(a.steps)]
    if a.repeats is not None:
        extra += ["--repeats", str(a.repeats)]
    rows, aihwkit_runs = [], {}
    for name, hw_args, jx_args in cases:
        if a.only and a.only not in name:
            continue
        hw_key = tuple(hw_args)
        if hw_key not in aihwkit_runs:  # cases sharing an aihwkit configuration share its run
            aihwkit_runs[hw_key] = {
                f"{t}t" + (f"x{n}p" if n > 1 else ""): run_aihwkit_launches(
                    [workload, *defaults, *hw_args, *extra], a.launches, t, n
                )
                for t, n in settings
            }
        by_setting = aihwkit_runs[hw_key]
        best = min(by_setting, key=lambda k: by_setting[k]["median_s"])
        hw = by_setting[best]
        # per core: aihwkit's least CPU time over its settings (the fastest wall-clock setting
        # may burn two cores for it, which would flatter the per-core ratio)
        hw_cpu = min(v["median_cpu_s"] for v in by_setting.values())
        jx = run_aimcjax([workload, *defaults, *jx_args, *extra])
        rows.append(
            {
                "case": name,
                "aihwkit_s": hw["median_s"],
                "aimcjax_s": jx["median_s"],
                "ratio": hw["median_s"] / jx["median_s"],
                "aihwkit_cpu_s": hw_cpu,
                "aimcjax_cpu_s": jx["median_cpu_s"],
                "cpu_ratio": hw_cpu / jx["median_cpu_s"],
                "aihwkit_best": best,
                "compile_s": jx.get("compile_s", float("nan")),
                "aihwkit_settings": {
                    k: {"median_s": v["median_s"], "median_cpu_s": v["median_cpu_s"]}
                    for k, v in by_setting.items()
                },
                "aihwkit": by_setting,
                "aimcjax": jx,
            }
        )
        print(
            f"{name}: aihwkit ({best}) {hw['median_s']:.5f} s, aimcjax {jx['median_s']:.5f} s "
            f"(compile {jx.get('compile_s', 0):.1f} s), ratio {rows[-1]['ratio']:.2f}",
            flush=True,
        )
    status = report(workload, rows, a.check)
    if a.record:
        record(workload, rows)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    return status
