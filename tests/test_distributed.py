"""Communication-censored SGD on one device (workers simulated with jax.vmap)."""

import dataclasses
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aimcjax import distributed as dist
from aimcjax.distributed.config import move_window_length

WORKERS, DIM = 4, 3


def ls_loss(params, example):
    return 0.5 * (example["a"] @ params - example["y"]) ** 2


def ls_batches(steps, batch, seed=0, workers=WORKERS, dim=DIM):
    rng = np.random.default_rng(seed)
    x_star = rng.normal(size=dim)
    for _ in range(steps):
        a = rng.normal(size=(workers, batch, dim))
        a[0] += 1.0
        yield {"a": a.astype(np.float32), "y": (a @ x_star).astype(np.float32)}


def authors_tau(config, iterates, moves, k, workers):
    """tau^k transcribed from the authors' scripts (Weiyu-USTC/CSGD, ``tao``), float64.

    ``iterates`` is their window list: the last <= D iterates, oldest first; ``moves`` all
    squared moves so far (for the ``move_window="lag"`` option).
    """
    if config.move_window == "authors":
        if len(iterates) < config.window:
            window_sum = 0.0
        else:
            window_sum = sum(
                float(np.sum((iterates[j] - iterates[j - 1]) ** 2)) for j in range(1, len(iterates))
            )
    else:
        window_sum = sum(moves[-config.window :])
    move_term = config.xi / (config.learning_rate**2 * config.window) * window_sum
    slack = 0.0 if config.mode == "lag" else config.sigma0 * config.sigma_decay**k
    if config.slack_scaling == "workers_squared":
        return (move_term + slack) / workers**2
    return move_term / workers**2 + slack


def reference_csgd(config, batches, lr, workers=WORKERS, dim=DIM):
    """[CSGD] Alg. 1 with the authors' threshold (:func:`authors_tau`), float64 numpy.

    Held gradients start at zero; uploads are forced only for SGD, by ``force_first_upload``
    at k = 0 and by ``max_staleness``.
    """
    x = np.zeros(dim)
    held = np.zeros((workers, dim))
    stale = np.zeros(workers, int)
    window, moves, iterates, sent_all = [x.copy()], [], [], []
    for k, batch in enumerate(batches):
        a, y = batch["a"].astype(np.float64), batch["y"].astype(np.float64)
        grads = np.einsum("mbd,mb->md", a, np.einsum("mbd,d->mb", a, x) - y) / a.shape[1]
        tau = authors_tau(config, window, moves, k, workers)
        sent = np.sum((grads - held) ** 2, axis=1) > tau
        if config.mode == "sgd" or (config.force_first_upload and k == 0):
            sent[:] = True
        if config.max_staleness is not None:
            sent |= stale >= config.max_staleness
        stale = np.where(sent, 0, stale + 1)
        held[sent] = grads[sent]
        step = -lr * held.mean(axis=0)
        x = x + step
        moves.append(float(step @ step))
        window = (window + [x.copy()])[-config.window :]
        iterates.append(x.copy())
        sent_all.append(sent)
    return np.array(iterates), np.array(sent_all)


def run_trainer(config, batches, lr, backend="vmap", inner=None):
    tx = dist.csgd(inner or optax.sgd(lr), config)
    train = dist.make_train_step(ls_loss, tx, backend=backend, num_workers=WORKERS)
    params, state = train.init(jnp.zeros(DIM))
    iterates, sent, metrics_all = [], [], []
    for batch in batches:
        mask = np.ones(batch["y"].shape, bool)
        params, state, metrics = train.step(params, state, batch, mask)
        iterates.append(train.server_params(params))
        sent.append(np.asarray(metrics.sent))
        metrics_all.append(metrics)
    return np.array(iterates), np.array(sent), metrics_all, state


@pytest.mark.parametrize("mode", ["csgd", "lag", "sgd"])
def test_matches_reference_algorithm(mode):
    config = dist.CensorConfig(mode=mode, learning_rate=0.1, sigma0=32.0, sigma_decay=0.9, window=4)
    batches = list(ls_batches(25, batch=8))
    got, sent, _, _ = run_trainer(config, batches, 0.1)
    want, want_sent = reference_csgd(config, batches, 0.1)
    np.testing.assert_array_equal(sent, want_sent)
    # float32 gradients of O(1) entries over 25 steps: errors ~1e-6, far below 1e-4.
    np.testing.assert_allclose(got, want, atol=1e-4)
    if mode == "csgd":
        assert 0 < sent.sum() < sent.size  # the slack is large enough to censor something
    if mode == "sgd":
        assert sent.all()


