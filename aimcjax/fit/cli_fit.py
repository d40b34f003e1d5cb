"""``aimcjax fit TRACES --out DIR``: the fit as a command (see :mod:`aimcjax.app.cli`).

Prints the best device's parameters with standard errors and the ranking of candidates;
with ``--out`` writes ``device.json`` (usable as ``--device @DIR/device.json``),
``fit_overlay.png`` (measured vs simulated pulse responses) and ``summary.json``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from aimcjax.fit.device_json import device_to_dict, save_device
from aimcjax.fit.example import load_example
from aimcjax.fit.plot import overlay_figure, simulate_like
from aimcjax.fit.select import FitReport, fit, format_report
from aimcjax.fit.traces import load_traces

__all__ = ["report_summary", "run"]


def report_summary(report: FitReport) -> dict[str, Any]:
    """JSON-ready summary: the device, estimates with SEs, the ranking."""

    def plain(x: Any) -> Any:
        arr = np.asarray(x, float)
        return arr.tolist() if arr.ndim else (float(arr) if np.isfinite(arr) else None)

    return {
        "device": device_to_dict(report.device),
        "estimates": {
            k: {"value": plain(e.value), "se": plain(e.se)} for k, e in report.params.items()
        },
        "criterion": report.criterion,
        "ranking": [c._asdict() for c in report.ranking],
        "screening": None
        if report.screening is None
        else {
            "devices": report.screened_devices,
            "ranking": [c._asdict() for c in report.screening],
        },
    }


def run(
    source: str,
    out: Any,  # the CLI's output folder (``path``, ``file``, ``savefig``)
    *,
    families: Sequence[str],
    noises: Sequence[str],
    criterion: str = "bic",
    max_iter: int = 100,
    screen: int | None = None,
    seed: int = 0,
    quiet: bool = False,
    echo: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Fit ``source`` (a traces file or ``"example"``) and write the outputs to ``out``."""
    traces = load_example() if source == "example" else load_traces(source)
    if not quiet:
        echo(
            f"{source}: {traces.n_devices} devices, {traces.n_pulses} pulses each, "
            f"read noise {'fitted' if traces.read_noise is None else traces.read_noise}; "
            f"{len(families)} families x {len(noises)} noise models"
        )
    report = fit(
        traces,
        families,
        noises,
        criterion=criterion,
        max_iter=max_iter,
        screen=screen,
        progress=not quiet,
    )
    echo(format_report(report))
    summary = report_summary(report)
    if out.path is not None:
        save_device(report.device, out.file("device.json"), {"fit": summary})
        simulated = simulate_like(
            report.device, traces, float(report.params["read_noise"].value), seed
        )
        top = report.ranking[0]
        fig = overlay_figure(
            traces,
            simulated,
            f"{source}: best fit {top.family} ({top.noise} noise), {traces.n_devices} devices",
        )
        out.savefig(fig, "fit_overlay.png")
        if not quiet:
            # Where it will be once the run commits (it is written to DIR.partial first).
            final = os.path.join(out.final, "device.json")
            echo(f"device written to {final} (use --device @{final})")
    return summary
