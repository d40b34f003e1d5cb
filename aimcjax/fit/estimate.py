"""Maximum-likelihood fit of one response family to all devices of an array at once.

Unknowns: per device k the step scales and (bounded families) bounds, shared by the array
the response shape, the cycle-to-cycle noise and, unless the traces state it, the read noise.
The log-likelihood (:func:`aimcjax.fit.likelihood.trace_loglik`) is a sum over devices,
evaluated for all of them in one ``jax.vmap``. It is maximised by Fisher scoring: one
forward pass of the filter carries the derivatives of its belief along every unknown
(:func:`aimcjax.fit.likelihood.trace_score_information`) and gives each device's score and
Fisher information; Levenberg-Marquardt-damped scoring steps on that information, each kept
only where a plain forward pass confirms that the likelihood rose, start from moment-based
values (least squares of steps on reads per device and direction; read noise from the lag-1
autocovariance of the step residuals, which is -sigma_r^2). Two jitted programs per family
(the forward pass; the forward pass with derivatives) serve the whole fit; the loop around
them runs in Python.

Why scoring and not a gradient method: reverse-mode gradients of the 8 000-pulse scan cost
~6 forward passes each on a CPU and a quasi-Newton method needs tens of them, then 2p more
per Hessian by differences; the forward-mode pass costs about as much as one gradient and
gives the curvature with it, and scoring converges in a handful of steps (measured in
``benchmarks/bench_fit.py``).

Standard errors (Laplace): the inverse Fisher information at the optimum (asymptotically
the observed information's). Because devices only couple through the shared parameters, it
has an arrow structure: per-device blocks J_kk, couplings J_ks and the shared block J_ss;
it is inverted through the Schur complement M = J_ss - sum_k J_sk J_kk^-1 J_ks (cost linear
in the number of devices); the same structure gives the scoring steps.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from aimcjax.devices import NOISE_MODES
from aimcjax.fit.families import Family
from aimcjax.fit.families import family as get_family
from aimcjax.fit.likelihood import (
    FilterParams,
    trace_loglik_terms,
    trace_score_information,
)
from aimcjax.fit.traces import Traces

__all__ = ["FamilyFit", "device_param_names", "fit_family"]

# Unconstrained parameters (theta_d (n_devices, nd), theta_s (ns,)).
_Params: TypeAlias = tuple[jax.Array, jax.Array]
# Moment-based starting values: (scales (n_devices, nd), noise levels, read noise, typical
# step size).
_Moments: TypeAlias = tuple[np.ndarray, list[float], float, float]
# (C (n, nd, na) blocks J_kk^-1 J_ks, M^-1 (na, na)), see :func:`_arrow_solve`.
_Coupling: TypeAlias = tuple[np.ndarray, np.ndarray]


class FamilyFit(NamedTuple):
    """Result of fitting one family (per-device and shared estimates with Laplace SEs).

    Attributes:
      family: the :class:`~aimcjax.fit.families.Family`.
      noise: "additive" or "multiplicative".
      per_device: name -> (n_devices,) estimates (``step_up``, ``step_down``[, ``w_max``,
        ``w_min``]).
      per_device_se: name -> (n_devices,) standard errors.
      per_device_cov: (n_devices, p, p) covariance of the per-device estimates (natural units,
        order of ``per_device``).
      shared: name -> estimate (shape values, ``sigma_up``, ``sigma_down``, ``read_noise``).
      shared_se: name -> standard error (0 for a read noise given by the traces).
      loglik: maximised log-likelihood (the value at the last point plus the predicted gain
        of the remaining scoring step, 1/2 g' I^-1 g, once every parameter is within 1 SE).
      n_params: number of fitted parameters.
      n_obs: number of scored reads.
      aic, bic: 2k - 2 loglik, k log(n_obs) - 2 loglik.
      n_iter: Fisher-scoring steps taken.
      converged: the log-likelihood is finite and a further scoring step would move no
        estimate by more than 0.1 standard error, except on at most 32 devices whose
        remaining step (below 0.5 standard error) no longer raises their own
        log-likelihood by more than float32 can confirm; and the shared parameters'
        information is not singular (where it is, no standard error and so no step size
        can be judged: every SE is NaN).
      per_device_cross: (p, p) sum over device pairs k != l of the covariance of their
        estimates (natural units, order of ``per_device``). Devices' errors are correlated
        through the shared parameters (an error in gamma moves every device's bounds alike),
        which averaging over devices does not reduce: the standard error of a mean over
        devices needs it (see :func:`aimcjax.fit.population.population`).
    """

    family: Family
    noise: str
    per_device: dict
    per_device_se: dict
    per_device_cov: np.ndarray
    shared: dict
    shared_se: dict
    loglik: float
    n_params: int
    n_obs: int
    aic: float
    bic: float
    n_iter: int
    converged: bool
    per_device_cross: np.ndarray | None = None


def device_param_names(fam: Family) -> tuple[str, ...]:
    return ("step_up", "step_down", "w_max", "w_min") if fam.bounded else ("step_up", "step_down")


# -- starting values -----------------------------------------------------------------------------


def _line_fit(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row least-squares intercept and slope of y on x over ``mask``."""
    cnt = np.maximum(mask.sum(1), 1)
    mx = (x * mask).sum(1) / cnt
    my = (y * mask).sum(1) / cnt
    dx = (x - mx[:, None]) * mask
    sxx = (dx**2).sum(1)
    slope = np.where(sxx > 0, (dx * (y - my[:, None])).sum(1) / np.where(sxx > 0, sxx, 1), 0.0)
    return my - slope * mx, slope


def _starting_values(fam: Family, traces: Traces, noise: str) -> _Moments:
    """Per-device scales and shared noise levels from moments of the steps (numpy)."""
    reads, valid = traces.reads, traces.valid
    d = traces.direction
    x, dr = reads[:, :-1], np.diff(reads, axis=1)
    up, down = valid & (d > 0), valid & (d < 0)
    typical = np.median(np.abs(dr[valid])) + 1e-12
    lo_read, hi_read = reads.min(1), reads.max(1)
    span = np.maximum(hi_read - lo_read, typical)
    a_up, b_up = _line_fit(x, dr, up)
    a_dn, b_dn = _line_fit(x, dr, down)
    mean_up = np.array([dr[i, up[i]].mean() if up[i].any() else typical for i in range(len(dr))])
    mean_dn = np.array(
        [-dr[i, down[i]].mean() if down[i].any() else typical for i in range(len(dr))]
    )
    if fam.bounded:
        step_up = np.where(a_up > 0, a_up, np.abs(mean_up))
        step_dn = np.where(-a_dn > 0, -a_dn, np.abs(mean_dn))
        w_max = np.where(b_up < 0, -a_up / np.where(b_up < 0, b_up, -1), hi_read + span)
        w_min = np.where(b_dn < 0, a_dn / np.where(b_dn < 0, b_dn, -1) * -1, lo_read - span)
        # Bounds must lie beyond the reads (a soft bound is approached, never passed).
        w_max = np.clip(
            w_max, np.maximum(hi_read, 0) + 0.05 * span, np.maximum(hi_read, 0) + 10 * span
        )
        w_min = np.clip(
            w_min, np.minimum(lo_read, 0) - 10 * span, np.minimum(lo_read, 0) - 0.05 * span
        )
        if fam.cls.__name__ == "Piecewise":  # scale of the step at the shape's largest node
            step_up = step_up * (1 - w_min / w_max) * 1.5
            step_dn = step_dn * (1 - w_max / w_min) * 1.5
        fitted = np.where(
            d > 0, a_up[:, None] + b_up[:, None] * x, a_dn[:, None] + b_dn[:, None] * x
        )
        scales = np.stack([step_up, step_dn, w_max, -w_min], axis=1)
    else:
        step_up, step_dn = np.abs(mean_up), np.abs(mean_dn)
        fitted = np.where(d > 0, mean_up[:, None], -mean_dn[:, None])
        scales = np.stack([step_up, step_dn], axis=1)
    scales = np.maximum(scales, 1e-3 * typical)
    res = np.where(valid, dr - fitted, 0.0)
    var = (res**2).sum() / valid.sum()
    if traces.read_noise is None:
        read_var = float(np.clip(_read_variance(traces), 1e-4 * var, 0.45 * var))
    else:
        read_var = traces.read_noise**2
    proc_sd = math.sqrt(max(var - 2 * read_var, 1e-4 * var))
    if noise == "additive":
        sig = [proc_sd / np.mean(scales[:, 0]), proc_sd / np.mean(scales[:, 1])]
    else:
        sig = [proc_sd / np.mean(np.abs(dr[valid]))]
    return scales, sig, math.sqrt(read_var), typical


def _read_variance(traces: Traces) -> float:
    """Moment estimate of the read-noise variance from differences of consecutive steps.

    With reads r_t = w_t + e_t the steps are d_t = s_t + e_(t+1) - e_t. Differencing the
    steps once more removes a mean step that changes slowly with w (any response, a plateau
    on a hard bound), and for three consecutive pulses in one direction

        A = E[(d_(t+1) - d_t)^2]                 = 2 var_s + 6 var_r
        B = E[(d_(t+1) - d_t)(d_(t+2) - d_(t+1))] = -var_s - 4 var_r

    so var_r = -(A + 2B) / 2, whatever the process noise var_s (its average over the trace).
    The residuals of one line through all steps (used before) fail on traces that sit on a
    bound: their lag-1 autocovariance came out positive, the read noise at its floor
    (measured: e^-10 for 2e-3), and the fit from there ran it to 0, a local maximum ~1 700
    log-likelihood units below the one near the truth."""
    d, dr, ok = traces.direction, np.diff(traces.reads, axis=1), traces.valid
    same = ok[:, :-1] & ok[:, 1:] & (d[:, :-1] == d[:, 1:])
    dd = np.diff(dr, axis=1)
    triple = same[:, :-1] & same[:, 1:]
    if not same.any() or not triple.any():
        return 0.0
    a = float((dd[same] ** 2).mean())
    b = float((dd[:, :-1] * dd[:, 1:])[triple].mean())
    return -(a + 2 * b) / 2


# -- the likelihood in unconstrained parameters ----------------------------------------------------

# Shared parameter vector: the family's shape entries, then these three (always present, so
# both noise modes and a known or fitted read noise share one compiled program; an entry the
# model does not use has zero gradient and is left out of the Hessian).
_NOISE_ENTRIES = ("log_sigma_up", "log_sigma_down", "log_read_noise")


class _Settings(NamedTuple):
    """Traced settings of a fit (arrays, not static: one program serves them all)."""

    multiplicative: jax.Array  # 1.0 or 0.0
    read_known: jax.Array  # 1.0: use read_value; 0.0: fit log_read_noise
    read_value: jax.Array
    var_floor: jax.Array
    n_obs: jax.Array


# (scales (n, nd), reads (n, T + 1), direction (n, T), valid (n, T), bound caps (n, 2)) as jax
# arrays.
_Data: TypeAlias = tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]
# The compiled programs of a family: (z (n, nd + ns), data, settings) -> per-pulse
# log-densities (n, T); and -> (those, scores (n, nd + ns), information (n, nd + ns, nd + ns)).
_LoglikProgram: TypeAlias = Callable[[jax.Array, _Data, _Settings], jax.Array]
_ScoreProgram: TypeAlias = Callable[
    [jax.Array, _Data, _Settings], tuple[jax.Array, jax.Array, jax.Array]
]


def _read_range(traces: Traces) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(which reads count (n, T + 1): the first and those after valid pulses, each device's
    highest and lowest of them (n,))."""
    used = np.concatenate([np.ones((traces.n_devices, 1), bool), traces.valid], axis=1)
    return (
        used,
        np.where(used, traces.reads, -np.inf).max(1),
        np.where(used, traces.reads, np.inf).min(1),
    )


def _capped(theta_d: Any, far: Any, xp: Any) -> Any:
    """Per-device unconstrained values with the bounds' (columns 2, 3) capped at ``far``
    (n, 2), see :func:`_far_caps`."""
    if theta_d.shape[-1] <= 2:
        return theta_d
    return xp.concatenate([theta_d[..., :2], xp.minimum(theta_d[..., 2:], far)], axis=-1)


def _far_caps(traces: Traces, scales: np.ndarray) -> np.ndarray:
    """(n, 2) caps of the bounds' unconstrained values: w_max and -w_min at most _FAR_SPANS
    spans of the device's reads beyond them. A bound the traces do not reach (a Capacitor's
    nearly constant steps fitted by SoftBounds) runs off towards infinity, where the
    likelihood keeps rising by ever less (measured: w_min at -2.7e13, then NaN
    log-likelihoods). Capped, it stops where it changes a SoftBounds response over the reads
    by under 0.1% of a step, and is reported as not identified (zero information)."""
    _, hi, lo = _read_range(traces)
    span = np.maximum(hi - lo, 1e-12)
    edges = np.stack([np.maximum(hi, 0), -np.minimum(lo, 0)], axis=1) + _FAR_SPANS * span[:, None]
    if scales.shape[1] <= 2:
        return np.zeros((traces.n_devices, 2))
    return np.log(edges / scales[:, 2:])


def _natural(
    fam: Family,
    theta_d: jax.Array,
    theta_s: jax.Array,
    scales: jax.Array,
    far: jax.Array,
    settings: _Settings,
) -> tuple[dict[str, jax.Array], dict[str, Any], jax.Array, jax.Array, jax.Array]:
    """Unconstrained (per-device, shared) -> natural parameters."""
    nat = scales * jnp.exp(_capped(theta_d, far, jnp))
    out: dict[str, jax.Array] = {"step_up": nat[..., 0], "step_down": nat[..., 1]}
    if fam.bounded:
        out["w_max"], out["w_min"] = nat[..., 2], -nat[..., 3]
    k = fam.n_shape()
    shape = fam.shape_fn(theta_s[:k])
    sig_up = jnp.exp(theta_s[k])
    sig_down = jnp.where(settings.multiplicative > 0, sig_up, jnp.exp(theta_s[k + 1]))
    read_sd = jnp.where(settings.read_known > 0, settings.read_value, jnp.exp(theta_s[k + 2]))
    return out, shape, sig_up, sig_down, read_sd


def _filter_params(
    fam: Family, zk: jax.Array, nd: int, scales: jax.Array, far: jax.Array, settings: _Settings
) -> FilterParams:
    """One device's unconstrained parameters (its own, then the shared) -> the filter's."""
    dev, shape, s_up, s_dn, read_sd = _natural(fam, zk[:nd], zk[nd:], scales, far, settings)
    return FilterParams(
        dev["step_up"],
        dev["step_down"],
        dev.get("w_min", -jnp.inf),
        dev.get("w_max", jnp.inf),
        shape,
        s_up,
        s_dn,
        read_sd,
    )


@functools.lru_cache(maxsize=32)
def _programs(fam: Family) -> tuple[_LoglikProgram, _ScoreProgram]:
    """The two compiled programs of a family, for all devices at once (``z`` (n, nd + ns):
    every device carries its own copy of the shared entries, so per-device scores and
    information blocks come out; devices do not interact, see :func:`_arrow_solve`):

    - per-pulse log-densities (n, T);
    - per-pulse log-densities, per-device scores (n, p) and Fisher information (n, p, p)
      (forward mode along the p unknowns, see
      :func:`aimcjax.fit.likelihood.trace_score_information`).

    The log-densities come back per pulse so that the host sums them in float64: a float32
    total over millions of reads is coarser than the changes the line search compares."""

    def loglik_terms(z: jax.Array, data: _Data, settings: _Settings) -> jax.Array:
        nd = data[0].shape[1]

        def one(
            zk: jax.Array,
            scales: jax.Array,
            reads: jax.Array,
            direction: jax.Array,
            valid: jax.Array,
            far: jax.Array,
        ) -> jax.Array:
            prm = _filter_params(fam, zk, nd, scales, far, settings)
            return trace_loglik_terms(
                fam, settings.multiplicative, reads, direction, valid, prm, settings.var_floor
            )

        return jax.vmap(one)(z, *data)

    def score_information(
        z: jax.Array, data: _Data, settings: _Settings
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        nd = data[0].shape[1]

        def natural(zk: jax.Array, scales: jax.Array, far: jax.Array) -> FilterParams:
            return _filter_params(fam, zk, nd, scales, far, settings)

        # d(natural parameters)/d(unknowns) per device, the unknowns' axis first: (p, n, ...).
        jac = jax.vmap(jax.jacfwd(natural))(z, data[0], data[4])
        tangents = jax.tree.map(lambda j: jnp.moveaxis(j, -1, 0), jac)
        return trace_score_information(
            fam,
            settings.multiplicative,
            *data[1:4],
            jax.vmap(natural)(z, data[0], data[4]),
            tangents,
            settings.var_floor,
        )

    return jax.jit(loglik_terms), jax.jit(score_information)


# Float32 rounding in one device's summed log-density (8 000 reads: ~1e-3): differences
# below this are not evidence that a step made the device worse.
_LOGLIK_NOISE = 1e-2
# A fitted bound lies at most this many spans of its device's reads beyond them (see
# :func:`_far_caps`).
_FAR_SPANS = 1e3
# Start scan of the bounds (see :func:`_scan_bounds`): offsets from a device's extreme read,
# in read-noise sds (inward < 0) and in spans of its reads.
_SCAN_SDS = (-4, -3, -2, -1, 0, 1, 2, 4)
_SCAN_SPANS = (0.02, 0.1, 0.5, 2.0)
_SCAN_TIE = 0.5
# Reads within 2 read-noise sds of a Piecewise bound needed to call it pinned (see
# :func:`_unpinned_bounds`).
_MIN_AT_BOUND = 10
# Response ratio end to end of the nearly constant Piecewise start (see :func:`_bounded_start`).
_FLAT_RATIO = 0.9
# Fractions of a damped scoring step tried in turn (see :func:`_scoring`).
_STEP_FRACTIONS = (1.0, 0.3, 0.1)
# Undamped, unchecked scoring steps allowed near the optimum (see :func:`_scoring`).
_LOCAL_STEPS = 2
# At most this many devices are finished alone (see :func:`_polish_devices`).
_POLISH_DEVICES = 32
# A shared entry whose information (given the devices' parameters) is below this fraction of
# the largest one counts as not identified (see :func:`_arrow_solve`).
_FLAT = 1e-9
_POLISH_STEPS = 10
# A polished device whose remaining step no longer raises its float32 log-likelihood is
# taken as converged if that step is below this many standard errors.
_STUCK_TOL = 0.5
# The nuisance adjustment (see :func:`_nuisance_adjustment`) is applied only where it moves
# no shared parameter by more than this many standard errors.
_ADJUST_MAX_SE = 3.0


class _Objective:
    """The log-likelihood of stacked parameters through the family's two programs."""

    def __init__(self, fam: Family, data: _Data, settings: _Settings) -> None:
        self.programs, self.data, self.settings = _programs(fam), data, settings
        self.n_devices = int(data[1].shape[0])

    @staticmethod
    def stack(params: _Params) -> np.ndarray:
        theta_d, theta_s = (np.asarray(p, np.float64) for p in params)
        n = theta_d.shape[0]
        return np.concatenate([theta_d, np.broadcast_to(theta_s, (n, theta_s.size))], axis=1)

    def logliks(self, params: _Params) -> np.ndarray:
        """Per-device log-likelihoods (n,), float64."""
        return self.logliks_at(self.stack(params))

    def logliks_at(self, z: np.ndarray) -> np.ndarray:
        """Per-device log-likelihoods (n,), float64, at stacked parameters ``z``."""
        terms = self.programs[0](jnp.asarray(z, jnp.float32), self.data, self.settings)
        return np.asarray(terms, np.float64).sum(1)

    def subset(self, rows: np.ndarray) -> _Objective:
        """The same likelihood for the devices ``rows`` only."""
        sub = copy.copy(self)
        sub.data = tuple(x[rows] for x in self.data)  # type: ignore[assignment]
        sub.n_devices = len(rows)
        return sub

    def score_information(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(per-device log-likelihoods (n,), scores (n, p), Fisher information blocks
        (n, p, p)) as float64 at stacked parameters ``z``."""
        lls, score, info = self.programs[1](jnp.asarray(z, jnp.float32), self.data, self.settings)
        blocks = np.asarray(info, np.float64)
        return (
            np.asarray(lls, np.float64).sum(1),
            np.asarray(score, np.float64),
            (blocks + blocks.transpose(0, 2, 1)) / 2,
        )


def _information(
    objective: _Objective, params: _Params
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-device log-likelihoods (n,), scores (n, p), Fisher information blocks (n, p, p)),
    p = nd + ns, at ``params``."""
    return objective.score_information(objective.stack(params))


def _inverse(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of (a batch of) symmetric positive semi-definite matrices, and which of their
    entries are not identified (bool, ``m.shape[:-1]``).

    A singular matrix is inverted on the entries whose diagonal is not flat (above _FLAT of
    the largest): an entry the likelihood does not depend on (a bound capped at _FAR_BOUND,
    beyond which the response no longer changes) has a zero row and column in a positive
    semi-definite matrix, so the others' inverse is exact; it gets no scoring step and is
    flagged, so that its variance is reported as NaN (not identified) rather than the zero a
    pseudo-inverse would claim. Where that sub-block is singular too, the pseudo-inverse
    steps and every entry is flagged."""
    try:
        return np.linalg.inv(m), np.zeros(m.shape[:-1], bool)
    except np.linalg.LinAlgError:
        if m.ndim == 2:
            diag = np.abs(np.diagonal(m))
            keep = diag > _FLAT * np.max(diag, initial=0.0)
            inv = np.zeros_like(m)
            try:
                inv[np.ix_(keep, keep)] = np.linalg.inv(m[np.ix_(keep, keep)])
                return inv, ~keep
            except np.linalg.LinAlgError:
                return np.linalg.pinv(m, hermitian=True), np.ones(m.shape[0], bool)
        parts = [_inverse(one) for one in m]
        return np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts])


def _arrow_solve(
    info: np.ndarray, grads: np.ndarray, nd: int, active: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, _Coupling]:
    """Scoring step and covariance from per-device information blocks (arrow structure).

    Args:
      info: (n, nd + ns, nd + ns) per-device observed information (negative Hessians).
      grads: (n, nd + ns) per-device gradients of the log-likelihood.
      nd: per-device parameter count.
      active: (ns,) bool, the shared entries the model uses (others get step 0, variance 0).

    Returns:
      (step_d (n, nd), step_s (ns,), cov_d (n, nd, nd), cov_s (ns, ns), coupling) with
      ``coupling = (C, M^-1)``, C = (n, nd, na) blocks J_kk^-1 J_ks and M^-1 the covariance
      of the na active shared entries: devices k != l have Cov(theta_k, theta_l) =
      C_k M^-1 C_l^T.
    """
    ns = info.shape[1] - nd
    idx = np.flatnonzero(active)
    j_dd = info[:, :nd, :nd]
    j_ds = info[:, :nd, nd:][:, :, idx]
    j_ss = info[:, nd:, nd:][:, idx][:, :, idx].sum(0)
    g_d, g_s = grads[:, :nd], grads[:, nd:][:, idx].sum(0)
    inv_dd, bad_d = _inverse(j_dd)
    schur = j_ss - np.einsum("kda,kde,keb->ab", j_ds, inv_dd, j_ds)
    # A shared entry the likelihood is flat in (a noise level at its boundary, 0: traces
    # without that noise) is not identified: it gets no step and a NaN variance, and the
    # others are estimated given it (rather than the whole shared block going NaN).
    diag = np.abs(np.diagonal(schur))
    flat = diag <= _FLAT * np.max(diag, initial=0.0)
    keep = np.flatnonzero(~flat)
    cov_a = np.zeros_like(schur)
    cov_keep, bad_keep = _inverse(schur[np.ix_(keep, keep)])
    bad_a = bool(bad_keep.any())
    cov_a[np.ix_(keep, keep)] = cov_keep
    step_a = cov_a @ (g_s - np.einsum("kda,kde,ke->a", j_ds, inv_dd, g_d))
    step_d = np.einsum("kde,ke->kd", inv_dd, g_d - np.einsum("kda,a->kd", j_ds, step_a))
    coupled = np.einsum("kde,kea->kda", inv_dd, j_ds)
    cov_d = inv_dd + np.einsum("kda,ab,keb->kde", coupled, cov_a, coupled)
    step_s = np.zeros(ns)
    step_s[idx] = step_a
    # Not identified: NaN variances (a singular shared block leaves no device's marginal
    # variance defined either).
    if bad_a:
        cov_a = np.full_like(cov_a, np.nan)
        cov_d = np.full_like(cov_d, np.nan)
    cov_d[bad_d[:, :, None] | bad_d[:, None, :]] = np.nan
    cov_s = np.zeros((ns, ns))
    cov_s[np.ix_(idx, idx)] = cov_a
    cov_s[idx[flat], idx[flat]] = np.nan
    return step_d, step_s, cov_d, cov_s, (coupled, cov_a)


def _warm_start(
    fam: Family, noise: str, start: FamilyFit, moments: _Moments
) -> tuple[_Moments, list[float] | None]:
    """Starting values from a fit of a bounded family (typically SoftBounds): its devices'
    steps and bounds (Power starts at gamma = 1, which *is* SoftBounds; Exponential at a
    nearly linear gamma; Piecewise at linear nodes) and its noise levels where the noise
    model is the same."""
    scales, sig, read_sd, typical = moments
    pd = start.per_device
    if not (fam.bounded and start.family.bounded):
        return moments, None
    w_max, w_min = pd["w_max"], pd["w_min"]
    up, down = pd["step_up"], pd["step_down"]
    shape0 = None
    if fam.cls.__name__ == "Piecewise":
        # Linear response falling to (nearly) 0 at the far bound, scaled at the largest node.
        up, down = up * (1 - w_min / w_max), down * (1 - w_max / w_min)
        floor = 0.05
        ratio = np.linspace(1.0, floor, fam.n_nodes)
        drops = -np.log(ratio[1:] / ratio[:-1])
        b = np.log(np.expm1(drops))
        shape0 = list(b) + list(b[::-1])
    elif fam.cls.__name__ == "Exponential":
        shape0 = [math.log(0.3)]
    elif fam.cls.__name__ == "Power":
        shape0 = [0.0]
    scales = np.stack([up, down, w_max, -w_min], axis=1)
    if start.noise == noise:
        sh = start.shared
        sig = [sh["sigma_up"], sh["sigma_down"]] if noise == "additive" else [sh["sigma"]]
        read_sd = sh["read_noise"]
    return (scales, sig, read_sd, typical), shape0


def _scan_bounds(
    objective: _Objective, params: _Params, scales: np.ndarray, traces: Traces, read_sd: float
) -> tuple[_Params, float]:
    """Each device's bounds set to the best of a few candidates (the other parameters fixed),
    and the log-likelihood there.

    Where a trace sits on a hard bound the likelihood has a narrow peak at the bound (the
    plateau's reads pin it to ~ read_sd / sqrt(reads there)) and a second, broad optimum
    with the bound above the plateau (the plateau explained as slow steps): measured on a
    Capacitor trace, a valley 700 log-likelihood units deep between the two, which no
    scoring step crosses. Candidates: the device's extreme read offset by _SCAN_SDS read
    sds (the plateau lies ~2.4 sds inside the extreme of ~60 reads) and by _SCAN_SPANS
    spans of its reads (soft bounds, not reached), and the current value. The devices are
    independent given the shared values: one log-likelihood pass per candidate scores it
    for all of them."""
    theta_d, theta_s = np.asarray(params[0], np.float64).copy(), params[1]
    _, hi, lo = _read_range(traces)
    span = np.maximum(hi - lo, 1e-12)
    rows = np.arange(traces.n_devices)
    best_ll = objective.logliks(params)
    for col, edge, outward in ((2, hi, 1.0), (3, lo, -1.0)):
        offsets = [k * read_sd for k in _SCAN_SDS] + [f * span for f in _SCAN_SPANS]
        candidates = [theta_d[:, col]]
        for off in offsets:
            # Natural value outward * (edge + outward * off) > 0 (w_max > 0 > w_min).
            value = np.maximum(outward * edge + off, 1e-6 * span)
            candidates.append(np.log(value / scales[:, col]))
        lls = [best_ll]
        for cand in candidates[1:]:
            trial = theta_d.copy()
            trial[:, col] = cand
            lls.append(objective.logliks((jnp.asarray(trial, jnp.float32), theta_s)))
        # Of the candidates within _SCAN_TIE of the best, the farthest out: a bound the trace
        # does not reach leaves the likelihood flat beyond the extreme read, and one placed
        # at that read would sit on the kink where clipping starts (a small, meaningless
        # standard error).
        stacked = np.where(np.isfinite(lls), np.stack(lls), -np.inf)
        values = np.stack(candidates)
        near = stacked >= stacked.max(0) - _SCAN_TIE
        choice = np.argmax(np.where(near, values, -np.inf), axis=0)
        theta_d[:, col] = values[choice, rows]
        best_ll = np.stack(lls)[choice, rows]
    return (jnp.asarray(theta_d, jnp.float32), theta_s), float(best_ll.sum())


def _inner_steps(traces: Traces) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2) mean up and down step sizes of each device over the pulses from reads in the
    inner 80% of its range (away from where a trace may sit on a bound), and (2,) the
    standard deviation of those steps about their device's mean, per direction."""
    x, dr = traces.reads[:, :-1], np.diff(traces.reads, axis=1)
    _, hi, lo = _read_range(traces)
    hi, lo = hi[:, None], lo[:, None]
    inner = traces.valid & (x > lo + 0.1 * (hi - lo)) & (x < hi - 0.1 * (hi - lo))
    means, sds = [], []
    for sign in (1, -1):
        sel = inner & (traces.direction == sign)
        count = np.maximum(sel.sum(1), 1)
        mean = np.where(sel, sign * dr, 0.0).sum(1) / count
        dev = np.where(sel, sign * dr - mean[:, None], 0.0)
        sds.append(math.sqrt((dev**2).sum() / max(int(sel.sum()) - len(mean), 1)))
        means.append(np.maximum(mean, 1e-12))
    return np.stack(means, axis=1), np.array(sds)


def _bounded_starts(
    objective: _Objective,
    params: _Params,
    fam: Family,
    scales: np.ndarray,
    traces: Traces,
    read_sd: float,
) -> list[_Params]:
    """Starting points of a bounded family: the given one with its bounds
    scanned (:func:`_scan_bounds`); for Piecewise also a nearly constant response (node
    ratio _FLAT_RATIO: a LinearStep on hard bounds) with the mean steps away from the
    extremes and scanned bounds. Measured on aihwkit's EcRam traces: from SoftBounds' soft
    shape a Piecewise fit zig-zagged for 100 steps 2.7 log-likelihood units short of the
    maximum that the nearly constant start reached in 25; on Capacitor traces the soft start
    stopped 1 800 units short."""
    first, _ = _scan_bounds(objective, params, scales, traces, read_sd)
    if fam.cls.__name__ != "Piecewise":
        return [first]
    drop = math.log(math.expm1(-math.log(_FLAT_RATIO) / (fam.n_nodes - 1)))
    theta_s = np.asarray(params[1], np.float64).copy()
    theta_s[: fam.n_shape()] = drop
    # Step scales: the mean steps away from the device's extremes (a soft start's scales
    # belong to its own shape).
    theta_d = np.asarray(params[0], np.float64).copy()
    steps, step_sds = _inner_steps(traces)
    theta_d[:, :2] = np.log(steps / scales[:, :2])
    # Noise levels from the same steps (a read enters two steps: 2 read variances off); the
    # moments of all steps count a plateau's zero steps as noise.
    proc_sd = np.sqrt(np.maximum(step_sds**2 - 2 * read_sd**2, 1e-4 * step_sds**2))
    k = fam.n_shape()
    theta_s[k : k + 2] = np.log(proc_sd / steps.mean(0))
    flat, _ = _scan_bounds(
        objective,
        (jnp.asarray(theta_d, jnp.float32), jnp.asarray(theta_s, jnp.float32)),
        scales,
        traces,
        read_sd,
    )
    return [first, flat]


def fit_family(
    traces: Traces,
    family: str | Family = "softbounds",
    noise: str = "additive",
    *,
    max_iter: int = 100,
    tol: float = 0.1,
    start: FamilyFit | None = None,
    adjust: bool = True,
) -> FamilyFit:
    """Fit one response family to all devices of ``traces`` by maximum likelihood.

    Args:
      traces: :class:`~aimcjax.fit.traces.Traces`.
      family: a name (``constant``, ``softbounds``, ``power``, ``exp``, ``expstep``, ``piecewiseN``) or a
        :class:`~aimcjax.fit.families.Family`.
      noise: cycle-to-cycle noise model, "additive" or "multiplicative".
      max_iter: cap on the Fisher-scoring steps (Levenberg-Marquardt-damped, each kept only
        where it raises the likelihood).
      tol: stop when the next step would move no estimate by more than this many standard
        errors.
      start: a fit of a bounded family to the same traces to start from (see
        :func:`_warm_start`); default: moments of the steps.
      adjust: correct the shared parameters for the bias that fitting every device's own
        parameters leaves in them (one step on the Cox-Reid adjusted profile likelihood, see
        :func:`_nuisance_adjustment`); False gives the plain maximum-likelihood estimate.
        The log-likelihood, AIC and BIC are those of the maximum either way.

    Returns:
      :class:`FamilyFit`.

    Example:
      >>> from aimcjax.fit import simulate_traces
      >>> from aimcjax.devices import SoftBounds
      >>> tr = simulate_traces(SoftBounds(tau=0.6, dw_min=0.01, dw_min_std=0.2), 4, 2, 40, 1e-3, 0)
      >>> fit_family(tr, "softbounds").per_device["w_max"].shape
      (4,)
    """
    fam = get_family(family)
    if noise not in NOISE_MODES:
        raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
    if not isinstance(traces, Traces):
        raise TypeError(f"traces must be aimcjax.fit.Traces, got {type(traces).__name__}")
    moments = _starting_values(fam, traces, noise)
    shape0 = None
    if start is not None:
        moments, shape0 = _warm_start(fam, noise, start, moments)
    scales, sig, read_sd, typical = moments
    nd = scales.shape[1]
    far = _far_caps(traces, scales)
    multiplicative = noise == "multiplicative"
    read_known = traces.read_noise is not None
    theta_s0 = list(fam.shape_init if shape0 is None else shape0) + [
        math.log(sig[0]),
        math.log(sig[-1]),
        math.log(read_sd or typical),
    ]
    active = np.array([True] * fam.n_shape() + [True, not multiplicative, not read_known])
    settings = _Settings(
        jnp.float32(multiplicative),
        jnp.float32(read_known),
        jnp.float32(traces.read_noise or 0.0),
        jnp.float32((1e-3 * typical) ** 2),
        jnp.float32(traces.n_observations),
    )
    data = (
        jnp.asarray(scales, jnp.float32),
        jnp.asarray(traces.reads, jnp.float32),
        jnp.asarray(traces.direction, jnp.int8),
        jnp.asarray(traces.valid),
        jnp.asarray(far, jnp.float32),
    )
    params = (jnp.zeros((traces.n_devices, nd), jnp.float32), jnp.asarray(theta_s0, jnp.float32))
    objective = _Objective(fam, data, settings)
    starts = [params]
    if fam.bounded:
        starts = _bounded_starts(objective, params, fam, scales, traces, read_sd or typical)
    # From every start, the highest end kept: each start can end at its own local maximum.
    ends = [_scoring(objective, point, nd, active, int(max_iter), float(tol)) for point in starts]
    best = max(ends, key=lambda end: end[1] if np.isfinite(end[1]) else -np.inf)
    params, loglik, left, cov_d, cov_s, coupling, blocks, n_iter = best
    n_iter = sum(end[7] for end in ends)
    converged = bool(np.isfinite(loglik) and left < tol and _shared_identified(cov_s, active))
    if adjust:
        delta_d, delta_s = _nuisance_adjustment(objective, params, nd, active, coupling, blocks)
        params = (
            params[0] + jnp.asarray(delta_d, jnp.float32),
            params[1] + jnp.asarray(delta_s, jnp.float32),
        )
    theta_d, theta_s = (np.asarray(p, np.float64) for p in params)
    return _summarise(
        fam,
        noise,
        traces,
        theta_d,
        theta_s,
        scales,
        far,
        cov_d,
        cov_s,
        loglik,
        int(active.sum()) + theta_d.size,
        int(n_iter),
        converged,
        coupling,
    )


def _scoring(
    objective: _Objective,
    params: _Params,
    nd: int,
    active: np.ndarray,
    max_steps: int,
    tol: float,
    polish: bool = True,
) -> tuple[_Params, float, float, np.ndarray, np.ndarray, _Coupling, np.ndarray, int]:
    """Levenberg-Marquardt-damped Fisher-scoring steps on the arrow-structured information.

    Returns (params, loglik, remaining step in SEs, cov_d, cov_s, coupling, J_kk blocks,
    steps taken) at the last point; the covariances are the undamped inverse information
    there (the Laplace approximation)."""
    # Damping per device: devices only share the shared entries, and one device whose
    # likelihood is far from quadratic in its own parameters (a bound its trace never
    # approaches) must not hold back the others' steps.
    lam = np.full(objective.n_devices, 1e-4)
    left = np.inf
    taken = local = 0
    for it in range(max_steps + 1):
        device_ll, grads, info = _information(objective, params)
        step_d, step_s, cov_d, cov_s, coupling = _arrow_solve(info, grads, nd, active)
        per_device, shared_left = _steps_in_se(step_d, step_s, cov_d, cov_s, active)
        left = max(np.nanmax(per_device), shared_left)
        if it == max_steps or (np.isfinite(left) and left < tol):
            break
        todo = np.flatnonzero(~(per_device < tol))
        if polish and shared_left < tol and len(todo) <= _POLISH_DEVICES:
            # Only a few devices left (typically one whose likelihood in a bound its trace
            # barely approaches is far from quadratic, where scoring steps converge slowly):
            # finish them alone, the shared values fixed, then one full pass at the end.
            params, stuck = _polish_devices(objective, params, nd, todo, max_steps - it, tol)
            device_ll, grads, info = _information(objective, params)
            step_d, step_s, cov_d, cov_s, coupling = _arrow_solve(info, grads, nd, active)
            per_device, shared_left = _steps_in_se(step_d, step_s, cov_d, cov_s, active)
            # Devices the polish could not move further count as converged within
            # _STUCK_TOL (see FamilyFit.converged).
            rest = np.delete(per_device, stuck)
            left = max(shared_left, np.nanmax(rest, initial=0))
            stuck_left = np.nanmax(per_device[stuck], initial=0)
            if not stuck_left < _STUCK_TOL:
                left = max(left, float(stuck_left))
            taken += 1
            break
        # Within ~1 standard error of the optimum (the full step would gain less than one
        # log-likelihood unit: a Mahalanobis distance below sqrt(2)) the likelihood is
        # quadratic and its float32 value too coarse to check steps of ~0.01 SE: take the
        # undamped step (at most _LOCAL_STEPS times).
        gain = _predicted_gain(grads, step_d, step_s, nd)
        if np.isfinite(gain) and gain < 1.0 and local < _LOCAL_STEPS:
            local += 1
            moved = (
                params[0] + jnp.asarray(step_d, jnp.float32),
                params[1] + jnp.asarray(step_s, jnp.float32),
            )
            # Unchecked within float32's resolution only: a step that loses more (a
            # likelihood far from quadratic after all; measured on short saturating traces,
            # a read-noise level run off to e^100) falls through to the damped steps.
            new = objective.logliks(moved)
            if np.isfinite(new).all() and new.sum() >= device_ll.sum() - _LOGLIK_NOISE * len(new):
                params = moved
                taken += 1
                continue
        scale = np.abs(np.diagonal(info, axis1=1, axis2=2)) + 1e-12
        eye = np.eye(info.shape[1])
        for _ in range(10):
            damped = info + lam[:, None, None] * scale[:, :, None] * eye
            sd, ss, *_ = _arrow_solve(damped, grads, nd, active)
            worse = np.ones_like(lam, bool)
            if np.isfinite(sd).all() and np.isfinite(ss).all():
                # The damped step, then fractions of it: where the shared entries' likelihood
                # is far from quadratic (a Piecewise node on saturating traces, measured: the
                # full step lost 1 500 log-likelihood units, a tenth of it gained 1.6) every
                # device loses a little and raising their damping alone never ascends.
                for frac in _STEP_FRACTIONS:
                    moved = (
                        params[0] + jnp.asarray(frac * sd, jnp.float32),
                        params[1] + jnp.asarray(frac * ss, jnp.float32),
                    )
                    new = objective.logliks(moved)
                    if np.isfinite(new).all() and new.sum() > device_ll.sum():
                        break
                # A device is worse off beyond float32 noise in its summed log-density.
                worse = ~(new >= device_ll - _LOGLIK_NOISE)
                if np.isfinite(new).all() and new.sum() > device_ll.sum():
                    params = moved
                    lam = np.where(worse, lam * 10, np.maximum(lam / 10, 1e-8))
                    taken += 1
                    break
            lam = np.where(worse if worse.any() else True, lam * 10, lam)
        else:
            break  # no damping gives an ascent step: at the optimum within float32
    # The maximum, not the last point: the convergence rule leaves each parameter up to `tol`
    # SEs short, which could cost up to tol^2/2 per parameter -- up to 20 log-likelihood units
    # over the 4 000 parameters of 1 000 devices, more than BIC's penalty for one parameter
    # (measured there: 0.26, confirmed by refitting from the optimum, +0.02). Within the
    # quadratic region (every parameter within 1 SE of the optimum) the remaining gain is the
    # scoring step's predicted gain, 1/2 g' I^-1 g.
    loglik = float(device_ll.sum())
    gain = _predicted_gain(grads, step_d, step_s, nd)
    if left < 1 and np.isfinite(gain) and gain > 0:
        loglik += gain
    return params, loglik, left, cov_d, cov_s, coupling, info[:, :nd, :nd], taken


def _shared_identified(cov_s: np.ndarray, active: np.ndarray) -> bool:
    """Whether the shared block was invertible (:func:`_arrow_solve` marks a singular one
    all NaN; single flat entries alone)."""
    var = np.diagonal(cov_s)[active]
    return bool(var.size == 0 or np.isfinite(var).any())


def _steps_in_se(
    step_d: np.ndarray, step_s: np.ndarray, cov_d: np.ndarray, cov_s: np.ndarray, active: np.ndarray
) -> tuple[np.ndarray, float]:
    """The largest step of each device's parameters and of the shared ones, in standard
    errors (NaN entries -- not identified -- are ignored)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per_device = np.nanmax(
            np.abs(step_d) / np.sqrt(np.diagonal(cov_d, axis1=1, axis2=2)), axis=1
        )
        shared = np.nanmax(np.abs(step_s[active]) / np.sqrt(np.diagonal(cov_s)[active]), initial=0)
    return per_device, float(shared)


def _predicted_gain(grads: np.ndarray, step_d: np.ndarray, step_s: np.ndarray, nd: int) -> float:
    """Log-likelihood gain the scoring step (step_d, step_s) predicts: 1/2 g' step."""
    return 0.5 * (float(np.sum(grads[:, :nd] * step_d)) + float(grads[:, nd:].sum(0) @ step_s))


def _polish_devices(
    objective: _Objective, params: _Params, nd: int, todo: np.ndarray, max_steps: int, tol: float
) -> tuple[_Params, np.ndarray]:
    """Damped scoring steps of the devices ``todo`` alone (shared values fixed), each device
    kept where its own log-likelihood rises, until every step is below ``tol`` standard
    errors or _POLISH_STEPS steps. The devices run padded to _POLISH_DEVICES rows (one
    compiled shape), at a small fraction of a pass over the whole array.

    Returns (params, the devices of ``todo`` still moving at the end): their remaining steps
    (measured: up to ~0.3 SE) raise their own log-likelihood by less than its float32
    resolution allows to confirm."""
    z = objective.stack(params)
    rows = np.resize(todo, _POLISH_DEVICES)
    sub = objective.subset(rows)
    zs = z[rows]
    lam = np.full(len(rows), 1e-4)
    eye = np.eye(nd)
    moving = np.ones(len(rows), bool)
    for _ in range(min(max_steps, _POLISH_STEPS)):
        ll, grads, info = sub.score_information(zs)
        j_dd, g_d = info[:, :nd, :nd], grads[:, :nd]
        inv, bad = _inverse(j_dd)
        step = np.einsum("kde,ke->kd", inv, g_d)
        with np.errstate(divide="ignore", invalid="ignore"):
            left = np.abs(step) / np.sqrt(np.diagonal(inv, axis1=1, axis2=2))
        moving = ~bad.all(axis=1) & ~(np.nanmax(left, axis=1) < tol)
        if not moving.any():
            break
        scale = np.abs(np.diagonal(j_dd, axis1=1, axis2=2)) + 1e-12
        for _ in range(10):
            damped = j_dd + lam[:, None, None] * scale[:, :, None] * eye
            direction = np.where(
                moving[:, None], np.linalg.solve(damped, g_d[..., None])[..., 0], 0.0
            )
            trial = zs.copy()
            trial[:, :nd] += direction
            best_ll = sub.logliks_at(trial)
            best = np.where((moving & (best_ll > ll))[:, None], trial, zs)
            better = best_ll > ll
            lam = np.where(better, np.maximum(lam / 10, 1e-8), np.where(moving, lam * 10, lam))
            if better.any():
                zs = best
                break
        else:
            break  # no device gains at any damping: at their optimum within float32
    z[todo] = zs[: len(todo)]
    return (jnp.asarray(z[:, :nd], jnp.float32), params[1]), todo[moving[: len(todo)]]


def _device_blocks(objective: _Objective, z: np.ndarray, nd: int) -> np.ndarray:
    """Per-device information blocks J_kk (n, nd, nd) at stacked parameters ``z``."""
    return objective.score_information(z)[2][:, :nd, :nd]


def _nuisance_adjustment(
    objective: _Objective,
    params: _Params,
    nd: int,
    active: np.ndarray,
    coupling: _Coupling,
    blocks: np.ndarray,
    step: float = 1e-2,
) -> tuple[np.ndarray, np.ndarray]:
    """One Newton step of the shared parameters on the Cox-Reid adjusted profile likelihood.

    Every device brings its own parameters (steps, bounds), fitted from its own trace only:
    the maximum-likelihood estimates of the shared ones (noise levels, shape) then carry a
    bias of order (parameters per device) / (pulses per device), the same in every device,
    so it does not average out over devices while their standard errors shrink (measured:
    6 SoftBounds devices x 240 pulses, the cycle-to-cycle noise 4-5% low, ~1 standard error,
    and the read noise high; after this step within 0.3 standard error). The adjusted profile
    likelihood l_p(psi) - 1/2 sum_k log det J_kk(psi) removes the leading term (for a linear
    Gaussian model it is REML: variance / (n - p) instead of / n). At the maximum-likelihood
    point the profile score is 0, so the step is M^-1 (-d/dpsi 1/2 sum_k log det J_kk), each
    derivative a forward difference along the profile direction (the per-device parameters
    following psi: d theta_k / d psi = -C_k).

    Args:
      objective: the fit's objective.
      params: the maximum-likelihood point.
      nd: per-device parameter count.
      active: (ns,) bool, shared entries the model uses.
      coupling: ``(C, M^-1)`` from :func:`_arrow_solve` at ``params``.
      blocks: (n, nd, nd) per-device information blocks J_kk at ``params``.
      step: difference step (log units).

    Returns:
      (delta_d (n, nd), delta_s (ns,)) to add to the parameters (zeros where a block is not
      positive definite or the step exceeds _ADJUST_MAX_SE standard errors).
    """
    coupled, cov_a = coupling
    idx = np.flatnonzero(active)
    z0 = objective.stack(params)

    def half_logdet(j_kk: np.ndarray) -> float:
        sign, logdet = np.linalg.slogdet(j_kk)
        return 0.5 * float(np.where(sign > 0, logdet, np.nan).sum())

    base = half_logdet(blocks)
    slope = np.zeros(len(idx))
    for a, j in enumerate(idx):
        direction = np.zeros_like(z0)
        direction[:, nd + j] = 1.0
        direction[:, :nd] = -coupled[:, :, a]
        moved = _device_blocks(objective, z0 + step * direction, nd)
        slope[a] = (half_logdet(moved) - base) / step
    delta_a = cov_a @ -slope
    # The correction is of the order of a standard error (a bias of order p / T); a larger
    # step means the adjusted likelihood is far from quadratic here (measured: a Piecewise fit
    # to saturating EcRam traces whose nodes have gone flat, where the step moved a log-noise
    # level by ~8 000), so the maximum-likelihood point is kept.
    with np.errstate(divide="ignore", invalid="ignore"):
        in_se = np.abs(delta_a) / np.sqrt(np.diagonal(cov_a))
    if not np.all(np.isfinite(in_se[delta_a != 0]) & (in_se[delta_a != 0] <= _ADJUST_MAX_SE)):
        return np.zeros((z0.shape[0], nd)), np.zeros(params[1].shape[0])
    delta_s = np.zeros(params[1].shape[0])
    delta_s[idx] = delta_a
    delta_d = -np.einsum("kda,a->kd", coupled, delta_a)
    if not (np.isfinite(delta_a).all() and np.isfinite(delta_d).all()):
        return np.zeros_like(delta_d), np.zeros_like(delta_s)
    return delta_d, delta_s


def _unpinned_bounds(traces: Traces, per_device: dict, read_sd: float) -> np.ndarray:
    """(n, 2) bool: which hard bounds (w_max, w_min) of a Piecewise or ExpStep fit no run of
    reads pins.

    A Piecewise (ExpStep) response is not 0 at its bounds, so where a trace does not reach a bound the
    maximum puts it at the device's extreme read (a kink: clipping starts there; the exact
    likelihood agrees, measured +3 per device over the true bound). That is a lower limit of
    the bound, not an estimate: its Laplace error (~1e-3) means nothing. A bound counts as
    pinned where at least _MIN_AT_BOUND reads lie within 2 read-noise sds of it (a plateau:
    aihwkit's Capacitor traces hold ~70 per device at w_max; a ramp's turning point ~1-3)."""
    used = _read_range(traces)[0]
    width = 2 * max(read_sd, 1e-12)
    out = []
    for name in ("w_max", "w_min"):
        near = used & (np.abs(traces.reads - per_device[name][:, None]) <= width)
        out.append(near.sum(1) < _MIN_AT_BOUND)
    return np.stack(out, axis=1)


def _summarise(
    fam: Family,
    noise: str,
    traces: Traces,
    theta_d: np.ndarray,
    theta_s: np.ndarray,
    scales: np.ndarray,
    far: np.ndarray,
    cov_d: np.ndarray,
    cov_s: np.ndarray,
    loglik: float,
    n_params: int,
    n_iter: int,
    converged: bool,
    coupling: _Coupling | None = None,
) -> FamilyFit:
    """Natural-unit estimates and delta-method SEs from the unconstrained fit."""
    names = device_param_names(fam)
    nat = scales * np.exp(_capped(theta_d, far, np))
    sign = np.array([1, 1, 1, -1][: len(names)])
    # theta = log(|value| / scale): d value / d theta = value.
    jac = nat * sign
    per_device = {n: nat[:, i] * sign[i] for i, n in enumerate(names)}
    cov_nat = cov_d * jac[:, :, None] * jac[:, None, :]
    # Sum over device pairs k != l of Cov(value_k, value_l) = (J_k C_k) M^-1 (J_l C_l)^T:
    # all pairs, (sum_k J_k C_k) M^-1 (sum_k J_k C_k)^T, less the k = l terms.
    cross_nat = None
    if coupling is not None:
        coupled, cov_a = coupling
        c_nat = jac[:, :, None] * coupled
        total = c_nat.sum(0)
        cross_nat = total @ cov_a @ total.T - np.einsum("kda,ab,keb->de", c_nat, cov_a, c_nat)
    se_d = np.sqrt(
        np.where(
            np.diagonal(cov_nat, axis1=1, axis2=2) > 0,
            np.diagonal(cov_nat, axis1=1, axis2=2),
            np.nan,
        )
    )
    per_device_se = {n: se_d[:, i] for i, n in enumerate(names)}

    k = fam.n_shape()
    # Shape values are arrays, noise levels floats.
    shared: dict[str, float | np.ndarray] = {}
    shared_se: dict[str, float | np.ndarray] = {}
    var_s = np.diagonal(cov_s) if cov_s.size else np.zeros(0)
    sd_s = np.sqrt(np.where(var_s > 0, var_s, np.nan))
    if k:
        shape_fn = jax.jit(fam.shape_fn)
        values = shape_fn(jnp.asarray(theta_s[:k], jnp.float32))
        jac_shape = jax.jacfwd(fam.shape_fn)(jnp.asarray(theta_s[:k], jnp.float32))
        for name, value in values.items():
            value = np.asarray(value, np.float64)
            jm = np.asarray(jac_shape[name], np.float64).reshape(value.size, k)
            cov = jm @ cov_s[:k, :k] @ jm.T
            shared[name] = value
            shared_se[name] = np.sqrt(np.clip(np.diagonal(cov), 0, None)).reshape(value.shape)
    names = ("sigma_up", "sigma_down") if noise == "additive" else ("sigma",)
    for j, name in enumerate(names):
        shared[name] = float(np.exp(theta_s[k + j]))
        shared_se[name] = shared[name] * sd_s[k + j]
    if traces.read_noise is None:
        shared["read_noise"] = float(np.exp(theta_s[k + 2]))
        shared_se["read_noise"] = shared["read_noise"] * sd_s[k + 2]
    else:
        shared["read_noise"], shared_se["read_noise"] = float(traces.read_noise), 0.0
    if fam.clips:
        unpinned = _unpinned_bounds(traces, per_device, float(shared["read_noise"]))
        for j, name in ((2, "w_max"), (3, "w_min")):
            per_device_se[name] = np.where(unpinned[:, j - 2], np.nan, per_device_se[name])
            cov_nat[unpinned[:, j - 2], j, :] = np.nan
            cov_nat[unpinned[:, j - 2], :, j] = np.nan
    n_obs = traces.n_observations
    return FamilyFit(
        fam,
        noise,
        per_device,
        per_device_se,
        cov_nat,
        shared,
        shared_se,
        loglik,
        n_params,
        n_obs,
        2 * n_params - 2 * loglik,
        n_params * math.log(n_obs) - 2 * loglik,
        n_iter,
        converged,
        cross_nat,
    )