RULE_OPTIONS = [
    {},
    {"slack_scaling": "none"},
    {"move_window": "lag"},
    {"force_first_upload": True},
    {"slack_scaling": "none", "move_window": "lag", "force_first_upload": True},
]


@pytest.mark.parametrize("seed", range(4))
def test_rule_equals_authors_transcription_on_random_sequences(seed):
    """Random problems, windows, worker counts and slacks: every upload decision and iterate
    equals the float64 transcription of the authors' rule (and of each option)."""
    rng = np.random.default_rng(100 + seed)
    workers = int(rng.integers(2, 6))
    window = int(rng.integers(1, 6))
    lr = float(rng.uniform(0.02, 0.2))
    options = RULE_OPTIONS[seed % len(RULE_OPTIONS)] if seed else {}
    # The move term must matter: a large xi puts it on the scale of the innovations.
    config = dist.CensorConfig(
        learning_rate=lr,
        window=window,
        xi=float(rng.uniform(1, 50)),
        sigma0=float(rng.uniform(1, 40)),
        sigma_decay=0.9,
        **options,
    )
    batches = list(ls_batches(30, batch=int(rng.integers(2, 12)), seed=seed, workers=workers))
    tx = dist.csgd(optax.sgd(lr), config)
    train = dist.make_train_step(ls_loss, tx, backend="vmap", num_workers=workers)
    params, state = train.init(jnp.zeros(DIM))
    got, sent = [], []
    for batch in batches:
        params, state, metrics = train.step(params, state, batch, np.ones(batch["y"].shape, bool))
        got.append(train.server_params(params))
        sent.append(np.asarray(metrics.sent))
    want, want_sent = reference_csgd(config, batches, lr, workers=workers)
    np.testing.assert_array_equal(np.array(sent), want_sent)
    np.testing.assert_allclose(np.array(got), want, atol=1e-4)
    assert 0 < want_sent.sum() < want_sent.size  # the test decides both ways


@pytest.mark.parametrize("options", RULE_OPTIONS, ids=str)
def test_threshold_equals_authors_transcription(options):
    """threshold() on random iterate sequences, every k, against :func:`authors_tau`."""
    rng = np.random.default_rng(7)
    for window in (1, 2, 5):
        config = dist.CensorConfig(
            learning_rate=0.3, window=window, xi=0.7, sigma0=2.5, sigma_decay=0.8, **options
        )
        for mode in ("csgd", "lag"):
            config = dataclasses.replace(config, mode=mode)
            xs = np.cumsum(rng.normal(size=(12, 3)), axis=0)
            ring = np.zeros(move_window_length(config), np.float32)
            moves = []
            for k in range(11):
                window_list = list(xs[max(0, k + 1 - window) : k + 1])
                got = float(dist.threshold(config, jnp.asarray(ring), jnp.int32(k), 7))
                want = authors_tau(config, window_list, moves, k, 7)
                np.testing.assert_allclose(got, want, rtol=2e-6)
                move = float(np.sum((xs[k + 1] - xs[k]) ** 2))
                moves.append(move)
                if ring.size:
                    ring = np.roll(ring, 1)
                    ring[0] = move


def test_nothing_forced_at_the_start():
    # The authors' rule: held gradients start at zero and the test alone decides at k = 0,
    # so a worker whose gradient is below tau^0 is not heard from.
    config = dist.CensorConfig(learning_rate=0.1, sigma0=1e12)
    batches = list(ls_batches(3, batch=4))
    got, sent, _, _ = run_trainer(config, batches, 0.1)
    assert not sent.any()
    np.testing.assert_array_equal(got, np.zeros((3, DIM)))


