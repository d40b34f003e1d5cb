"""The embedded example traces: a small array simulated from a published preset.

``aimcjax fit example`` and :func:`load_example` use ``data/example_reram_sb.npz``: 8 devices
of :func:`aimcjax.devices.presets.reram_sb` (aihwkit's ReRAM soft-bounds fit of Gong et al.
2018, with its device-to-device variation and cycle-to-cycle noise), 2 cycles of 500 up and
500 down pulses (enough to approach the soft bounds), read noise 2e-3 (not stored: the fit estimates it). :func:`make_example`
regenerates it (seed 0).
"""

from __future__ import annotations

import os
from typing import Any

from aimcjax.fit.simulate import simulate_traces
from aimcjax.fit.traces import Traces, load_traces, save_traces

__all__ = ["EXAMPLE_PATH", "EXAMPLE_SETTINGS", "load_example", "make_example"]

EXAMPLE_PATH = os.path.join(os.path.dirname(__file__), "data", "example_reram_sb.npz")
EXAMPLE_SETTINGS: dict[str, Any] = dict(
    preset="reram_sb", n_devices=8, n_cycles=2, pulses_per_ramp=500, read_noise=2e-3, seed=0
)


def make_example(path: str = EXAMPLE_PATH) -> Traces:
    """Simulate the example (:data:`EXAMPLE_SETTINGS`) and write it to ``path``."""
    from aimcjax.devices import presets

    s = EXAMPLE_SETTINGS
    traces = simulate_traces(
        presets.PRESETS[s["preset"]](),
        s["n_devices"],
        s["n_cycles"],
        s["pulses_per_ramp"],
        s["read_noise"],
        s["seed"],
    )
    traces = traces._replace(read_noise=None)
    save_traces(traces, path)
    return traces


def load_example() -> Traces:
    """The embedded example traces (read noise to be fitted)."""
    return load_traces(EXAMPLE_PATH)
