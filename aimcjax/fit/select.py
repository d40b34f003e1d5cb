"""Fit every candidate family and noise model, rank them by information criterion.

Model choice is by likelihood: AIC = 2k - 2 log L and BIC = k log(n) - 2 log L (k fitted
parameters, n scored reads). Nested families (SoftBounds inside Power at gamma = 1, inside
Piecewise) tie in likelihood when the simpler one is true; BIC's penalty then ranks the
simpler first, which is why it is the default criterion.

Screening (``screen=N``): with many devices every candidate costs a full fit (at 1 000
devices x 8 000 pulses ~45 s each, and the poorly fitting candidates need more steps), so
the candidates can first be ranked on ``N`` evenly spaced devices and only the ``refit`` best
(plus SoftBounds with the same noise model, the warm start of the other bounded families)
fitted to every device and ranked again. The screen's ranking is kept in the report. The
criterion's differences grow with the data, so a subset decides between clearly different
models; candidates the subset cannot separate are the ones refitted.
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

__all__ = [
    "CRITERIA",
    "DEFAULT_FAMILIES",
    "Candidate",
    "FitReport",
    "fit",
    "format_report",
    "screen_subset",
]

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
      ranking: :class:`Candidate` rows, best first (the candidates fitted to every device).
      fits: (family, noise) -> :class:`~aimcjax.fit.estimate.FamilyFit` of every candidate
        in ``ranking``.
      criterion: "bic" or "aic".
      screening: with ``screen``: the ranking of every candidate on the screened subset of
        ``screened_devices`` devices; otherwise None.
      screened_devices: the number of devices of the screen (0 without one).
    """

    device: Device
    params: dict
    ranking: list
    fits: dict
    criterion: str
    screening: list | None = None
    screened_devices: int = 0

    @property
    def best(self) -> FamilyFit:
        top = self.ranking[0]
        return self.fits[(top.family, top.noise)]


def screen_subset(traces: Traces, n: int) -> Traces:
    """``n`` evenly spaced devices of ``traces`` (all of them when it has at most ``n``):
    deterministic, and spread over the file's order (a file sorted by position or batch is
    sampled across it)."""
    if traces.n_devices <= n:
        return traces
    idx = np.unique(np.round(np.linspace(0, traces.n_devices - 1, n)).astype(int))
    return traces._replace(
        reads=traces.reads[idx],
        direction=traces.direction[idx],
        valid=traces.valid[idx],
        device_ids=tuple(traces.device_ids[i] for i in idx),
    )


def _fit_candidates(
    traces: Traces, jobs: list, max_iter: int, bar: object | None
) -> dict[tuple[str, str], FamilyFit]:
    """Fit each (family, noise) of ``jobs`` (SoftBounds first: the other bounded families
    start from its optimum -- Power at gamma = 1 is SoftBounds, so it cannot end below it --
    which avoids their poor local optima; where SoftBounds is not a candidate it is fitted
    as their start all the same, measured: a two-node Piecewise from the moments of EcRam's
    steps ends at a flat local optimum 2e5 log-likelihood units below its start from
    SoftBounds)."""
    fits: dict[tuple[str, str], FamilyFit] = {}
    starts: dict[str, FamilyFit] = {}
    for fam, noise in sorted(jobs, key=lambda j: j[0].name != "softbounds"):
        if bar is not None:
            bar.set_postfix_str(f"{fam.name}/{noise}, {traces.n_devices} devices")  # type: ignore[attr-defined]
        if fam.bounded and fam.name != "softbounds" and noise not in starts:
            starts[noise] = fits.get(("softbounds", noise)) or fit_family(
                traces, "softbounds", noise, max_iter=max_iter
            )
        start = starts.get(noise) if fam.bounded else None
        fits[(fam.name, noise)] = fit_family(traces, fam, noise, max_iter=max_iter, start=start)
        if fam.name == "softbounds":
            starts[noise] = fits[(fam.name, noise)]
        if bar is not None:
            bar.update()  # type: ignore[attr-defined]
    return fits


