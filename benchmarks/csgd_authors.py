"""CSGD least squares: ``aimcjax reproduce csgd-ls`` beside the authors' own script, same seeds.

    CSGD_AUTHORS=/path/to/CSGD python benchmarks/csgd_authors.py [--seeds 0 1 ... 9]
        [--side both|ours|authors] [--cache runs.jsonl] [--out benchmarks/results/csgd_authors.txt]

``CSGD_AUTHORS`` (or ``--authors``) is a checkout of github.com/Weiyu-USTC/CSGD (or its
``1LS/csgd.py`` itself); it is not part of aimcjax and is only read and run, unmodified except
for its ``censor_type = 0`` line (0 = CSGD, 1 = SGD), in a temporary folder.

Same problem data on both sides, per seed N:

* authors: ``np.random.seed(N)``; x* = ``np.random.uniform(-2, 2, (10, 1))`` (their
  ``create_data.py``) saved as the ``data/y.npy`` their script loads; then their script runs
  and keeps drawing every worker's samples from the same global stream.
* ours: ``aimcjax reproduce csgd-ls --full --set seed=N,modes=csgd/sgd``, whose sampler makes
  the same calls in the same order on ``np.random.RandomState(N)`` (x*, then per iteration
  per worker A ~ N(0, 1) of (B^k, 10), +1 for worker 0, and label noise N(0, 0.001^2) of
  (B^k, 1)).

So both sides see the same x* and the same samples; they differ only in arithmetic (their
float64 numpy, our float32 JAX). Reported per seed and as mean +- std over seeds: iterations
and uploads (every worker's upload on one counter) to ||x - x*|| < 1e-4 and the CSGD/SGD
upload ratio. Each finished run is appended to ``--cache`` (JSON lines), so an interrupted
benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODES = {"csgd": 0, "sgd": 1}  # the authors' censor_type
TARGET = 1e-4

# Runs the authors' script in a fresh interpreter inside `workdir` (it reads ./data/y.npy and
# writes ./result/); its progress prints go to /dev/null.
_AUTHORS_DRIVER = """
import contextlib, io, os, re, sys
import numpy as np
script, workdir, censor_type, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.chdir(workdir)
os.makedirs("data", exist_ok=True)
np.random.seed(seed)
np.save("data/y.npy", np.random.uniform(-2.0, 2.0, size=(10, 1)))
source = open(script).read()
source, n = re.subn(r"^censor_type = 0\\b", f"censor_type = {censor_type}", source, flags=re.M)
if n != 1:
    sys.exit(f"{script}: expected one line 'censor_type = 0', found {n}")
with contextlib.redirect_stdout(io.StringIO()):
    exec(compile(source, script, "exec"), {"__name__": "__main__"})
