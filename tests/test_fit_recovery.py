"""Parameter recovery by aimcjax.fit: estimates cover the truth at the rate their standard
errors claim (checked over seeds, with the variance of the coverage fraction taken from the
seeds, not a hand-picked tolerance), and model choice ranks the true family first.

Data: 6 devices x 2x60-pulse ramps; 2 cycles for the families without a shape parameter,
``SHAPE_CYCLES`` for those with one (Power, Exponential, Piecewise). Why more there: with 2
cycles the likelihood of gamma and the bounds (which trade off along a curved valley) is far
from quadratic and the maximum-likelihood gamma comes out ~10% low, about 1 standard error
(measured over 16 seeds: Power 1.77 for 2.0; at 8 cycles 1.993 ± 0.036, Exponential 1.983 ±
0.040), so Laplace errors do not yet hold there. Piecewise: 2 cycles of 2x``SATURATING_PULSES``
ramps that reach its hard bounds and sit on them, for the plateau's reads pin a bound. At 2x60
pulses the plateaus are too short (measured, 12 seeds: 23 of 348 errors NaN -- a bound with
under 10 reads near it -- and 84% within 1.96 SE); where traces never reach a bound it is not
identified at all (test_unreached_piecewise_bounds_are_reported_as_limits). Each family
compiles once per data shape."""

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from aimcjax import devices
from aimcjax.devices import presets
from aimcjax.fit import (
    fit,
    fit_family,
    format_report,
    make_traces,
    population,
    ramp_directions,
    simulate_directions,
    simulate_traces,
    to_device,
)
from aimcjax.fit.estimate import _read_range
from aimcjax.fit.families import family
from aimcjax.fit.population import Estimate

N_DEVICES, N_CYCLES, PULSES = 6, 2, 60
SHAPE_CYCLES = 8
SATURATING_PULSES = 200
SEEDS = range(12)
D2D = dict(dw_min_dtod=0.15, up_down_dtod=0.05, w_max_dtod=0.1, w_min_dtod=0.1)


def _simulate(dev, seed, read_noise, known_read_noise, n_cycles=N_CYCLES, pulses=PULSES):
    dirs = ramp_directions(n_cycles, pulses)
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
    if isinstance(dev, devices.ExpStep):  # at aihwkit's default a, b (the fit's)
        up_norm, down_norm = (float(x) for x in dev._scales())
        shared |= {n: getattr(dev, n) for n in ("A_up", "A_down", "gamma_up", "gamma_down")}
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


def _nominal(dev, name):
    """A nominal parameter in the fit's terms: the fit's dw_min is the mean of the up and
    down step scales, where the response shape is 1 -- for Piecewise at the largest nodes
    (the device's dw_min times the mean of the up and down end nodes), for ExpStep where
    the exponential term vanishes (times the mean of up_down's direction scales)."""
    value = getattr(dev, name)
    if name == "dw_min" and isinstance(dev, devices.Piecewise):
        value *= (dev.up[0] + dev.down[-1]) / 2
    if name == "dw_min" and isinstance(dev, devices.ExpStep):
        value *= float(sum(dev._scales())) / 2
    return value


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


def _saturating(up, down, bound=0.25, **kw):
    """A Piecewise device on hard bounds that 2x200-pulse ramps from 0 reach and sit on
    (mean step ~0.01: ~25 pulses to a bound, then ~175 on it)."""
    params = dict(dw_min=0.01, dw_min_std=0.3, **D2D) | kw
    return devices.Piecewise(up=up, down=down, w_min=-bound, w_max=bound, **params)


