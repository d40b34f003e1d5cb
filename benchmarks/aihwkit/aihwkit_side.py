"""The aihwkit side of the workloads; runs in the aihwkit venv (see setup.sh).

    /work/aihwkit-venv/bin/python benchmarks/aihwkit/aihwkit_side.py w1 --batch 10 \
        --algo sgd --device softbounds
    ... w2
    ... w3

Prints one JSON line: median seconds per step and the raw timings.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C
import torch
from aihwkit.nn import AnalogLinear, AnalogSequential
from aihwkit.optim import AnalogSGD
from aihwkit.simulator.configs import (
    PowStepDevice,
    SingleRPUConfig,
    SoftBoundsDevice,
    TransferCompound,
    UnitCellRPUConfig,
)
from aihwkit.simulator.tiles import AnalogTile
from torch import nn
import itertools

torch.set_num_threads(int(os.environ.get("AIHWKIT_THREADS", "1")))  # set by common.run_aihwkit

NO_VARIATION = dict(dw_min_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0, up_down_dtod=0.0)


def softbounds(tau=C.TAU, dw_min=C.DW_MIN, dw_min_std=C.DW_MIN_STD):
    """aimcjax SoftBounds(tau, dw_min, dw_min_std, noise="multiplicative"), no d2d variation."""
    return SoftBoundsDevice(
        w_max=tau, w_min=-tau, dw_min=dw_min, dw_min_std=dw_min_std, mult_noise=True, **NO_VARIATION
    )


def power(gamma=1.0, tau=C.TAU, dw_min=C.DW_MIN, dw_min_std=C.DW_MIN_STD):
    """aimcjax Power(tau, gamma, dw_min) with multiplicative noise, no d2d variation.

    aihwkit's PowStep step is dw_min*((w_max - w)/(w_max - w_min))^gamma, i.e. it normalises by
    the full range 2*tau where aimcjax's q_plus = (1 - w/tau)^gamma normalises by tau: the same
    response needs aihwkit dw_min = ours * 2^gamma.
    """
    return PowStepDevice(
        w_max=tau,
        w_min=-tau,
        dw_min=dw_min * 2.0**gamma,
        pow_gamma=gamma,
        pow_gamma_dtod=0.0,
        pow_up_down=0.0,
        pow_up_down_dtod=0.0,
        dw_min_std=dw_min_std,
        **NO_VARIATION,
    )


def rpu_config(algo: str, device):
    """Default periphery (IOParameters) and default update (BL 31, UM and UBLM on)."""
    if algo == "sgd":
        return SingleRPUConfig(device=device)
    if algo == "tiki_taka":
        # One column (input line) transferred per mini-batch; W_visible = gamma*A + C.
        # Fast array lr = fast_lr*lr = alpha, transfer writes lr = transfer_lr*lr = beta.
        compound = TransferCompound(
            unit_cell_devices=[device, device],
            gamma=C.GAMMA,
            transfer_every=1,
            units_in_mbatch=True,
            n_reads_per_transfer=1,
            transfer_columns=True,
            fast_lr=1.0,
            transfer_lr=C.TRANSFER_LR / C.LR,
            scale_transfer_lr=True,
        )
        return UnitCellRPUConfig(device=compound)
    raise ValueError(f"unknown algo {algo!r}")


def fcn(config):
    sizes = C.FCN_SIZES
    layers = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(AnalogLinear(n_in, n_out, bias=True, rpu_config=config))
        layers.append(nn.Sigmoid() if i < len(sizes) - 2 else nn.LogSoftmax(dim=1))
    return AnalogSequential(*layers)


def mnist_shaped(batch: int, n_batches: int = 16, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    xs = torch.rand(n_batches, batch, C.FCN_SIZES[0], generator=gen)
    ys = torch.randint(0, C.FCN_SIZES[-1], (n_batches, batch), generator=gen)
    return xs, ys


def trainer(config, batch: int):
    """A closure running n training steps of the FCN (forward, backward, analog update)."""
    model = fcn(config)
    opt = AnalogSGD(model.parameters(), lr=C.LR)
    opt.regroup_param_groups(model)
    loss_fn = nn.NLLLoss()
    xs, ys = mnist_shaped(batch)

    def run(n_steps):
        for i in range(n_steps):
            k = i % len(xs)
            opt.zero_grad()
            loss = loss_fn(model(xs[k]), ys[k])
            loss.backward()
            opt.step()
        return loss.item()

    return run


def w1(a):
    device = softbounds() if a.device == "softbounds" else power(gamma=a.gamma)
    run = trainer(rpu_config(a.algo, device), a.batch)
    return C.time_runs(run, a.steps, a.repeats, warmup=1)


def w2(a):
    tile = AnalogTile(C.W2_SIZE, C.W2_SIZE, SingleRPUConfig(device=softbounds()))
    tile.set_learning_rate(C.LR)
    gen = torch.Generator().manual_seed(0)
    xs = torch.rand(8, C.W2_BATCH, C.W2_SIZE, generator=gen)
    ds = torch.randn(8, C.W2_BATCH, C.W2_SIZE, generator=gen) * C.W2_D_STD

    def run(n_steps):
        for i in range(n_steps):
            tile.update(xs[i % 8], ds[i % 8])

    return C.time_runs(run, a.steps, a.repeats, warmup=1)


def w3(a):
    """16 runs one after another; per-step time of the whole sweep (construction excluded)."""
    grid = C.w3_grid()
    first, last = (int(v) for v in a.configs.split(":")) if a.configs else (0, len(grid))
    runs = [
        trainer(rpu_config("sgd", power(gamma=g, tau=t)), C.W3_BATCH) for g, t in grid[first:last]
    ]

    def run(n_steps):
        for r in runs:
            r(n_steps)

    out = C.time_runs(run, a.steps, a.repeats, warmup=0)
    out["per_config_step_s"] = out["median_s"] / len(runs)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("workload", choices=["w1", "w2", "w3"])
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--algo", choices=["sgd", "tiki_taka"], default="sgd")
    p.add_argument("--device", choices=["softbounds", "power"], default="softbounds")
    p.add_argument("--gamma", type=float, default=1.0, help="Power exponent for --device power")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--configs",
        default=None,
        help="w3: train configurations FIRST:LAST of the grid only (one process per core)",
    )
    a = p.parse_args(argv)
    result = {"w1": w1, "w2": w2, "w3": w3}[a.workload](a)
    import aihwkit

    result.update(
        library="aihwkit",
        version=aihwkit.__version__,
        torch=torch.__version__,
        threads=torch.get_num_threads(),
    )
    C.emit(result)


if __name__ == "__main__":
    main()
