"""aimcjax.optim: exact reductions, the no-drift contract, composability with optax,
checkpoints and bad input."""

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aimcjax import devices, optim, pulse, tile

IDEAL = pulse.UpdateConfig(mode="ideal")
WIDE = devices.ConstantStep(dw_min=1e-3, w_min=-100.0, w_max=100.0)


def quadratic_grad(params, target):
    """Gradient of 1/2 ||params - target||^2 (depends on params, so trajectories must agree)."""
    return jax.tree.map(lambda p, t: p - t, params, target)


def tree_weights(tiles):
    return jax.tree.map(tile.weights, tiles, is_leaf=lambda t: isinstance(t, tile.Tile))


def make_params(key=0):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(key), 3)
    return {
        "w": 0.1 * jax.random.normal(k1, (5, 3)),
        "b": 0.1 * jax.random.normal(k2, (3,)),
        "conv": 0.1 * jax.random.normal(k3, (2, 2, 3, 4)),
    }


def make_target(key=1):
    return jax.tree.map(lambda p: 0.5 * jnp.ones_like(p), make_params(key))


# ------------------------------------------------------------------------------------------
# exact reductions


def test_ideal_constant_step_analog_sgd_equals_optax_sgd_step_by_step():
    params = make_params()
    target = make_target()
    analog = optim.analog_sgd(0.1, WIDE, update=IDEAL, key=0)
    digital = optax.sgd(0.1)
    pa, pd = params, params
    sa, sd = analog.init(pa), digital.init(pd)
    for _ in range(20):
        ua, sa = jax.jit(analog.update)(quadratic_grad(pa, target), sa, pa)
        ud, sd = digital.update(quadratic_grad(pd, target), sd, pd)
        pa, pd = optax.apply_updates(pa, ua), optax.apply_updates(pd, ud)
        for leaf_a, leaf_d in zip(jax.tree.leaves(pa), jax.tree.leaves(pd)):
            np.testing.assert_allclose(leaf_a, leaf_d, rtol=0, atol=1e-6)


def test_schedule_learning_rate_matches_optax_sgd():
    schedule = optax.linear_schedule(0.2, 0.01, 10)
    params = make_params()
    target = make_target()
    analog = optim.analog_sgd(schedule, WIDE, update=IDEAL, key=0)
    digital = optax.sgd(schedule)
    pa, pd = params, params
    sa, sd = analog.init(pa), digital.init(pd)
    for _ in range(12):
        ua, sa = analog.update(quadratic_grad(pa, target), sa, pa)
        ud, sd = digital.update(quadratic_grad(pd, target), sd, pd)
        pa, pd = optax.apply_updates(pa, ua), optax.apply_updates(pd, ud)
    for leaf_a, leaf_d in zip(jax.tree.leaves(pa), jax.tree.leaves(pd)):
        np.testing.assert_allclose(leaf_a, leaf_d, atol=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.3])
def test_residual_learning_ideal_reduces_to_its_recursion(gamma):
    """Ideal device, exact read, full transfer every step:
    P <- P - a g(W + gP);  W <- W + b P  (v1)."""
    alpha, beta = 0.1, 0.05
    params = {"w": jnp.linspace(-0.5, 0.5, 12).reshape(4, 3)}
    target = {"w": jnp.full((4, 3), 0.3)}
    opt = optim.residual_learning(
        alpha, beta, WIDE, gamma=gamma, zero_shift=True, update=IDEAL, transfer_update=IDEAL, key=0
    )
    state = opt.init(params)
    W, P = np.asarray(params["w"], np.float64), np.zeros((4, 3))
    p = params
    for _ in range(25):
        updates, state = jax.jit(opt.update)(quadratic_grad(p, target), state, p)
        p = optax.apply_updates(p, updates)
        g = (W + gamma * P) - 0.3
        P = P - alpha * g
        W = W + beta * P
        np.testing.assert_allclose(p["w"], W + gamma * P, atol=1e-5)
    tiles = optim.analog_state(state)
    np.testing.assert_allclose(tile.weights(tiles.W["w"]), W, atol=1e-5)
    np.testing.assert_allclose(tile.weights(tiles.P["w"]), P, atol=1e-5)