# name -> (true device, family fitted, read noise, read noise known to the fit, cycles[, pulses
# per ramp])
CASES = {
    "constant-c2c-d2d": (
        devices.ConstantStep(dw_min=0.01, asymmetry=0.1, dw_min_std=0.5, **D2D),
        "constant",
        2e-3,
        True,
        N_CYCLES,
    ),
    "constant-no-c2c-no-d2d": (
        devices.ConstantStep(dw_min=0.01, asymmetry=-0.1),
        "constant",
        2e-3,
        False,
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
    "power-mult-no-d2d": (
        devices.Power(tau=0.6, gamma=2.0, dw_min=0.01, dw_min_std=0.3, noise="multiplicative"),
        "power",
        2e-3,
        False,
        SHAPE_CYCLES,
    ),
    "exp-no-c2c-d2d": (
        devices.Exponential(tau=0.6, gamma=2.0, dw_min=0.01, **D2D),
        "exp",
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
    # Piecewise: traces that reach the hard bounds and sit on them (what pins a bound, see
    # test_unreached_piecewise_bounds_are_reported_as_limits for traces that do not).
    "piecewise2-c2c-d2d": (
        _saturating((1.05, 0.9), (0.9, 1.05)),
        "piecewise2",
        2e-3,
        False,
        N_CYCLES,
        SATURATING_PULSES,
    ),
    "piecewise2-no-c2c-d2d": (
        _saturating((1.05, 0.9), (0.9, 1.05), dw_min_std=0.0),
        "piecewise2",
        2e-3,
        False,
        N_CYCLES,
        SATURATING_PULSES,
    ),
    "piecewise2-mult-no-d2d": (
        devices.Piecewise(
            up=(1.05, 0.9),
            down=(0.8, 1.0),
            w_min=-0.25,
            w_max=0.25,
            dw_min=0.01,
            dw_min_std=0.3,
            noise="multiplicative",
        ),
        "piecewise2",
        2e-3,
        False,
        N_CYCLES,
        SATURATING_PULSES,
    ),
    "piecewise3-c2c-d2d": (
        _saturating((1.3, 0.8, 0.4), (0.4, 0.8, 1.3), bound=0.3),
        "piecewise3",
        2e-3,
        False,
        N_CYCLES,
        SATURATING_PULSES,
    ),
    # aihwkit's ExpStep on hard bounds that the ramps reach; the fit holds a, b at aihwkit's
    # defaults (see aimcjax.fit.families), as these devices do. A response that falls by a
    # factor ~14 across the range: with aihwkit's default shape the up response stays within
    # 0.1% of 1 over the lower half of the range and A_up (8e-4) is determined only to its
    # order of magnitude (measured: SE ~ value, natural-scale z down to -20), so the default
    # shape is tested without variation and with multiplicative noise, where it holds.
    "expstep-c2c-d2d": (
        devices.ExpStep(
            A_up=0.05,
            gamma_up=5.4,
            A_down=0.7,
            gamma_down=5.4,
            w_min=-0.25,
            w_max=0.25,
            dw_min=0.01,
            dw_min_std=0.3,
            **D2D,
        ),
        "expstep",
        2e-3,
        False,
        N_CYCLES,
        SATURATING_PULSES,
    ),
    "expstep-mult-no-d2d": (
        devices.ExpStep(
            w_min=-0.25,
            w_max=0.25,
            dw_min=0.01,
            dw_min_std=0.3,
            up_down=0.1,
            noise="multiplicative",
        ),
        "expstep",
        2e-3,
        False,
        N_CYCLES,
        SATURATING_PULSES,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    list(CASES),
)
def test_estimates_cover_the_truth_at_the_claimed_rate(case):
    dev, fam, read_noise, known, cycles, *pulses = CASES[case]
    z, z_mean = [], []
    for seed in SEEDS:
        tr, t = _simulate(dev, seed, read_noise, known, cycles, *pulses)
        fitted = fit_family(tr, fam, dev.noise)
        per, shared = _truth(dev, t)
        z.append(_z_scores(fitted, per, shared, read_noise))
        # Nominal values: a mean over devices (SE: spread over devices and the estimation
        # error they share), a t statistic.
        est = population(fitted, tr)
        names = ["dw_min"] + (["w_max", "w_min"] if fitted.family.bounded else [])
        z_mean.append([(est[n].value - _nominal(dev, n)) / est[n].se for n in names])
    _check_coverage(z)
    _check_coverage(z_mean, crit=stats.t.ppf(0.975, N_DEVICES - 1))


@pytest.mark.slow
def test_unreached_piecewise_bounds_are_reported_as_limits():
    # Hard bounds the traces do not reach (reads up to ~0.4 of bounds at +-0.6; the response
    # is 0.2 of its scale there, not 0). Not identified: on the reads a two-node Piecewise is
    # a line, the same as SoftBounds' with its bound where the line reaches 0, and the
    # maximum puts each bound where clipping would start, near the extreme read (an
    # endpoint-type estimate, not a regular one; the exact grid likelihood agrees: +3.2 and
    # +3.3 over the truth on two devices). Measured over these 12 seeds: every step and node
    # estimate biased by 4-9 of its conditional errors, bounds 0.22 inside the truth. What
    # the data do determine, and what the fit must get right, is the response over the reads.
    dev = devices.Piecewise(
        up=(1.3, 0.2), down=(0.2, 1.3), w_min=-0.6, w_max=0.6, dw_min=0.01, dw_min_std=0.3, **D2D
    )
    fam = family("piecewise2")
    rel_err = []
    for seed in SEEDS:
        tr, t = _simulate(dev, seed, 2e-3, False)
        fitted = fit_family(tr, fam)
        per, shared = _truth(dev, t)
        _, hi, lo = _read_range(tr)
        # Every bound flagged as not estimated.
        for name in ("w_max", "w_min"):
            assert np.isnan(fitted.per_device_se[name]).all(), (seed, name)
        row = []
        for q in (0.1, 0.5, 0.9):  # inside each device's reads
            w = jnp.asarray(lo + q * (hi - lo))
            got = fam.response(
                {k: jnp.asarray(fitted.shared[k]) for k in ("up", "down")},
                w,
                fitted.per_device["w_min"],
                fitted.per_device["w_max"],
            )
            true = fam.response(
                {k: jnp.asarray(shared[k]) for k in ("up", "down")}, w, per["w_min"], per["w_max"]
            )
            for step, f_got, f_true in zip(("step_up", "step_down"), got, true):
                ratio = fitted.per_device[step] * f_got / (per[step] * f_true)
                row.append(float(np.mean(ratio)) - 1)
        rel_err.append(row)
    # The mean step at three weights and in both directions unbiased over seeds: a t test per
    # point, Bonferroni over the 6 at 1% (measured: errors of 0.4-1.7% sd per seed, largest
    # t 2.9).
    err = np.array(rel_err)
    t_stat = err.mean(0) / (err.std(0, ddof=1) / math.sqrt(len(err)))
    crit = stats.t.ppf(1 - 0.01 / (2 * err.shape[1]), len(err) - 1)
    assert np.all(np.abs(t_stat) < crit), (np.round(err.mean(0), 4), np.round(t_stat, 2))
    # The report says which bounds are not reached and what that means for the rest.
    text = format_report(fit(tr, ("piecewise2",), "additive"))
    assert "the traces do not reach w_max on 6 of 6 devices, w_min on 6 of 6" in text
    assert "conditional" in text


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
        # Against every bounded family (measured: Power +91, Piecewise(2) +102 in BIC).
        (CASES["expstep-c2c-d2d"][0], ("expstep", "additive")),
        # Exponential and Power shapes are close: at 8 cycles Exponential ranked first on 5 of
        # 5 seeds measured, but Power only 0.5-2.2 behind in BIC (SoftBounds 700-800).
        (CASES["exp-c2c-d2d"][0], ("exp", "additive")),
        # The family only: at this size additive and multiplicative noise on constant steps
        # differ by 1-10 in BIC either way (measured, 2 seeds).
        (CASES["constant-c2c-d2d"][0], ("constant", None)),
    ],
)
def test_the_true_family_and_noise_model_rank_first(dev, best):
    if isinstance(dev, devices.ExpStep):
        tr, _ = _simulate(dev, 101, 2e-3, False, pulses=SATURATING_PULSES)
        report = fit(tr, ("softbounds", "power", "exp", "piecewise2", "expstep"), "additive")
    else:
        cycles = SHAPE_CYCLES if isinstance(dev, devices.Exponential) else N_CYCLES
        tr, _ = _simulate(dev, 101, 2e-3, False, cycles)
        report = fit(tr, ("constant", "softbounds", "power", "exp"))
    top = report.ranking[0]
    if best[1] is None:
        best = (best[0], top.noise)
    assert (top.family, top.noise) == best, [
        (c.family, c.noise, round(c.delta, 1)) for c in report.ranking
    ]
    assert type(report.device) is type(dev) and report.device.noise == best[1]


@pytest.mark.parametrize("asymmetry", [0.1, -0.2])
def test_a_fitted_expstep_takes_the_fitted_up_and_down_steps(asymmetry):
    # The fit's imbalance is relative (up (1 + c), down (1 - c)); aihwkit's ExpStep reduces
    # one direction by |up_down| instead: the device must step as the fit says.
    c = asymmetry
    params = {
        n: Estimate(v, 0.0)
        for n, v in dict(
            dw_min=0.01,
            asymmetry=c,
            w_max=0.3,
            w_min=-0.25,
            dw_min_dtod=0.1,
            up_down_dtod=0.0,
            w_max_dtod=0.0,
            w_min_dtod=0.0,
            dw_min_std=0.2,
            A_up=0.05,
            A_down=0.7,
            gamma_up=5.0,
            gamma_down=6.0,
        ).items()
    }
    fitted = fit_family(simulate_traces(CASES["expstep-c2c-d2d"][0], 2, 1, 20, 1e-3, 0), "expstep")
    dev = to_device(fitted, params)
    assert isinstance(dev, devices.ExpStep)
    w = jnp.linspace(-0.24, 0.29, 7)  # inside: Family.response keeps w 1e-6 off a bound
    got_up, got_down = dev.response(w, dev.w_min, dev.w_max)
    shape = {n: params[n].value for n in ("A_up", "A_down", "gamma_up", "gamma_down")}
    f_up, f_down = family("expstep").response(shape, w, -0.25, 0.3)
    np.testing.assert_allclose(dev.dw_min * got_up, 0.01 * (1 + c) * f_up, rtol=1e-6)
    np.testing.assert_allclose(dev.dw_min * got_down, 0.01 * (1 - c) * f_down, rtol=1e-6)
    assert (dev.A_up, dev.gamma_down, dev.dw_min_std) == (0.05, 6.0, 0.2)


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
