"""Parameter recovery by aimcjax.fit: estimates cover the truth at the rate their standard
errors claim (checked over seeds, with the variance of the coverage fraction taken from the
seeds, not a hand-picked tolerance), and model choice ranks the true family first.

Data: 6 devices x 2x60-pulse ramps; 2 cycles for the families without a shape parameter,
``SHAPE_CYCLES`` for those with one (Power, Exponential, Piecewise). Why more there: with 2
cycles the likelihood of gamma and the bounds (which trade off along a curved valley) is far
from quadratic and the maximum-likelihood gamma comes out ~10% low, about 1 standard error
(measured over 16 seeds: Power 1.77 for 2.0; at 8 cycles 1.993 ± 0.036, Exponential 1.983 ±
0.040), so Laplace errors do not yet hold there. Each family compiles once per data shape."""

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from aimcjax import devices
from aimcjax.devices import presets
from aimcjax.fit import (
    fit,
    fit_family,
    make_traces,
    population,
    ramp_directions,
    simulate_directions,
    simulate_traces,
)

N_DEVICES, N_CYCLES, PULSES = 6, 2, 60
SHAPE_CYCLES = 8
SEEDS = range(12)
D2D = dict(dw_min_dtod=0.15, up_down_dtod=0.05, w_max_dtod=0.1, w_min_dtod=0.1)


def _simulate(dev, seed, read_noise, known_read_noise, n_cycles=N_CYCLES):
    dirs = ramp_directions(n_cycles, PULSES)
    reads, t = simulate_directions(
        dev, dirs, seed, n_devices=N_DEVICES, read_noise=read_noise, return_tile=True
    )
    tr = make_traces(
        reads,
        np.broadcast_to(dirs, (N_DEVICES, dirs.size)),
        read_noise=read_noise if known_read_noise else None,
    )
    return tr, t


def _truth(dev, t):
    """Per-device step scales and bounds, shared shape and noise, in the fit's terms."""
    c = getattr(dev, "asymmetry", 0.0)
    up_norm, down_norm = 1 + c, 1 - c
    shared = {}
    if isinstance(dev, devices.Piecewise):
        up, down = np.asarray(dev.up, float), np.asarray(dev.down, float)
        up_norm, down_norm = up[0], down[-1]
        shared["up"], shared["down"] = up / up[0], down / down[-1]
    if hasattr(dev, "gamma"):
        shared["gamma"] = dev.gamma
    per = {
        "step_up": np.asarray(t.gain_up) * dev.dw_min * up_norm,
        "step_down": np.asarray(t.gain_down) * dev.dw_min * down_norm,
        "w_max": np.asarray(t.w_max),
        "w_min": np.asarray(t.w_min),
    }
    if dev.dw_min_std > 0:
        if dev.noise == "additive":
            shared["sigma_up"] = dev.dw_min_std / up_norm
            shared["sigma_down"] = dev.dw_min_std / down_norm
        else:
            shared["sigma"] = dev.dw_min_std
    return per, shared


def _z_scores(fitted, per, shared, read_noise):
    z = []
    for name, est in fitted.per_device.items():
        z += list((est - per[name]) / fitted.per_device_se[name])
    for name, true in shared.items():
        est, se = np.asarray(fitted.shared[name]), np.asarray(fitted.shared_se[name])
        keep = se > 0  # Piecewise end nodes are 1 by construction
        z += list(((est - true) / np.where(keep, se, 1))[keep].ravel())
    if fitted.shared_se["read_noise"] > 0:
        z.append((fitted.shared["read_noise"] - read_noise) / fitted.shared_se["read_noise"])
    return z


