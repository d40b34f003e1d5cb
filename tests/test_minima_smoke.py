"""A smoke subset that `make test-minima` runs on the declared minimum versions (pyproject):
imports, an analog optimizer step, linen and nnx layers with their factors, nnx.Optimizer staying
analog. Only jax, optax, flax, chex and pytest are needed."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from aimcjax import devices, optim, pulse, tile
from aimcjax.nn import AnalogDense, grad_and_factors
from aimcjax.nn import nnx as annx
from aimcjax.periphery import PeripheryConfig

DEVICE = devices.SoftBounds(tau=0.6, asymmetry=0.2, dw_min=1e-2)


def test_optax_step_writes_pulses():
    params = {"w": jnp.zeros((3, 2))}
    opt = optim.residual_learning(0.1, 0.1, 0.4, DEVICE, key=0)
    state = opt.init(params)
    updates, state = jax.jit(opt.update)({"w": jnp.ones((3, 2))}, state, params)
    new = optax.apply_updates(params, updates)
    tiles = optim.analog_state(state)
    np.testing.assert_allclose(
        new["w"], tile.weights(tiles.W["w"]) + 0.4 * tile.weights(tiles.P["w"]), atol=1e-6
    )
    assert float(new["w"].mean()) < 0


def test_linen_factors_give_the_gradient():
    x = jax.random.normal(jax.random.key(0), (4, 5))
    layer = AnalogDense(3)
    variables = layer.init(jax.random.key(1), x)
    _, grads, factors = grad_and_factors(
        layer, lambda y: jnp.sum(y**2), variables, x, rngs={"periphery": jax.random.key(2)}
    )
    xs, ds = factors["kernel"]
    np.testing.assert_allclose(xs.T @ ds, grads["kernel"], rtol=1e-5, atol=1e-6)


def _pure(tree):  # nnx.as_pure is newer than flax 0.12.6
    return jax.tree.map(
        lambda v: v.value if isinstance(v, nnx.Variable) else v,
        tree,
        is_leaf=lambda v: isinstance(v, nnx.Variable),
    )


def test_nnx_optimizer_stays_analog():
    model = annx.AnalogLinear(
        4,
        3,
        forward=PeripheryConfig.perfect(),
        backward=PeripheryConfig.perfect(),
        rngs=nnx.Rngs(0),
    )
    optimizer = nnx.Optimizer(
        model,
        optim.analog_sgd(0.2, DEVICE, update=pulse.UpdateConfig(mode="outer"), key=0),
        wrt=nnx.Param,
    )
    x, y = jnp.ones((2, 4)), jnp.zeros((2, 3))
    for _ in range(3):
        _, grads, factors = annx.grad_and_factors(
            lambda m, x, y: jnp.mean((m(x) - y) ** 2), model, x, y
        )
        optimizer.update(model, grads, factors=factors)
    tiles = optim.analog_state(_pure(optimizer.opt_state))
    assert isinstance(tiles.W["kernel"], tile.Tile)
    # params + (new weights - params): the tiles' weights up to the rounding of that sum
    np.testing.assert_allclose(
        tile.weights(tiles.W["kernel"]), model.kernel[...], rtol=0, atol=1e-7
    )