def _rank(fits: dict[tuple[str, str], FamilyFit], criterion: str) -> list[Candidate]:
    score = {k: (f.bic if criterion == "bic" else f.aic) for k, f in fits.items()}
    order = sorted(fits, key=lambda k: score[k] if np.isfinite(score[k]) else np.inf)
    best = score[order[0]]
    return [
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


def fit(
    traces: Traces,
    families: str | Sequence[str] = DEFAULT_FAMILIES,
    noises: str | Sequence[str] = NOISE_MODES,
    *,
    criterion: str = "bic",
    max_iter: int = 100,
    screen: int | None = None,
    refit: int = 2,
    progress: bool = False,
) -> FitReport:
    """Fit devices to traces: every family x noise model, ranked by ``criterion``.

    Args:
      traces: :class:`~aimcjax.fit.traces.Traces` (e.g. from :func:`load_traces`).
      families: names (``constant``, ``softbounds``, ``power``, ``exp``, ``expstep``, ``piecewiseN``).
      noises: cycle-to-cycle noise models to try ("additive", "multiplicative").
      criterion: "bic" (default) or "aic".
      max_iter: Fisher-scoring step cap per candidate.
      screen: rank every candidate on this many evenly spaced devices first and fit only
        the ``refit`` best to all of them (see the module docstring); None (default) or
        at least as many devices as ``traces`` has: every candidate on every device.
      refit: candidates of the screen fitted to every device (with ``screen``).
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
    if screen is not None and (isinstance(screen, bool) or int(screen) != screen or screen < 2):
        raise ValueError(f"screen must be an integer >= 2 (devices) or None, got {screen!r}")
    if isinstance(refit, bool) or int(refit) != refit or refit < 1:
        raise ValueError(f"refit must be an integer >= 1, got {refit!r}")
    fams = [get_family(f) for f in ([families] if isinstance(families, str) else families)]
    noises = [noises] if isinstance(noises, str) else list(noises)
    if not fams or not noises:
        raise ValueError("families and noises must not be empty")
    for noise in noises:
        if noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
    jobs = [(fam, noise) for fam in fams for noise in noises]
    screening, screened = None, 0
    if screen is not None and traces.n_devices > screen and len(jobs) > refit:
        subset = screen_subset(traces, screen)
        screened = subset.n_devices
        bar = _bar(progress, len(jobs), f"screening ({screened} devices)")
        screening = _rank(_fit_candidates(subset, jobs, max_iter, bar), criterion)
        _close(bar)
        keep = {(c.family, c.noise) for c in screening[:refit]}
        by_name = {f.name: f for f in fams}
        for name, noise in list(keep):  # the warm start of a refitted bounded family
            if by_name[name].bounded and "softbounds" in by_name:
                keep.add(("softbounds", noise))
        jobs = [(f, n) for f, n in jobs if (f.name, n) in keep]
    bar = _bar(progress, len(jobs), "fitting")
    fits = _fit_candidates(traces, jobs, max_iter, bar)
    _close(bar)
    ranking = _rank(fits, criterion)
    best = fits[(ranking[0].family, ranking[0].noise)]
    params = population(best, traces)
    return FitReport(to_device(best, params), params, ranking, fits, criterion, screening, screened)


def _bar(progress: bool, total: int, desc: str) -> object | None:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="model")


def _close(bar: object | None) -> None:
    if bar is not None:
        bar.close()  # type: ignore[attr-defined]


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
    lines += _unreached_note(report.best)
    crit = report.criterion.upper()
    lines += [
        "",
        f"ranking by {crit} (k = fitted parameters, n = {report.best.n_obs} reads):",
        *_table(report.ranking, crit),
    ]
    if report.screening is not None:
        lines += [
            "",
            f"screen: every candidate on {report.screened_devices} evenly spaced devices "
            f"(the {len(report.ranking)} above refitted to all):",
            *_table(report.screening, crit),
        ]
    return "\n".join(lines)


def _unreached_note(best: FamilyFit) -> list[str]:
    """A note on Piecewise / ExpStep bounds that no run of reads pins (NaN errors, see
    :func:`aimcjax.fit.estimate._unpinned_bounds`): the steps and shape are then conditional
    on where the fit put those bounds."""
    if not best.family.clips:
        return []
    n = len(best.per_device["w_max"])
    missing = {b: int(np.isnan(best.per_device_se[b]).sum()) for b in ("w_max", "w_min")}
    if not any(missing.values()):
        return []
    which = ", ".join(f"{b} on {k} of {n} devices" for b, k in missing.items() if k)
    return [
        "",
        f"note: the traces do not reach {which}. There the bound is not estimated (the",
        "  likelihood peaks where clipping would start, at the extreme reads) and the step",
        f"  scales and {best.family.cls.__name__} shape, placed relative to the bounds, are",
        "  conditional on it: their errors assume it. What the data determine is the response",
        "  over the reads (a two-node Piecewise line there is also a SoftBounds line); measure",
        "  traces that reach the bounds to pin them.",
    ]


def _table(candidates: list[Candidate], crit: str) -> list[str]:
    rows = [
        f"  {'family':12s} {'noise':15s} {'log L':>12s} {'k':>6s} {'AIC':>12s} {'BIC':>12s} {'Δ' + crit:>9s}"
    ]
    for c in candidates:
        flag = "" if c.converged else "  (not converged)"
        rows.append(
            f"  {c.family:12s} {c.noise:15s} {c.loglik:12.1f} {c.n_params:6d} {c.aic:12.1f} "
            f"{c.bic:12.1f} {c.delta:9.1f}{flag}"
        )
    return rows