def test_censored_mean_by_hand():
    grads = {"w": jnp.array([[1.0, 0.0], [0.1, 0.0], [0.0, 3.0]])}
    held = {"w": jnp.zeros((3, 2))}
    f = jax.vmap(lambda g, h: dist.censored_mean(g, h, 0.5, "w"), axis_name="w")
    mean, new_held, sent = f(grads, held)
    assert sent.tolist() == [True, False, True]
    np.testing.assert_allclose(new_held["w"], [[1.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(mean["w"], np.broadcast_to([1 / 3, 1.0], (3, 2)), rtol=1e-6)
    forced = jax.vmap(lambda g, h: dist.censored_mean(g, h, 0.5, "w", force=True), axis_name="w")
    assert forced(grads, held)[2].all()


def test_censored_mean_errors():
    with pytest.raises(ValueError, match="axis_name 'workers' is not bound"):
        dist.censored_mean(jnp.ones(2), jnp.zeros(2), 0.1, "workers")
    f = jax.vmap(lambda g, h: dist.censored_mean(g, h, 0.1, "w"), axis_name="w")
    with pytest.raises(ValueError, match="same pytree structure"):
        f({"a": jnp.ones((2, 1))}, {"b": jnp.ones((2, 1))})


def test_silent_worker_keeps_its_first_upload():
    # Worker 2 has a constant gradient c: after its first upload the innovation is exactly
    # 0, so it never passes the test again, yet c must stay in every server average.
    c = np.array([0.5, -1.0, 2.0], np.float32)
    config = dist.CensorConfig(learning_rate=0.1, sigma0=1e-3)

    def loss(params, example):
        quadratic = 0.5 * jnp.sum((params - example["t"]) ** 2)
        return jnp.where(example["silent"], params @ c, quadratic)

    tx = dist.csgd(optax.sgd(0.1), config)
    train = dist.make_train_step(loss, tx, backend="vmap", num_workers=WORKERS)
    params, state = train.init(jnp.zeros(DIM))
    rng = np.random.default_rng(1)
    x = np.zeros(DIM)
    for k in range(6):
        t = rng.normal(size=(WORKERS, 1, DIM)).astype(np.float32)
        batch = {"t": t, "silent": np.arange(WORKERS)[:, None] == 2}
        params, state, metrics = train.step(params, state, batch, np.ones((WORKERS, 1), bool))
        assert bool(metrics.sent[2]) == (k == 0)
        assert np.asarray(metrics.sent)[
            [0, 1, 3]
        ].all()  # fresh random targets always differ enough
        grads = x[None] - t[:, 0]
        grads[2] = c
        x = x - 0.1 * grads.mean(axis=0)
        np.testing.assert_allclose(train.server_params(params), x, rtol=1e-5, atol=1e-6)


def test_never_passing_workers_all_reuse_first_uploads():
    config = dist.CensorConfig(learning_rate=0.1, sigma0=1e12, force_first_upload=True)
    batches = list(ls_batches(5, batch=4))
    got, sent, _, _ = run_trainer(config, batches, 0.1)
    assert sent[0].all() and not sent[1:].any()
    first = reference_csgd(dist.CensorConfig(mode="sgd", learning_rate=0.1), batches[:1], 0.1)[0][0]
    # the server keeps stepping along the first round's mean gradient
    np.testing.assert_allclose(got, first[None] * np.arange(1, 6)[:, None], rtol=1e-5)


def test_max_staleness_forces_uploads():
    config = dist.CensorConfig(learning_rate=0.1, sigma0=1e12, max_staleness=2)
    _, sent, _, _ = run_trainer(config, list(ls_batches(7, batch=4)), 0.1)
    # nothing forced at k = 0: the first forced round comes after two censored ones
    np.testing.assert_array_equal(sent.all(axis=1), [False, False, True, False, False, True, False])
    assert not (sent.any(axis=1) & ~sent.all(axis=1)).any()


def test_communication_accounting():
    config = dist.CensorConfig(learning_rate=0.1, sigma0=2.0, sigma_decay=0.9)
    _, sent, metrics, _state = run_trainer(config, list(ls_batches(10, batch=8)), 0.1)
    grad_bytes = DIM * 4
    cumulative = np.cumsum(sent.sum(axis=1))
    for k, m in enumerate(metrics):
        np.testing.assert_array_equal(m.uploads, sent[: k + 1].sum(axis=0))
        assert int(m.total_uploads) == cumulative[k]
        assert float(m.bytes_up) == sent[k].sum() * grad_bytes
        assert float(m.total_bytes_up) == cumulative[k] * grad_bytes
        assert float(m.bytes_broadcast) == WORKERS * DIM * 4
        assert float(m.total_bytes_broadcast) == (k + 1) * WORKERS * DIM * 4
        np.testing.assert_allclose(m.ratio_to_sgd, cumulative[k] / (WORKERS * (k + 1)), rtol=1e-6)
        assert m.loss.shape == (WORKERS,)
    assert 0 < float(metrics[-1].ratio_to_sgd) < 1
    sgd = run_trainer(
        dist.CensorConfig(mode="sgd", learning_rate=0.1), list(ls_batches(3, batch=8)), 0.1
    )[2]
    assert float(sgd[-1].ratio_to_sgd) == 1.0


def test_growing_batch_compiles_once_per_bucket():
    config = dist.CensorConfig(
        learning_rate=0.05, sigma0=1.0, batch0=2, batch_growth=1.35, batch_max=200
    )
    train = dist.make_train_step(
        ls_loss, dist.csgd(optax.sgd(0.05), config), backend="vmap", num_workers=WORKERS
    )
    params, state = train.init(jnp.zeros(DIM))
    rng = np.random.default_rng(0)
    shapes = set()
    steps = 20
    for k in range(steps):
        mask = dist.batch_mask(config, k, WORKERS)
        assert mask.sum(axis=1).tolist() == [dist.batch_size(config, k)] * WORKERS
        a = rng.normal(size=mask.shape + (DIM,)).astype(np.float32)
        params, state, _ = train.step(params, state, {"a": a, "y": a.sum(-1)}, mask)
        shapes.add(mask.shape[1])
    assert train.step.compiled._cache_size() == len(shapes)
    assert len(shapes) <= math.ceil(math.log2(200)) + 1 < steps


def test_masked_examples_do_not_count():
    config = dist.CensorConfig(mode="sgd", learning_rate=0.1)
    train = dist.make_train_step(
        ls_loss, dist.csgd(optax.sgd(0.1), config), backend="vmap", num_workers=WORKERS
    )
    batch = next(ls_batches(1, batch=8))
    mask = np.zeros((WORKERS, 8), bool)
    mask[:, :5] = True
    garbage = {k: v.copy() for k, v in batch.items()}
    garbage["a"][:, 5:] = 1e6
    p1 = train.step(*train.init(jnp.zeros(DIM)), batch, mask)[0]
    p2 = train.step(*train.init(jnp.zeros(DIM)), garbage, mask)[0]
    p3 = train.step(
        *train.init(jnp.zeros(DIM)), {k: v[:, :5] for k, v in batch.items()}, mask[:, :5]
    )[0]
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_allclose(p1, p3, rtol=1e-6)


def test_batch_schedule_is_exact():
    config = dist.CensorConfig(learning_rate=0.2, batch0=1.2, batch_growth=1.2, batch_max=100_000)
    for k in range(80):
        exact = min(100_000, math.floor(Fraction(6, 5) ** (k + 1)))
        assert dist.batch_size(config, k) == exact
    for k in range(80):
        padded = dist.padded_batch_size(config, k)
        assert dist.batch_size(config, k) <= padded <= 100_000
        assert padded == 100_000 or padded & (padded - 1) == 0
    assert dist.padded_batch_size(config, 30, bucket_growth=4) == 1024  # 1.2^31 = 284.8


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"sigma0": -0.1}, ValueError, "sigma0"),
        ({"sigma0": float("nan")}, ValueError, "sigma0"),
        ({"sigma_decay": 0.0}, ValueError, "sigma_decay"),
        ({"sigma_decay": -1.0}, ValueError, "sigma_decay"),
        ({"sigma_decay": float("inf")}, ValueError, "sigma_decay"),
        ({"batch_growth": 0.0}, ValueError, "batch_growth"),
        ({"batch_growth": float("nan")}, ValueError, "batch_growth"),
        ({"batch0": 50, "batch_max": 10}, ValueError, "batch0"),
        ({"batch0": 0.5}, ValueError, "batch0"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate"),
        ({"mode": "fedavg"}, ValueError, "mode"),
        ({"window": 0}, ValueError, "window"),
        ({"window": 2.5}, TypeError, "window"),
        ({"xi": -1.0}, ValueError, "xi"),
        ({"max_staleness": 0}, ValueError, "max_staleness"),
        ({"sigma0": "1"}, TypeError, "sigma0"),
        ({"slack_scaling": "m2"}, ValueError, "slack_scaling"),
        ({"move_window": "paper"}, ValueError, "move_window"),
        ({"force_first_upload": 1}, TypeError, "force_first_upload"),
    ],
)
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        dist.CensorConfig(**kwargs)


