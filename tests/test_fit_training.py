"""A fitted device trains like the true one: Analog SGD on a small least-squares problem
reaches the same loss (means over seeds agree within their standard errors), while a device
with a wrong response does not (the comparison can fail)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aimcjax import devices, optim, pulse
from aimcjax.fit import fit_family, population, simulate_traces, to_device

TRUE = devices.SoftBounds(
    tau=0.6,
    dw_min=0.01,
    asymmetry=0.3,
    dw_min_std=0.3,
    dw_min_dtod=0.1,
    w_max_dtod=0.1,
    w_min_dtod=0.1,
)
SEEDS = range(8)


@jax.jit
def _final_loss(device, seed):
    k_a, k_w = jax.random.split(jax.random.PRNGKey(100))
    a = jax.random.normal(k_a, (32, 8))
    b = a @ (0.3 * jax.random.normal(k_w, (8, 1)))

    def loss(w):
        return 0.5 * jnp.mean((a @ w - b) ** 2)

    opt = optim.analog_sgd(0.2, device, update=pulse.UpdateConfig(mode="pulse"), key=seed)
    w = jnp.zeros((8, 1))

    def step(carry, _):
        w, state = carry
        updates, state = opt.update(jax.grad(loss)(w), state, w)
        return (optax.apply_updates(w, updates), state), None

    (w, _), _ = jax.lax.scan(step, (w, opt.init(w)), None, length=150)
    return loss(w)


def _losses(device):
    return np.array([float(_final_loss(device, s)) for s in SEEDS])


@pytest.mark.slow
def test_training_with_the_fitted_device_matches_the_true_one():
    traces = simulate_traces(TRUE, 6, 2, 60, 2e-3, 7)._replace(read_noise=None)
    fitted_fit = fit_family(traces, "softbounds", "additive")
    fitted = to_device(fitted_fit, population(fitted_fit, traces))
    true, got = _losses(TRUE), _losses(fitted)
    tol = 3 * np.sqrt(true.var(ddof=1) / len(true) + got.var(ddof=1) / len(got))
    assert abs(true.mean() - got.mean()) < tol, (true.mean(), got.mean(), tol)
    # The check has power: a device with a much stronger asymmetry (symmetric point moved
    # from 0.18 to 0.42) trains to a different loss.
    wrong = _losses(fitted.replace(asymmetry=0.7))
    tol_wrong = 3 * np.sqrt(true.var(ddof=1) / len(true) + wrong.var(ddof=1) / len(wrong))
    assert abs(true.mean() - wrong.mean()) > tol_wrong, (true.mean(), wrong.mean(), tol_wrong)
