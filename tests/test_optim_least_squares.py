"""Paper claims on least squares [RF]: Fig. 2 (per-sample pulse trains), the implicit
penalty of Analog SGD (Theorem 1), residual learning v2 under coarse granularity."""

import math

import numpy as np
import pytest

from aimcjax.app.experiments import least_squares as ls

# ------------------------------------------------------------------------------------------
# RF Fig. 2. Measured (seeds 0-2, 1000 steps, final = mean of the last 50 losses, loss = f/50):
# ASGD c=0 4.6e-3, c=.3 6.9e-2; TT c=0 6e-7, c=.2 0.28, c=.3 0.96; RL 6e-7 .. 3e-6 at every c,
# seed-to-seed spread below 30% of each value.
# The claims are separated by orders of magnitude; thresholds sit a decade inside them.


@pytest.fixture(scope="module")
def fig2():
    runs = {}
    for algorithm, c in [
        ("analog_sgd", 0.0),
        ("tiki_taka", 0.0),
        ("tiki_taka", 0.3),
        ("residual_learning", 0.3),
        ("analog_sgd", 0.3),
    ]:
        runs[algorithm, c] = ls.fig2_run(algorithm, c, steps=1000)["final_loss"]
    return runs


def test_fig2_tiki_taka_beats_analog_sgd_at_zero_asymmetry(fig2):
    assert fig2["tiki_taka", 0.0] < 0.1 * fig2["analog_sgd", 0.0]


def test_fig2_tiki_taka_fails_at_large_asymmetry(fig2):
    # Starting loss is ~1.0; failing = not even reaching Analog SGD's biased floor.
    assert fig2["tiki_taka", 0.3] > 0.1
    assert fig2["tiki_taka", 0.3] > fig2["analog_sgd", 0.3]


def test_fig2_residual_learning_converges_at_large_asymmetry(fig2):
    assert fig2["residual_learning", 0.3] < 1e-4
    assert fig2["residual_learning", 0.3] < 1e-2 * fig2["analog_sgd", 0.3]


@pytest.mark.slow
@pytest.mark.parametrize("c", [0.1, 0.2])
def test_fig2_residual_learning_converges_at_every_asymmetry(c):
    assert ls.fig2_run("residual_learning", c, steps=1000)["final_loss"] < 1e-4


def test_aihwkit_up_down_reparametrisation():
    """q+ = 1 - w/tau and q- = (1 - c)(1 + w/tau) in units of aihwkit's dw_min."""
    c, tau, dw = 0.3, 3.5, 1e-4
    dev = ls.aihwkit_soft_bounds(c, tau=tau, dw_min=dw)
    w = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(
        dev.dw_min * np.asarray(dev.q_plus(w)), dw * (1 - w / tau), rtol=1e-5
    )
    np.testing.assert_allclose(
        dev.dw_min * np.asarray(dev.q_minus(w)), dw * (1 - c) * (1 + w / tau), rtol=1e-5
    )


# ------------------------------------------------------------------------------------------
# Implicit penalty (RF Theorem 1)


@pytest.mark.parametrize("asymmetry", [0.0, 0.3])
def test_analog_sgd_settles_at_the_penalised_minimiser_not_argmin_f(asymmetry):
    r = ls.implicit_penalty(asymmetry=asymmetry, steps=25000, average_last=20000)
    # Tolerance from the variance of the time average. Around the rest point each direction
    # is an AR(1) process with per-step noise lr * s * xi, s^2 = noise_std^2 (F^2 + G^2), and
    # relaxation rate lr * lam, lam >= lam_min(A^T A / n) + Sigma_min * min (G/F)'. The mean
    # of K iterates then has variance s^2 / (lam^2 K) per coordinate, independent of lr;
    # over d coordinates the distance has std <= sqrt(d) s / (lam sqrt(K)). We allow 5 such
    # std (the O(lr) discretisation bias and the second-order effect of the fluctuations on
    # E|g| are far smaller at lr = 1e-3). For soft bounds with asymmetry a and tau = 1:
    # F = 1 - a w, G = w - a, (G/F)' = (1 - a^2) / (1 - a w)^2, bounded over the region
    # |w| <= w_max the iterates visit (rest point + 0.1 margin, about 4 fluctuation std).
    a, tau, K = asymmetry, r["tau"], r["average_last"]
    assert tau == 1.0
    d = len(r["w_star"])
    w_max = max(abs(w) for w in r["w_penalized"]) + 0.1
    s = r["noise_std"] * math.sqrt((1 + a * w_max) ** 2 + (w_max + a) ** 2)
    lam = min(r["hessian_eigenvalues"]) + min(r["sigma_abs"]) * (1 - a**2) / (1 + a * w_max) ** 2
    tol = 5 * math.sqrt(d) * s / (lam * math.sqrt(K))
    assert r["dist_analog_penalized"] < tol
    # ... and the penalty is no rounding error: W* is many tolerances away.
    assert r["dist_penalized_star"] > 5 * tol
    assert r["dist_analog_star"] > r["dist_penalized_star"] - tol


# ------------------------------------------------------------------------------------------
# Residual learning v2 vs v1 with coarse granularity and a noisy read


@pytest.mark.parametrize("seed", [0, 1])
def test_rl_v2_beats_v1_with_coarse_states_and_noisy_read(seed):
    # 40 states over [-1, 1] for both arrays, read noise std 0.05. Measured (seed 0): v1 2.6e-2,
    # v2 4.7e-3; we require v2 below half of v1.
    r = ls.granularity_v1_v2(states=40, read_noise=0.05, seed=seed)
    assert r["final_loss"]["v2"] < 0.5 * r["final_loss"]["v1"]