def test_bad_wiring():
    config = dist.CensorConfig(learning_rate=0.1)
    tx = dist.csgd(optax.sgd(0.1), config, axis_name="workers")
    # csgd and the step disagree on the axis name
    train = dist.make_train_step(ls_loss, tx, backend="vmap", axis_name="data", num_workers=WORKERS)
    params, state = train.init(jnp.zeros(DIM))
    batch = next(ls_batches(1, batch=2))
    with pytest.raises(ValueError, match="axis_name 'workers' is not bound"):
        train.step(params, state, batch, np.ones((WORKERS, 2), bool))
    mesh = jax.make_mesh((1,), ("data",))
    with pytest.raises(ValueError, match="axis_name 'workers' is not an axis of the mesh"):
        dist.make_train_step(ls_loss, tx, backend="shard_map", mesh=mesh)
    with pytest.raises(ValueError, match="exactly one"):
        dist.make_train_step(ls_loss, optax.sgd(0.1), backend="vmap", num_workers=2).init(
            jnp.zeros(2)
        )
    with pytest.raises(ValueError, match="backend"):
        dist.make_train_step(ls_loss, tx, backend="mpi")
    with pytest.raises(ValueError, match="num_workers is required"):
        dist.make_train_step(ls_loss, tx, backend="vmap")
    with pytest.raises(ValueError, match="exceeds"):
        dist.make_train_step(ls_loss, tx, backend="pmap", num_workers=jax.local_device_count() + 1)
    with pytest.raises(TypeError, match="CensorConfig"):
        dist.csgd(optax.sgd(0.1), {"mode": "csgd"})
    train = dist.make_train_step(ls_loss, tx, backend="vmap", num_workers=WORKERS)
    params, state = train.init(jnp.zeros(DIM))
    with pytest.raises(ValueError, match="mask must have shape"):
        train.step(params, state, batch, np.ones((WORKERS + 1, 2), bool))
    with pytest.raises(ValueError, match="batch leaves must start with"):
        train.step(params, state, batch, np.ones((WORKERS, 3), bool))


