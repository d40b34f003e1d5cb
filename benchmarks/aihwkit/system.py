"""System level: the same model, data and settings trained in aihwkit 1.2.0 and in aimcjax.

    /work/main/.venv/bin/python benchmarks/aihwkit/system.py [--epochs 3] [--seeds 4]
        [--algos analog-sgd,tiki-taka,residual] [--json benchmarks/results/system_<date>.json]

Model: FCN 784-256-128-10, sigmoid, digital biases, torch's default initialisation, on the
embedded mnist5k (4 000 train / 1 000 test, aimcjax's fixed stratified split, inputs
standardised with the train statistics; the same arrays are handed to aihwkit). Device:
Power gamma 1, tau 0.6, dw_min 1e-3, no noise or d2d (aihwkit: PowStepDevice with dw_min
2e-3, see RESULTS.md differences item 2). Periphery: RF Table 4 = aihwkit's default
IOParameters (aimcjax ``PeripheryConfig()``); aihwkit's layers are not split into 512-input
tiles (``max_input_size = 0``), as aimcjax's. Update: aihwkit's pulsed update (BL 31, UM,
UBLM) = aimcjax "outer". Batch 10, lr 0.05, no schedule. Algorithms:

- analog-sgd: aihwkit SingleRPUConfig; aimcjax ``optim.analog_sgd``.
- tiki-taka: aihwkit TransferCompound([dev, dev], gamma 0, one column per mini-batch, transfer
  lr 0.01 (= 0.2 x lr, scaled), exact transfer read); aimcjax ``optim.tiki_taka`` (gamma 0,
  column transfers, exact read).
- residual: RF's residual learning v1: aihwkit TransferCompound([PowStepReference with
  subtract_symmetry_point, PowStep], gamma 0.4, every column each mini-batch); aimcjax
  ``optim.residual_learning`` (gamma 0.4, zero shift, full transfer).

Per epoch the test accuracy (read through the periphery) of every seed is recorded; the
table shows mean +- std over seeds side by side. Seeds differ in initial weights, shuffling
and pulses (the two libraries' streams are independent: compare the laws, not the runs).
"""

from __future__ import annotations

import argparse
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
import itertools

ALGOS = ("analog-sgd", "tiki-taka", "residual")
LR, TRANSFER_LR, GAMMA, BATCH = 0.05, 0.01, 0.4, 10
GAMMA_POW, TAU = 1.0, 0.6


# -- aihwkit side ------------------------------------------------------------------------------


def run_aihwkit_side(
    data: Path, algo: str, seeds: list[int], epochs: int, train_size: int = 0
) -> dict:
    import torch
    from aihwkit.nn import AnalogLinear, AnalogSequential
    from aihwkit.optim import AnalogSGD
    from aihwkit.simulator.configs import (
        PowStepDevice,
        PowStepReferenceDevice,
        SingleRPUConfig,
        TransferCompound,
        UnitCellRPUConfig,
    )
    from aihwkit.simulator.parameters import IOParameters
    from torch import nn

    torch.set_num_threads(1)
    arrays = np.load(data)
    n = train_size or len(arrays["x_train"])
    x_train, y_train = (
        torch.from_numpy(arrays["x_train"][:n]),
        torch.from_numpy(arrays["y_train"][:n]).long(),
    )
    x_test, y_test = torch.from_numpy(arrays["x_test"]), torch.from_numpy(arrays["y_test"]).long()
    pow_args = dict(
        w_max=TAU,
        w_min=-TAU,
        dw_min=C.DW_MIN * 2.0**GAMMA_POW,
        pow_gamma=GAMMA_POW,
        pow_gamma_dtod=0.0,
        pow_up_down=0.0,
        pow_up_down_dtod=0.0,
        dw_min_std=0.0,
        dw_min_dtod=0.0,
        up_down_dtod=0.0,
        w_max_dtod=0.0,
        w_min_dtod=0.0,
    )

    def config(n_in):
        if algo == "analog-sgd":
            cfg = SingleRPUConfig(device=PowStepDevice(**pow_args))
        elif algo == "tiki-taka":
            cfg = UnitCellRPUConfig(
                device=TransferCompound(
                    unit_cell_devices=[PowStepDevice(**pow_args), PowStepDevice(**pow_args)],
                    gamma=0.0,
                    transfer_every=1,
                    units_in_mbatch=True,
                    n_reads_per_transfer=1,
                    transfer_columns=True,
                    fast_lr=1.0,
                    transfer_lr=TRANSFER_LR / LR,
                    scale_transfer_lr=True,
                    transfer_forward=IOParameters(is_perfect=True),
                )
            )
        else:
            fast = PowStepReferenceDevice(subtract_symmetry_point=True, **pow_args)
            cfg = UnitCellRPUConfig(
                device=TransferCompound(
                    unit_cell_devices=[fast, PowStepDevice(**pow_args)],
                    gamma=GAMMA,
                    transfer_every=1,
                    units_in_mbatch=True,
                    n_reads_per_transfer=n_in,
                    transfer_columns=True,
                    fast_lr=1.0,
                    transfer_lr=TRANSFER_LR / LR,
                    scale_transfer_lr=True,
                    transfer_forward=IOParameters(is_perfect=True),
                )
            )
        cfg.mapping.max_input_size = 0
        cfg.mapping.max_output_size = 0
        return cfg

    acc = np.zeros((len(seeds), epochs + 1))
    for r, seed in enumerate(seeds):
        torch.manual_seed(seed)
        sizes = (784, 256, 128, 10)
        layers = []
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(AnalogLinear(n_in, n_out, bias=True, rpu_config=config(n_in)))
            if i < 2:
                layers.append(nn.Sigmoid())
        model = AnalogSequential(*layers)
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
            perm = torch.randperm(len(x_train), generator=gen)[: steps * BATCH].view(steps, BATCH)
            for idx in perm:
                opt.zero_grad()
                loss_fn(model(x_train[idx]), y_train[idx]).backward()
                opt.step()
            acc[r, e + 1] = test_acc()
            print(
                f"aihwkit {algo} seed {seed} epoch {e + 1}: {acc[r, e + 1]:.4f}",
                file=sys.stderr,
                flush=True,
            )
    return {"test_acc": acc.tolist()}