def _check_coverage(z_per_seed, level=0.95, crit=1.96):
    """The fraction of |z| < crit over all seeds agrees with ``level`` within 3 standard
    deviations (and so does the 1-SE fraction with 68.3%, which catches inflated errors).

    The z-scores of one data set are not independent: every device's estimates share the
    estimates of the shared parameters (an error in gamma moves all bounds alike). The
    fraction is a mean over independent seeds, so its variance is estimated from the spread
    of the per-seed fractions over seeds (the cluster variance of a ratio estimator), and
    never taken below the binomial variance of independent z-scores."""
    z_per_seed = [np.abs(np.ravel(z)) for z in z_per_seed]
    flat = np.concatenate(z_per_seed)
    assert np.isfinite(flat).all(), "non-finite standard errors"
    sizes = np.array([z.size for z in z_per_seed], float)
    n, n_seeds = flat.size, len(z_per_seed)
    for lev, c in ((level, crit), (stats.norm.cdf(1) - stats.norm.cdf(-1), 1.0)):
        hits = np.array([np.sum(z < c) for z in z_per_seed], float)
        frac = hits.sum() / n
        cluster_var = n_seeds / (n_seeds - 1) * np.sum((hits - frac * sizes) ** 2) / n**2
        band = 3 * math.sqrt(max(cluster_var, lev * (1 - lev) / n))
        assert abs(frac - lev) < band, (
            f"coverage at {c} SE: {frac:.3f} of {n} over {n_seeds} seeds, "
            f"expected {lev:.3f} ± {band:.3f}"
        )


def _two_node_case(first: float, last: float, bound: float) -> tuple:
    """A two-node Piecewise case: up nodes (first, last), down mirrored, bounds +-bound."""
    dev = devices.Piecewise(
        up=(first, last),
        down=(last, first),
        w_min=-bound,
        w_max=bound,
        dw_min=0.01,
        dw_min_std=0.3,
        **D2D,
    )
    return dev, "piecewise2", 2e-3, False, N_CYCLES


# name -> (true device, family fitted, read noise, read noise known to the fit, cycles)
CASES = {
    "constant-c2c-d2d": (
        devices.ConstantStep(dw_min=0.01, asymmetry=0.1, dw_min_std=0.5, **D2D),
        "constant",
        2e-3,
        True,
        N_CYCLES,
    ),
    "softbounds-no-c2c-d2d": (
        devices.SoftBounds(tau=0.6, dw_min=0.01, **D2D),
        "softbounds",
        2e-3,
        False,
        N_CYCLES,
    ),
    # Cycle-to-cycle and read noise both fitted: without the nuisance adjustment the
    # cycle-to-cycle noise came out 4-5% low and the read noise high (~1 SE each).
    "softbounds-c2c-d2d": (
        devices.SoftBounds(tau=0.6, dw_min=0.01, dw_min_std=0.3, **D2D),
        "softbounds",
        2e-3,
        False,
        N_CYCLES,
    ),
    "softbounds-mult-no-d2d": (
        devices.SoftBounds(
            tau=0.6, dw_min=0.01, asymmetry=-0.1, dw_min_std=0.3, noise="multiplicative"
        ),
        "softbounds",
        2e-3,
        False,
        N_CYCLES,
    ),
    "softbounds-no-read-noise": (
        devices.SoftBounds(tau=0.6, dw_min=0.01, dw_min_std=0.3, **D2D),
        "softbounds",
        0.0,
        True,
        N_CYCLES,
    ),
    "power-c2c-d2d": (
        devices.Power(tau=0.6, gamma=2.0, dw_min=0.01, dw_min_std=0.3, **D2D),
        "power",
        2e-3,
        False,
        SHAPE_CYCLES,
    ),
    "exp-c2c-d2d": (
        devices.Exponential(tau=0.6, gamma=2.0, dw_min=0.01, dw_min_std=0.3, **D2D),
        "exp",
        2e-3,
        False,
        SHAPE_CYCLES,
    ),
    "piecewise3-c2c-d2d": (
        devices.Piecewise(
            up=(1.3, 0.8, 0.2),
            down=(0.2, 0.8, 1.3),
            w_min=-0.6,
            w_max=0.6,
            dw_min=0.01,
            dw_min_std=0.3,
            **D2D,
        ),
        "piecewise3",
        2e-3,
        False,
        SHAPE_CYCLES,
    ),
    # Piecewise(2) whose bounds the ramps do not reach (a soft response, 0.2 of its scale at
    # the far bound, but not 0: the bound is a hard one).
    "piecewise2-unreached": _two_node_case(1.3, 0.2, 0.6),
    # A LinearStep on hard bounds that the ramps reach and sit on (up: ~25 pulses to w_max,
    # then ~35 on it).
    "piecewise2-saturating": _two_node_case(1.05, 0.9, 0.25),
}