def test_column_transfer_cycles_one_line_every_transfer_every_steps():
    """transfer="column", transfer_every=2: after step k (1-based), if k is even, line
    (k/2 - 1) mod n_in of W receives beta * P; other lines and odd steps leave W unchanged."""
    alpha, beta, n_in = 0.1, 0.5, 3
    params = {"w": jnp.zeros((n_in, 2))}
    opt = optim.residual_learning(
        alpha,
        beta,
        WIDE,
        gamma=0.0,
        transfer="column",
        transfer_every=2,
        update=IDEAL,
        transfer_update=IDEAL,
        key=0,
    )
    state = opt.init(params)
    grads = {"w": -jnp.ones((n_in, 2))}  # P grows by alpha per step
    W, P = np.zeros((n_in, 2)), np.zeros((n_in, 2))
    p = params
    for k in range(1, 13):
        updates, state = opt.update(grads, state, p)
        p = optax.apply_updates(p, updates)
        P = P + alpha
        if k % 2 == 0:
            line = (k // 2 - 1) % n_in
            W[line] += beta * P[line]
        np.testing.assert_allclose(tile.weights(optim.analog_state(state).W["w"]), W, atol=1e-6)


@pytest.mark.parametrize("flavour", ["rl_v2", "ttv2"])
def test_buffered_transfer_fires_whole_steps_and_keeps_the_rest(flavour):
    """Version 2 with exact arithmetic: H <- d H + b P; n = trunc(H/dw) (capped at BL);
    W <- W + n dw; H <- H - n dw, with d = 1 - b (RL v2) or 1 (TTv2)."""
    dw, alpha, beta, bl = 0.01, 0.2, 0.3, 2
    dev = devices.ConstantStep(dw_min=dw, w_min=-100.0, w_max=100.0)
    cfg_t = pulse.UpdateConfig(mode="ideal", bl=bl)
    if flavour == "rl_v2":
        opt = optim.residual_learning(
            alpha, beta, dev, gamma=0.0, version=2, update=IDEAL, transfer_update=cfg_t, key=0
        )
        decay = 1 - beta
    else:
        opt = optim.ttv2(
            alpha, beta, dev, transfer="full", update=IDEAL, transfer_update=cfg_t, key=0
        )
        decay = 1.0
    params = {"w": jnp.zeros((3, 2))}
    state = opt.init(params)
    rng = np.random.default_rng(0)
    W, P, H = np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 2))
    transferred, cap_hit = np.zeros((3, 2)), False
    p = params
    for _ in range(30):
        g = rng.normal(size=(3, 2)) * 0.1
        updates, state = opt.update({"w": jnp.asarray(g, jnp.float32)}, state, p)
        p = optax.apply_updates(p, updates)
        P = P - alpha * g
        H = decay * H + beta * P
        transferred += beta * P
        cap_hit |= bool(np.any(np.abs(np.trunc(H / dw)) > bl))
        n = np.clip(np.trunc(H / dw), -bl, bl)
        W = W + n * dw
        H = H - n * dw
        tiles = optim.analog_state(state)
        np.testing.assert_allclose(tile.weights(tiles.W["w"]), W, atol=1e-5)
        np.testing.assert_allclose(tiles.H["w"], H, atol=1e-5)
    assert cap_hit  # the BL cap was exercised ...
    if flavour == "ttv2":  # ... and nothing was lost: fired + buffered = everything read
        np.testing.assert_allclose(
            tile.weights(tiles.W["w"]) + tiles.H["w"], transferred, atol=1e-5
        )


def test_transfer_bl_caps_how_fast_W_moves():
    """Pulse-mode transfer with BL 31 moves each element of W by at most 31 dw_min per step."""
    dev = devices.ConstantStep(dw_min=1e-3)
    opt = optim.residual_learning(
        1.0, 1.0, dev, gamma=0.0, update=IDEAL, transfer_update=pulse.UpdateConfig(bl=31), key=0
    )
    params = {"w": jnp.zeros((4, 4))}
    state = opt.init(params)
    _updates, state = opt.update({"w": -jnp.full((4, 4), 0.5)}, state, params)  # asks W for +0.5
    moved = np.asarray(tile.weights(optim.analog_state(state).W["w"]))
    np.testing.assert_allclose(moved, 31 * 1e-3, atol=1e-6)


# ------------------------------------------------------------------------------------------
# the contract: params are the analog weights, no drift


