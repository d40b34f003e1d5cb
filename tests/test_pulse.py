"""The pulse-update kernel: exact per-pulse semantics, statistics of the modes, aihwkit's
stochastic-compressed outer-product trains, compilation and vmap behaviour, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aimcjax import devices as D
from aimcjax import pulse as P
from aimcjax import tile as T
from aimcjax.pulse import blocks, loop, rng, trains, xla

PULSE = P.UpdateConfig(mode="pulse")
OUTER = P.UpdateConfig(mode="outer")


def _loop_apply(tile, device, n, key=0):
    """Force the per-pulse loop: a device passed through jit has traced parameters, which
    rules out the closed-form shortcut."""
    return jax.jit(P.apply)(tile, device, n, key)


# -- exact per-pulse semantics -----------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    w0=st.floats(-0.59, 0.59),
    n=st.integers(0, 300),
    tau=st.floats(0.2, 2.0),
    dw_min=st.floats(1e-4, 5e-2),
)
def test_soft_bounds_up_pulses_follow_geometric_closed_form(w0, n, tau, dw_min):
    w0 = w0 * tau / 0.6
    dev = D.SoftBounds(tau=tau, dw_min=dw_min)
    t = T.init(0, dev, (1,), w0=w0)
    want = tau - (tau - w0) * (1 - dw_min / tau) ** n
    counts = jnp.full((1,), n, jnp.int32)
    fast = P.apply(t, dev, counts, 0).w[0]
    loop = _loop_apply(t, dev, counts).w[0]
    # float32: each pulse adds ~1 ulp of relative rounding, so n pulses stay within n ulps of tau
    tol = 4e-7 * tau * (n + 4)
    assert abs(float(fast) - want) <= tol
    assert abs(float(loop) - want) <= tol


_jit_update = jax.jit(P.update)  # one compile per device family across hypothesis examples

DEVICES = [
    D.ConstantStep(dw_min=0.05),
    D.SoftBounds(tau=0.6, asymmetry=0.3, dw_min=0.05),
    D.Power(tau=0.6, gamma=0.5, asymmetry=-0.2, dw_min=0.05, dw_min_std=1.0),
    D.Exponential(tau=0.6, gamma=3.0, dw_min=0.05, dw_min_std=2.0, noise="multiplicative"),
    D.Piecewise(up=[2.0, 0.5], down=[0.5, 2.0], w_min=-0.6, w_max=0.6, dw_min=0.05, dw_min_std=3.0),
    D.Custom(q_plus=lambda w: 1 - w, q_minus=lambda w: 1 + w, w_min=-0.6, w_max=0.6, dw_min=0.05),
]


@settings(max_examples=30, deadline=None)
@given(
    which=st.integers(0, len(DEVICES) - 1),
    scale=st.sampled_from([0.0, 1e-6, 1.0, 1e3, 1e30, 1e37]),
    mode=st.sampled_from(["pulse", "expected"]),
    seed=st.integers(0, 2**16),
)
def test_weights_never_leave_bounds(which, scale, mode, seed):
    dev = DEVICES[which]
    t = T.init(
        seed, dev.replace(w_max_dtod=0.2, w_min_dtod=0.2, dw_min_dtod=0.3), (6, 5), zero_shift=True
    )
    dW = scale * jax.random.normal(jax.random.PRNGKey(seed), (6, 5))
    new = _jit_update(t, dev, dW, seed, P.UpdateConfig(mode=mode, bl=1000))
    assert np.isfinite(np.asarray(new.w)).all()
    assert (new.w >= t.w_min).all() and (new.w <= t.w_max).all()


def test_bounds_hold_at_edges_in_float64():
    with jax.enable_x64(True):
        dev = D.SoftBounds(tau=1.0, dw_min=0.3, dw_min_std=5.0)
        edges = jnp.array([-1.0, -1.0 + 1e-12, 0.0, 1.0 - 1e-12, 1.0], jnp.float64)
        t = T.init(0, dev, (5,), w0=edges)
        assert t.w.dtype == jnp.float64
        for sign in (1, -1):
            new = P.apply(t, dev, jnp.full((5,), sign * 50, jnp.int32), 1)
            assert new.w.dtype == jnp.float64
            assert np.isfinite(np.asarray(new.w)).all()
            assert (new.w >= -1.0).all() and (new.w <= 1.0).all()


def test_constant_step_noise_free_is_exact_and_saturates():
    dev = D.ConstantStep(dw_min=0.1)
    t = T.init(0, dev, (3,), w0=jnp.array([0.0, 0.85, -0.85]))
    new = P.apply(t, dev, jnp.array([3, 5, -5]), 0)
    np.testing.assert_allclose(new.w, [0.3, 1.0, -1.0], rtol=1e-6)


# -- "pulse" mode statistics --------------------------------------------------------------------


def test_pulse_mode_mean_matches_expected_update():
    dev = D.Power(tau=0.6, gamma=2.0, asymmetry=0.1, dw_min=1e-3, dw_min_std=0.5)
    w0 = jnp.array([-0.3, 0.0, 0.2, 0.4])
    dW = jnp.array([0.0123, -0.0071, 0.0049, -0.0207])
    t = T.init(0, dev, (4,), w0=w0)
    keys = jax.random.split(jax.random.PRNGKey(7), 4000)
    moved = jax.vmap(lambda k: P.update(t, dev, dW, k, PULSE).w)(keys) - t.w
    expected = dev.expected_update(w0, dW) - w0
    # Statistical part: 5 standard errors of the mean over 4000 keys.
    se = np.asarray(moved.std(0)) / np.sqrt(len(keys))
    # Deterministic part: pulses re-evaluate q after each step, expected_update does not; the
    # drift of q over a request is |q'| * |dW| * max(q), so the gap is at most |dW|^2*|q'|*q/2.
    w = np.linspace(-0.6, 0.6, 2001)
    q_slope = np.abs(np.gradient(np.maximum(dev.q_plus(w), dev.q_minus(w)), w)).max()
    bias = np.asarray(dW) ** 2 * q_slope * 2.0 / 2
    err = np.abs(np.asarray(moved.mean(0) - expected))
    assert (err <= 5 * se + bias).all(), (err, se, bias)


def test_granularity_of_a_fraction_of_a_pulse():
    dev = D.ConstantStep(dw_min=1e-3)
    t = T.init(0, dev, (1,))
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    moved = jax.vmap(lambda k: P.update(t, dev, jnp.array([0.3e-3]), k, PULSE).w[0])(keys)
    pulses = np.round(np.asarray(moved) / 1e-3)
    np.testing.assert_allclose(np.asarray(moved), pulses * 1e-3, atol=1e-9)  # whole pulses only
    assert set(np.unique(pulses)) <= {0.0, 1.0}
    # Bernoulli(0.3) over 4000 keys: 5 standard errors
    assert abs(pulses.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / 4000)


def test_pulse_mode_caps_at_bl():
    dev = D.ConstantStep(dw_min=1e-3)
    t = T.init(0, dev, (2,))
    new = P.update(t, dev, jnp.array([1.0, -1.0]), 0, P.UpdateConfig(mode="pulse", bl=7))
    np.testing.assert_allclose(new.w, [0.007, -0.007], rtol=1e-6)


def test_expected_and_ideal_modes():
    dev = D.SoftBounds(tau=0.6, asymmetry=0.2)
    t = T.init(0, dev, (3,), w0=jnp.array([0.1, -0.2, 0.5]))
    dW = jnp.array([0.05, -0.05, 0.5])
    got = P.update(t, dev, dW, 0, P.UpdateConfig(mode="expected"))
    np.testing.assert_allclose(got.w, dev.expected_update(t.w, dW), rtol=1e-6)
    ideal = P.update(t, dev, dW, 0, P.UpdateConfig(mode="ideal"))
    np.testing.assert_allclose(ideal.w, t.w + dW, rtol=1e-6)  # digital: no response, no clip


# -- "outer" mode: aihwkit's stochastic-compressed pulse trains -----------------------------------


def _outer_counts(x, d, lr, dw_min, key, cfg=OUTER):
    return trains._sample_pulse_counts(jnp.asarray(x), jnp.asarray(d), lr, dw_min, key, cfg)


def test_outer_mean_change_on_constant_step_is_minus_lr_d_xT():
    dev = D.ConstantStep(dw_min=1e-3)
    t = T.init(0, dev, (4, 3))
    x = jnp.array([[1.0, -0.5, 0.25, 0.0], [0.3, 0.6, -0.9, 0.1]])
    d = jnp.array([[0.2, -0.1, 0.05], [-0.3, 0.15, 0.02]])
    lr = 0.02
    keys = jax.random.split(jax.random.PRNGKey(1), 3000)
    moved = jax.vmap(lambda k: P.outer_update(t, dev, x, d, lr, k, OUTER).w)(keys) - t.w
    want = -lr * x.T @ d
    se = np.asarray(moved.std(0)) / np.sqrt(len(keys))
    err = np.abs(np.asarray(moved.mean(0) - want))
    assert (err <= 5 * se + 1e-9).all(), (err, se)


def test_outer_expected_counts_below_saturation():
    x = jnp.array([0.9, -0.4, 0.1, 0.0, 0.6])
    d = jnp.array([0.5, -0.05, 0.25])
    lr, dw_min = 0.01, 1e-3  # k = lr*0.9*0.5/dw_min = 4.5 -> BL 5, below bl=31
    keys = jax.random.split(jax.random.PRNGKey(2), 6000)
    n = jax.vmap(lambda k: _outer_counts(x, d, lr, dw_min, k))(keys)
    want = lr * np.abs(np.outer(x, d)) / dw_min
    assert np.abs(np.asarray(n)).max() <= 5
    mean = np.abs(np.asarray(n)).mean(0)
    se = np.abs(np.asarray(n)).std(0) / np.sqrt(len(keys))
    assert (np.abs(mean - want) <= 5 * se + 1e-9).all(), (mean, want, se)
    # direction: positive lr * x * d fires down pulses
    sign = np.sign(np.asarray(n).sum(0))
    np.testing.assert_array_equal(sign, -np.sign(np.outer(x, d)))


def test_outer_saturates_at_bl():
    x = jnp.array([1.0, 0.5, -0.2])
    d = jnp.array([-2.0, 1.0])
    lr, dw_min = 1.0, 1e-3  # k = 2000 >> bl
    cfg = P.UpdateConfig(mode="outer", bl=31)
    keys = jax.random.split(jax.random.PRNGKey(3), 200)
    n = np.asarray(jax.vmap(lambda k: _outer_counts(x, d, lr, dw_min, k, cfg))(keys))
    assert np.abs(n).max() == 31
    # the largest |x_j d_i| fires in every slot: p = sqrt(k_eff / BL) = 1
    assert (n[:, 0, 0] == 31).all()
    # aihwkit's saturation: p_x = |x_j| / max|x|, p_d = min(1, |d_i| k / (max|d| BL)) = 1 for
    # both d here, so E|n_ij| = 31 * |x_j| / max|x| (see test_fidelity_rules for a partly
    # saturated d)
    want = 31 * np.abs(np.outer(x, np.ones(2))) / 1.0
    mean, se = np.abs(n).mean(0), np.abs(n).std(0) / np.sqrt(len(keys))
    assert (np.abs(mean - want) <= 5 * se + 1e-9).all()


def test_outer_applies_samples_in_sequence():
    # Element at 0.99 with bound 1: +5 pulses then -5 pulses. In sequence it hits the bound
    # first (0.99 -> 1.0 -> 0.95); the summed request would leave it at 0.99.
    dev = D.ConstantStep(dw_min=0.01)
    t = T.init(0, dev, (1, 1), w0=0.99)
    lr = 0.05  # k = lr*1*1/0.01 = 5 -> BL 5, p = 1: exactly 5 pulses per sample
    x = jnp.ones((2, 1))
    d = jnp.array([[-1.0], [1.0]])
    new = P.outer_update(t, dev, x, d, lr, 0, OUTER)
    assert float(new.w[0, 0]) == pytest.approx(0.95, abs=1e-6)
    reverse = P.outer_update(t, dev, x, d[::-1], lr, 0, OUTER)
    assert float(reverse.w[0, 0]) == pytest.approx(0.99, abs=1e-6)


def test_outer_on_rank4_kernel_uses_matrix_view():
    dev = D.ConstantStep(dw_min=1e-3)
    t = T.init(0, dev, (3, 3, 2, 4))
    x = jnp.ones((5, 18))
    d = 0.01 * jnp.ones((5, 4))
    new = P.outer_update(t, dev, x, d, 0.1, 0, OUTER)
    assert new.w.shape == (3, 3, 2, 4)
    # k = 0.1*1*0.01/1e-3 = 1 -> BL 1, p = 1: each sample fires exactly one down pulse
    np.testing.assert_allclose(new.w, -5e-3, rtol=1e-5)


# -- compilation, vmap over devices ---------------------------------------------------------------


def test_compiles_once_per_shape():
    traces = []

    def step(t, dev, dW, key):
        traces.append(1)
        return P.update(t, dev, dW, key, PULSE)

    f = jax.jit(step)
    dev = D.SoftBounds(tau=0.6, dw_min_std=0.2)
    t = T.init(0, dev, (8, 8))
    for i in range(4):
        t = f(t, dev.replace(tau=0.6 + 0.01 * i), 0.01 * jnp.ones((8, 8)), jax.random.PRNGKey(i))
    assert len(traces) == 1


def test_vmap_over_sixteen_devices_equals_separate_calls():
    devs = [
        D.Power(tau=t, gamma=g, asymmetry=0.1, dw_min=1e-3, dw_min_std=0.3)
        for t in (0.6, 0.7, 0.8, 0.9)
        for g in (0.5, 1.0, 2.0, 3.0)
    ]
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 6))
    d = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (4, 5))

    def run(dev):
        t = T.init(jax.random.PRNGKey(5), dev, (6, 5), zero_shift=True)
        t = P.update(t, dev, 0.01 * jnp.ones((6, 5)), jax.random.PRNGKey(6), PULSE)
        return P.outer_update(t, dev, x, d, 0.05, jax.random.PRNGKey(7), OUTER).w

    batched = jax.jit(jax.vmap(run))(D.stack(devs))
    single = jax.jit(run)
    for i, dev in enumerate(devs):
        np.testing.assert_allclose(batched[i], single(dev), rtol=1e-6, atol=1e-7)


def test_vmap_with_different_pulse_counts_equals_separate_calls():
    """Under vmap the per-pulse loop runs to the largest count of the whole batch (so that a
    shared key's draws are shared): the surplus passes must leave every member as it was."""
    dev = D.SoftBounds(tau=0.6, dw_min=1e-2, dw_min_std=0.3)
    t = T.init(jax.random.PRNGKey(1), dev, (5, 4))
    counts = jnp.stack(
        [
            jnp.zeros((5, 4), jnp.int32),
            jnp.ones((5, 4), jnp.int32),
            jnp.arange(20, dtype=jnp.int32).reshape(5, 4) - 10,
            jnp.full((5, 4), -3, jnp.int32),
        ]
    )
    key = jax.random.PRNGKey(2)
    apply = jax.jit(lambda n: P.apply(t, dev, n, key).w)
    batched = jax.jit(jax.vmap(lambda n: P.apply(t, dev, n, key).w))(counts)
    nested = jax.jit(jax.vmap(jax.vmap(lambda n: P.apply(t, dev, n, key).w)))(
        counts.reshape(2, 2, 5, 4)
    )
    for i in range(4):
        np.testing.assert_array_equal(batched[i], apply(counts[i]))
        np.testing.assert_array_equal(nested.reshape(4, 5, 4)[i], apply(counts[i]))
    # outer mode: members with different train lengths (update-BL management)
    x = jax.random.uniform(jax.random.PRNGKey(3), (3, 5))
    ds = jnp.stack([0.02 * jnp.ones((3, 4)), 0.3 * jnp.ones((3, 4))])
    outer = jax.jit(lambda d: P.outer_update(t, dev, x, d, 0.5, key, OUTER).w)
    batched = jax.jit(jax.vmap(lambda d: P.outer_update(t, dev, x, d, 0.5, key, OUTER).w))(ds)
    for i in range(2):  # same pulses; batched float arithmetic may round differently
        np.testing.assert_allclose(batched[i], outer(ds[i]), rtol=1e-6, atol=1e-7)


_live_first = jax.jit(blocks._live_first)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=300))
def test_live_first_is_a_stable_partition(flags):
    """The block loops order lines by this partition: live indices first, each group in its
    original order (argsort of ~live with a stable sort)."""
    live = np.array(flags)
    got = np.asarray(_live_first(jnp.asarray(live)))
    np.testing.assert_array_equal(got, np.argsort(~live, kind="stable"))


