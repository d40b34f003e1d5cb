"""Devices from measurements: fit response functions, noise and variation to pulse traces."""

from aimcjax.fit.estimate import FamilyFit, fit_family
from aimcjax.fit.families import FAMILIES, Family, family, piecewise
from aimcjax.fit.simulate import ramp_directions, simulate_directions, simulate_traces
from aimcjax.fit.traces import TraceError, Traces, load_traces, make_traces, save_traces

__all__ = ["FamilyFit", "fit_family", "FAMILIES", "Family", "family", "piecewise", "ramp_directions",
           "simulate_directions", "simulate_traces", "TraceError", "Traces", "load_traces", "make_traces",
           "save_traces"]
