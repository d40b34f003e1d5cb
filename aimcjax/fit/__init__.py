"""Devices from measurements: fit response functions, noise and variation to pulse traces.

Typical use::

    traces = load_traces("measurements.csv")        # or simulate_traces(device, ...)
    report = fit(traces)                            # every family x noise model, ranked by BIC
    print(format_report(report))
    device = report.device                          # a ready aimcjax device with its variation

Modules: :mod:`~aimcjax.fit.traces` (data layout, loaders), :mod:`~aimcjax.fit.simulate`
(synthetic traces through :func:`aimcjax.pulse.apply`), :mod:`~aimcjax.fit.families`
(per-device parametrisation), :mod:`~aimcjax.fit.likelihood` (Kalman-filter likelihood),
:mod:`~aimcjax.fit.estimate` (maximum likelihood, Laplace errors), :mod:`~aimcjax.fit.population`
(nominal values and device-to-device spread), :mod:`~aimcjax.fit.select` (model choice).
"""

from aimcjax.fit.estimate import FamilyFit, fit_family
from aimcjax.fit.families import FAMILIES, Family, family, piecewise
from aimcjax.fit.population import Estimate, population, to_device
from aimcjax.fit.select import (
    CRITERIA,
    DEFAULT_FAMILIES,
    Candidate,
    FitReport,
    fit,
    format_report,
)
from aimcjax.fit.simulate import ramp_directions, simulate_directions, simulate_traces
from aimcjax.fit.traces import TraceError, Traces, load_traces, make_traces, save_traces

__all__ = [
    "CRITERIA",
    "DEFAULT_FAMILIES",
    "FAMILIES",
    "Candidate",
    "Estimate",
    "Family",
    "FamilyFit",
    "FitReport",
    "TraceError",
    "Traces",
    "family",
    "fit",
    "fit_family",
    "format_report",
    "load_traces",
    "make_traces",
    "piecewise",
    "population",
    "ramp_directions",
    "save_traces",
    "simulate_directions",
    "simulate_traces",
    "to_device",
]