# Known failure (measured at 6 devices x 8 cycles x 2x60 pulses, 12 seeds): Piecewise(3) is
# not identified well enough for Laplace errors. Its bounds enter the response only through
# the node positions (the traces reach neither bound), and the kink at the middle node makes
# the likelihood non-smooth there. Before the start scan, 8 of 12 seeds had a singular
# information and 2 collapsed to a flat response; now 11 of 12 converge to a maximum above
# the truth's log-likelihood (seeds 0, 2, 5 checked: +14, +3, +7) at nodes and bounds far
# from the truth's (up nodes 1, 0.73, 0.40 for 1, 0.62, 0.15) with errors that do not cover
# it (z up to 400): the nodes and bounds trade off along a ridge the Fisher information does
# not show. Needs a reparametrisation (nodes at fixed weights) -- not done.
#
# Known failure (measured, 12 seeds): traces that sit on hard bounds at this size (6 devices x
# 2 cycles x 2x60 pulses, read noise fitted). From the fit's own starts 9 of 12 seeds end at
# local maxima 84-315 log-likelihood units below the maximum near the truth (first measured:
# 11 of 12, up to 1 800 below, before the nearly constant start took its noise levels from the
# steps away from the bounds and before unchecked local steps were checked); started at the
# truth the fit converges, but 3 of 12 seeds still have NaN or >10 SE errors: a bound pinned
# by a few dozen reads on a plateau is not regular enough for Laplace errors. At 16 devices x
# 2 cycles x 2x300 pulses the fit
# recovers them (test_saturating_traces_rank_the_hard_bounded_family_first).
#
# Known failure (measured, 12 seeds, also at 8 cycles): Piecewise(2) with hard bounds the
# traces do not reach. The maximum puts a device's bound at (within ~1e-3 of) its extreme read
# -- the exact grid likelihood agrees (seed 2, devices 1 and 5: +3.2 and +3.3 over the truth)
# -- where the likelihood has a kink (clipping starts): an endpoint-type, non-regular
# estimate, for which Laplace errors (SE ~1e-3) do not apply; z-scores reach 300. Such a
# bound is a lower limit of the true one, not an estimate with an error.
_KNOWN = {
    "piecewise3-c2c-d2d": "Piecewise(3): singular information / collapsed fits (see comment)",
    "piecewise2-unreached": "hard bounds not reached: non-regular maximum at the extreme read",
    "piecewise2-saturating": "hard bounds reached by short traces: local maxima (see comment)",
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        # run=False: the known failure costs ~2 minutes of suite time and cannot pass yet.
        pytest.param(c, marks=pytest.mark.xfail(reason=_KNOWN[c], run=False)) if c in _KNOWN else c
        for c in CASES
    ],
)
def test_estimates_cover_the_truth_at_the_claimed_rate(case):
    dev, fam, read_noise, known, cycles = CASES[case]
    z, z_mean = [], []
    for seed in SEEDS:
        tr, t = _simulate(dev, seed, read_noise, known, cycles)
        fitted = fit_family(tr, fam, dev.noise)
        per, shared = _truth(dev, t)
        z.append(_z_scores(fitted, per, shared, read_noise))
        # Nominal values: a mean over devices (SE: spread over devices and the estimation
        # error they share), a t statistic.
        est = population(fitted, tr)
        names = ["dw_min"] + (["w_max", "w_min"] if fitted.family.bounded else [])
        z_mean.append([(est[n].value - getattr(dev, n)) / est[n].se for n in names])
    _check_coverage(z)
    _check_coverage(z_mean, crit=stats.t.ppf(0.975, N_DEVICES - 1))