@pytest.mark.parametrize("name", ["analog_sgd", "residual_learning", "tiki_taka", "ttv2", "rl_v2"])
def test_no_drift_between_params_and_analog_weights_over_thousands_of_steps(name):
    dev = devices.SoftBounds(tau=0.6, asymmetry=0.2, dw_min=1e-3, dw_min_std=0.3, dw_min_dtod=0.2)
    kw = dict(key=3)
    gamma = 0.4
    opt = {
        "analog_sgd": lambda: optim.analog_sgd(0.05, dev, **kw),
        "residual_learning": lambda: optim.residual_learning(
            0.05, 0.1, dev, gamma=gamma, read=0.01, **kw
        ),
        "tiki_taka": lambda: optim.tiki_taka(0.05, 0.1, dev, gamma=gamma, **kw),
        "ttv2": lambda: optim.ttv2(0.05, 0.1, dev, **kw),
        "rl_v2": lambda: optim.residual_learning(0.05, 0.1, dev, gamma=gamma, version=2, **kw),
    }[name]()
    params = make_params()
    target = make_target()
    state = opt.init(params)

    def step(carry, _):
        p, s = carry
        u, s = opt.update(quadratic_grad(p, target), s, p)
        return (optax.apply_updates(p, u), s), None

    (params, state), _ = jax.jit(lambda c: jax.lax.scan(step, c, None, length=3000))(
        (params, state)
    )
    tiles = optim.analog_state(state)
    w_main = tree_weights(tiles.W)
    mixing = {"analog_sgd": 0.0, "ttv2": 0.0}.get(name, gamma)
    w_res = tree_weights(tiles.P) if tiles.P is not None else jax.tree.map(jnp.zeros_like, w_main)
    expected = {k: w_main[k] + mixing * w_res[k] for k in ("w", "conv")}
    for k in ("w", "conv"):
        # One rounding per step at most (params + (new - params)), never accumulated.
        np.testing.assert_allclose(params[k], expected[k], rtol=0, atol=1e-6)
        assert float(jnp.max(jnp.abs(params[k] - make_params()[k]))) > 1e-2  # it did train
    assert not isinstance(tiles.W["b"], tile.Tile)  # biases stay digital by default


# ------------------------------------------------------------------------------------------
# composability


def test_chain_with_clip_by_global_norm_under_jit():
    params = make_params()
    target = jax.tree.map(lambda p: 5.0 * jnp.ones_like(p), params)  # large gradients get clipped
    analog = optax.chain(
        optax.clip_by_global_norm(1.0), optim.analog_sgd(0.1, WIDE, update=IDEAL, key=0)
    )
    digital = optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1))
    pa, pd, sa, sd = params, params, analog.init(params), digital.init(params)
    update = jax.jit(analog.update)
    for _ in range(5):
        ua, sa = update(quadratic_grad(pa, target), sa, pa)
        ud, sd = digital.update(quadratic_grad(pd, target), sd, pd)
        pa, pd = optax.apply_updates(pa, ua), optax.apply_updates(pd, ud)
    for a, d in zip(jax.tree.leaves(pa), jax.tree.leaves(pd)):
        np.testing.assert_allclose(a, d, atol=1e-6)


@pytest.mark.parametrize("mode", ["ideal", "outer"])
def test_multi_transform_analog_kernels_with_adam_biases_under_jit(mode):
    params = {"w": 0.1 * jnp.ones((4, 3)), "b": jnp.zeros((3,))}
    labels = {"w": "analog", "b": "digital"}
    analog = optim.analog_sgd(0.1, WIDE, update=pulse.UpdateConfig(mode=mode), key=0)
    opt = optax.multi_transform({"analog": analog, "digital": optax.adam(1e-2)}, labels)
    adam = optax.adam(1e-2)
    state, adam_state = opt.init(params), adam.init(params["b"])
    x = jnp.ones((2, 4))
    d = jnp.full((2, 3), 0.05)
    grads = {"w": x.T @ d, "b": jnp.full((3,), 0.2)}
    factors = {"w": (x, d), "b": None}
    update = jax.jit(opt.update)
    p, b = params, params["b"]
    for _ in range(3):
        u, state = update(grads, state, p, factors=factors)
        p = optax.apply_updates(p, u)
        ub, adam_state = adam.update(grads["b"], adam_state, b)
        b = optax.apply_updates(b, ub)
    np.testing.assert_allclose(p["b"], b, atol=1e-6)
    w_analog = tile.weights(optim.analog_state(state).W["w"])
    np.testing.assert_allclose(p["w"], w_analog, atol=1e-6)
    # Expected change 3 * 0.1 * 2 * 0.05 = 0.03 per element; "outer" draws pulses of 1e-3
    # with E[n] = lr |x d| / dw_min = 5 per sample and step, Poisson-binomial spread
    # std <= sqrt(30) pulses = 0.0055 (30 expected pulses); 5 std tolerance.
    tol = 1e-6 if mode == "ideal" else 5 * np.sqrt(30) * 1e-3
    np.testing.assert_allclose(p["w"], 0.1 - 0.03, atol=tol)


