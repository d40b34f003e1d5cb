"""Log-likelihood of one device's trace: an extended Kalman filter over the hidden weight.

Model (one pulse t, direction s = +-1, from hidden weight w):

    w' = clip(w + s*A_s*f_s(w) + noise, w_min, w_max),  read r = w' + e,  e ~ N(0, sigma_r^2)

with A_s the device's up/down step scale, f_s the family's response shape (see
:mod:`aimcjax.fit.families`) and the cycle-to-cycle noise of :mod:`aimcjax.pulse`:
additive ``sigma_s * A_s * xi`` (``sigma_s`` = dw_min_std/(1 +- c) per direction) or
multiplicative ``sigma * A_s * f_s(w) * xi``.

Why a filter: with read noise the weight before a pulse is not known, only read, and
consecutive step residuals share a read (r_t - r_{t-1} and r_{t+1} - r_t both contain e_t), so
they are negatively correlated. Treating steps as independent, or plugging the noisy read in
for w, biases the noise estimates (read noise counted twice as pulse noise) and, through
errors in the regressor, the response. The filter carries a Gaussian belief N(m, P) about
w and scores each read by its predictive density: for a linear response (SoftBounds,
ConstantStep, two-node Piecewise away from clipping) with additive noise this is the exact
likelihood of the Gaussian state-space model.

Approximations (documented bias):
  - the response is linearised around m (extended Kalman filter): the error is second order
    in sqrt(P) over the response's curvature scale, i.e. of order P*gamma/tau^2 relative to a
    step; P is at most a few read-noise variances, orders of magnitude below tau^2;
  - multiplicative noise's variance sigma^2 A^2 E[f(w)^2] uses f(m)^2 + f'(m)^2 P;
  - clipping at the bound pulsed towards is moment-matched (mean and variance of a Gaussian
    clipped at the bound), the far bound is ignored (a step crosses it only with noise of
    the order of the whole range);
  - the state's law is taken Gaussian (a clipped Gaussian is not). Measured against the exact
    likelihood (a grid over w with point masses at the bounds,
    ``tests/test_fit_likelihood_exact.py``): within 0.03 over 600 reads of a LinearStep trace
    with 37% of its reads on a hard bound, and within 0.1-0.3 for SoftBounds and Power; the
    largest error found is for very noisy soft bounds read precisely (cycle-to-cycle noise
    3.75x the step as in aihwkit's ReRamSB, read noise 0.6 step): -1.9 and -5.5 over 800
    reads (a point mass at the bound in the filter brought these to 0.1 and 0.6, but its
    information made Fisher scoring stall; not adopted).
The first read starts the filter: w_0 ~ N(r_0, sigma_r^2) (the first read is conditioned on).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

from aimcjax._typing import ArrayLike
from aimcjax.fit.families import Family

__all__ = [
    "FilterParams",
    "clipped_moments",
    "trace_loglik",
    "trace_loglik_terms",
    "trace_score_information",
]

_LOG_2PI = math.log(2 * math.pi)
_ONE_OVER_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def clipped_moments(
    mean: jax.Array, var: jax.Array, bound: ArrayLike, direction: ArrayLike
) -> tuple[jax.Array, jax.Array]:
    """Mean and variance of X ~ N(mean, var) clipped at ``bound`` on the side of ``direction``
    (+1: min(X, bound); -1: max(X, bound)), in forms that stay accurate in float32 far from
    the bound (they reduce to mean, var there)."""
    sd = jnp.sqrt(var)
    alpha = direction * (bound - mean) / sd  # distance to the bound in sds, > 0 inside
    tail = ndtr(-alpha)  # P(X beyond the bound)
    dens = _ONE_OVER_SQRT_2PI * jnp.exp(-0.5 * alpha**2)
    new_mean = mean - direction * sd * (dens - alpha * tail)
    rel_var = 1 - (alpha * dens - (alpha**2 - 1) * tail) - (alpha * tail - dens) ** 2
    return new_mean, var * jnp.clip(rel_var, 1e-6, 1.0)


class FilterParams(NamedTuple):
    """One device's model parameters in natural units (scalars; ``shape`` the family's
    shape values). Everything the filter differentiates: :func:`trace_score_information`
    takes tangents of this pytree.

    Attributes:
      step_up, step_down: the device's step scales A_+, A_-.
      w_min, w_max: its bounds (ignored by unbounded families).
      shape: the family's shared shape values.
      sigma_up, sigma_down: cycle-to-cycle noise per direction (equal for multiplicative).
      read_sd: std of a read.
    """

    step_up: Any
    step_down: Any
    w_min: Any
    w_max: Any
    shape: dict[str, Any]
    sigma_up: Any
    sigma_down: Any
    read_sd: Any


def _initial_belief(prm: FilterParams, first_read: jax.Array) -> tuple[jax.Array, jax.Array]:
    return first_read, prm.read_sd**2 * jnp.ones_like(first_read)


def _filter_step(
    fam: Family,
    multiplicative: ArrayLike,
    var_floor: ArrayLike,
    prm: FilterParams,
    m: jax.Array,
    p: jax.Array,
    inputs: tuple[jax.Array, jax.Array, jax.Array],
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """One pulse of the filter: belief N(m, p) before it -> (m', p', log-density of the
    read, innovation, its variance); an invalid pulse leaves the belief and scores 0."""
    r, s, ok = inputs
    up = s > 0
    amp = jnp.where(up, prm.step_up, prm.step_down)
    sig = jnp.where(up, prm.sigma_up, prm.sigma_down)

    def directed(w: jax.Array) -> jax.Array:
        qp, qm = fam.response(prm.shape, w, prm.w_min, prm.w_max)
        return jnp.where(up, qp, qm)

    f, df = jax.jvp(directed, (m,), (jnp.ones_like(m),))
    mu = s * amp * f
    gain = 1 + s * amp * df
    v_proc = (sig * amp) ** 2 * (multiplicative * (f**2 + df**2 * p) + (1 - multiplicative))
    var = jnp.maximum(gain**2 * p + v_proc, var_floor)
    if fam.bounded:
        m_pred, p_pred = clipped_moments(m + mu, var, jnp.where(up, prm.w_max, prm.w_min), s)
    else:
        m_pred, p_pred = m + mu, var
    read_var = prm.read_sd**2
    total = jnp.maximum(p_pred + read_var, var_floor)
    innov = r - m_pred
    ll = -0.5 * (_LOG_2PI + jnp.log(total) + innov**2 / total)
    k = p_pred / total
    m_new = m_pred + k * innov
    p_new = p_pred * read_var / total
    return (
        jnp.where(ok, m_new, m),
        jnp.where(ok, p_new, p),
        jnp.where(ok, ll, 0.0),
        jnp.where(ok, innov, 0.0),
        total,
    )


def _filter_outputs(
    fam: Family,
    multiplicative: ArrayLike,
    reads: jax.Array,
    direction: jax.Array,
    valid: jax.Array,
    prm: FilterParams,
    var_floor: ArrayLike,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The filter over one trace: per-pulse (log-density, innovation, its variance)."""

    def one_pulse(
        carry: tuple[jax.Array, jax.Array], inputs: tuple[jax.Array, jax.Array, jax.Array]
    ) -> tuple[tuple[jax.Array, jax.Array], tuple[jax.Array, jax.Array, jax.Array]]:
        m, p, ll, innov, total = _filter_step(fam, multiplicative, var_floor, prm, *carry, inputs)
        return (m, p), (ll, innov, total)

    s = direction.astype(reads.dtype)
    _, out = jax.lax.scan(one_pulse, _initial_belief(prm, reads[0]), (reads[1:], s, valid))
    return out