@pytest.mark.slow
@pytest.mark.parametrize(
    "dev, best",
    [
        (
            devices.SoftBounds(tau=0.6, dw_min=0.01, dw_min_std=0.3, **D2D),
            ("softbounds", "additive"),
        ),
        (
            devices.Power(
                tau=0.6, gamma=3.0, dw_min=0.01, dw_min_std=0.3, noise="multiplicative", **D2D
            ),
            ("power", "multiplicative"),
        ),
    ],
)
def test_the_true_family_and_noise_model_rank_first(dev, best):
    tr, _ = _simulate(dev, 101, 2e-3, False)
    report = fit(tr, ("constant", "softbounds", "power", "exp"))
    top = report.ranking[0]
    assert (top.family, top.noise) == best, [
        (c.family, c.noise, round(c.delta, 1)) for c in report.ranking
    ]
    assert type(report.device) is type(dev) and report.device.noise == dev.noise


def test_screening_refits_the_best_on_every_device_and_agrees_with_the_full_choice():
    dev = devices.SoftBounds(tau=0.6, dw_min=0.01, dw_min_std=0.3, **D2D)
    tr, _ = _simulate(dev, 101, 2e-3, False)
    families = ("constant", "softbounds")
    full = fit(tr, families)
    screened = fit(tr, families, screen=3, refit=1)
    assert screened.screened_devices == 3 and len(screened.screening) == 4
    assert [(c.family, c.noise) for c in screened.ranking] == [("softbounds", "additive")]
    assert (full.ranking[0].family, full.ranking[0].noise) == ("softbounds", "additive")
    # The refit is the fit without a screen: same program, same devices, same start.
    assert screened.fits[("softbounds", "additive")].loglik == full.ranking[0].loglik
    assert dataclasses.asdict(screened.device) == dataclasses.asdict(full.device)
    for bad in ({"screen": 1}, {"screen": 2.5}, {"refit": 0}):
        name = next(iter(bad))
        with pytest.raises(ValueError, match=name):
            fit(tr, families, **bad)


@pytest.mark.slow
def test_saturating_traces_rank_the_hard_bounded_family_first():
    # aimcjax's Capacitor preset (aihwkit's LinearStep on hard bounds, nearly constant steps):
    # the ramps reach w_max and sit on it for a third of each up ramp. Before the start scan
    # of the bounds and the nearly constant Piecewise start, SoftBounds ranked first (its
    # "bound" far above the plateau) and Piecewise(2) ended 1 800 log-likelihood units below
    # its maximum.
    dev = presets.capacitor()
    tr = simulate_traces(dev, 16, 2, 300, 2e-3, 0)
    report = fit(tr, ("softbounds", "piecewise2"), "additive")
    assert [c.family for c in report.ranking] == ["piecewise2", "softbounds"]
    assert report.ranking[0].converged
    # w_max is pinned by the plateau's reads on every device: it keeps its errors.
    assert np.isfinite(report.fits[("piecewise2", "additive")].per_device_se["w_max"]).all()
    est = report.params
    # The preset's values within 3 SE (a mean's SE includes the spread over these 16 sampled
    # devices). Piecewise nodes are normalised differently (the fit: 1 at the largest node;
    # the preset: 1.05, 0.95), so dw_min and dw_min_std are compared as what they describe:
    # the mean step at w = 0 and the noise's sd per pulse (dw_min_std x dw_min).
    assert abs(est["w_max"].value - dev.w_max) < 3 * est["w_max"].se, est["w_max"]
    fitted = report.device
    step, step_true = fitted.dw_min * float(fitted.F(0.0)), dev.dw_min * float(dev.F(0.0))
    assert abs(step / step_true - 1) < 3 * est["dw_min"].se / est["dw_min"].value
    rel_se = math.hypot(
        est["dw_min"].se / est["dw_min"].value, est["dw_min_std"].se / est["dw_min_std"].value
    )
    noise = est["dw_min"].value * est["dw_min_std"].value
    assert abs(noise / (dev.dw_min * dev.dw_min_std) - 1) < 3 * rel_se, noise
