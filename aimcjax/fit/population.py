"""From per-device estimates to a :class:`~aimcjax.devices.Device` with its variation.

The library samples each device k of a tile as (:func:`aimcjax.tile.init`)

    gain g_k = 1 + dw_min_dtod * N,   imbalance i_k = up_down_dtod * N,
    w_max_k = w_max (1 + w_max_dtod * N),   w_min_k = w_min (1 + w_min_dtod * N),

with up step scale g_k (1 + i_k) dw_min (1 + c) and down step scale g_k (1 - i_k) dw_min (1 - c).
A fit gives each device's step scales and bounds with standard errors; here they become the
nominal values (means over devices) and the spreads (standard deviations over devices with
the mean squared estimation error subtracted, so that measurement noise is not mistaken for
device-to-device variation: var_true = var(estimates) - mean(SE^2), floored at 0).

A bound that only some devices' traces identify (hard bounds reached by some) is averaged
over those devices; with fewer than two it is reported without errors (not identified).

The asymmetry c is the value that makes the devices' imbalances average to zero (the
library's imbalance has mean 0). Standard errors: of a mean, the std over devices / sqrt(n)
(which includes the estimation error) plus the estimation errors that devices share through
the shared parameters (see :func:`_mean`); of a spread s (normal population),
var(estimates) * sqrt(2 / (n - 1)) / (2 s).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from aimcjax import devices
from aimcjax.fit.estimate import FamilyFit
from aimcjax.fit.families import EXPSTEP_SHAPE
from aimcjax.fit.traces import Traces

__all__ = ["Estimate", "population", "to_device"]


class Estimate(NamedTuple):
    """A value with its standard error (``se`` NaN where none can be given)."""

    value: float | np.ndarray
    se: float | np.ndarray


def _asymmetry(u: np.ndarray, d: np.ndarray) -> float:
    """c in (-1, 1) with mean_k i_k(c) = 0, i_k = (u(1-c) - d(1+c)) / (u(1-c) + d(1+c))."""
    lo, hi = -0.999, 0.999
    for _ in range(60):  # mean imbalance decreases in c
        mid = (lo + hi) / 2
        i = (u * (1 - mid) - d * (1 + mid)) / (u * (1 - mid) + d * (1 + mid))
        lo, hi = (mid, hi) if i.mean() > 0 else (lo, mid)
    return (lo + hi) / 2


def _spread(values: np.ndarray, est_var: np.ndarray) -> tuple[float, float]:
    """(spread, se): std over devices with the estimation variance removed."""
    n, est_var = values.size, np.asarray(est_var, float)
    total = values.var(ddof=1) if n > 1 else 0.0
    # Devices whose estimate has no standard error (a bound their trace does not identify)
    # add nothing to subtract; with none known the spread keeps the estimation error.
    known = np.isfinite(est_var)
    true_var = max(total - (float(est_var[known].mean()) if known.any() else 0.0), 0.0)
    s = math.sqrt(true_var)
    se = (
        total * math.sqrt(2 / max(n - 1, 1)) / (2 * s)
        if s > 0
        else math.sqrt(total * math.sqrt(2 / max(n - 1, 1)))
    )
    return s, se


def _mean(values: np.ndarray, cross: float = 0.0) -> tuple[float, float]:
    """(mean, se) over devices. ``cross``: the sum over device pairs k != l of the covariance
    of their estimation errors (shared parameters move all devices alike; the spread over
    devices does not show such a common shift):
    Var(mean - mu) = s^2 / n + cross / (n (n - 1)) with s^2 the variance over devices."""
    n = values.size
    if n < 2:
        return float(values.mean()), float("nan")
    var = values.var(ddof=1) / n + float(cross) / (n * (n - 1))
    return float(values.mean()), math.sqrt(max(var, 0.0))


def population(fit: FamilyFit, traces: Traces) -> dict:
    """Nominal device parameters and variation from a :class:`FamilyFit`.

    Args:
      fit: a fitted family.
      traces: the traces it was fitted to (for the observed range of unbounded families).

    Returns:
      name -> :class:`Estimate`, with names as the device constructors take them
      (``dw_min``, ``asymmetry``, ``w_max``, ``w_min``, ``gamma``, ``up``, ``down``, ExpStep's
      ``A_up``, ``A_down``, ``gamma_up``, ``gamma_down``,
      ``dw_min_dtod``, ``up_down_dtod``, ``w_max_dtod``, ``w_min_dtod``, ``dw_min_std``) plus
      ``read_noise`` (of the measurement, not of the device).
    """
    u, d = fit.per_device["step_up"], fit.per_device["step_down"]
    cov = fit.per_device_cov
    c = _asymmetry(u, d)
    up_scale, down_scale = u / (1 + c), d / (1 - c)
    g = (up_scale + down_scale) / 2  # g_k * dw_min
    a = np.array([1 / (2 * (1 + c)), 1 / (2 * (1 - c))])
    var_g = np.einsum("i,kij,j->k", a, cov[:, :2, :2], a)
    imbalance = (up_scale - down_scale) / (up_scale + down_scale)
    jac_i = np.stack(
        [
            2 * down_scale / (up_scale + down_scale) ** 2 / (1 + c),
            -2 * up_scale / (up_scale + down_scale) ** 2 / (1 - c),
        ],
        axis=1,
    )
    var_i = np.einsum("ki,kij,kj->k", jac_i, cov[:, :2, :2], jac_i)

    cross = fit.per_device_cross
    if cross is None:
        cross = np.zeros((cov.shape[1], cov.shape[1]))
    out = {}
    dw_min, dw_se = _mean(g, a @ cross[:2, :2] @ a)
    out["dw_min"] = Estimate(dw_min, dw_se)
    out["asymmetry"] = Estimate(
        c, float(imbalance.std(ddof=1) / math.sqrt(len(u))) if len(u) > 1 else float("nan")
    )
    out["dw_min_dtod"] = Estimate(*_spread(g / dw_min, var_g / dw_min**2))
    out["up_down_dtod"] = Estimate(*_spread(imbalance, var_i))
    if fit.family.bounded:
        for j, name in ((2, "w_max"), (3, "w_min")):
            values, se_b = fit.per_device[name], fit.per_device_se[name]
            known = np.isfinite(se_b)
            pair_cov = cross[j, j]
            if 2 <= known.sum() < known.size:
                # Only the devices whose bound is identified (reached; the others' values are
                # lower limits, see aimcjax.fit.estimate._unpinned_bounds), their pairs'
                # shared-error covariance taken as the average pair's.
                n, m = known.size, int(known.sum())
                values, se_b, pair_cov = (
                    values[known],
                    se_b[known],
                    pair_cov * m * (m - 1) / (n * (n - 1)),
                )
            mean, mean_se = _mean(values, pair_cov)
            spread, spread_se = _spread(values / abs(mean), se_b**2 / mean**2)
            if known.sum() < 2:
                # No bound identified (not reached, or capped): values without errors.
                mean_se = spread_se = float("nan")
            out[name] = Estimate(mean, mean_se)
            out[f"{name}_dtod"] = Estimate(spread, spread_se)
    else:
        # Hard bounds that the traces do not reach are not identified: the observed range.
        used = np.concatenate([np.ones((traces.n_devices, 1), bool), traces.valid], axis=1)
        out["w_max"] = Estimate(float(traces.reads[used].max()), float("nan"))
        out["w_min"] = Estimate(float(traces.reads[used].min()), float("nan"))
        out["w_max_dtod"] = Estimate(0.0, float("nan"))
        out["w_min_dtod"] = Estimate(0.0, float("nan"))
    sh, se = fit.shared, fit.shared_se
    for name in ("gamma", *EXPSTEP_SHAPE):
        if name in sh:
            out[name] = Estimate(float(sh[name]), float(se[name]))
    if "up" in sh:
        out["up"] = Estimate((1 + c) * sh["up"], (1 + c) * se["up"])
        out["down"] = Estimate((1 - c) * sh["down"], (1 - c) * se["down"])
    if fit.noise == "additive":
        # Per direction the additive noise is sigma / (1 +- c) of the step scale.
        sigma = ((1 + c) * sh["sigma_up"] + (1 - c) * sh["sigma_down"]) / 2
        sigma_se = 0.5 * math.hypot((1 + c) * se["sigma_up"], (1 - c) * se["sigma_down"])
    else:
        sigma, sigma_se = sh["sigma"], se["sigma"]
    out["dw_min_std"] = Estimate(float(sigma), float(sigma_se))
    out["read_noise"] = Estimate(float(sh["read_noise"]), float(se["read_noise"]))
    return out


def to_device(fit: FamilyFit, params: dict) -> devices.Device:
    """The :class:`~aimcjax.devices.Device` of a fit's :func:`population` estimates."""
    v = {k: e.value for k, e in params.items()}
    common = dict(
        dw_min=v["dw_min"],
        w_min=v["w_min"],
        w_max=v["w_max"],
        dw_min_dtod=v["dw_min_dtod"],
        up_down_dtod=v["up_down_dtod"],
        w_max_dtod=v["w_max_dtod"],
        w_min_dtod=v["w_min_dtod"],
        dw_min_std=v["dw_min_std"],
        noise=fit.noise,
    )
    cls = fit.family.cls
    if cls is devices.Piecewise:
        return devices.Piecewise(
            up=tuple(float(x) for x in v["up"]), down=tuple(float(x) for x in v["down"]), **common
        )
    if cls is devices.ExpStep:
        # ExpStep's imbalance reduces one direction (aihwkit's up_down): up (1 + c), down
        # (1 - c) is dw_min (1 + |c|) with one side reduced by 2|c| / (1 + |c|).
        c = v["asymmetry"]
        shape = {n: v[n] for n in EXPSTEP_SHAPE}
        common["dw_min"] = v["dw_min"] * (1 + abs(c))
        return devices.ExpStep(up_down=2 * c / (1 + abs(c)), **shape, **common)
    if cls is devices.ConstantStep:
        return devices.ConstantStep(asymmetry=v["asymmetry"], **common)
    extra = {"gamma": v["gamma"]} if "gamma" in v else {}
    return cls(tau=v["w_max"], asymmetry=v["asymmetry"], **extra, **common)
