"""Robustness to a wrong zero-shift reference on the RF Fig. 2 toy least squares.

Setup ([RF] arXiv:2502.06309 Fig. 2, smaller scale; docs/references.md): f = ½ mean (A W - b)², A ~ N(0,1) of (100, 50),
W* ~ 0.5 N(0,1), W0 = 1; main array SoftBounds tau = 3.5, c = 0.3, dw_min = 1e-3 (10x the
paper's, for 1 000 steps); fast array SoftBounds tau = 0.5, c = 0.3 whose reference misses its
symmetric point by N(0, (0.25 * range)²), range = 2 tau (the device's reference_std).
Measured (seed 1): TTv2 0.0038 clean -> 6.8 with the reference error; AGAD 0.012 in both
(it reads P relative to the previous chopper period and uses no reference); c-TTv2 (regular
chopper, period 100 reads, read every step, beta 0.05) 0.25 clean -> 8.6 with the error; with
the read period and buffer rate derived in ``test_chopped_ttv2_survives_reference_error`` it
trains to 0.06 with the error. Initial loss 51.5.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aimcjax import devices as D
from aimcjax import pulse
from aimcjax.optim import agad, chopped_ttv2, ttv2

kA, kW = jax.random.split(jax.random.PRNGKey(0))
A = jax.random.normal(kA, (100, 50))
B = A @ (0.5 * jax.random.normal(kW, (50, 1)))
UPDATE = pulse.UpdateConfig(mode="pulse", bl=8)
W_DEV = D.SoftBounds(tau=3.5, asymmetry=0.3, dw_min=1e-3)
TAU_P = 0.5


def _loss(p):
    return 0.5 * jnp.mean((A @ p["w"] - B) ** 2)


def _final_loss(opt, steps=1000):
    def go():
        p = {"w": jnp.ones((50, 1))}
        s = opt.init(p)

        def step(c, _):
            p, s = c
            u, s = opt.update(jax.grad(_loss)(p), s, p)
            return (optax.apply_updates(p, u), s), None

        (p, _), _ = jax.lax.scan(step, (p, s), None, length=steps)
        return _loss(p)

    return float(jax.jit(go)())


@pytest.mark.slow
def test_reference_error_breaks_ttv2_but_not_agad():
    initial = float(_loss({"w": jnp.ones((50, 1))}))
    clean = D.SoftBounds(tau=TAU_P, asymmetry=0.3, dw_min=1e-3)
    wrong = clean.replace(reference_std=0.25 * 2 * TAU_P)
    ttv2_clean = _final_loss(
        ttv2(
            0.2,
            0.05,
            W_DEV,
            residual_device=clean,
            zero_shift=True,
            transfer="full",
            update=UPDATE,
            key=1,
        )
    )
    ttv2_wrong = _final_loss(
        ttv2(
            0.2,
            0.05,
            W_DEV,
            residual_device=wrong,
            zero_shift=True,
            transfer="full",
            update=UPDATE,
            key=1,
        )
    )
    agad_wrong = _final_loss(
        agad(
            0.2,
            0.05,
            W_DEV,
            residual_device=wrong,
            transfer="full",
            in_chop_prob=0.01,
            update=UPDATE,
            key=1,
        )
    )
    print(
        f"initial {initial:.3g} ttv2 clean {ttv2_clean:.3g} ttv2 wrong ref {ttv2_wrong:.3g} agad wrong ref {agad_wrong:.3g}"
    )
    assert ttv2_clean < 0.01 * initial  # TTv2 trains with a correct reference
    assert agad_wrong < 0.01 * initial  # AGAD trains regardless
    assert ttv2_wrong > 10 * max(ttv2_clean, agad_wrong)  # TTv2 degrades by > 10x


@pytest.mark.slow
def test_chopped_ttv2_survives_reference_error():
    """c-TTv2 trains the toy least squares with a 25% reference error where TTv2 degrades.

    Why the settings (not tuned knobs): a reference offset o of P enters each read as c*o, so
    it cancels in the buffer H only up to one chopper half-period; whatever it makes H fire
    within a half-period is written to W and taken back in the next one (churn). On the
    asymmetric main device every up/down pulse pair drifts W by ~2*dw_min*|G(W)| towards its
    symmetric point (G(w) = w/tau - c, |G| ~ 0.3 here), so churn must be small against the
    gradient signal. Per read the demodulated gradient in P is ~P_read*alpha*g/2 (P_read = steps
    between reads; the chopped integrator passes half of it) against the offset |o|, so the
    ratio gradient/drift is ~ P_read*alpha*g / (2*|o|*|G|), with alpha*g capped at
    bl*dw_min = 8e-3 by the pulse BL and |o| ~ 0.25: P_read = 1 (read every step, as the
    TTv2 test) gives 0.05 — W is pinned near its symmetric point (measured 47 with the
    fastest chopper); P_read = 10 gives ~0.5 with churn capped at the transfer BL. Hence:
      - transfer_every = 10 ("full": every element read once per 10 steps);
      - the fastest regular chopper aihwkit allows (in_chop_prob = 1: flip every 2 reads), so
        the offset's excursion beta*|o|*K per half-period K is smallest;
      - beta = 1 with theta = dw_min: one W pulse per dw_min of demodulated read, i.e. the
        buffer transfers what P accumulated at its own scale (aihwkit's transfer_lr = 1).
    Measured (seed 1; initial 51.5): c-TTv2 0.10 clean, 0.060 with the error (keys 2-4:
    0.065, 0.039, 0.093); TTv2 in the same transfer setting fails even clean (12.5), so TTv2 is
    compared at its own working setting (0.0038 clean, 6.8 with the error).
    Tolerance: over keys 1-4 the c-TTv2 final loss has mean 0.064, std 0.022; the 1% bound
    (0.515) is > 20 std above the mean, and TTv2's 6.8 vs its 0.0038 is > 1000x, far from the
    10x asserted. The same chopper with P_read = 1 (the old setting, 8.6) would fail the test.
    """
    initial = float(_loss({"w": jnp.ones((50, 1))}))
    clean = D.SoftBounds(tau=TAU_P, asymmetry=0.3, dw_min=1e-3)
    wrong = clean.replace(reference_std=0.25 * 2 * TAU_P)
    chopped = dict(
        transfer="full",
        transfer_every=10,
        in_chop_prob=1.0,
        in_chop_random=False,
        update=UPDATE,
        key=1,
    )
    cttv2_wrong = _final_loss(chopped_ttv2(0.2, 1.0, W_DEV, residual_device=wrong, **chopped))
    ttv2_clean = _final_loss(
        ttv2(
            0.2,
            0.05,
            W_DEV,
            residual_device=clean,
            zero_shift=True,
            transfer="full",
            update=UPDATE,
            key=1,
        )
    )
    ttv2_wrong = _final_loss(
        ttv2(
            0.2,
            0.05,
            W_DEV,
            residual_device=wrong,
            zero_shift=True,
            transfer="full",
            update=UPDATE,
            key=1,
        )
    )
    print(
        f"initial {initial:.3g} c-ttv2 wrong {cttv2_wrong:.3g} ttv2 clean {ttv2_clean:.3g} wrong {ttv2_wrong:.3g}"
    )
    assert cttv2_wrong < 0.01 * initial  # c-TTv2 trains despite the wrong reference
    assert ttv2_wrong > 10 * ttv2_clean and ttv2_wrong > 10 * cttv2_wrong  # TTv2 degrades


@pytest.mark.slow
def test_digits_mlp_reference_error_hurts_ttv2_not_agad():
    """64-32-10 tanh MLP on scikit-learn digits (1 400 train / 397 test, seeded permutation),
    batch 32, 1 500 steps; every kernel analog (main SoftBounds tau 0.6, c 0.3; fast array
    tau 0.5, reference error std 0.25 = 25% of its range 1.0). Measured: TTv2 98.2% clean,
    92.9% with the error; AGAD 98.2% with it. c-TTv2 with the error: 83.6% when read every
    step (beta 0.05, chopper period 100 reads) or 80.1% with the LS test's full transfer every
    10 steps — the digits gradients are smaller than the LS ones, so by the argument in
    ``test_chopped_ttv2_survives_reference_error`` P needs longer between reads: with
    aihwkit's own transfer ("column": one input line per step, so each line is read every
    64 (w1) or 32 (w2) steps), beta 1 and a flip every 2 reads it reaches 96.2% with the error
    and 96.5% with a correct reference (keys 2-4 with the error: 95.0, 95.5, 94.5).
    The accuracy of one run on 397 test digits has a sampling std of ~1.1 points at 95%, so a
    3-point gap is ~2.7 sigma of one run's noise and the 5-point measured gap leaves margin.
    c-TTv2 bound: keys 1-4 put it 2.0-3.7 points below clean TTv2 (mean 2.9, spread 0.7);
    with the ~1.1-point test sampling std a 5-point bound is ~2 sigma above the mean gap.
    Not asserted: c-TTv2 above TTv2 with the error — over keys 1-4 TTv2 with the error gets
    92.9/95.0/94.7/93.7, on average only 1.2 points below c-TTv2 (not significant here).
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    perm = np.random.RandomState(0).permutation(len(X))
    X, y = jnp.asarray(X[perm] / 16.0, jnp.float32), jnp.asarray(y[perm])
    Xtr, ytr, Xte, yte = X[:1400], y[:1400], X[1400:], y[1400:]

    def model(p, x):
        return jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def loss(p, x, t):
        return optax.softmax_cross_entropy_with_integer_labels(model(p, x), t).mean()

    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    p0 = {
        "w1": 0.3 * jax.random.normal(k1, (64, 32)),
        "b1": jnp.zeros(32),
        "w2": 0.3 * jax.random.normal(k2, (32, 10)),
        "b2": jnp.zeros(10),
    }

    def accuracy(opt, steps=1500, batch=32):
        def go():
            s = opt.init(p0)

            def step(c, i):
                p, s = c
                idx = jax.random.randint(
                    jax.random.fold_in(jax.random.PRNGKey(9), i), (batch,), 0, 1400
                )
                u, s = opt.update(jax.grad(loss)(p, Xtr[idx], ytr[idx]), s, p)
                return (optax.apply_updates(p, u), s), None

            (p, _), _ = jax.lax.scan(step, (p0, s), jnp.arange(steps))
            return jnp.mean(jnp.argmax(model(p, Xte), -1) == yte)

        return float(jax.jit(go)())

    main = D.SoftBounds(tau=0.6, asymmetry=0.3, dw_min=1e-3)
    clean = D.SoftBounds(tau=0.5, asymmetry=0.3, dw_min=1e-3)
    wrong = clean.replace(reference_std=0.25)
    ttv2_clean = accuracy(
        ttv2(
            0.2,
            0.05,
            main,
            residual_device=clean,
            zero_shift=True,
            transfer="full",
            update=UPDATE,
            key=1,
        )
    )
    ttv2_wrong = accuracy(
        ttv2(
            0.2,
            0.05,
            main,
            residual_device=wrong,
            zero_shift=True,
            transfer="full",
            update=UPDATE,
            key=1,
        )
    )
    agad_wrong = accuracy(
        agad(
            0.2,
            0.05,
            main,
            residual_device=wrong,
            transfer="full",
            in_chop_prob=0.01,
            update=UPDATE,
            key=1,
        )
    )
    cttv2_wrong = accuracy(
        chopped_ttv2(
            0.2,
            1.0,
            main,
            residual_device=wrong,
            transfer="column",
            in_chop_prob=1.0,
            in_chop_random=False,
            update=UPDATE,
            key=1,
        )
    )
    print(
        f"digits: ttv2 clean {ttv2_clean:.3f} ttv2 wrong {ttv2_wrong:.3f} agad wrong {agad_wrong:.3f} "
        f"c-ttv2 wrong {cttv2_wrong:.3f}"
    )
    assert ttv2_clean > 0.95 and agad_wrong > 0.95
    assert ttv2_wrong < agad_wrong - 0.03
    assert cttv2_wrong > ttv2_clean - 0.05  # c-TTv2 trains within a few points despite the error