def trace_loglik_terms(
    fam: Family,
    multiplicative: ArrayLike,
    reads: jax.Array,
    direction: jax.Array,
    valid: jax.Array,
    prm: FilterParams,
    var_floor: ArrayLike,
) -> jax.Array:
    """Per-pulse log-densities (n_pulses,) of one device's reads after its first (0 where a
    pulse is not valid); see the module docstring. ``reads`` is (n_pulses + 1,),
    ``direction`` (n_pulses,) +-1, ``valid`` (n_pulses,) bool; ``multiplicative`` 1.0 for
    multiplicative noise, 0.0 for additive (a traced flag, so both modes share one compiled
    program); ``var_floor`` the smallest variance used (keeps a noise-free model finite)."""
    return _filter_outputs(fam, multiplicative, reads, direction, valid, prm, var_floor)[0]


def trace_loglik(
    fam: Family,
    multiplicative: ArrayLike,
    reads: jax.Array,
    direction: jax.Array,
    valid: jax.Array,
    step_up: ArrayLike,
    step_down: ArrayLike,
    w_min: ArrayLike,
    w_max: ArrayLike,
    shape: dict[str, Any],
    sigma_up: ArrayLike,
    sigma_down: ArrayLike,
    read_sd: ArrayLike,
    var_floor: ArrayLike,
) -> jax.Array:
    """Log-likelihood of one device's reads after its first (see the module docstring).

    Args:
      fam: the response family.
      multiplicative: 1.0 for multiplicative noise, 0.0 for additive (a traced flag, so both
        modes share one compiled program).
      reads: (n_pulses + 1,) reads; direction: (n_pulses,) +-1; valid: (n_pulses,) bool.
      step_up, step_down: the device's step scales A_+, A_-.
      w_min, w_max: its bounds (ignored by unbounded families).
      shape: the family's shared shape values.
      sigma_up, sigma_down: cycle-to-cycle noise per direction (equal for multiplicative).
      read_sd: std of a read.
      var_floor: smallest variance used (keeps a noise-free model finite).

    Returns:
      Scalar log-likelihood (sum over valid pulses).
    """
    prm = FilterParams(step_up, step_down, w_min, w_max, shape, sigma_up, sigma_down, read_sd)
    return jnp.sum(trace_loglik_terms(fam, multiplicative, reads, direction, valid, prm, var_floor))