"""


def authors_script(path: str | None) -> Path:
    """Their ``1LS/csgd.py`` from a checkout or the file itself; a clear error if absent."""
    if not path:
        sys.exit(
            "set CSGD_AUTHORS (or --authors) to a checkout of github.com/Weiyu-USTC/CSGD "
            "or to its 1LS/csgd.py; it is not shipped with aimcjax"
        )
    p = Path(path)
    if p.is_dir():
        p = p / "1LS" / "csgd.py"
    if not p.is_file():
        sys.exit(
            f"the authors' least-squares script was not found at {p} "
            "(expected 1LS/csgd.py of github.com/Weiyu-USTC/CSGD)"
        )
    return p


def to_target(distance, uploads):
    """(iterations, uploads) at the first recorded distance < TARGET (index 0 = x^0)."""
    distance = np.asarray(distance)
    below = np.flatnonzero(distance < TARGET)
    if below.size == 0:
        return None, None
    i = int(below[0])
    return i, int(uploads[i])


def run_authors(script: Path, mode: str, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        env = dict(os.environ, MPLBACKEND="Agg")
        subprocess.run(
            [
                sys.executable,
                "-c",
                _AUTHORS_DRIVER,
                str(script),
                workdir,
                str(MODES[mode]),
                str(seed),
            ],
            check=True,
            env=env,
        )
        result = Path(workdir) / "result" / "D10_alpha0.2"
        t = MODES[mode]
        distance = np.load(result / f"{t}x_star_norm.npy")
        uploads = np.load(result / f"{t}comm.npy")  # cumulative, aligned with distance
        events = np.load(result / f"{t}comm-event.npy")[:, 1:]  # (worker, iteration)
    iterations, up = to_target(distance, uploads)
    return {
        "iterations_to_target": iterations,
        "uploads_to_target": up,
        "iterations_run": len(distance) - 1,
        "total_uploads": int(uploads[-1]),
        "uploads_per_worker": events.sum(axis=1).astype(int).tolist(),
    }


def run_ours(seed: int, modes, dtype: str = "float32") -> dict:
    with tempfile.TemporaryDirectory() as out:
        settings = f"seed={seed},modes={'/'.join(modes) if len(modes) > 1 else modes[0]}"
        env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
        if dtype == "float64":
            settings += ",dtype=float64"
            env["JAX_ENABLE_X64"] = "1"
        cmd = [
            sys.executable,
            "-m",
            "aimcjax",
            "reproduce",
            "csgd-ls",
            "--full",
            "--quiet",
            "--set",
            settings,
            "--out",
            out,
        ]
        subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        summary = json.loads((Path(out) / "summary.json").read_text())
    runs = {}
    for mode in modes:
        run = summary["modes"][mode]
        # our metric list starts after the first iteration; prepend x^0 for the authors' indexing
        iterations, up = run["iterations_to_target"], run["uploads_to_target"]
        runs[mode] = {
            "iterations_to_target": iterations,
            "uploads_to_target": up,
            "iterations_run": len(run["metric"]),
            "total_uploads": run["total_uploads"],
            "uploads_per_worker": run["uploads_per_worker"],
        }
    return runs


def load_cache(paths):
    done = {}
    for path in paths or ():
        if Path(path).exists():
            for line in Path(path).read_text().splitlines():
                r = json.loads(line)
                done[(r["side"], r["seed"], r["mode"])] = r
    return done


def mean_std(values):
    v = np.asarray([x for x in values if x is not None], float)
    if v.size == 0:
        return "-"
    return f"{v.mean():.3g} ± {v.std(ddof=1) if v.size > 1 else 0.0:.2g}"


def report(done, seeds) -> str:
    sides = ("authors", "ours")
    lines = [
        (
            f"CSGD least squares (authors' setting), to ||x - x*|| < {TARGET:g}; uploads = all "
            "workers' uploads on one counter"
        ),
        "",
    ]
    head = (
        "| seed | side | CSGD it. | CSGD uploads | SGD it. | SGD uploads | CSGD/SGD uploads |"
        " CSGD uploads per worker (whole run) |"
    )
    lines += [head, "|---|---|---|---|---|---|---|---|"]
    stats = {s: {"ci": [], "cu": [], "si": [], "su": [], "ratio": []} for s in sides}
    same = 0
    complete = []
    for seed in seeds:
        rows = {}
        for side in sides:
            c, s = done.get((side, seed, "csgd")), done.get((side, seed, "sgd"))
            if c is None or s is None:
                continue
            ratio = (
                c["uploads_to_target"] / s["uploads_to_target"]
                if c["uploads_to_target"] is not None and s["uploads_to_target"]
                else None
            )
            rows[side] = (c, s, ratio)
            st = stats[side]
            st["ci"].append(c["iterations_to_target"])
            st["cu"].append(c["uploads_to_target"])
            st["si"].append(s["iterations_to_target"])
            st["su"].append(s["uploads_to_target"])
            st["ratio"].append(ratio)
            lines.append(
                f"| {seed} | {side} | {c['iterations_to_target']} | {c['uploads_to_target']} | "
                f"{s['iterations_to_target']} | {s['uploads_to_target']} | "
                f"{'-' if ratio is None else f'{ratio:.3f}'} | {c['uploads_per_worker']} |"
            )
        if len(rows) == 2:
            complete.append(seed)
            keys = ("iterations_to_target", "uploads_to_target")
            same += all(rows["authors"][i][k] == rows["ours"][i][k] for i in (0, 1) for k in keys)
    lines += [
        "",
        "| side | seeds | CSGD it. | CSGD uploads | SGD it. | SGD uploads | CSGD/SGD uploads |",
        "|---|---|---|---|---|---|---|",
    ]
    for side in sides:
        st = stats[side]
        lines.append(
            f"| {side} | {len(st['ci'])} | {mean_std(st['ci'])} | {mean_std(st['cu'])} | "
            f"{mean_std(st['si'])} | {mean_std(st['su'])} | {mean_std(st['ratio'])} |"
        )
    extra = sorted({(seed, mode) for side, seed, mode in done if side == "ours-float64"})
    if extra:
        lines += [
            "",
            "ours in float64 (JAX_ENABLE_X64=1, --set dtype=float64) beside the authors:",
            "| seed | mode | authors it. / uploads | ours float64 it. / uploads |",
            "|---|---|---|---|",
        ]
        for seed, mode in extra:
            a, o = done.get(("authors", seed, mode)), done[("ours-float64", seed, mode)]
            fmt = lambda r: (
                "-" if r is None else f"{r['iterations_to_target']} / {r['uploads_to_target']}"
            )
            lines.append(f"| {seed} | {mode} | {fmt(a)} | {fmt(o)} |")
    lines.append("")
    lines.append(
        f"seeds where both sides give identical iterations and uploads to the target "
        f"(CSGD and SGD): {same} of {len(complete)}"
    )
    for key, name in (
        ("ratio", "CSGD/SGD upload ratio"),
        ("ci", "CSGD iterations"),
        ("si", "SGD iterations"),
    ):
        a = np.asarray([x for x in stats["authors"][key] if x is not None], float)
        o = np.asarray([x for x in stats["ours"][key] if x is not None], float)
        if a.size > 1 and o.size:
            inside = a.mean() - a.std(ddof=1) <= o.mean() <= a.mean() + a.std(ddof=1)
            lines.append(
                f"{name}: ours {o.mean():.4g} vs authors {a.mean():.4g} ± {a.std(ddof=1):.2g} "
                f"(range {a.min():.4g}-{a.max():.4g}): ours' mean "
                f"{'within' if inside else 'OUTSIDE'} the authors' mean ± std"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--authors",
        default=os.environ.get("CSGD_AUTHORS"),
        help="checkout of Weiyu-USTC/CSGD or its 1LS/csgd.py (default $CSGD_AUTHORS)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--side", choices=("both", "ours", "authors"), default="both")
    parser.add_argument(
        "--cache",
        nargs="+",
        default=None,
        help="JSON lines of finished runs (resume); new runs go to the first file",
    )
    parser.add_argument("--out", default=None, help="also write the report here")
    parser.add_argument(
        "--ours-dtype",
        choices=("float32", "float64"),
        default="float32",
        help="float64 (JAX_ENABLE_X64) runs ours at the authors' precision; "
        "recorded as side 'ours-float64' and listed separately",
    )
    args = parser.parse_args(argv)
    script = authors_script(args.authors) if args.side in ("both", "authors") else None
    done = load_cache(args.cache)

    def record(side, seed, mode, run):
        r = {"side": side, "seed": seed, "mode": mode, **run}
        done[(side, seed, mode)] = r
        if args.cache:
            with open(args.cache[0], "a") as f:
                f.write(json.dumps(r) + "\n")
        print(json.dumps(r), flush=True)

    for seed in args.seeds:
        if args.side in ("both", "authors"):
            for mode in MODES:
                if ("authors", seed, mode) not in done:
                    record("authors", seed, mode, run_authors(script, mode, seed))
        if args.side in ("both", "ours"):
            side = "ours" if args.ours_dtype == "float32" else f"ours-{args.ours_dtype}"
            todo = [m for m in MODES if (side, seed, m) not in done]
            if todo:
                for mode, run in run_ours(seed, todo, args.ours_dtype).items():
                    record(side, seed, mode, run)
    text = report(done, args.seeds)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
