"""Overlay of measured and simulated pulse responses (the check a fit must pass by eye)."""

from __future__ import annotations

from typing import Any

import numpy as np

from aimcjax._typing import KeyLike
from aimcjax.devices import Device
from aimcjax.fit.simulate import simulate_directions
from aimcjax.fit.traces import Traces, make_traces

__all__ = ["overlay_figure", "simulate_like"]

_MAX_SHOWN = 1200  # pulses shown in the trace panel


def simulate_like(device: Device, traces: Traces, read_noise: float, key: KeyLike = 0) -> Traces:
    """Traces of ``device`` under the measured protocol: same devices count, same pulse
    directions, each started at its first measured read."""
    reads = simulate_directions(
        device, traces.direction, key, read_noise=read_noise, w0=traces.reads[:, 0]
    )
    return make_traces(
        reads,
        traces.direction,
        valid=traces.valid,
        read_noise=read_noise,
        device_ids=traces.device_ids,
        where="simulation",
    )


def _binned_steps(traces: Traces, direction: int, edges: np.ndarray) -> np.ndarray:
    """Per device, the mean step of ``direction`` pulses in each bin of the weight before it
    (NaN where a device has no such pulse)."""
    x, dr = traces.reads[:, :-1], np.diff(traces.reads, axis=1)
    sel = traces.valid & (traces.direction == direction)
    idx = np.clip(np.digitize(x, edges) - 1, 0, len(edges) - 2)
    out = np.full((traces.n_devices, len(edges) - 1), np.nan)
    for b in range(len(edges) - 1):
        m = sel & (idx == b)
        cnt = m.sum(1)
        with np.errstate(invalid="ignore"):
            out[:, b] = np.where(cnt > 0, (dr * m).sum(1) / np.maximum(cnt, 1), np.nan)
    return out


def overlay_figure(measured: Traces, simulated: Traces, title: str = "") -> Any:
    """Two panels: reads along the pulse train (mean and spread over devices) and the mean
    step per pulse against the weight before it, up and down, measured vs simulated.

    Returns:
      The matplotlib figure.
    """
    from aimcjax.app.experiments.output import figure

    fig, (ax_t, ax_s) = figure(1, 2, figsize=(12, 4.5))
    shown = min(measured.n_pulses + 1, _MAX_SHOWN)
    t = np.arange(shown)
    for tr, label, color in (
        (measured, "measured", "k"),
        (simulated, "simulated (fit)", "tab:red"),
    ):
        mean, sd = tr.reads[:, :shown].mean(0), tr.reads[:, :shown].std(0)
        ax_t.plot(t, mean, color=color, lw=1.2, label=f"{label}: mean over devices")
        ax_t.fill_between(
            t,
            mean - sd,
            mean + sd,
            color=color,
            alpha=0.15,
            lw=0,
            label=f"{label}: ±1 std over devices",
        )
    ax_t.set_xlabel("pulse number")
    ax_t.set_ylabel("read weight")
    ax_t.set_title(
        "pulse trains" + ("" if shown > measured.n_pulses else f" (first {shown - 1} pulses)")
    )
    ax_t.legend(fontsize=7, loc="best")

    lo, hi = np.percentile(measured.reads, [1, 99])
    edges = np.linspace(lo, hi, 25)
    centers = (edges[1:] + edges[:-1]) / 2
    for tr, label, style in ((measured, "measured", "-"), (simulated, "simulated", "--")):
        for direction, name, color in ((1, "up", "tab:blue"), (-1, "down", "tab:orange")):
            steps = _binned_steps(tr, direction, edges)
            with np.errstate(invalid="ignore"):
                import warnings

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mean, sd = np.nanmean(steps, 0), np.nanstd(steps, 0)
            ax_s.plot(centers, mean, style, color=color, label=f"{label}, {name} pulses")
            if label == "measured":
                ax_s.fill_between(centers, mean - sd, mean + sd, color=color, alpha=0.15, lw=0)
    ax_s.axhline(0, color="grey", lw=0.5)
    ax_s.set_xlabel("weight before the pulse (read)")
    ax_s.set_ylabel("mean step per pulse")
    ax_s.set_title("pulse response (band: ±1 std over measured devices)")
    ax_s.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
