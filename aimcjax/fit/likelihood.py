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
  - the state's law is taken Gaussian (a clipped Gaussian is not); this matters only for
    traces that sit on a hard bound.
The first read starts the filter: w_0 ~ N(r_0, sigma_r^2) (the first read is conditioned on).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

from aimcjax._typing import ArrayLike
from aimcjax.fit.families import Family

__all__ = ["clipped_moments", "trace_loglik"]

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
    read_var = read_sd**2

    def one_pulse(
        carry: tuple[Any, Any], inputs: tuple[jax.Array, jax.Array, jax.Array]
    ) -> tuple[tuple[Any, Any], jax.Array]:
        m, p = carry
        r, s, ok = inputs
        up = s > 0
        amp = jnp.where(up, step_up, step_down)
        sig = jnp.where(up, sigma_up, sigma_down)

        def directed(w: jax.Array) -> jax.Array:
            qp, qm = fam.response(shape, w, w_min, w_max)
            return jnp.where(up, qp, qm)

        f, df = jax.jvp(directed, (m,), (jnp.ones_like(m),))
        mu = s * amp * f
        gain = 1 + s * amp * df
        v_proc = (sig * amp) ** 2 * (multiplicative * (f**2 + df**2 * p) + (1 - multiplicative))
        var = jnp.maximum(gain**2 * p + v_proc, var_floor)
        if fam.bounded:
            m_pred, p_pred = clipped_moments(m + mu, var, jnp.where(up, w_max, w_min), s)
        else:
            m_pred, p_pred = m + mu, var
        total = jnp.maximum(p_pred + read_var, var_floor)
        innov = r - m_pred
        ll = -0.5 * (_LOG_2PI + jnp.log(total) + innov**2 / total)
        k = p_pred / total
        m_new = m_pred + k * innov
        p_new = p_pred * read_var / total
        return (jnp.where(ok, m_new, m), jnp.where(ok, p_new, p)), jnp.where(ok, ll, 0.0)

    s = direction.astype(reads.dtype)
    _, lls = jax.lax.scan(
        one_pulse, (reads[0], read_var * jnp.ones_like(reads[0])), (reads[1:], s, valid)
    )
    return jnp.sum(lls)
