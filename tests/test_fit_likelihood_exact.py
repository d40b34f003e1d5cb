"""The filter's log-likelihood against the exact one, computed on a grid.

The exact likelihood of a trace under the fit's model (pulse from w: w + s A f_s(w) + noise,
clipped to [w_min, w_max]; read = w + N(0, sigma_r^2)) is a forward recursion over the
weight's distribution: here on a fine grid of cells plus a point mass at each bound, in
float64, with the pulse's transition integrated exactly over each cell's edges. The filter
(:mod:`aimcjax.fit.likelihood`) approximates that distribution by one Gaussian (its clipped
part moment-matched), so it is checked where it claims to be accurate -- traces that sit on a
hard bound among them.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ndtr

from aimcjax import devices
from aimcjax.fit import simulate_traces
from aimcjax.fit.families import family
from aimcjax.fit.likelihood import trace_loglik


def _grid_loglik(fam, shape, reads, dirs, steps, bounds, sigmas, read_sd, mult, n_cells=3000):
    w_min, w_max = bounds
    edges = np.linspace(w_min, w_max, n_cells + 1)
    points = np.concatenate([[w_min], (edges[:-1] + edges[1:]) / 2, [w_max]])
    jshape = {k: jnp.asarray(v, jnp.float32) for k, v in shape.items()}
    qp, qm = fam.response(
        jshape, jnp.asarray(points, jnp.float32), jnp.float32(w_min), jnp.float32(w_max)
    )
    transition = {}
    for s, f, amp, sig in ((1, qp, steps[0], sigmas[0]), (-1, qm, steps[1], sigmas[1])):
        f = np.asarray(f, float)
        sd = np.broadcast_to(sig * amp * (np.abs(f) if mult else 1.0), points.shape)
        cdf = ndtr((edges[None, :] - (points + s * amp * f)[:, None]) / sd[:, None])
        # Columns: the mass clipped onto w_min, each cell, the mass clipped onto w_max.
        transition[s] = np.concatenate([cdf[:, :1], np.diff(cdf, axis=1), 1 - cdf[:, -1:]], 1)
    first = ndtr((edges - reads[0]) / read_sd)
    belief = np.concatenate([first[:1], np.diff(first), 1 - first[-1:]])
    total = 0.0
    for r, s in zip(reads[1:], dirs):
        belief = belief @ transition[int(s)]
        density = np.exp(-0.5 * ((r - points) / read_sd) ** 2) / (np.sqrt(2 * np.pi) * read_sd)
        z = belief @ density
        total += np.log(z)
        belief = belief * density / z
    return total


CASES = {
    # LinearStep on hard bounds, a third of the reads on a bound.
    "piecewise2-saturating-additive": (
        devices.Piecewise(
            up=(1.0, 0.8), down=(0.8, 1.0), dw_min=0.02, w_min=-1, w_max=1, dw_min_std=0.3
        ),
        "piecewise2",
        {"up": np.array([1.0, 0.8]), "down": np.array([0.8, 1.0])},
    ),
    "piecewise2-saturating-multiplicative": (
        devices.Piecewise(
            up=(1.0, 0.8),
            down=(0.8, 1.0),
            dw_min=0.02,
            w_min=-1,
            w_max=1,
            dw_min_std=0.3,
            noise="multiplicative",
        ),
        "piecewise2",
        {"up": np.array([1.0, 0.8]), "down": np.array([0.8, 1.0])},
    ),
    "softbounds-noisy": (
        devices.SoftBounds(tau=1.0, dw_min=0.02, dw_min_std=0.5),
        "softbounds",
        {},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_filter_matches_the_exact_likelihood(case):
    dev, name, shape = CASES[case]
    read_sd = 1e-2
    tr = simulate_traces(dev, 1, 2, 150, read_sd, 0)
    reads, dirs = np.asarray(tr.reads[0], float), np.asarray(tr.direction[0])
    # The fit's per-direction step scales: the response's own normalisation (Piecewise) or
    # the device's asymmetry (SoftBounds, here 0).
    steps = (dev.dw_min, dev.dw_min)
    mult = dev.noise == "multiplicative"
    sigmas = (dev.dw_min_std, dev.dw_min_std)
    fam = family(name)
    exact = _grid_loglik(
        fam, shape, reads, dirs, steps, (dev.w_min, dev.w_max), sigmas, read_sd, mult
    )
    f32 = jnp.float32
    filtered = float(
        trace_loglik(
            fam,
            f32(mult),
            jnp.asarray(reads, f32),
            jnp.asarray(dirs, jnp.int8),
            jnp.ones(dirs.size, bool),
            f32(steps[0]),
            f32(steps[1]),
            f32(dev.w_min),
            f32(dev.w_max),
            {k: jnp.asarray(v, f32) for k, v in shape.items()},
            f32(sigmas[0]),
            f32(sigmas[1]),
            f32(read_sd),
            f32(1e-12),
        )
    )
    # Measured: within 0.03 (Piecewise, 37% of the reads on a bound) and 0.06 (SoftBounds)
    # over 600 reads; 0.25 is well below the one log-likelihood unit model choice reads.
    assert abs(filtered - exact) < 0.25, (filtered, exact)