def test_inject_hyperparams_analog_sgd_under_jit():
    params = make_params()
    target = make_target()
    opt = optax.inject_hyperparams(optim.analog_sgd)(
        learning_rate=0.1, device=WIDE, update=IDEAL, key=0
    )
    state = opt.init(params)
    update = jax.jit(opt.update)
    u, state = update(quadratic_grad(params, target), state, params)
    state.hyperparams["learning_rate"] = jnp.asarray(0.5)
    p1 = optax.apply_updates(params, u)
    u, state = update(quadratic_grad(p1, target), state, p1)
    p2 = optax.apply_updates(p1, u)
    expected1 = jax.tree.map(lambda p, t: p - 0.1 * (p - t), params, target)
    expected2 = jax.tree.map(lambda p, t: p - 0.5 * (p - t), expected1, target)
    for a, e in zip(jax.tree.leaves(p2), jax.tree.leaves(expected2)):
        np.testing.assert_allclose(a, e, atol=1e-6)


def test_inject_hyperparams_residual_learning_gamma_and_rates_under_jit():
    params = {"w": jnp.zeros((3, 2))}
    target = {"w": jnp.full((3, 2), 0.2)}
    factory = optax.inject_hyperparams(
        optim.residual_learning, static_args=("version", "transfer_every")
    )
    opt = factory(
        learning_rate=0.1,
        transfer_lr=0.05,
        gamma=0.0,
        device=WIDE,
        update=IDEAL,
        transfer_update=IDEAL,
        key=0,
    )
    state = opt.init(params)
    update = jax.jit(opt.update)
    u, state = update(quadratic_grad(params, target), state, params)
    p = optax.apply_updates(params, u)
    state.hyperparams["gamma"] = jnp.asarray(1.0)
    u, state = update(quadratic_grad(p, target), state, p)
    p = optax.apply_updates(p, u)
    tiles = optim.analog_state(state)
    np.testing.assert_allclose(
        p["w"], tile.weights(tiles.W["w"]) + tile.weights(tiles.P["w"]), atol=1e-6
    )


def test_inject_hyperparams_without_static_int_args_says_what_to_do():
    factory = optax.inject_hyperparams(optim.residual_learning)
    opt = factory(learning_rate=0.1, transfer_lr=0.05, gamma=0.0, device=WIDE, key=0)
    params = {"w": jnp.zeros((3, 2))}
    state = opt.init(params)
    with pytest.raises(TypeError, match="static_args"):
        jax.jit(opt.update)({"w": jnp.ones((3, 2))}, state, params)


def test_callable_mask_and_digital_leaves_get_sgd():
    params = make_params()
    grads = jax.tree.map(jnp.ones_like, params)
    opt = optim.analog_sgd(
        0.1,
        devices.SoftBounds(tau=0.6),
        mask=lambda p: {"w": True, "b": False, "conv": False},
        key=0,
    )
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    np.testing.assert_allclose(updates["b"], -0.1, atol=1e-7)
    np.testing.assert_allclose(updates["conv"], -0.1, atol=1e-7)
    tiles = optim.analog_state(state).W
    assert isinstance(tiles["w"], tile.Tile) and not isinstance(tiles["conv"], tile.Tile)


def test_rank4_kernel_in_outer_mode_is_viewed_as_prod_leading_by_out():
    params = {"k": jnp.zeros((2, 2, 3, 4))}
    x = jnp.ones((5, 12))
    d = jnp.full((5, 4), 0.01)
    opt = optim.residual_learning(
        0.1, 0.5, WIDE, gamma=0.4, update=pulse.UpdateConfig(mode="outer"), key=0
    )
    state = opt.init(params)
    updates, state = jax.jit(opt.update)(
        {"k": (x.T @ d).reshape(2, 2, 3, 4)}, state, params, factors={"k": (x, d)}
    )
    assert updates["k"].shape == (2, 2, 3, 4)
    assert float(jnp.mean(updates["k"])) < 0  # positive x d moves weights down