_ODD, _EVEN = (
    np.array([1, 5], np.uint32),
    np.array([2, 5], np.uint32),
)  # the conditional's two sides


@pytest.mark.parametrize(
    "key", [jnp.asarray(_ODD), jnp.asarray(_EVEN), jax.random.wrap_key_data(jnp.asarray(_ODD))]
)
def test_materialized_is_the_identity(key):
    """Shared draws pass through a two-branch conditional so that XLA computes them once;
    whichever branch the key selects, and under vmap with batched or shared keys, the value is
    returned unchanged (bit for bit, -0.0 and NaN included)."""
    x = jnp.array([[1.5, -0.0, jnp.nan], [jnp.inf, 3e-38, -2.0]], jnp.float32)
    same = lambda a, b: np.testing.assert_array_equal(
        np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32)
    )
    same(jax.jit(xla._materialized)(x, key), x)
    xs = jnp.stack([x, 2 * x])
    keys = jax.random.split(key, 2)
    same(jax.jit(jax.vmap(xla._materialized))(xs, keys), xs)
    same(jax.jit(jax.vmap(xla._materialized, in_axes=(0, None)))(xs, key), xs)
    counts = jnp.array([[3, -1], [0, 127]], jnp.int8)
    same(jax.jit(xla._materialized)(counts, key).astype(jnp.int32), counts.astype(jnp.int32))


