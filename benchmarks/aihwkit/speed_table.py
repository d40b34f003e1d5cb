"""Render the JSON rows written by w1.py / w2.py / w3.py (``--json``) as RESULTS.md's speed table,
with the issue's targets beside each measured ratio.

    python benchmarks/aihwkit/speed_table.py benchmarks/results/w1_session6.json \
        benchmarks/results/w2_session6.json benchmarks/results/w3_session6.json
"""

from __future__ import annotations

import argparse
import json

# (workload, mode, batch) -> target ratio (issue 14); the table gives wall and per-core verdicts.
TARGETS = {
    ("w1", "outer", "b10"): 1.0,
    ("w1", "outer", "b64"): 1.0,
    ("w2", "outer", ""): 1.0,
    ("w3", "outer", ""): 1.0,
    ("w1", "pulse", "b10"): 3.0,
    ("w1", "pulse", "b64"): 5.0,
    ("w3", "pulse", ""): 3.0,
}


def _target(workload: str, case: str) -> float | None:
    mode = "outer" if case.endswith("outer") else "pulse"
    batch = case.split()[0] if workload == "w1" else ""
    return TARGETS.get((workload, mode, batch))


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1e3 * seconds:.2f}"


def rows(path: str) -> list[str]:
    workload = path.rsplit("/", 1)[-1].split("_", 1)[0]
    out = []
    for r in json.load(open(path)):
        settings = r["aihwkit_settings"]
        cells = [settings.get(s, {}).get("median_s") for s in ("1t", "2t", "1tx2p")]
        target = _target(workload, r["case"])
        # per core: aihwkit's least CPU time over its settings against aimcjax's CPU time (rows
        # written before common.py took the least are recomputed from the settings)
        hw_cpu = min(v["median_cpu_s"] for v in settings.values())
        cpu_ratio = hw_cpu / r["aimcjax_cpu_s"]
        met = "-"
        if target is not None:
            wall_ok = "met" if r["ratio"] >= target else "not met"
            core_ok = "met" if cpu_ratio >= target else "not met"
            met = f">= {target:g}x: wall {wall_ok}, per core {core_ok}"
        out.append(
            f"| {workload.upper()} {r['case']} | "
            + " | ".join(_ms(c) for c in cells)
            + f" | {r['aihwkit_best']} | {_ms(r['aimcjax_s'])} (CPU {_ms(r['aimcjax_cpu_s'])}) | "
            f"{r['ratio']:.2f}x | {cpu_ratio:.2f}x | {r['compile_s']:.1f} s | {met} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="files written by w1.py / w2.py / w3.py --json")
    args = parser.parse_args()
    print(
        "| case | aihwkit 1 thread (ms) | aihwkit 2 threads (ms) | aihwkit 1 thread x 2 processes (ms) "
        "| aihwkit best | aimcjax (ms) | wall ratio | per-core ratio | aimcjax compile | target |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in args.json:
        print("\n".join(rows(path)))


if __name__ == "__main__":
    main()