def test_key_accepts_int_and_typed_and_raw_keys_identically():
    params = {"w": jnp.zeros((3, 2))}
    dev = devices.SoftBounds(tau=0.6, dw_min_dtod=0.3)
    states = [
        optim.analog_sgd(0.1, dev, key=k).init(params)
        for k in (7, jax.random.PRNGKey(7), jax.random.key(7))
    ]
    for s in states[1:]:
        np.testing.assert_array_equal(s.tiles[0]["w"].gain_up, states[0].tiles[0]["w"].gain_up)


def test_analog_state_errors_without_analog_optimizer():
    with pytest.raises(ValueError, match="no analog optimizer state"):
        optim.analog_state(optax.sgd(0.1).init({"w": jnp.zeros(2)}))


# ------------------------------------------------------------------------------------------
# checkpoints


@pytest.mark.parametrize("name", ["analog_sgd", "rl_v2"])
def test_checkpoint_restore_continues_bit_identically(name):
    dev = devices.SoftBounds(tau=0.6, asymmetry=0.1, dw_min=1e-3, dw_min_std=0.5, dw_min_dtod=0.2)
    inner = (
        optim.analog_sgd(0.05, dev, key=1)
        if name == "analog_sgd"
        else optim.residual_learning(0.05, 0.1, dev, gamma=0.4, version=2, read=0.02, key=1)
    )
    opt = optax.chain(optax.clip_by_global_norm(10.0), inner)
    params = make_params()
    target = make_target()
    state = opt.init(params)

    @jax.jit
    def step(p, s):
        u, s = opt.update(quadratic_grad(p, target), s, p)
        return optax.apply_updates(p, u), s

    for _ in range(5):
        params, state = step(params, state)
    blob = flax.serialization.to_bytes({"params": params, "opt_state": state})
    fresh_template = {"params": make_params(), "opt_state": opt.init(make_params())}
    restored = flax.serialization.from_bytes(fresh_template, blob)
    p_a, s_a = params, state
    p_b, s_b = restored["params"], restored["opt_state"]
    for _ in range(5):
        p_a, s_a = step(p_a, s_a)
        p_b, s_b = step(p_b, s_b)
    for a, b in zip(jax.tree.leaves((p_a, s_a)), jax.tree.leaves((p_b, s_b))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------------------------------------
# bad input


def test_bad_hyperparameters_raise():
    dev = devices.SoftBounds()
    with pytest.raises(ValueError, match="gamma"):
        optim.residual_learning(0.1, 0.1, dev, gamma=-0.1, key=0)
    with pytest.raises(ValueError, match="transfer_every"):
        optim.residual_learning(0.1, 0.1, dev, gamma=0.1, transfer_every=0, key=0)
    with pytest.raises(ValueError, match="version"):
        optim.residual_learning(0.1, 0.1, dev, gamma=0.1, version=3, key=0)
    with pytest.raises(ValueError, match="transfer"):
        optim.residual_learning(0.1, 0.1, dev, gamma=0.1, transfer="row", key=0)
    with pytest.raises(ValueError, match="learning_rate"):
        optim.analog_sgd(-0.1, dev, key=0)
    with pytest.raises(ValueError, match="learning_rate"):
        optim.analog_sgd(float("nan"), dev, key=0)
    with pytest.raises(ValueError, match="transfer_lr"):
        optim.tiki_taka(0.1, -1.0, dev, key=0)
    with pytest.raises(ValueError, match="read"):
        optim.residual_learning(0.1, 0.1, dev, gamma=0.1, read=-0.01, key=0)
    with pytest.raises(TypeError, match="device"):
        optim.analog_sgd(0.1, "soft_bounds", key=0)
    with pytest.raises(TypeError, match="update"):
        optim.analog_sgd(0.1, dev, update="pulse", key=0)
    with pytest.raises(TypeError, match="key"):
        optim.analog_sgd(0.1, dev, key=None)


def test_bad_masks_raise():
    dev = devices.SoftBounds()
    params = {"w": jnp.zeros((3, 2)), "scale": jnp.zeros(()), "ids": jnp.zeros((3, 2), jnp.int32)}
    with pytest.raises(ValueError, match="scale"):  # a scalar cannot be a crossbar
        optim.analog_sgd(0.1, dev, key=0, mask={"w": True, "scale": True, "ids": False}).init(
            params
        )
    with pytest.raises(TypeError, match="ids"):  # integer leaf marked analog
        optim.analog_sgd(0.1, dev, key=0, mask={"w": True, "scale": False, "ids": True}).init(
            params
        )
    with pytest.raises(TypeError, match="bool"):
        optim.analog_sgd(0.1, dev, key=0, mask={"w": 1.0, "scale": False, "ids": False}).init(
            params
        )
    with pytest.raises(ValueError, match="mask has no entry"):
        optim.analog_sgd(0.1, dev, key=0, mask={"w": True}).init(params)
    with pytest.raises(TypeError, match="not an array"):
        optim.analog_sgd(0.1, dev, key=0, mask={"w": True, "f": True}).init(
            {"w": jnp.zeros((3, 2)), "f": 1.5}
        )


def test_bad_factors_and_grads_raise():
    dev = devices.SoftBounds()
    params = {"w": jnp.zeros((4, 3))}
    opt = optim.residual_learning(
        0.1, 0.1, dev, gamma=0.1, update=pulse.UpdateConfig(mode="outer"), key=0
    )
    state = opt.init(params)
    grads = {"w": jnp.zeros((4, 3))}
    with pytest.raises(ValueError, match="factors are required"):
        opt.update(grads, state, params)
    with pytest.raises(ValueError, match=r"\(batch, 4\)"):
        opt.update(grads, state, params, factors={"w": (jnp.ones((2, 3)), jnp.ones((2, 3)))})
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        opt.update(grads, state, params, factors={"w": (jnp.ones((2, 4)), jnp.ones((2, 4)))})
    with pytest.raises(ValueError, match="same batch size"):
        opt.update(grads, state, params, factors={"w": (jnp.ones((2, 4)), jnp.ones((5, 3)))})
    with pytest.raises(ValueError, match="pair"):
        opt.update(grads, state, params, factors={"w": jnp.ones((2, 4))})
    with pytest.raises(ValueError, match="grads"):
        optim.analog_sgd(0.1, dev, key=0).update(
            {"w": jnp.zeros((3, 4))}, optim.analog_sgd(0.1, dev, key=0).init(params), params
        )
    with pytest.raises(ValueError, match="params"):
        optim.analog_sgd(0.1, dev, key=0).update(
            grads, optim.analog_sgd(0.1, dev, key=0).init(params), None
        )


def test_factors_follow_params_structure_even_for_tuple_params():
    """params = (kernel, bias): factors mirror it, ((x, d), None); no confusion with a pair."""
    params = (jnp.zeros((4, 3)), jnp.zeros(3))
    x, d = jnp.ones((2, 4)), jnp.full((2, 3), 0.1)
    opt = optim.analog_sgd(0.1, WIDE, update=pulse.UpdateConfig(mode="outer"), key=0)
    state = opt.init(params)
    updates, _ = opt.update((x.T @ d, jnp.ones(3)), state, params, factors=((x, d), None))
    np.testing.assert_allclose(updates[1], -0.1, atol=1e-7)
    assert float(jnp.mean(updates[0])) < 0


def test_residual_learning_reads_p_through_the_periphery():
    from aimcjax.periphery import PeripheryConfig

    dev = devices.SoftBounds(tau=1.0, dw_min=1e-3)
    params = {"w": jnp.zeros((6, 3))}
    grads = {"w": 0.1 * jnp.ones((6, 3))}
    tiles = []
    for read in (None, PeripheryConfig(out_noise=0.5), "aihwkit"):
        opt = optim.residual_learning(0.1, 0.5, dev, gamma=0.4, read=read, key=0)
        p, state = params, opt.init(params)
        step = jax.jit(opt.update)
        for _ in range(3):  # params follow the updates (the optimizer refuses stale params)
            u, state = step(grads, state, p)
            p = optax.apply_updates(p, u)
        tiles.append(optim.analog_state(state))
    (exact_w, exact_p), *noisy = [(t.W["w"], t.P["w"]) for t in tiles]
    # the same gradient writes reach P; the transfers into W differ through the read noise
    # (and, for aihwkit's default transfer read, its DAC/ADC quantization)
    for noisy_w, noisy_p in noisy:
        np.testing.assert_allclose(tile.weights(exact_p), tile.weights(noisy_p), atol=1e-6)
        assert not np.allclose(tile.weights(exact_w), tile.weights(noisy_w))