# -- the per-pulse noise generator ----------------------------------------------------------------


def test_counter_noise_is_iid_standard_normal():
    """The counter-based normals of the per-pulse loop, 2^16 per draw, against N(0, 1).

    Every bound is 5 standard errors of its statistic (false-alarm rate ~1e-6 per check):
    mean SE 1/sqrt(N); variance SE sqrt(2/N); E[z^4] = 3 with Var(z^4) = 105 - 9 = 96, SE
    sqrt(96/N); tail P(|z| > 3) = 0.0027 with SE sqrt(p(1-p)/N); correlations (neighbouring
    elements, two loop iterations of one key, two keys) SE 1/sqrt(N). The shape check bins
    Phi(z) into 32 equal cells: chi-square with 31 dof, bound at its 1 - 1e-6 quantile.
    """
    from scipy import stats

    shape = (256, 256)
    n = shape[0] * shape[1]
    counter = jax.lax.iota(jnp.uint32, n).reshape(shape)
    key = jax.random.PRNGKey(3)
    draw = jax.jit(lambda k: rng._counter_normal(k, counter, jnp.float32))
    z0 = np.asarray(draw(jax.random.fold_in(key, 0)), np.float64).ravel()
    z1 = np.asarray(draw(jax.random.fold_in(key, 1)), np.float64).ravel()
    z_other = np.asarray(draw(jax.random.fold_in(jax.random.PRNGKey(4), 0)), np.float64).ravel()
    se = 1 / np.sqrt(n)
    assert abs(z0.mean()) < 5 * se
    assert abs(z0.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs(np.mean(z0**4) - 3) < 5 * np.sqrt(96 / n)
    p3 = 2 * stats.norm.sf(3)
    assert abs(np.mean(np.abs(z0) > 3) - p3) < 5 * np.sqrt(p3 * (1 - p3) / n)
    for a, b in ((z0[:-1], z0[1:]), (z0[:-256], z0[256:]), (z0, z1), (z0, z_other)):
        assert abs(np.corrcoef(a, b)[0, 1]) < 5 * se
    cells = np.bincount(np.minimum((stats.norm.cdf(z0) * 32).astype(int), 31), minlength=32)
    chi2 = np.sum((cells - n / 32) ** 2 / (n / 32))
    assert chi2 < stats.chi2.ppf(1 - 1e-6, 31)


def test_counter_uniform_and_stochastic_rounding():
    """The counter uniforms (stochastic rounding of the "pulse" mode) against U[0, 1), 2^16
    per draw. Bounds are 5 standard errors: mean SE sqrt(1/12/N); variance 1/12 with
    Var((u - 1/2)^2) = 1/80 - 1/144, SE sqrt(that/N); neighbour correlation SE 1/sqrt(N);
    32-cell chi-square (31 dof) at its 1 - 1e-6 quantile. Rounding dW = 0.3 dw_min gives one
    pulse with probability 0.3 (binomial SE sqrt(0.21/N)) and never two."""
    from scipy import stats

    shape = (256, 256)
    n = shape[0] * shape[1]
    u = np.asarray(
        rng._uniform(jax.random.PRNGKey(5), shape, jnp.float32, "counter"), np.float64
    ).ravel()
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 5 * np.sqrt((1 / 80 - 1 / 144) / n)
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 / np.sqrt(n)
    cells = np.bincount((u * 32).astype(int), minlength=32)
    assert np.sum((cells - n / 32) ** 2 / (n / 32)) < stats.chi2.ppf(1 - 1e-6, 31)
    counts = np.asarray(P.pulse_counts(jnp.full(shape, 0.3e-3), 1e-3, 31, jax.random.PRNGKey(6)))
    assert set(np.unique(counts)) <= {0, 1}
    assert abs(counts.mean() - 0.3) < 5 * np.sqrt(0.21 / n)


@pytest.mark.parametrize(
    "dev",
    [
        D.Power(
            tau=0.6, gamma=2.0, asymmetry=0.2, dw_min=0.01, dw_min_std=0.5, noise="multiplicative"
        ),
        D.SoftBounds(tau=0.6, asymmetry=-0.3, dw_min=0.01, dw_min_std=0.5),
        D.Piecewise(
            up=[2.0, 0.5], down=[0.5, 2.0], w_min=-0.6, w_max=0.6, dw_min=0.01, dw_min_std=0.5
        ),
    ],
    ids=["power-mult", "softbounds-add", "piecewise-add"],
)
def test_counter_noise_loop_matches_threefry_reference_in_distribution(dev):
    """The per-pulse loop with the fast counter noise against the same loop with
    jax.random.normal (the reference), on 2^15 elements per direction that start equal and
    get 8 pulses up (resp. down), so their spread is the cycle-to-cycle noise alone.

    Mean: the two-sample z = (m1 - m2) / sqrt((s1^2 + s2^2) / N) is N(0, 1) under "same
    law"; bound 5. Std: the SE of a sample std is s sqrt((kurt - 1) / (4N)) (kurt = the
    kurtosis, 3 for a normal; we use the pooled sample kurtosis), so the two-sample z of the
    stds is bounded by 5 too. A 3% error in the noise's std (z ~ 3% / 0.55% ~ 5.5 here)
    would fail.
    """
    shape = (256, 256)
    t = T.init(0, dev, shape, w0=0.05)
    n = jnp.where(jnp.arange(shape[1]) < shape[1] // 2, 8, -8) * jnp.ones(shape, jnp.int32)
    fast = jax.jit(lambda t, k: P.apply(t, dev, n, k, "counter").w)(t, jax.random.PRNGKey(11))
    ref = jax.jit(lambda t, k: P.apply(t, dev, n, k, "threefry").w)(t, jax.random.PRNGKey(12))
    for half in (slice(0, 128), slice(128, 256)):
        a = np.asarray(fast[:, half], np.float64).ravel()
        b = np.asarray(ref[:, half], np.float64).ravel()
        m = a.size
        assert a.std() > 0.1 * dev.dw_min  # the noise is actually there
        z_mean = (a.mean() - b.mean()) / np.sqrt((a.var() + b.var()) / m)
        kurt = np.mean(
            np.concatenate([(a - a.mean()) ** 4 / a.var() ** 2, (b - b.mean()) ** 4 / b.var() ** 2])
        )
        se_std = np.sqrt((kurt - 1) / (4 * m) * (a.var() + b.var()))
        assert abs(z_mean) < 5
        assert abs(a.std() - b.std()) / se_std < 5


@pytest.mark.parametrize(
    "dev",
    [
        D.SoftBounds(tau=0.6, asymmetry=0.3),
        D.Power(tau=0.7, gamma=0.5, asymmetry=-0.4),
        D.Exponential(tau=0.6, gamma=3.0, asymmetry=0.2),
        D.Piecewise(up=[2.0, 0.5], down=[0.5, 2.0], w_min=-0.6, w_max=0.6),
    ],
)
def test_directed_response_is_the_response_in_the_pulse_direction(dev):
    """The loop evaluates one side of the response per element; it must equal q_plus where
    the pulse is up and q_minus where down (per-element bounds, both signs of asymmetry);
    float32 rounding of the (1-c)/(1+c) rescaling only."""
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    lo = -0.6 * (1 + 0.3 * jax.random.uniform(k1, (40, 30)))
    hi = 0.6 * (1 + 0.3 * jax.random.uniform(k2, (40, 30)))
    w = jax.random.uniform(k3, (40, 30), minval=-0.8, maxval=0.8)
    up = (jnp.arange(30) % 2 == 0) * jnp.ones((40, 30), bool)
    got = loop._directed_response(dev, up, lo, hi)(w)
    qp, qm = dev.response(w, lo, hi)
    np.testing.assert_allclose(got, jnp.where(up, qp, qm), rtol=1e-6, atol=1e-7)


def _rank1_counts(shape):
    """Pulses on every other row and two columns in three (+4 on one, -4 on the other), as a
    sample's coincidences: only some rows and columns carry pulses."""
    rows = (jnp.arange(shape[0]) % 2 == 0)[:, None]
    col = jnp.arange(shape[1])[None, :] % 3
    return jnp.where(rows & (col == 1), 4, jnp.where(rows & (col == 2), -4, 0)).astype(jnp.int32)


@pytest.mark.parametrize("shape", [(300, 150), (40, 7)])
def test_block_apply_equals_apply_without_noise(shape):
    """ "outer" mode runs the loop on the pulsed rows/columns only, block by block (sizes that
    are not multiples of the block shift the last block back); without noise the result must
    be apply()'s, element for element, pulsed or not."""
    dev = D.Power(tau=0.6, gamma=2.0, asymmetry=0.2, dw_min=0.01)
    t = T.init(
        jax.random.PRNGKey(1), dev.replace(w_max_dtod=0.2, dw_min_dtod=0.3), shape, zero_shift=True
    )
    for n in (_rank1_counts(shape), jnp.full(shape, 3, jnp.int32)):
        # a device passed through jit is traced: both take the per-pulse loop
        block = jax.jit(
            lambda t, d, n: blocks._apply_active_block(t, d, n, jax.random.PRNGKey(2), "counter").w
        )(t, dev, n)
        dense = jax.jit(lambda t, d, n: P.apply(t, d, n, jax.random.PRNGKey(3)).w)(t, dev, n)
        np.testing.assert_allclose(block, dense, rtol=1e-6, atol=1e-7)


def test_block_apply_matches_apply_in_distribution():
    """With noise, the block-wise loop against apply() on the whole tile (the reference): in
    each of the two pulsed groups (~19k elements, equal start, 4 pulses up resp. down) the
    mean and std agree within 5 standard errors (two-sample z as in the counter-noise test);
    elements without pulses are untouched."""
    dev = D.Power(tau=0.6, gamma=2.0, dw_min=0.01, dw_min_std=0.5, noise="multiplicative")
    shape = (384, 300)
    t = T.init(0, dev, shape, w0=0.05)
    n = _rank1_counts(shape)
    block = np.asarray(
        jax.jit(lambda t, k: blocks._apply_active_block(t, dev, n, k, "counter").w)(
            t, jax.random.PRNGKey(4)
        ),
        np.float64,
    )
    dense = np.asarray(
        jax.jit(lambda t, k: P.apply(t, dev, n, k, "threefry").w)(t, jax.random.PRNGKey(5)),
        np.float64,
    )
    n = np.asarray(n)
    np.testing.assert_array_equal(block[n == 0], np.asarray(t.w)[n == 0])
    for sign in (4, -4):
        a, b = block[n == sign], dense[n == sign]
        m = a.size
        assert a.std() > 0.1 * dev.dw_min
        assert abs(a.mean() - b.mean()) / np.sqrt((a.var() + b.var()) / m) < 5
        kurt = np.mean(
            np.concatenate([(a - a.mean()) ** 4 / a.var() ** 2, (b - b.mean()) ** 4 / b.var() ** 2])
        )
        assert abs(a.std() - b.std()) / np.sqrt((kurt - 1) / (4 * m) * (a.var() + b.var())) < 5


@pytest.mark.parametrize("shape", [(300, 150), (40, 7)])
def test_block_apply_with_noise_equals_apply_bit_for_bit(shape):
    """With the counter generator, the noise of a pulse is indexed by the element's id in the
    whole tile, so the block-wise loop (noisy device, live lines only, last block shifted back)
    gives apply()'s numbers on the full tile with the same key, bit for bit."""
    dev = D.Power(tau=0.6, gamma=2.0, asymmetry=0.2, dw_min=0.01, dw_min_std=0.4)
    t = T.init(
        jax.random.PRNGKey(1), dev.replace(w_max_dtod=0.2, dw_min_dtod=0.3), shape, zero_shift=True
    )
    for n in (_rank1_counts(shape), jnp.full(shape, 3, jnp.int32)):
        block = jax.jit(
            lambda t, n: blocks._apply_active_block(t, dev, n, jax.random.PRNGKey(2), "counter").w
        )(t, n)
        dense = jax.jit(lambda t, n: P.apply(t, dev, n, jax.random.PRNGKey(2)).w)(t, n)
        np.testing.assert_array_equal(block, dense)
        assert not np.array_equal(block, t.w)


# -- validation -------------------------------------------------------------------------------------


def _t():
    return T.init(0, D.SoftBounds(), (2, 3))


@pytest.mark.parametrize(
    "call,err,arg",
    [
        (lambda: P.UpdateConfig(mode="analog"), ValueError, "mode"),
        (lambda: P.UpdateConfig(bl=0), ValueError, "bl"),
        (lambda: P.UpdateConfig(rng="philox"), ValueError, "rng"),
        (
            lambda: P.apply(_t(), D.SoftBounds(), jnp.zeros((2, 3), jnp.int32), 0, "rbg"),
            ValueError,
            "rng",
        ),
        (lambda: P.pulse_counts(jnp.zeros(3), 1e-3, 31, 0, rng="rbg"), ValueError, "rng"),
        (lambda: P.update(_t(), D.SoftBounds(), jnp.zeros((3, 2)), 0), ValueError, "dW"),
        (lambda: P.update(_t(), D.SoftBounds(), jnp.full((2, 3), jnp.nan), 0), ValueError, "dW"),
        (lambda: P.update(_t(), D.SoftBounds(), jnp.zeros((2, 3)), 0, OUTER), ValueError, "outer"),
        (
            lambda: P.apply(_t(), D.SoftBounds(), jnp.zeros((2, 3)), 0),
            TypeError,
            "n must be an integer",
        ),
        (
            lambda: P.apply(_t(), D.SoftBounds(), jnp.zeros((2, 2), jnp.int32), 0),
            ValueError,
            "n has shape",
        ),
        (
            lambda: P.outer_update(
                _t(), D.SoftBounds(), jnp.zeros((4, 3)), jnp.zeros((4, 3)), 0.1, 0
            ),
            ValueError,
            "x must",
        ),
        (
            lambda: P.outer_update(
                _t(), D.SoftBounds(), jnp.zeros((4, 2)), jnp.zeros((4, 2)), 0.1, 0
            ),
            ValueError,
            "d must",
        ),
        (
            lambda: P.outer_update(
                _t(), D.SoftBounds(), jnp.zeros((4, 2)), jnp.zeros((5, 3)), 0.1, 0
            ),
            ValueError,
            "batch",
        ),
        (lambda: P.update(_t(), "dev", jnp.zeros((2, 3)), 0), TypeError, "device"),
        (lambda: P.update(_t(), D.SoftBounds(), jnp.zeros((2, 3)), 0, "pulse"), TypeError, "cfg"),
    ],
)
def test_bad_input(call, err, arg):
    with pytest.raises(err, match=arg):
        call()
