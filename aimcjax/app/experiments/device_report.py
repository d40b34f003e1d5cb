"""``aimcjax devices``: the device families and presets, and plots of response functions.

For each device: q_plus, q_minus over its weight range, F = (q_minus + q_plus)/2,
G = (q_minus - q_plus)/2 [RF eq. 4] and the symmetric point w* where G(w*) = 0, towards which
Analog SGD drifts.
"""

from __future__ import annotations

import numpy as np

from aimcjax.app.experiments.output import OutputDir, figure

__all__ = ["describe", "run"]


def describe(device) -> dict:
    """Family, bounds, dw_min, number of states and symmetric point of a device."""
    w_min, w_max = float(np.asarray(device.w_min)), float(np.asarray(device.w_max))
    dw_min = float(np.asarray(device.dw_min))
    return {
        "family": type(device).__name__,
        "w_min": w_min,
        "w_max": w_max,
        "dw_min": dw_min,
        "states": round((w_max - w_min) / dw_min),
        "symmetric_point": float(np.asarray(device.symmetric_point())),
    }


def _listing():
    from aimcjax.app import specs

    fams = specs.family_classes()
    lines = ["families (spec 'name:param=value,...'):"]
    seen = set()
    for name in specs.FAMILIES:
        cls = fams[name]
        if cls in seen:
            continue
        seen.add(cls)
        aliases = [n for n in specs.FAMILIES if fams[n] is cls]
        fields = list(specs.family_fields(cls))
        lines.append(f"  {'/'.join(aliases):22s} {cls.__name__:13s} {', '.join(fields)}")
    lines.append("presets (spec 'name' or 'name:param=value' to override):")
    presets = {}
    for name, make in specs.presets().items():
        info = describe(make())
        presets[name] = info
        lines.append(
            f"  {name:22s} {info['family']:13s} range [{info['w_min']:+.3g}, {info['w_max']:+.3g}]"
            f"  dw_min {info['dw_min']:.3g} ({info['states']} states)  w* {info['symmetric_point']:+.3g}"
        )
    return "\n".join(lines), presets


def run(spec_list, out: OutputDir, echo=print) -> dict:
    """List families/presets, or describe and plot the devices of ``spec_list``.

    Args:
      spec_list: device specs (see :mod:`aimcjax.app.specs`); empty = list families and presets.
      out: where ``devices.png`` goes.
      echo: printer.

    Returns:
      The summary: the presets (listing) or one description per spec.
    """
    from aimcjax.app import specs

    if not spec_list:
        text, presets = _listing()
        echo(text)
        return {"presets": presets}
    devices = [specs.parse(s) for s in spec_list]
    summary = {}
    for s, d in zip(spec_list, devices):
        info = describe(d)
        summary[s] = info
        echo(
            f"{s}: {info['family']}, range [{info['w_min']:+.3g}, {info['w_max']:+.3g}], dw_min "
            f"{info['dw_min']:.3g} ({info['states']} states), symmetric point w* = {info['symmetric_point']:+.4f}"
        )
    if out.path is not None:
        fig, axes = figure(1, 2, figsize=(10, 4))
        for s, d in zip(spec_list, devices):
            w = np.linspace(float(np.asarray(d.w_min)), float(np.asarray(d.w_max)), 201)
            line = axes[0].plot(w, np.asarray(d.q_plus(w)), label=f"{s} q+")[0]
            axes[0].plot(w, np.asarray(d.q_minus(w)), "--", color=line.get_color(), label=f"{s} q-")
            axes[1].plot(w, np.asarray(d.F(w)), color=line.get_color(), label=f"{s} F")
            axes[1].plot(w, np.asarray(d.G(w)), ":", color=line.get_color(), label=f"{s} G")
            wstar = summary[s]["symmetric_point"]
            axes[1].axvline(wstar, color=line.get_color(), alpha=0.4)
        axes[0].set_title("response functions q+ (solid), q- (dashed)")
        axes[1].set_title("F (solid), G (dotted); vertical: symmetric point")
        for ax in axes:
            ax.set_xlabel("w")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=6)
        out.savefig(fig, "devices.png")
    return summary
