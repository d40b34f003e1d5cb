"""Shared helpers of the optimizer tests: a small least-squares problem with per-sample factors,
a jitted training loop, and one factory per analog algorithm (the contract table's rows)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from aimcjax import devices as D
from aimcjax import optim, pulse, tile

# A device with every kind of variation, so that keys, references and noise all matter.
DEV = D.SoftBounds(tau=0.6, asymmetry=0.3, dw_min_dtod=0.2, up_down_dtod=0.05, reference_std=0.05)
A = jax.random.normal(jax.random.PRNGKey(0), (20, 6))


def small_params():
    """An analog kernel "w" (6, 3) and a digital bias "b" (3,)."""
    return {"w": jnp.zeros((6, 3)), "b": jnp.zeros(3)}


def ls_loss(p):
    return jnp.mean((A @ p["w"] + p["b"] - 1.0) ** 2)


def ls_grads_and_factors(p):
    """Gradient of :func:`ls_loss` and the per-sample factors (x, d) of its kernel, so that
    grads["w"] = x^T d exactly as "outer" mode requires."""
    out = A @ p["w"] + p["b"]
    d = 2.0 * (out - 1.0) / out.size
    return {"w": A.T @ d, "b": jnp.sum(d, axis=0)}, {"w": (A, d), "b": None}


def train(opt, steps=12, outer=False, params=None, state=None):
    """``steps`` jitted updates on :func:`ls_loss`; returns ``(params, state)``."""
    p0 = small_params() if params is None else params

    def go(p, s):
        def step(c, _):
            p, s = c
            g, f = ls_grads_and_factors(p)
            u, s = opt.update(g, s, p, **({"factors": f} if outer else {}))
            return (optax.apply_updates(p, u), s), None

        (p, s), _ = jax.lax.scan(step, (p, s), None, length=steps)
        return p, s

    return jax.jit(go)(p0, opt.init(p0) if state is None else state)


def visible_weights(state, gamma=0.0):
    """The visible weights of an :class:`aimcjax.optim.AnalogState` (no choppers)."""
    ws = [
        jax.tree.map(tile.weights, t, is_leaf=lambda n: isinstance(n, tile.Tile))
        for t in state.tiles
    ]
    return jax.tree.map(lambda *w: sum(gamma**k * wk for k, wk in enumerate(w)), *ws)


# name -> factory(update, key, lr=0.1): every analog algorithm, small and quick, transfers every step.
ALGORITHMS = {
    "analog_sgd": lambda u, key, lr=0.1: optim.analog_sgd(lr, DEV, update=u, key=key),
    "residual_learning": lambda u, key, lr=0.1: optim.residual_learning(
        lr, 0.3, DEV, gamma=0.4, update=u, key=key
    ),
    "residual_learning_v2": lambda u, key, lr=0.1: optim.residual_learning(
        lr, 0.3, DEV, gamma=0.4, version=2, update=u, key=key
    ),
    "tiki_taka": lambda u, key, lr=0.1: optim.tiki_taka(lr, 0.5, DEV, gamma=0.2, update=u, key=key),
    "ttv2": lambda u, key, lr=0.1: optim.ttv2(lr, 0.5, DEV, update=u, key=key),
    "chopped_ttv2": lambda u, key, lr=0.1: optim.chopped_ttv2(
        lr, 0.5, DEV, gamma=0.3, in_chop_prob=0.5, update=u, key=key
    ),
    "agad": lambda u, key, lr=0.1: optim.agad(
        lr, 0.5, DEV, in_chop_prob=0.5, transfer="full", update=u, key=key
    ),
    "multi_tile_residual": lambda u, key, lr=0.1: optim.multi_tile_residual(
        lr, (0.3, 0.5), DEV, gamma=0.2, n_tiles=3, update=u, key=key
    ),
    "mixed_precision": lambda u, key, lr=0.1: optim.mixed_precision(lr, DEV, update=u, key=key),
}

PULSE = pulse.UpdateConfig(mode="pulse")
OUTER = pulse.UpdateConfig(mode="outer")
EXPECTED = pulse.UpdateConfig(mode="expected")
