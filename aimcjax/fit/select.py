"""Fit every candidate family and noise model, rank them by information criterion.

Model choice is by likelihood: AIC = 2k - 2 log L and BIC = k log(n) - 2 log L (k fitted
parameters, n scored reads). Nested families (SoftBounds inside Power at gamma = 1, inside
Piecewise) tie in likelihood when the simpler one is true; BIC's penalty then ranks the
simpler first, which is why it is the default criterion.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from aimcjax.devices import NOISE_MODES, Device
from aimcjax.fit.estimate import FamilyFit, fit_family
from aimcjax.fit.families import family as get_family
from aimcjax.fit.population import Estimate, population, to_device
from aimcjax.fit.traces import Traces

__all__ = ["CRITERIA", "DEFAULT_FAMILIES", "Candidate", "FitReport", "fit", "format_report"]

DEFAULT_FAMILIES = ("constant", "softbounds", "power", "exp", "piecewise5")
CRITERIA = ("bic", "aic")


class Candidate(NamedTuple):
    """One row of the ranking."""

    family: str
    noise: str
    loglik: float
    n_params: int
    aic: float
    bic: float
    delta: float  # criterion minus the best one's
    converged: bool


class FitReport(NamedTuple):
    """Result of :func:`fit`.

    Attributes:
      device: the best candidate as a ready :class:`~aimcjax.devices.Device` (nominal values
        and ``*_dtod`` variation, ``dw_min_std`` and ``noise``).
      params: name -> :class:`~aimcjax.fit.population.Estimate` (value, standard error) of
        the best candidate.
      ranking: :class:`Candidate` rows, best first.
      fits: (family, noise) -> :class:`~aimcjax.fit.estimate.FamilyFit` of every candidate.
      criterion: "bic" or "aic".
    """

    device: Device
    params: dict
    ranking: list
    fits: dict
    criterion: str

    @property
    def best(self) -> FamilyFit:
        top = self.ranking[0]
        return self.fits[(top.family, top.noise)]


def fit(
    traces: Traces,
    families: str | Sequence[str] = DEFAULT_FAMILIES,
    noises: str | Sequence[str] = NOISE_MODES,
    *,
    criterion: str = "bic",
    max_iter: int = 100,
    progress: bool = False,
) -> FitReport:
    """Fit devices to traces: every family x noise model, ranked by ``criterion``.

    Args:
      traces: :class:`~aimcjax.fit.traces.Traces` (e.g. from :func:`load_traces`).
      families: names (``constant``, ``softbounds``, ``power``, ``exp``, ``piecewiseN``).
      noises: cycle-to-cycle noise models to try ("additive", "multiplicative").
      criterion: "bic" (default) or "aic".
      max_iter: Fisher-scoring step cap per candidate.
      progress: show a tqdm progress bar over the candidates.

    Returns:
      :class:`FitReport`.

    Example:
      >>> from aimcjax.devices import SoftBounds
      >>> from aimcjax.fit import simulate_traces
      >>> tr = simulate_traces(SoftBounds(tau=0.6, dw_min=0.01, dw_min_std=0.2), 4, 2, 40, 1e-3, 0)
      >>> report = fit(tr, ("constant", "softbounds"), "additive")
      >>> [c.family for c in report.ranking]
      ['softbounds', 'constant']
      >>> type(report.device).__name__
      'SoftBounds'
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    fams = [get_family(f) for f in ([families] if isinstance(families, str) else families)]
    noises = [noises] if isinstance(noises, str) else list(noises)
    if not fams or not noises:
        raise ValueError("families and noises must not be empty")
    for noise in noises:
        if noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
    # SoftBounds first: the other bounded families start from its optimum (Power at gamma = 1
    # is SoftBounds, so it cannot end below it), which avoids their poor local optima.
    fams.sort(key=lambda f: f.name != "softbounds")
    jobs = [(fam, noise) for fam in fams for noise in noises]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc="fitting", unit="model")
    fits: dict[tuple[str, str], FamilyFit] = {}
    for fam, noise in jobs:
        if bar is not None:
            bar.set_postfix_str(f"{fam.name}/{noise}")
        start = fits.get(("softbounds", noise)) if fam.bounded else None
        fits[(fam.name, noise)] = fit_family(traces, fam, noise, max_iter=max_iter, start=start)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    score = {k: (f.bic if criterion == "bic" else f.aic) for k, f in fits.items()}
    order = sorted(fits, key=lambda k: score[k] if np.isfinite(score[k]) else np.inf)
    best = score[order[0]]
    ranking = [
        Candidate(
            k[0],
            k[1],
            fits[k].loglik,
            fits[k].n_params,
            fits[k].aic,
            fits[k].bic,
            score[k] - best,
            fits[k].converged,
        )
        for k in order
    ]
    params = population(fits[order[0]], traces)
    return FitReport(to_device(fits[order[0]], params), params, ranking, fits, criterion)


def _fmt(e: Estimate) -> str:
    value, se = np.asarray(e.value, float), np.asarray(e.se, float)
    if value.ndim:
        return "[" + ", ".join(_fmt(Estimate(v, s)) for v, s in zip(value, se)) + "]"
    if not np.isfinite(se):
        return f"{value:.4g} (not identified)" if value else f"{value:.4g}"
    return f"{value:.4g} ± {se:.2g}"


def format_report(report: FitReport) -> str:
    """The fitted parameters with standard errors and the ranking of candidates, as text."""
    top = report.ranking[0]
    lines = [
        f"best: {top.family} ({top.noise} noise) -> {report.device!r}",
        "",
        "parameter        estimate ± SE",
    ]
    for name, e in report.params.items():
        lines.append(f"  {name:14s} {_fmt(e)}")
    crit = report.criterion.upper()
    lines += [
        "",
        f"ranking by {crit} (k = fitted parameters, n = {report.best.n_obs} reads):",
        f"  {'family':12s} {'noise':15s} {'log L':>12s} {'k':>6s} {'AIC':>12s} {'BIC':>12s} {'Δ' + crit:>9s}",
    ]
    for c in report.ranking:
        flag = "" if c.converged else "  (not converged)"
        lines.append(
            f"  {c.family:12s} {c.noise:15s} {c.loglik:12.1f} {c.n_params:6d} {c.aic:12.1f} "
            f"{c.bic:12.1f} {c.delta:9.1f}{flag}"
        )
    return "\n".join(lines)
