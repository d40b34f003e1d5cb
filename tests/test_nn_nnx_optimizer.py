"""nnx.Optimizer keeps the analog optimizers analog.

The same nnx model is trained twice from the same seeds: once through ``nnx.Optimizer`` and once
by calling the optax transformation directly on the pure parameter arrays. Both must give
bit-identical weights after several steps, for every algorithm of :mod:`aimcjax.optim` in the
"pulse" and "outer" modes, and the optimizer state must still hold a crossbar ``Tile`` at every
analog leaf (flax 0.12 used to turn them into dicts after the first update, after which every
update was plain SGD). A checkpoint of model and optimizer restores bit-identically.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from aimcjax import devices, optim, pulse, tile
from aimcjax.nn import nnx as annx
from aimcjax.periphery import PeripheryConfig

DEVICE = devices.SoftBounds(tau=0.6, asymmetry=0.3, dw_min=5e-3, dw_min_std=0.2)
STEPS = 5


def _algorithms(mode):
    """Every public constructor of aimcjax.optim, configured for ``mode``."""
    up = pulse.UpdateConfig(mode=mode)
    return {
        "analog_sgd": optim.analog_sgd(0.2, DEVICE, update=up, key=3),
        "residual_learning_v1": optim.residual_learning(0.2, 0.5, 0.4, DEVICE, update=up, key=3),
        "residual_learning_v2": optim.residual_learning(
            0.2, 0.5, 0.4, DEVICE, version=2, update=up, key=3
        ),
        "tiki_taka": optim.tiki_taka(0.2, 0.5, DEVICE, update=up, key=3),
        "ttv2": optim.ttv2(0.2, 0.5, DEVICE, update=up, key=3),
        "chopped_ttv2": optim.chopped_ttv2(0.2, 0.5, DEVICE, in_chop_prob=0.5, update=up, key=3),
        "agad": optim.agad(0.2, 0.5, DEVICE, in_chop_prob=0.5, update=up, key=3),
        "multi_tile_residual": optim.multi_tile_residual(0.2, 0.5, 0.4, DEVICE, update=up, key=3),
        # no update modes: quantized factors ("outer"-like) or the plain gradient ("pulse")
        "mixed_precision": optim.mixed_precision(
            0.2, DEVICE, **({"n_x_bins": 7, "n_d_bins": 7} if mode == "outer" else {}), key=3
        ),
    }


CASES = [(name, mode) for mode in ("pulse", "outer") for name in _algorithms(mode)]


class Net(nnx.Module):
    """One analog layer (noisy RF Table 4 periphery, digital bias): the smallest model with
    every kind of state (analog tiles, a digital leaf, the periphery's rng stream); one layer
    keeps the 2 x 18 compilations of the equality test affordable."""

    def __init__(self, rngs, periphery=None):
        kw = {} if periphery is None else {"forward": periphery, "backward": periphery}
        self.hidden = annx.AnalogLinear(5, 3, rngs=rngs, **kw)

    def __call__(self, x):
        return self.hidden(x)


def _loss(model, x, y):
    return jnp.mean((model(x) - y) ** 2)


def _data(step):
    k1, k2 = jax.random.split(jax.random.key(100 + step))
    return jax.random.normal(k1, (6, 5)), 0.5 * jax.random.normal(k2, (6, 3))


def _new_model(periphery=None):
    return Net(nnx.Rngs(params=0, periphery=1), periphery)


def _outer(name, mode):
    return mode == "outer"


def _nnx_step(tx_needs_factors):
    @nnx.jit
    def step(model, optimizer, x, y):
        _, grads, factors = annx.grad_and_factors(_loss, model, x, y)
        if tx_needs_factors:
            optimizer.update(model, grads, factors=factors)
        else:
            optimizer.update(model, grads)

    return step


def _optax_step(tx, tx_needs_factors):
    @nnx.jit
    def step(model, state, x, y):
        _, grads, factors = annx.grad_and_factors(_loss, model, x, y)
        params = nnx.as_pure(nnx.state(model, nnx.Param))
        extra = {"factors": factors} if tx_needs_factors else {}
        updates, state = tx.update(nnx.as_pure(grads), state, params, **extra)
        nnx.update(model, optax.apply_updates(params, updates))
        return state

    return step


def _kernels(model):
    return [np.asarray(model.hidden.kernel[...]), np.asarray(model.hidden.bias[...])]


def _assert_tiles_in(opt_state):
    tiles = optim.analog_state(nnx.as_pure(opt_state))
    assert isinstance(tiles.W["hidden"]["kernel"], tile.Tile), type(tiles.W["hidden"]["kernel"])
    return tiles


@pytest.mark.slow
@pytest.mark.parametrize("name,mode", CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_nnx_optimizer_equals_plain_optax(name, mode):
    tx = _algorithms(mode)[name]
    with_factors = _outer(name, mode)

    model_a = _new_model()
    optimizer = nnx.Optimizer(model_a, tx, wrt=nnx.Param)
    model_b = _new_model()
    state = tx.init(nnx.as_pure(nnx.state(model_b, nnx.Param)))
    step_a, step_b = _nnx_step(with_factors), _optax_step(tx, with_factors)

    start = _kernels(model_a)
    for s in range(STEPS):
        x, y = _data(s)
        step_a(model_a, optimizer, x, y)
        state = step_b(model_b, state, x, y)
        tiles = _assert_tiles_in(optimizer.opt_state)
        for a, b in zip(_kernels(model_a), _kernels(model_b)):
            np.testing.assert_array_equal(a, b, err_msg=f"{name} {mode}: step {s}")
    # the model's kernels are the tiles' effective weights (W, or W + gamma P): analog, moving
    assert not np.array_equal(_kernels(model_a)[0], start[0])
    if name in ("analog_sgd", "mixed_precision"):  # params + (weights - params), rounded
        np.testing.assert_allclose(
            tile.weights(tiles.W["hidden"]["kernel"]), _kernels(model_a)[0], rtol=0, atol=1e-7
        )
    _assert_same(optimizer.opt_state, state)


def test_nnx_optimizer_is_not_digital_sgd_after_the_first_step():
    """The symptom of the flax round trip: from step 2 on every update was exactly -lr * g."""
    lr = 0.2
    model = _new_model(PeripheryConfig.perfect())  # noise-free: nnx.grad gives step's gradient
    optimizer = nnx.Optimizer(model, optim.analog_sgd(lr, DEVICE, key=3), wrt=nnx.Param)
    step = _nnx_step(False)
    for s in range(3):
        before = _kernels(model)[0]
        x, y = _data(s)
        grads = nnx.grad(_loss)(model, x, y)
        step(model, optimizer, x, y)
        digital = before - lr * np.asarray(grads["hidden"]["kernel"][...])
        assert np.abs(_kernels(model)[0] - digital).max() > 1e-3, s
        _assert_tiles_in(optimizer.opt_state)


def _fresh(mode):
    model = _new_model()
    tx = _algorithms(mode)["residual_learning_v2"]
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)


@pytest.mark.parametrize("mode", ["pulse", "outer"])
def test_nnx_checkpoint_resumes_bit_identically(tmp_path, mode):
    step = _nnx_step(mode == "outer")
    model, optimizer = _fresh(mode)
    for s in range(2):
        step(model, optimizer, *_data(s))

    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(
        tmp_path / "ckpt", {"model": nnx.state(model), "optimizer": nnx.state(optimizer)}
    )
    checkpointer.wait_until_finished()

    for s in range(2, 5):
        step(model, optimizer, *_data(s))

    model2, optimizer2 = _fresh(mode)
    abstract = {"model": nnx.state(model2), "optimizer": nnx.state(optimizer2)}
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract)
    restored = checkpointer.restore(tmp_path / "ckpt", abstract)
    nnx.update(model2, restored["model"])
    nnx.update(optimizer2, restored["optimizer"])
    _assert_tiles_in(optimizer2.opt_state)
    for s in range(2, 5):
        step(model2, optimizer2, *_data(s))

    _assert_same(nnx.state(model), nnx.state(model2))  # weights and the periphery rng
    _assert_same(optimizer.opt_state, optimizer2.opt_state)


def _assert_same(a, b):
    def raw(x):
        return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x

    jax.tree.map(
        lambda x, y: np.testing.assert_array_equal(raw(x), raw(y)), nnx.as_pure(a), nnx.as_pure(b)
    )