def test_split_among_workers():
    data = {"x": np.arange(12).reshape(6, 2), "y": np.arange(6)}
    shards = dist.split_among_workers(data, 3)
    assert shards["x"].shape == (3, 2, 2) and shards["y"].tolist() == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(
        ValueError, match=r"num_workers \(4\) must divide the number of examples \(6\)"
    ):
        dist.split_among_workers(data, 4)
    with pytest.raises(ValueError, match="same number of examples"):
        dist.split_among_workers({"x": np.zeros(4), "y": np.zeros(5)}, 2)


def test_any_optax_server_update():
    # Adam on the held mean: the censoring wraps it unchanged (the inner state is replicated).
    config = dist.CensorConfig(learning_rate=0.05, sigma0=0.5)
    batches = list(ls_batches(15, batch=16))
    got, sent, _, _ = run_trainer(config, batches, 0.05, inner=optax.adam(0.05))
    x_star = np.random.default_rng(0).normal(size=DIM)
    assert np.linalg.norm(got[-1] - x_star) < 0.7 * np.linalg.norm(x_star)
    assert sent.sum() < sent.size


@pytest.mark.slow
def test_csgd_distributes_residual_learning():
    """csgd(aimcjax.optim.residual_learning(...)) trains: distributed analog training."""
    from aimcjax import devices
    from aimcjax.optim import residual_learning

    workers, dim = 4, 8
    device = devices.SoftBounds(tau=1.0, dw_min=1e-3)
    inner = residual_learning(0.1, 0.1, 0.4, device, key=0)
    # slack 2 / M^2 = 0.125 (the authors' scaling, 4 workers)
    config = dist.CensorConfig(learning_rate=0.1, sigma0=2.0, sigma_decay=0.97)

    def loss(weights, example):  # a (dim, 1) crossbar
        return 0.5 * ((example["a"] @ weights)[0] - example["y"]) ** 2

    train = dist.make_train_step(
        loss, dist.csgd(inner, config), backend="vmap", num_workers=workers
    )
    params, state = train.init(jnp.zeros((dim, 1)))
    rng = np.random.default_rng(0)
    x_star = 0.3 * rng.normal(size=dim)
    losses, uploads = [], 0
    for _ in range(60):
        a = rng.normal(size=(workers, 16, dim)).astype(np.float32)
        batch = {"a": a, "y": (a @ x_star).astype(np.float32)}
        params, state, metrics = train.step(params, state, batch, np.ones((workers, 16), bool))
        losses.append(float(np.mean(metrics.loss)))
        uploads = int(metrics.total_uploads)
    # E[loss] at the start (weights 0) is |x*|^2 / 2; trained, it must drop well below.
    start = 0.5 * float(np.sum(x_star**2))
    assert np.mean(losses[-10:]) < 0.2 * start
    assert uploads < 0.6 * workers * 60  # censoring works on analog updates too
    w = np.asarray(params)
    assert np.array_equal(w, np.broadcast_to(w[0], w.shape))  # replicated analog updates