# -- aimcjax side ------------------------------------------------------------------------------


def dataset():
    sys.path.insert(0, str(C.REPO))
    from aimcjax.app import data

    return data.flatten(data.standardize(data.load("mnist5k", seed=0)))


def run_aimcjax_side(ds, algo: str, seeds: list[int], epochs: int, train_size: int = 0) -> dict:
    from aimcjax import devices, periphery
    from aimcjax.app.experiments import training

    cfg = training.TrainConfig(
        model="fcn",
        algorithm=algo,
        epochs=epochs,
        batch_size=BATCH,
        lr=LR,
        transfer_lr=TRANSFER_LR,
        gamma=GAMMA,
        update="outer",
        train_size=train_size,
        periphery=periphery.PeripheryConfig(),
    )
    device = devices.Power(gamma=GAMMA_POW, tau=TAU, dw_min=C.DW_MIN)
    out = training.sweep(cfg, ds, [device] * len(seeds), seeds)
    return {"test_acc": np.asarray(out["test_acc"]).tolist()}


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--side", choices=["driver", "aihwkit"], default="driver")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--algos", default=",".join(ALGOS))
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument(
        "--train-size", type=int, default=0, help="first N training images only (0 = all 4000)"
    )
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    seeds = list(range(a.seeds))
    algos = a.algos.split(",")
    if a.side == "aihwkit":
        print(json.dumps(run_aihwkit_side(a.data, algos[0], seeds, a.epochs, a.train_size)))
        return 0
    ds = dataset()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "mnist5k.npz"
        np.savez(data, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
        for algo in algos:
            start = time.perf_counter()
            proc = subprocess.Popen(
                [
                    str(C.AIHWKIT_PYTHON),
                    __file__,
                    "--side",
                    "aihwkit",
                    "--data",
                    str(data),
                    "--algos",
                    algo,
                    "--seeds",
                    str(a.seeds),
                    "--epochs",
                    str(a.epochs),
                    "--train-size",
                    str(a.train_size),
                ],
                stdout=subprocess.PIPE,
                text=True,
                env=dict(os.environ, OMP_NUM_THREADS="1"),
            )
            jx = run_aimcjax_side(ds, algo, seeds, a.epochs, a.train_size)
            jx_s = time.perf_counter() - start
            hw_out, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"aihwkit side failed for {algo}")
            hw = json.loads(hw_out.strip().splitlines()[-1])
            results[algo] = {
                "aihwkit": hw["test_acc"],
                "aimcjax": jx["test_acc"],
                "aimcjax_s": jx_s,
                "total_s": time.perf_counter() - start,
            }
            print(f"{algo}: done in {results[algo]['total_s']:.0f} s", flush=True)
    print(
        f"\nFCN on mnist5k, Power gamma {GAMMA_POW} tau {TAU}, RF Table 4 periphery, outer/pulsed update, "
        f"{a.seeds} seeds: test accuracy % (mean +- std over seeds)"
    )
    print(f"{'algorithm':12s} {'epoch':>5s} {'aihwkit':>14s} {'aimcjax':>14s}")
    for algo, r in results.items():
        hw, jx = 100 * np.asarray(r["aihwkit"]), 100 * np.asarray(r["aimcjax"])
        for e in range(a.epochs + 1):
            print(
                f"{algo:12s} {e:5d} {hw[:, e].mean():8.2f}+-{hw[:, e].std():4.2f} "
                f"{jx[:, e].mean():8.2f}+-{jx[:, e].std():4.2f}"
            )
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "epochs": a.epochs,
                    "seeds": seeds,
                    "train_size": a.train_size,
                    "results": results,
                },
                indent=1,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
