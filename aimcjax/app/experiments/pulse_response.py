"""Pulse response of a device, as aihwkit's ``plot_device``: up/down pulse trains and step statistics.

A small tile of the device (its own device-to-device variation per seed) receives ``cycles``
repetitions of ``pulses`` up pulses followed by ``pulses`` down pulses, one pulse per element at a
time, through :func:`aimcjax.pulse.apply` (so with the device's cycle-to-cycle noise). Recorded:
the stored weight of every element after every pulse. From it come

- the weight vs pulse number (mean over elements and seeds, with the 5-95 % band over elements,
  one band per seed), and
- the step statistics: the change Δw of one pulse against the weight w it started from, up and
  down pulses separately (mean and ± one standard deviation in bins of w), beside the noise-free
  ``±dw_min·q±(w)`` of the device.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from aimcjax.app.experiments.output import OutputDir, figure

__all__ = ["run", "simulate", "step_statistics"]


def default_pulses(device) -> int:
    """Pulses per half cycle: enough to sweep the whole range with the nominal step (1.2x)."""
    span = float(np.asarray(device.w_max)) - float(np.asarray(device.w_min))
    return math.ceil(1.2 * span / float(np.asarray(device.dw_min)))


@partial(jax.jit, static_argnames=("elements", "pulses", "cycles"))
def _trace(device, key, *, elements: int, pulses: int, cycles: int):
    from aimcjax import pulse, tile

    k_tile, k_pulses = jax.random.split(key)
    t = tile.init(k_tile, device, (elements,))
    signs = jnp.tile(
        jnp.concatenate([jnp.ones(pulses, jnp.int32), -jnp.ones(pulses, jnp.int32)]), cycles
    )
    keys = jax.random.split(k_pulses, signs.shape[0])

    def one_pulse(t, sign_key):
        sign, k = sign_key
        t = pulse.apply(t, device, jnp.full((elements,), sign, jnp.int32), k)
        return t, t.w

    _, ws = jax.lax.scan(one_pulse, t, (signs, keys))
    return jnp.concatenate([t.w[None], ws]), signs


def simulate(
    device, *, seeds=(0, 1, 2), cycles: int = 3, pulses: int | None = None, elements: int = 64
):
    """Weights of ``elements`` elements through ``cycles`` up/down cycles, for each seed.

    Args:
      device: an :mod:`aimcjax.devices` device.
      seeds: one tile (with its d2d variation and pulse noise) per seed.
      cycles: up/down cycles.
      pulses: pulses per half cycle (default :func:`default_pulses`).
      elements: elements per tile.

    Returns:
      ``(w, signs)``: ``w`` of shape ``(len(seeds), 1 + 2 * cycles * pulses, elements)``, the
      stored weight before the first and after every pulse; ``signs`` (+1 up, -1 down) per pulse.

    Example:
      >>> w, signs = simulate(devices.presets.reram_sb(), seeds=(0,), cycles=1, pulses=100)
    """
    for name, value in (("cycles", cycles), ("elements", elements)):
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    pulses = default_pulses(device) if pulses is None else pulses
    if not (isinstance(pulses, int) and pulses >= 1):
        raise ValueError(f"pulses must be a positive integer, got {pulses!r}")
    if len(seeds) == 0:
        raise ValueError("seeds must name at least one seed")
    runs = [
        _trace(device, jax.random.PRNGKey(int(s)), elements=elements, pulses=pulses, cycles=cycles)
        for s in seeds
    ]
    return np.stack([np.asarray(w) for w, _ in runs]), np.asarray(runs[0][1])


def step_statistics(w, signs, bins: int = 30):
    """Δw per pulse binned by the weight it started from, up and down pulses separately.

    Args:
      w: weights from :func:`simulate`, ``(seeds, 1 + pulses, elements)``.
      signs: the pulse directions from :func:`simulate`.
      bins: bins of w over the visited range.

    Returns:
      dict with ``centers`` (bin centers) and for ``"up"`` and ``"down"`` the ``mean``, ``std``
      and ``count`` of Δw per bin (NaN where a bin is empty).
    """
    before, dw = w[:, :-1], np.diff(w, axis=1)
    edges = np.linspace(w.min(), w.max(), bins + 1)
    out = {"centers": 0.5 * (edges[1:] + edges[:-1])}
    for name, sign in (("up", 1), ("down", -1)):
        sel = signs == sign
        x, y = before[:, sel].ravel(), dw[:, sel].ravel()
        idx = np.clip(np.digitize(x, edges) - 1, 0, bins - 1)
        count = np.bincount(idx, minlength=bins)
        total = np.bincount(idx, weights=y, minlength=bins)
        squares = np.bincount(idx, weights=y * y, minlength=bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = total / count
            std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        out[name] = {"mean": mean, "std": std, "count": count}
    return out


def run(
    spec_list,
    out: OutputDir,
    *,
    cycles: int = 3,
    pulses: int | None = None,
    elements: int = 64,
    seeds=(0, 1, 2),
    echo=print,
) -> dict:
    """Simulate and plot the pulse response of each device spec into ``pulse_response.png``.

    Returns:
      Per spec: pulses per half cycle, the weight range visited (mean over seeds of the
      elements' median min/max) and the mean |Δw| of up and down pulses at the start weight 0.
    """
    from aimcjax.app import specs

    devices = [specs.parse(s) for s in spec_list]
    fig, axes = figure(
        len(devices),
        2,
        figsize=(12, 3.6 * len(devices)),
        squeeze=False,
        gridspec_kw={"width_ratios": [2, 1]},
    )
    summary = {}
    for row, (spec, device) in enumerate(zip(spec_list, devices)):
        n = default_pulses(device) if pulses is None else pulses
        w, signs = simulate(device, seeds=seeds, cycles=cycles, pulses=n, elements=elements)
        stats = step_statistics(w, signs)
        lo = float(np.mean(np.median(w.min(axis=1), axis=-1)))
        hi = float(np.mean(np.median(w.max(axis=1), axis=-1)))
        summary[spec] = {
            "pulses_per_half_cycle": n,
            "cycles": cycles,
            "elements": elements,
            "seeds": list(seeds),
            "visited_range": [lo, hi],
        }
        echo(
            f"{spec}: {cycles} cycles of {n} up + {n} down pulses, {elements} elements x "
            f"{len(seeds)} seeds; weights visit [{lo:+.3g}, {hi:+.3g}]"
        )
        _plot_trains(axes[row, 0], w, spec, n)
        _plot_steps(axes[row, 1], stats, device, spec)
    fig.tight_layout()
    out.savefig(fig, "pulse_response.png")
    return summary


def _plot_trains(ax, w, spec, n):
    x = np.arange(w.shape[1])
    colors = ["C0", "C1", "C2", "C3", "C4", "C5"]
    for s in range(w.shape[0]):
        c = colors[s % len(colors)]
        lo, hi = np.percentile(w[s], [5, 95], axis=-1)
        ax.fill_between(x, lo, hi, color=c, alpha=0.2, lw=0, label=f"seed {s}: 5-95 % of elements")
        ax.plot(x, w[s].mean(axis=-1), color=c, lw=1, label=f"seed {s}: mean")
    ax.plot(x, w[0, :, 0], color="k", lw=0.5, alpha=0.7, label="one element (seed 0)")
    for k in range(n, w.shape[1], n):
        ax.axvline(k, color="gray", lw=0.4, alpha=0.5)
    ax.set_xlabel(f"pulse number ({n} up, then {n} down, per cycle)")
    ax.set_ylabel("stored weight w (normalized conductance)")
    ax.set_title(f"{spec}: up/down pulse trains")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower right", ncol=2)


def _plot_steps(ax, stats, device, spec):
    c = stats["centers"]
    for name, color in (("up", "C3"), ("down", "C0")):
        m, s = stats[name]["mean"], stats[name]["std"]
        ax.plot(c, m, "o", ms=2.5, color=color, label=f"{name}: mean Δw")
        ax.fill_between(c, m - s, m + s, color=color, alpha=0.25, lw=0, label=f"{name}: ± 1 std")
    w = np.linspace(float(np.asarray(device.w_min)), float(np.asarray(device.w_max)), 200)
    dw_min = float(np.asarray(device.dw_min))
    ax.plot(w, dw_min * np.asarray(device.q_plus(w)), "k-", lw=0.8, label="nominal +dw_min q+(w)")
    ax.plot(
        w, -dw_min * np.asarray(device.q_minus(w)), "k--", lw=0.8, label="nominal -dw_min q-(w)"
    )
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_xlabel("weight before the pulse, w")
    ax.set_ylabel("weight change of one pulse, Δw")
    ax.set_title(f"{spec}: step statistics")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