def trace_score_information(
    fam: Family,
    multiplicative: ArrayLike,
    reads: jax.Array,
    direction: jax.Array,
    valid: jax.Array,
    prm: FilterParams,
    tangents: FilterParams,
    var_floor: ArrayLike,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-pulse log-densities, the scores and the Fisher information of n devices' traces,
    in one forward pass.

    ``reads`` (n, n_pulses + 1), ``direction`` and ``valid`` (n, n_pulses); every leaf of
    ``prm`` has a leading device axis (n, ...) and every leaf of ``tangents`` a leading axis
    of q directions before it (q, n, ...): the derivatives of the natural parameters with
    respect to q fitted unknowns. The filter carries the derivatives of its belief along all
    q directions (forward mode), so the score (the exact gradient of the summed
    log-densities) and the information come out of the same scan, without the reverse pass
    (which costs ~6 forward passes here). The direction axis is outermost so that inside
    the scan the device axis stays the contiguous vector axis (with the q directions
    innermost the pass ran ~4x slower on CPU).

    The information is the Gaussian state-space model's (Harvey 1989, eq. 3.4.69; Shumway &
    Stoffer, *Time Series Analysis*, 4th ed., sec. 6.3): with innovation v_t and its variance
    S_t,

        I = sum_t  dv_t dv_t^T / S_t + 1/2 dS_t dS_t^T / S_t^2,

    the observed information less terms proportional to v_t, whose expectation is 0. It is
    positive semi-definite at every point (Fisher scoring steps always ascend) and
    asymptotically equal to the observed information (the Laplace standard errors).

    Returns:
      (log-densities (n, n_pulses), scores (n, q), information (n, q, q)).
    """

    def outputs(prm: FilterParams) -> tuple[jax.Array, jax.Array, jax.Array]:
        def one(
            prm: FilterParams, reads: jax.Array, direction: jax.Array, valid: jax.Array
        ) -> tuple[jax.Array, jax.Array, jax.Array]:
            return _filter_outputs(fam, multiplicative, reads, direction, valid, prm, var_floor)

        return jax.vmap(one)(prm, reads, direction, valid)

    def along(tangent: FilterParams) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...]]:
        return jax.jvp(outputs, (prm,), (tangent,))

    (lls, _, total), (dll, dinnov, dtotal) = jax.vmap(along, out_axes=(None, 0))(tangents)
    ok = valid.astype(reads.dtype)
    a = dinnov * jnp.sqrt(ok / total)
    b = dtotal * (jnp.sqrt(0.5 * ok) / total)
    # One fused multiply-reduce per entry: a batched (n, q, T) x (n, T, q) dot with q ~ 5-10
    # ran ~3x slower than the whole forward pass on CPU.
    q = a.shape[0]
    info = jnp.stack(
        [jnp.stack([(a[i] * a[j] + b[i] * b[j]).sum(-1) for j in range(q)], -1) for i in range(q)],
        -2,
    )
    return lls, dll.sum(2).T, info
