"""Pulse-response traces simulated by aihwkit from its presets, saved as aimcjax trace files.

Run in the aihwkit venv (aihwkit's own device models, C++ kernels)::

    OMP_NUM_THREADS=1 /work/aihwkit-venv/bin/python benchmarks/aihwkit/fit_preset_traces.py

For each preset (``ReRamSBPresetDevice``, ``EcRamPresetDevice``, ``CapacitorPresetDevice``)
an aihwkit ``AnalogTile`` of ``--devices`` x 1 devices (aihwkit samples each device's
device-to-device variation at construction, seeded) receives single pulses (update and BL
management off, BL 1, learning rate 1: one coincidence per update, as
``aihwkit.utils.visualization.compute_pulse_response``), alternating ramps of up and down
pulses from w = 0. After every pulse the visible weight is read with ``get_weights`` (for
ReRamSB this includes aihwkit's write noise, redrawn at each pulse, which acts as read
noise); Gaussian read noise ``--read-noise`` is added to every read (aihwkit's exact read has
none, a measurement does). Writes, per preset, ``benchmarks/data/aihwkit_<name>.npz`` in
aimcjax's trace layout (``reads``, ``direction``, ``device``; read noise not stored: the
fit estimates it) and ``aihwkit_<name>.json`` with the preset's parameters and aihwkit's
per-device hidden parameters (the truth a fit is compared with).
"""

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from aihwkit.simulator.configs import SingleRPUConfig
from aihwkit.simulator.presets.devices import (
    CapacitorPresetDevice,
    EcRamPresetDevice,
    ReRamSBPresetDevice,
)
from aihwkit.simulator.tiles import AnalogTile

OUT = Path(__file__).resolve().parent.parent / "data"
PRESETS = {
    "reram_sb": ReRamSBPresetDevice,
    "ecram": EcRamPresetDevice,
    "capacitor": CapacitorPresetDevice,
}


def simulate(preset_cls, n_devices, n_cycles, pulses, read_noise, seed):
    torch.manual_seed(seed)
    device = preset_cls()
    device.construction_seed = seed
    config = SingleRPUConfig(device=device)
    config.update.update_bl_management = False
    config.update.update_management = False
    config.update.desired_bl = 1
    tile = AnalogTile(n_devices, 1, config)
    tile.set_learning_rate(1.0)
    tile.set_weights(torch.zeros(n_devices, 1))
    one = np.concatenate([np.ones(pulses), -np.ones(pulses)])
    direction = np.tile(one, n_cycles).astype(np.int8)
    x = -torch.ones(1, 1)
    reads = np.empty((n_devices, direction.size + 1))
    reads[:, 0] = tile.get_weights()[0][:, 0].numpy()
    for t, s in enumerate(direction):
        # aihwkit's update is W -= lr * d x^T: with x = -1 a pulse of sign s moves W by +s.
        tile.update(x, torch.full((1, n_devices), float(s)))
        reads[:, t + 1] = tile.get_weights()[0][:, 0].numpy()
    rng = np.random.default_rng(seed)
    reads = reads + read_noise * rng.standard_normal(reads.shape)
    hidden = tile.get_hidden_parameters()  # name -> (out, in) tensor
    per_device = {n: v[:, 0].tolist() for n, v in hidden.items()}
    return reads, direction, device, per_device


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=16)
    ap.add_argument("--cycles", type=int, default=2)
    # One shape for all presets: the fit compiles once per family for the three files.
    ap.add_argument("--pulses", type=int, default=600, help="pulses per ramp")
    ap.add_argument("--read-noise", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="*", default=list(PRESETS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(exist_ok=True)
    for name in args.only:
        cls, pulses = PRESETS[name], args.pulses
        reads, direction, device, per_device = simulate(
            cls, args.devices, args.cycles, pulses, args.read_noise, args.seed
        )
        np.savez_compressed(
            OUT / f"aihwkit_{name}.npz",
            reads=reads.astype(np.float32),
            direction=np.broadcast_to(direction, (args.devices, direction.size)),
            device=np.array([f"{name}{i}" for i in range(args.devices)]),
        )
        preset = {
            f.name: getattr(device, f.name)
            for f in dataclasses.fields(device)
            if isinstance(getattr(device, f.name), (int, float, bool))
        }
        meta = {
            "preset": cls.__name__,
            "preset_parameters": preset,
            "hidden_parameters": per_device,
            "protocol": {
                "devices": args.devices,
                "cycles": args.cycles,
                "pulses_per_ramp": pulses,
                "added_read_noise": args.read_noise,
                "seed": args.seed,
                "start": 0.0,
            },
        }
        (OUT / f"aihwkit_{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
        span = reads.max(1) - reads.min(1)
        print(f"{name}: {reads.shape} reads, range per device {span.min():.3f}..{span.max():.3f}")


if __name__ == "__main__":
    main()
