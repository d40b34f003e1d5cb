"""System level (issue 15 C): the same model, data and settings trained in aihwkit 1.2.0 and aimcjax.

    # one (library, algorithm) job at a time; results accumulate in the JSON file
    /work/main/.venv/bin/python benchmarks/aihwkit/system.py --library aihwkit \\
        --algos analog-sgd,tiki-taka,residual --epochs 3 --seeds 4 --json R.json
    /work/main/.venv/bin/python benchmarks/aihwkit/system.py --library aimcjax --mode outer \\
        --algos analog-sgd,tiki-taka,residual --epochs 3 --seeds 4 --json R.json
    # the side-by-side table (markdown) and the plot from the saved results
    /work/main/.venv/bin/python benchmarks/aihwkit/system.py --report R.json --plot R.png

Model: FCN 784-256-128-10, sigmoid, digital biases, torch's default initialisation
U(+-1/sqrt(fan_in)) for weights and biases (aimcjax's models use the same law), no
weight-to-conductance scaling (aihwkit ``weight_scaling_omega = 0``, its default; aimcjax
``omega = 0``), on the embedded mnist5k: aimcjax's fixed stratified split (4 000 train /
1 000 test), inputs standardised with the train statistics, the same arrays handed to aihwkit
(the `make run` data).

Device: Power gamma 1, tau 0.6, dw_min 1e-3 (the `make run` device ``power:gamma=1,tau=0.6``),
no cycle-to-cycle noise, no device-to-device variation. aihwkit: ``PowStepDevice`` with
``dw_min = 1e-3 * 2**gamma`` (its step is normalised by the whole range: same response for
symmetric bounds; its update granularity ``dw_min * 0.5**gamma`` = aimcjax's dw_min) and every
noise / variation default (dw_min_std, *_dtod, pow_gamma_dtod, pow_up_down_dtod) set to 0.

Periphery: RF Table 4 = aihwkit's default ``IOParameters`` (7-bit DAC, 9-bit ADC, output noise
0.06, output bound 12, abs-max noise management, iterative bound management) = aimcjax
``PeripheryConfig()``; backward reads without bound management in both. The layers are not
split into 512-input tiles (aihwkit ``max_input_size = max_output_size = 0``), as aimcjax's
one tile per layer. Test accuracy is read through the same noisy periphery in both.

Update: aihwkit's pulsed update (stochastic-compressed trains, BL 31, update management and
update-BL management, samples of a batch applied one after another) = aimcjax "outer" (the
faithful mode); ``--mode pulse`` runs aimcjax's fast mode for comparison. Batch 10, lr 0.05
(digital biases: plain SGD at the same rate in both), no schedule, cross-entropy (batch mean).

Algorithms:

- analog-sgd: aihwkit ``SingleRPUConfig``; aimcjax ``optim.analog_sgd``.
- tiki-taka (TTv1): aihwkit ``TransferCompound([dev, dev])``, gamma 0, one column (input line)
  per mini-batch (``transfer_every = 1`` in mini-batch units, ``n_reads_per_transfer = 1``),
  fast lr = 1 x lr, transfer lr 0.01 (``transfer_lr = 0.2``, scaled by lr), exact transfer
  read (``transfer_forward = IOParameters(is_perfect=True)``), transfer writes with aihwkit's
  default ``transfer_update`` (BL 31, UM, UBLM); aimcjax ``optim.tiki_taka`` (gamma 0, column
  transfers, exact read, transfer writes BL 31 with UM/UBLM).
- residual (RF's residual learning v1, RF Alg. 1): aimcjax ``optim.residual_learning``
  (gamma 0.4, zero-shifted P, every input line transferred each mini-batch with beta 0.01).
  aihwkit has no residual-learning class; the closest public configuration is the same
  ``TransferCompound`` with gamma 0.4 (visible weight 0.4 A + C, gradient taken there and
  written into A with lr alpha) and a full transfer per mini-batch (``n_reads_per_transfer =
  n_in``: every column read and written into C with lr beta), the fast device being
  ``PowStepReferenceDevice(subtract_symmetry_point=True)`` (P measured from its symmetric
  point: RF's zero shift). It is faithful here: for Power gamma 1 without variation every
  element's symmetric point is 0, so the reference is 0 on both sides (the script checks
  aihwkit's estimated reference), and the transfer order (gradient write, then transfer)
  is the same. (For devices whose symmetric point is not 0, aihwkit estimates it by
  noise-free pulsing; aimcjax computes it: then they may differ by the estimate's error.)

Seeds differ in initial weights, shuffling and pulses; the libraries' random streams are
independent, so the comparison is of the laws (mean and spread over seeds per epoch), not of
runs. The table's "agree" column: Welch's t-test of the two libraries' per-seed accuracies
at that epoch, p >= 0.05.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import common as C

ALGOS = ("analog-sgd", "tiki-taka", "residual")
LR, TRANSFER_LR, GAMMA_RL, BATCH = 0.05, 0.01, 0.4, 10
GAMMA_POW, TAU = 1.0, 0.6
SIZES = (784, 256, 128, 10)


# -- aihwkit side (its own venv) -------------------------------------------------------------------


def aihwkit_config(algo: str, n_in: int):
    """The aihwkit rpu_config of one layer (``n_in`` inputs) for ``algo``."""
    from aihwkit.simulator.configs import (
        PowStepDevice,
        PowStepReferenceDevice,
        SingleRPUConfig,
        TransferCompound,
        UnitCellRPUConfig,
    )
    from aihwkit.simulator.parameters import IOParameters

    clean = dict(
        w_max=TAU,
        w_min=-TAU,
        dw_min=C.DW_MIN * 2.0**GAMMA_POW,
        pow_gamma=GAMMA_POW,
        pow_gamma_dtod=0.0,
        pow_up_down=0.0,
        pow_up_down_dtod=0.0,
        dw_min_std=0.0,
        dw_min_dtod=0.0,
        up_down=0.0,
        up_down_dtod=0.0,
        w_max_dtod=0.0,
        w_min_dtod=0.0,
    )
    if algo == "analog-sgd":
        cfg = SingleRPUConfig(device=PowStepDevice(**clean))
    else:
        residual = algo == "residual"
        fast = (
            # The estimate starts at 0, where this device's up and down steps are equal: it
            # stays exactly 0 (recorded in "checks"); 10 steps instead of aihwkit's default
            # 6 000 per element (90 s per model) give the same reference.
            PowStepReferenceDevice(subtract_symmetry_point=True, n_estimation_steps=10, **clean)
            if residual
            else PowStepDevice(**clean)
        )
        cfg = UnitCellRPUConfig(
            device=TransferCompound(
                unit_cell_devices=[fast, PowStepDevice(**clean)],
                gamma=GAMMA_RL if residual else 0.0,
                transfer_every=1,
                units_in_mbatch=True,
                n_reads_per_transfer=n_in if residual else 1,
                transfer_columns=True,
                fast_lr=1.0,
                scale_fast_lr=True,
                transfer_lr=TRANSFER_LR / LR,
                scale_transfer_lr=True,
                transfer_forward=IOParameters(is_perfect=True),
            )
        )
    cfg.mapping.max_input_size = 0
    cfg.mapping.max_output_size = 0
    cfg.mapping.weight_scaling_omega = 0.0
    cfg.mapping.digital_bias = True
    return cfg


def run_aihwkit_side(data: Path, algo: str, seeds: list[int], epochs: int) -> dict:
    import torch
    from aihwkit.nn import AnalogLinear, AnalogSequential
    from aihwkit.optim import AnalogSGD
    from torch import nn

    torch.set_num_threads(1)
    arrays = np.load(data)
    x_train = torch.from_numpy(arrays["x_train"])
    y_train = torch.from_numpy(arrays["y_train"]).long()
    x_test, y_test = torch.from_numpy(arrays["x_test"]), torch.from_numpy(arrays["y_test"]).long()
    acc = np.zeros((len(seeds), epochs + 1))
    epoch_s = []
    checks = {}
    for r, seed in enumerate(seeds):
        torch.manual_seed(seed)
        layers = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(SIZES)):
            layers.append(
                AnalogLinear(n_in, n_out, bias=True, rpu_config=aihwkit_config(algo, n_in))
            )
            if i < len(SIZES) - 2:
                layers.append(nn.Sigmoid())
        model = AnalogSequential(*layers)
        if r == 0:
            checks = _aihwkit_checks(model, algo)
            print(f"aihwkit {algo} checks: {checks}", file=sys.stderr, flush=True)
        opt = AnalogSGD(model.parameters(), lr=LR)
        opt.regroup_param_groups(model)
        loss_fn = nn.CrossEntropyLoss()

        def test_acc():
            model.eval()
            with torch.no_grad():
                a = (model(x_test).argmax(1) == y_test).float().mean().item()
            model.train()
            return a

        acc[r, 0] = test_acc()
        gen = torch.Generator().manual_seed(seed)
        steps = len(x_train) // BATCH
        for e in range(epochs):
            t0 = time.perf_counter()
            perm = torch.randperm(len(x_train), generator=gen)[: steps * BATCH].view(steps, BATCH)
            for idx in perm:
                opt.zero_grad()
                loss_fn(model(x_train[idx]), y_train[idx]).backward()
                opt.step()
            acc[r, e + 1] = test_acc()
            epoch_s.append(time.perf_counter() - t0)
            print(
                f"aihwkit {algo} seed {seed} epoch {e + 1}: {acc[r, e + 1]:.4f} "
                f"({epoch_s[-1]:.1f} s)",
                file=sys.stderr,
                flush=True,
            )
    return {"test_acc": acc.tolist(), "epoch_s": epoch_s, "checks": checks}


def _aihwkit_checks(model, algo: str) -> dict:
    """Facts of the built aihwkit model the comparison relies on (recorded in the JSON)."""
    out = {}
    for name, layer in model.named_analog_layers():
        tile = next(layer.analog_tiles())
        hidden = {k: v.numpy() for k, v in tile.get_hidden_parameters().items()}
        w = tile.get_weights()[0].numpy()
        info = {
            "shape": list(w.shape),
            "max_abs_w": float(np.abs(w).max()),
            "hidden": sorted(hidden),
        }
        if algo == "residual":
            ref = [v for k, v in hidden.items() if "reference" in k]
            info["max_abs_reference"] = float(max(np.abs(r).max() for r in ref)) if ref else None
        if "hidden_weights_0" in hidden:
            info["max_abs_fast"] = float(np.abs(hidden["hidden_weights_0"]).max())
        out[name or "layer"] = info
    return out


# -- aimcjax side ----------------------------------------------------------------------------------


def dataset():
    sys.path.insert(0, str(C.REPO))
    from aimcjax.app import data

    return data.flatten(data.standardize(data.load("mnist5k", seed=0)))


def run_aimcjax_side(ds, algo: str, seeds: list[int], epochs: int, mode: str) -> dict:
    from aimcjax import periphery
    from aimcjax.app import specs
    from aimcjax.app.experiments import training
    from aimcjax.app.experiments.mnist import MAIN_DEVICE

    cfg = training.TrainConfig(
        model="fcn",
        algorithm=algo,
        epochs=epochs,
        batch_size=BATCH,
        lr=LR,
        transfer_lr=TRANSFER_LR,
        gamma=GAMMA_RL,
        update=mode,
        bl=C.BL,
        omega=0.0,
        periphery=periphery.PeripheryConfig(),
    )
    device = specs.parse(MAIN_DEVICE)
    assert f"power:gamma={GAMMA_POW:g},tau={TAU:g}" == MAIN_DEVICE and device.dw_min == C.DW_MIN
    marks = [time.perf_counter()]

    def on_epoch(e, m):
        marks.append(time.perf_counter())
        print(
            f"aimcjax-{mode} {algo} epoch {e}: {np.round(np.asarray(m['test_acc']), 4)} "
            f"({marks[-1] - marks[-2]:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    out = training.sweep(cfg, ds, [device] * len(seeds), seeds, on_epoch=on_epoch)
    # The first epoch's time includes compiling the program.
    return {"test_acc": np.asarray(out["test_acc"]).tolist(), "epoch_s": np.diff(marks).tolist()}


# -- driver ----------------------------------------------------------------------------------------


def _git_head() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(C.REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _save(path: Path, key: str, entry: dict, settings: dict) -> None:
    """Add one (library, algorithm) result to the JSON file (kept across invocations)."""
    doc = json.loads(path.read_text()) if path and path.exists() else {"runs": {}}
    doc["settings"] = settings
    doc["runs"][key] = entry
    if path:
        path.write_text(json.dumps(doc, indent=1) + "\n")


def run_jobs(a) -> None:
    seeds = list(range(a.first_seed, a.first_seed + a.seeds))
    algos = a.algos.split(",")
    settings = {
        "model": "fcn 784-256-128-10 sigmoid",
        "data": "mnist5k standardised (4000 train / 1000 test)",
        "device": f"power gamma {GAMMA_POW} tau {TAU} dw_min {C.DW_MIN}, no noise",
        "periphery": "RF Table 4 (aihwkit IOParameters defaults)",
        "lr": LR,
        "transfer_lr": TRANSFER_LR,
        "gamma_residual": GAMMA_RL,
        "batch": BATCH,
        "bl": C.BL,
    }
    ds = dataset()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mnist5k.npz"
        np.savez(data, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
        for algo in algos:
            start = time.perf_counter()
            if a.library == "aihwkit":
                proc = subprocess.run(
                    [str(C.AIHWKIT_PYTHON), __file__, "--side", "aihwkit", "--data", str(data)]
                    + ["--algos", algo, "--seeds", str(a.seeds), "--first-seed", str(a.first_seed)]
                    + ["--epochs", str(a.epochs)],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=dict(os.environ, OMP_NUM_THREADS="1"),
                    check=True,
                )
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                key = f"aihwkit/{algo}"
            else:
                result = run_aimcjax_side(ds, algo, seeds, a.epochs, a.mode)
                key = f"aimcjax-{a.mode}/{algo}"
            result.update(
                seeds=seeds,
                epochs=a.epochs,
                total_s=time.perf_counter() - start,
                commit=_git_head(),
                finished=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            )
            _save(a.json, key, result, settings)
            print(
                f"{key}: {a.seeds} seeds x {a.epochs} epochs in {result['total_s']:.0f} s",
                flush=True,
            )


# -- report ----------------------------------------------------------------------------------------


def _welch_p(x, y) -> float:
    from scipy import stats

    if np.std(x) == 0 and np.std(y) == 0:
        return 1.0 if np.mean(x) == np.mean(y) else 0.0
    return float(stats.ttest_ind(x, y, equal_var=False).pvalue)


def _merged_runs(paths) -> dict:
    runs = {}
    for path in paths:
        runs.update(json.loads(Path(path).read_text())["runs"])
    return runs


def report(paths) -> str:
    """The side-by-side markdown table: per algorithm and epoch, every library's mean +- std
    over seeds, and whether each aimcjax mode agrees with aihwkit (Welch p >= 0.05)."""
    runs = _merged_runs(paths)
    libs = sorted({k.split("/")[0] for k in runs}, key=lambda s: (s != "aihwkit", s))
    others = [lib for lib in libs if lib != "aihwkit"]
    head = ["algorithm", "epoch"] + [f"{lib} (%)" for lib in libs]
    for lib in others:
        head += [f"{lib} - aihwkit", "Welch p", "agree"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for algo in ALGOS:
        acc = {
            lib: 100 * np.asarray(runs[f"{lib}/{algo}"]["test_acc"])
            for lib in libs
            if f"{lib}/{algo}" in runs
        }
        if not acc:
            continue
        n_ep = max(v.shape[1] for v in acc.values())
        for e in range(n_ep):
            row = [algo, str(e)]
            for lib in libs:
                v = acc.get(lib)
                row.append(
                    f"{v[:, e].mean():.1f} ± {v[:, e].std(ddof=1):.1f}"
                    if v is not None and e < v.shape[1]
                    else "-"
                )
            hw = acc.get("aihwkit")
            for lib in others:
                v = acc.get(lib)
                if hw is None or v is None or e >= hw.shape[1] or e >= v.shape[1]:
                    row += ["-", "-", "-"]
                    continue
                p = _welch_p(v[:, e], hw[:, e])
                row += [
                    f"{v[:, e].mean() - hw[:, e].mean():+.1f}",
                    f"{p:.2f}",
                    "yes" if p >= 0.05 else "**no**",
                ]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot(paths, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = _merged_runs(paths)
    libs = sorted({k.split("/")[0] for k in runs}, key=lambda s: (s != "aihwkit", s))
    colours = dict(zip(libs, ["tab:blue", "tab:orange", "tab:green", "tab:red"], strict=False))
    fig, axes = plt.subplots(1, len(ALGOS), figsize=(4.2 * len(ALGOS), 3.6), sharey=True)
    for ax, algo in zip(axes, ALGOS, strict=True):
        for lib in libs:
            r = runs.get(f"{lib}/{algo}")
            if r is None:
                continue
            v = 100 * np.asarray(r["test_acc"])
            e = np.arange(v.shape[1])
            m, s = v.mean(0), v.std(0, ddof=1)
            ax.plot(e, m, "o-", color=colours[lib], label=f"{lib} ({v.shape[0]} seeds)")
            ax.fill_between(e, m - s, m + s, color=colours[lib], alpha=0.25)
        if not any(f"{lib}/{algo}" in runs for lib in libs):
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(algo)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%), mean ± std over seeds")
    axes[0].legend(fontsize=8)
    fig.suptitle("FCN on mnist5k, Power γ 1 τ 0.6, RF Table 4 periphery: aihwkit 1.2.0 vs aimcjax")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--side", choices=["driver", "aihwkit"], default="driver", help=argparse.SUPPRESS
    )
    p.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--library", choices=["aihwkit", "aimcjax"], default=None)
    p.add_argument(
        "--mode", choices=["outer", "pulse"], default="outer", help="aimcjax update mode"
    )
    p.add_argument("--algos", default=",".join(ALGOS))
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--json", type=Path, default=None, help="results file (created or extended)")
    p.add_argument(
        "--report", type=Path, nargs="+", default=None, help="print the table of these results"
    )
    p.add_argument("--plot", type=Path, default=None, help="with --report: save the figure here")
    a = p.parse_args(argv)
    if a.side == "aihwkit":
        seeds = list(range(a.first_seed, a.first_seed + a.seeds))
        print(json.dumps(run_aihwkit_side(a.data, a.algos, seeds, a.epochs)))
        return 0
    if a.report:
        print(report(a.report))
        if a.plot:
            plot(a.report, a.plot)
        return 0
    if a.library is None:
        p.error(
            "give --library aihwkit|aimcjax (one library per invocation: run them one after the other)"
        )
    run_jobs(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
