"""Grids of classifier runs (algorithms x devices x seeds) with logging, tables and plots.

Used by ``aimcjax train`` (one device), ``aimcjax sweep`` (a device grid) and the MNIST
recipes. Each algorithm's runs (all devices x seeds) go through one vmapped program
(:func:`aimcjax.app.experiments.training.sweep`), chunked to bound memory.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from aimcjax.app.experiments import training
from aimcjax.app.experiments.output import OutputDir, figure, mean_std

__all__ = ["DEFAULT_LR", "format_table", "grid_label", "run_grid"]

# [RF §5, FCN]: digital SGD lr 0.1, analog alpha 0.05.
DEFAULT_LR = {"digital": 0.1}
DEFAULT_ANALOG_LR = 0.05


def grid_label(params: dict) -> str:
    """The label of one grid point in tables and figures: ``name=value`` pairs, floats as %g.

    Example:
      >>> grid_label({"gamma": 0.5, "tau": 0.60, "noise": "additive"})
      'gamma=0.5,tau=0.6,noise=additive'
    """
    return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def run_grid(
    base: training.TrainConfig,
    algorithms,
    grid,
    seeds,
    dataset,
    out: OutputDir,
    lrs=None,
    chunk_size=0,
    quiet=False,
    echo=print,
):
    """Train every algorithm on every grid device with every seed.

    Args:
      base: settings shared by all runs (its ``algorithm`` and ``lr`` are replaced per algorithm).
      algorithms: algorithm names.
      grid: list of ``(params, device)``; ``params`` labels the grid point.
      seeds: seeds.
      dataset: an :class:`aimcjax.app.data.Dataset`.
      out: an :class:`OutputDir` (metrics per epoch go to ``metrics.jsonl``).
      lrs: optional {algorithm: lr}; default :data:`DEFAULT_LR` / 0.05 for analog.
      chunk_size: runs per compiled batch (0 = all runs of an algorithm at once).
      quiet: no progress bars.
      echo: printer for progress lines.

    Returns:
      The summary dict: ``runs`` (one entry per run with its final metrics) and ``table``
      (per algorithm and grid point: mean and std of the final test accuracy over seeds),
      ``curves`` (mean test accuracy per epoch).
    """
    lrs = dict(lrs or {})
    runs, table, curves, timings = [], {}, {}, {}
    for alg in algorithms:
        lr = lrs.get(alg, DEFAULT_LR.get(alg, DEFAULT_ANALOG_LR))
        cfg = dataclasses.replace(base, algorithm=alg, lr=float(lr))
        # Digital SGD does not see the device: one grid point is enough.
        points = [({}, None)] if alg == "digital" else grid
        devs = [d for _, d in points for _ in seeds]
        run_seeds = [s for _ in points for s in seeds]
        t0 = time.perf_counter()
        hist = training.sweep(
            cfg,
            dataset,
            devs,
            run_seeds,
            chunk_size=chunk_size,
            quiet=quiet,
            checkpoints=out.checkpoints(),
        )
        timings[alg] = time.perf_counter() - t0
        for r, ((params, _), seed) in enumerate((p, s) for p in points for s in seeds):
            for e in range(hist["test_acc"].shape[1]):
                out.log(
                    {
                        "algorithm": alg,
                        "device": params,
                        "seed": seed,
                        "epoch": e,
                        **{k: float(v[r, e]) for k, v in hist.items()},
                    }
                )
            runs.append(
                {
                    "algorithm": alg,
                    "device": params,
                    "seed": seed,
                    "lr": lr,
                    "final_test_acc": float(hist["test_acc"][r, -1]),
                    "final_test_loss": float(hist["test_loss"][r, -1]),
                    "final_train_loss": float(hist["train_loss"][r, -1]),
                }
            )
        n = len(seeds)
        for i, (params, _) in enumerate(points):
            acc = hist["test_acc"][i * n : (i + 1) * n]
            m, s = mean_std(acc[:, -1])
            table.setdefault(alg, {})[grid_label(params) or "-"] = {"mean": m, "std": s}
            curves.setdefault(alg, {})[grid_label(params) or "-"] = acc.mean(0)
        echo(f"  {alg}: {len(devs)} runs in {timings[alg]:.1f}s")
    return {"runs": runs, "table": table, "curves": curves}, timings


def format_table(table: dict, paper: dict | None = None) -> str:
    """Text table: one row per (grid point, algorithm) with mean ± std accuracy in %."""
    rows = []
    for alg, points in table.items():
        for label, v in points.items():
            ours = f"{100 * v['mean']:6.2f} ± {100 * v['std']:4.2f}"
            ref = "" if paper is None else str(paper.get((alg, label), ""))
            rows.append((label, alg, ours, ref))
    w0 = max([len(r[0]) for r in rows] + [6])
    w1 = max([len(r[1]) for r in rows] + [9])
    head = f"{'device':<{w0}}  {'algorithm':<{w1}}  {'test acc %':>15}"
    if paper is not None:
        head += "  paper"
    lines = [head, "-" * len(head)]
    for label, alg, ours, ref in rows:
        line = f"{label:<{w0}}  {alg:<{w1}}  {ours:>15}"
        if paper is not None:
            line += f"  {ref}"
        lines.append(line)
    return "\n".join(lines)


def plot_curves(summary: dict, out: OutputDir, name="curves.png", title=""):
    """Mean test accuracy per epoch, one line per (algorithm, grid point)."""
    if out.path is None:
        return None
    fig, ax = figure(figsize=(6, 4))
    for alg, points in summary["curves"].items():
        for label, curve in points.items():
            ax.plot(
                np.arange(len(curve)),
                100 * np.asarray(curve),
                label=alg if label == "-" else f"{alg} {label}",
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return out.savefig(fig, name)
