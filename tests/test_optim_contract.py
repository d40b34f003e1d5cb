"""The optax contract, one table for every analog optimizer (conftest.ALGORITHMS).

Each row is run through the same tests: drift-free params, checkpoint/restore bit for bit,
key forms, ``update(updates=...)``, jit vs eager, vmap, inject_hyperparams, multi_transform,
apply_if_finite, MultiSteps, a transformation chained after the analog one, and the NaN/inf
policy (skipped and counted in every update mode, or raised by ``optim.checked``).
"""

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import (
    ALGORITHMS,
    EXPECTED,
    OUTER,
    PULSE,
    ls_grads_and_factors,
    small_params,
    train,
)

from aimcjax import optim, tile

NAMES = list(ALGORITHMS)


def _visible(opt_state, name):
    """The visible weights of the analog state, as the kernel defines them (params must equal)."""
    tiles = optim.analog_state(opt_state)
    w = tile.weights(tiles.W["w"])
    state = next(
        s
        for s in jax.tree.leaves(opt_state, is_leaf=lambda n: isinstance(n, optim.AnalogState))
        if isinstance(s, optim.AnalogState)
    )
    for k, t in enumerate(state.tiles[1:], start=1):
        p = tile.weights(t["w"])
        if state.transfer[k - 1].chopper is not None:
            p = state.transfer[k - 1].chopper["w"][:, None] * p
        w = w + state.gamma**k * p
    return w


def _assert_tree_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("name", NAMES)
def test_params_track_tiles_checkpoint_restores_bit_exactly_and_key_forms_agree(name):
    opt = ALGORITHMS[name](PULSE, 3)
    p, s = train(opt, steps=4)
    assert np.abs(np.asarray(p["w"])).max() > 0  # something was learned
    # drift-free: params are the tiles' visible weights (up to the rounding of p + (w - p))
    np.testing.assert_allclose(p["w"], _visible(s, name), rtol=0, atol=1e-6)
    # checkpoint: serialize, restore into a fresh template, continue: bit for bit
    blob = flax.serialization.to_bytes({"p": p, "s": s})
    restored = flax.serialization.from_bytes(
        {"p": small_params(), "s": opt.init(small_params())}, blob
    )
    _assert_tree_equal(
        train(opt, 3, params=p, state=s), train(opt, 3, params=restored["p"], state=restored["s"])
    )
    # key forms: int, raw key, typed key give the same optimizer
    for key in (jax.random.PRNGKey(3), jax.random.key(3)):
        _assert_tree_equal(train(ALGORITHMS[name](PULSE, key), steps=2), train(opt, steps=2))


@pytest.mark.parametrize("name", NAMES)
def test_updates_keyword_jit_eager_and_vmap_agree(name):
    opt = ALGORITHMS[name](PULSE, 5)
    params = small_params()
    state = opt.init(params)
    g, _ = ls_grads_and_factors(params)
    u_eager, s_eager = opt.update(updates=g, state=state, params=params)  # optax's keyword names
    u_jit, s_jit = jax.jit(opt.update)(g, state, params)
    for a, b in zip(
        jax.tree.leaves((u_eager, s_eager)), jax.tree.leaves((u_jit, s_jit)), strict=True
    ):
        np.testing.assert_allclose(
            np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=0, atol=1e-6
        )
    # vmap over two copies of the problem: each member is the unbatched step
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), (g, state, params))
    u_vmap, _ = jax.jit(jax.vmap(opt.update))(*batch)
    for a, b in zip(jax.tree.leaves(u_vmap), jax.tree.leaves(u_jit), strict=True):
        np.testing.assert_allclose(a[0], b, rtol=0, atol=1e-6)
        np.testing.assert_allclose(a[1], b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_inject_hyperparams_multi_transform_and_apply_if_finite(name):
    factory = ALGORITHMS[name]
    # inject_hyperparams: the same numbers as the plain optimizer, with a traced learning rate
    injected = optax.inject_hyperparams(lambda learning_rate: factory(PULSE, 2, lr=learning_rate))(
        learning_rate=0.1
    )
    p_plain, _ = train(factory(PULSE, 2), steps=3)
    p_inj, _s_inj = train(injected, steps=3)
    _assert_tree_equal(p_plain, p_inj)
    # multi_transform: the analog optimizer on the kernel, adam on the bias; params stay in sync
    mt = optax.multi_transform(
        {"analog": factory(PULSE, 2), "adam": optax.adam(0.01)}, {"w": "analog", "b": "adam"}
    )
    p_mt, s_mt = train(mt, steps=3)
    np.testing.assert_allclose(p_mt["w"], _visible(s_mt, name), rtol=0, atol=1e-6)
    assert np.all(np.asarray(p_mt["b"]) != 0)
    # apply_if_finite around it: a NaN step is skipped by both; the analog state counts it too
    safe = optax.apply_if_finite(factory(PULSE, 2), max_consecutive_errors=5)
    params = small_params()
    state = safe.init(params)
    nan = jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), params)
    u, state = jax.jit(safe.update)(nan, state, params)
    assert int(state.notfinite_count) == 1
    assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(u))


@pytest.mark.parametrize("name", NAMES)
def test_chained_after_and_multisteps_raise_clear_errors(name):
    factory = ALGORITHMS[name]
    if name == "agad":
        pytest.skip(
            "AGAD writes W only after a chopper period, so one step leaves nothing to drift"
        )
    # A transformation after the analog one changes its updates: params would drift from the
    # tiles, so the next update refuses, eagerly and under jit.
    bad = optax.chain(factory(PULSE, 1), optax.scale(0.5))
    params = small_params()
    state = bad.init(params)
    g, _ = ls_grads_and_factors(params)
    u, state = bad.update(g, state, params)
    params = optax.apply_updates(params, u)
    g, _ = ls_grads_and_factors(params)
    with pytest.raises(ValueError, match="chained after the analog one"):
        bad.update(g, state, params)
    with pytest.raises(Exception, match="chained after the analog one"):
        jax.block_until_ready(jax.jit(bad.update)(g, state, params))
    # MultiSteps in "outer" mode averages gradients but hands over one mini-step's factors:
    # refused with a message naming the cause.
    if name == "mixed_precision":
        return  # no "outer" pulse trains: its factors only feed the digital accumulator
    multi = optax.MultiSteps(factory(OUTER, 1), every_k_schedule=2)
    params = small_params()
    state = multi.init(params)
    g, f = ls_grads_and_factors(params)
    u, state = multi.update(g, state, params, factors=f)
    params2 = jax.tree.map(lambda x: x + 0.1, params)
    g2, f2 = ls_grads_and_factors(params2)
    with pytest.raises(Exception, match="MultiSteps"):
        multi.update(g2, state, params, factors=f2)


@pytest.mark.parametrize("mode", [PULSE, EXPECTED, OUTER], ids=lambda u: u.mode)
@pytest.mark.parametrize("name", NAMES)
def test_nonfinite_step_is_skipped_counted_and_checked_mode_names_the_leaf(name, mode):
    opt = ALGORITHMS[name](mode, 4)
    outer = mode.mode == "outer"
    params = small_params()
    g, f = ls_grads_and_factors(params)
    kw = {"factors": f} if outer else {}
    state = opt.init(params)
    update = jax.jit(opt.update)
    bad_g = {"w": g["w"].at[1, 2].set(jnp.nan), "b": g["b"]}
    bad_kw = (
        {"factors": {"w": (f["w"][0], f["w"][1].at[0, 0].set(jnp.inf)), "b": None}} if outer else {}
    )
    u, skipped = update(bad_g, state, params, **bad_kw)
    assert int(skipped.notfinite_count) == 1
    assert all(float(jnp.abs(x).max()) == 0 for x in jax.tree.leaves(u))
    _assert_tree_equal(
        skipped._replace(notfinite_count=state.notfinite_count), state
    )  # nothing moved
    # the run continues as if the step never happened (no frozen element, same numbers)
    u_after, s_after = update(g, skipped, params, **kw)
    u_clean, s_clean = update(g, state, params, **kw)
    _assert_tree_equal(u_after, u_clean)
    _assert_tree_equal(s_after._replace(notfinite_count=s_clean.notfinite_count), s_clean)
    assert (
        max(float(jnp.abs(x).max()) for x in jax.tree.leaves(u_clean)) > 0
    )  # (AGAD: W waits a period)
    # checked mode: raises at once, naming the leaf
    with pytest.raises(FloatingPointError, match=r"updates\['w'\]"):
        optim.checked(opt).update(bad_g, state, params, **kw)
