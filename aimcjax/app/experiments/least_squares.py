"""Least-squares experiments of [RF]: Fig. 2 (algorithms vs. asymmetry), the implicit penalty
of Analog SGD (Theorem 1) and residual learning v2 under coarse granularity.

Each experiment is a plain function returning a results dict of Python floats / lists (JSON
ready); the CLI and notebooks wrap them. Everything runs jitted under one ``lax.scan``.

References:
  [RF] Wu, Xiao, Gokmen, Fagbohungbe, Chen, arXiv:2502.06309: Fig. 2, Theorem 1, App. D.
  [AIHWKIT] SoftBoundsReferenceDevice / TransferCompound semantics (see docs/references.md).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aimcjax import devices, optim, pulse

__all__ = [
    "FIG2_ALGORITHMS",
    "aihwkit_soft_bounds",
    "fig2_run",
    "fig2_sweep",
    "granularity_v1_v2",
    "implicit_penalty",
    "make_problem",
    "penalized_minimiser",
]

FIG2_ALGORITHMS = ("analog_sgd", "tiki_taka", "residual_learning")


def aihwkit_soft_bounds(
    up_down: float, tau: float = 3.5, dw_min: float = 1e-4
) -> devices.SoftBounds:
    """aihwkit's soft-bounds device with ``up_down = c`` in our parametrisation.

    aihwkit's ``up_down`` reduces only the down step: ``q+ = 1 - w/tau``,
    ``q- = (1 - c)(1 + w/tau)`` (in units of dw_min). Ours is ``q+ = (1+a)(1 - w/tau)``,
    ``q- = (1-a)(1 + w/tau)`` times ``dw_min'``; matching both gives ``a = c / (2 - c)`` and
    ``dw_min' = dw_min (1 - c/2)``.
    """
    c = float(up_down)
    if not 0 <= c < 1:
        raise ValueError(f"up_down must be in [0, 1), got {up_down!r}")
    return devices.SoftBounds(tau=tau, asymmetry=c / (2 - c), dw_min=dw_min * (1 - c / 2))


def make_problem(
    seed: int = 0, n_samples: int = 100, n_in: int = 50, n_out: int = 1, w_star_scale: float = 0.5
):
    """A ~ N(0, 1) of shape (n_samples, n_in), W* ~ w_star_scale N(0, 1), b = A W*."""
    k_a, k_w = jax.random.split(jax.random.PRNGKey(seed))
    A = jax.random.normal(k_a, (n_samples, n_in))
    w_star = w_star_scale * jax.random.normal(k_w, (n_in, n_out))
    return {"A": A, "b": A @ w_star, "w_star": w_star}


def _ls_loss(w, A, b):
    """f = 1/2 * mean over samples of ||a^T W - b||^2."""
    return 0.5 * jnp.mean(jnp.sum((A @ w - b) ** 2, axis=-1))


def _fig2_optimizer(
    algorithm: str, device, *, lr, fast_lr, transfer_lr, gamma, bl, transfer_bl, seed
):
    update = pulse.UpdateConfig(mode="outer", bl=bl)
    transfer_update = pulse.UpdateConfig(mode="outer", bl=transfer_bl)
    if algorithm == "analog_sgd":
        return optim.analog_sgd(lr, device, update=update, key=seed)
    if algorithm == "tiki_taka":
        return optim.tiki_taka(
            fast_lr * lr,
            transfer_lr,
            device,
            gamma=gamma,
            transfer="full",
            update=update,
            transfer_update=transfer_update,
            key=seed,
        )
    if algorithm == "residual_learning":
        return optim.residual_learning(
            fast_lr * lr,
            transfer_lr,
            device,
            gamma=gamma,
            zero_shift=True,
            transfer="full",
            update=update,
            transfer_update=transfer_update,
            key=seed,
        )
    raise ValueError(f"algorithm must be one of {FIG2_ALGORITHMS}, got {algorithm!r}")


def fig2_run(
    algorithm: str,
    up_down: float,
    *,
    steps: int = 1000,
    seed: int = 0,
    problem_seed: int = 0,
    lr: float = 0.8,
    fast_lr: float = 0.8,
    transfer_lr: float = 0.8,
    gamma: float = 0.4,
    tau: float = 3.5,
    dw_min: float = 1e-4,
    bl: int = 8,
    transfer_bl: int = 31,
    record_every: int = 10,
) -> dict:
    """One curve of RF Fig. 2: full-batch least squares with per-sample ("outer") pulse trains.

    Problem: f = 1/2 mean ||A W - b||^2 over 100 samples, input 50, output 1, W* ~ 0.5 N(0,1),
    W initialised to 1; SoftBounds tau = 3.5, dw_min = 1e-4 in aihwkit's ``up_down``
    parametrisation (:func:`aihwkit_soft_bounds`); gradient writes with BL 8 and stochastic
    pulse trains per sample. Analog SGD uses ``lr``; Tiki-Taka and residual learning write P
    at ``fast_lr * lr`` (0.64) and transfer all lines every step at ``transfer_lr`` (0.8) with
    BL 31 and update management, mixing ``gamma`` (0.4) of P into the weights. Residual
    learning zero-shifts P; Tiki-Taka does not.

    The recorded loss is the authors': f divided by the input size.

    Args:
      algorithm: "analog_sgd" | "tiki_taka" | "residual_learning".
      up_down: aihwkit's asymmetry c (0 <= c < 1).
      steps, seed, problem_seed: run length, optimizer seed, problem seed.
      lr, fast_lr, transfer_lr, gamma, tau, dw_min, bl, transfer_bl: settings above.
      record_every: keep every this many losses in the returned curve.

    Returns:
      dict with ``algorithm``, ``up_down``, ``final_loss`` (mean of the last 5% of steps),
      ``losses`` (every ``record_every`` steps), ``steps`` and the settings.
    """
    device = aihwkit_soft_bounds(up_down, tau=tau, dw_min=dw_min)
    prob = make_problem(problem_seed)
    A, b = prob["A"], prob["b"]
    n_samples, n_in = A.shape
    opt = _fig2_optimizer(
        algorithm,
        device,
        lr=lr,
        fast_lr=fast_lr,
        transfer_lr=transfer_lr,
        gamma=gamma,
        bl=bl,
        transfer_bl=transfer_bl,
        seed=seed,
    )
    params = {"w": jnp.ones((n_in, b.shape[1]))}
    state = opt.init(params)

    def step(carry, _):
        params, state = carry
        residual = A @ params["w"] - b
        loss = 0.5 * jnp.mean(jnp.sum(residual**2, axis=-1))
        # Per-sample factors: grad = sum_b a_b (r_b / n)^T.
        d = residual / n_samples
        grads = {"w": A.T @ d}
        updates, state = opt.update(grads, state, params, factors={"w": (A, d)})
        return (optax.apply_updates(params, updates), state), loss

    @jax.jit
    def run(params, state):
        (params, state), losses = jax.lax.scan(step, (params, state), None, length=steps)
        return params, losses

    params, losses = run(params, state)
    losses = np.asarray(losses) / n_in
    tail = max(1, steps // 20)
    return {
        "algorithm": algorithm,
        "up_down": float(up_down),
        "final_loss": float(np.mean(losses[-tail:])),
        "losses": losses[::record_every].tolist(),
        "steps": steps,
        "settings": dict(
            lr=lr,
            fast_lr=fast_lr,
            transfer_lr=transfer_lr,
            gamma=gamma,
            tau=tau,
            dw_min=dw_min,
            bl=bl,
            transfer_bl=transfer_bl,
            seed=seed,
            problem_seed=problem_seed,
        ),
    }


def fig2_sweep(
    up_downs=(0.0, 0.1, 0.2, 0.3),
    algorithms=FIG2_ALGORITHMS,
    *,
    steps: int = 1000,
    seeds=(0,),
    **kwargs,
) -> dict:
    """RF Fig. 2: :func:`fig2_run` for every algorithm, asymmetry and seed.

    Returns:
      dict ``{"final_loss": {algorithm: {c: [per seed]}}, "runs": [each run's dict]}``.
    """
    runs, table = [], {}
    for algorithm in algorithms:
        table[algorithm] = {}
        for c in up_downs:
            finals = []
            for seed in seeds:
                result = fig2_run(algorithm, c, steps=steps, seed=seed, **kwargs)
                runs.append(result)
                finals.append(result["final_loss"])
            table[algorithm][float(c)] = finals
    return {"final_loss": table, "runs": runs}


# ----------------------------------------------------------------------------------------
# implicit penalty (RF Theorem 1)


def penalized_minimiser(A, b, device, sigma_abs, iters: int = 5000, w0=None):
    """Minimiser of ``f(W) + <Sigma, R_c(W)>`` for least squares f = 1/2 mean ||A W - b||^2.

    ``R_c(w) = int_{w_sym}^{w} G(u)/F(u) du`` is the accumulated asymmetry per element and
    ``Sigma`` (scalar or per element) the mean absolute stochastic gradient, so the
    penalised gradient is ``grad f(W) + Sigma * G(W)/F(W)``. For soft bounds G/F is
    increasing (R_c convex), so gradient descent on it converges to the unique minimiser.
    Runs on the host in float64 (G/F in JAX's default precision).
    """
    A = np.asarray(A, np.float64)
    b = np.asarray(b, np.float64)
    n = A.shape[0]
    H = A.T @ A / n
    rhs = A.T @ b / n
    w = np.linalg.solve(H, rhs) if w0 is None else np.asarray(w0, np.float64)
    step = 0.5 / (np.linalg.eigvalsh(H).max() + 2 * float(np.max(sigma_abs)) / _min_F(device))
    asym_ratio = lambda w: np.asarray(device.G(w) / device.F(w), np.float64)
    for _ in range(iters):
        w = w - step * (H @ w - rhs + sigma_abs * asym_ratio(w))
    return w


def _min_F(device) -> float:
    grid = np.linspace(float(device.w_min), float(device.w_max), 101)[1:-1]
    return float(np.min(np.asarray(device.F(grid))))


def _mean_abs_normal(mu, sigma):
    """E|mu + sigma xi| for xi ~ N(0, 1)."""
    z = mu / sigma
    phi = np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    cdf = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    return sigma * 2 * phi + mu * (2 * cdf - 1)


def implicit_penalty(
    *,
    asymmetry: float = 0.0,
    tau: float = 1.0,
    noise_std: float = 1.25,
    lr: float = 1e-3,
    steps: int = 30000,
    average_last: int = 20000,
    n_samples: int = 200,
    n_in: int = 8,
    seed: int = 0,
) -> dict:
    """Analog SGD with gradient noise settles at the minimiser of f + <Sigma, R_c>, not argmin f.

    Derivation (the expected-update form of [RF Theorem 1]). The analog update [RF eq. 5]
    with a noisy gradient ``g = grad f(W) + xi``, ``xi ~ N(0, noise_std^2)`` per element,
    moves W on average by ``-lr (grad f(W) F(W) + E|g| G(W))``. Its rest point solves
    ``grad f(W) + Sigma G(W)/F(W) = 0`` with ``Sigma = E|g|``: the stationarity condition of
    ``f(W) + <Sigma, R_c(W)>`` with ``R_c(w) = int_{w_sym}^{w} G/F``, so Analog SGD
    implicitly minimises that penalised objective. For soft bounds (``F = 1 - a w/tau``,
    ``G = w/tau - a``) with a = 0 this is ridge regression with ``lambda = Sigma/tau``; with
    a != 0 the penalty pulls towards the symmetric point ``a tau``.

    Two predictions are returned: ``w_penalized`` with the self-consistent
    ``Sigma_i = E|grad_i f(W) + xi_i|`` at the rest point (the exact rest point of the mean
    dynamics), and ``w_penalized_noise_only`` with ``Sigma = E|xi| = noise_std sqrt(2/pi)``,
    which differs from it by a relative ``O((grad f / noise_std)^2)``.

    Returns:
      dict with ``w_star`` (argmin f), ``w_penalized``, ``w_penalized_noise_only``,
      ``w_analog`` (mean of the last ``average_last`` iterates), distances, ``sigma_abs``
      (per element, self-consistent) and the settings.
    """
    device = devices.SoftBounds(tau=tau, asymmetry=asymmetry, dw_min=1e-3)
    prob = make_problem(seed, n_samples=n_samples, n_in=n_in, n_out=1, w_star_scale=0.5)
    A, b = prob["A"], prob["b"]
    opt = optim.analog_sgd(lr, device, update=pulse.UpdateConfig(mode="expected"), key=seed + 1)
    params = {"w": jnp.zeros((n_in, 1))}
    state = opt.init(params)
    noise_key = jax.random.PRNGKey(seed + 2)

    def step(carry, k):
        params, state = carry
        grad = jax.grad(_ls_loss)(params["w"], A, b)
        grad = grad + noise_std * jax.random.normal(k, grad.shape)
        updates, state = opt.update({"w": grad}, state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), params["w"]

    @jax.jit
    def run(params, state):
        keys = jax.random.split(noise_key, steps)
        _, trajectory = jax.lax.scan(step, (params, state), keys)
        return jnp.mean(trajectory[-average_last:], axis=0)

    w_analog = np.asarray(run(params, state), np.float64)
    A64, b64 = np.asarray(A, np.float64), np.asarray(b, np.float64)
    grad_f = lambda w: A64.T @ (A64 @ w - b64) / n_samples
    noise_only = noise_std * math.sqrt(2 / math.pi)
    w_noise_only = penalized_minimiser(A, b, device, noise_only)
    w_pen, sigma_abs = w_noise_only, np.full_like(w_noise_only, noise_only)
    for _ in range(20):  # fixed point of Sigma(W) = E|grad f(W) + xi|; contracts fast
        sigma_abs = _mean_abs_normal(grad_f(w_pen), noise_std)
        w_pen = penalized_minimiser(A, b, device, sigma_abs, iters=1000, w0=w_pen)
    w_star = np.linalg.lstsq(A64, b64, rcond=None)[0]
    dist = lambda u, v: float(np.linalg.norm(u - v))
    return {
        "asymmetry": asymmetry,
        "tau": tau,
        "noise_std": noise_std,
        "lr": lr,
        "steps": steps,
        "average_last": average_last,
        "w_star": w_star.ravel().tolist(),
        "w_penalized": w_pen.ravel().tolist(),
        "w_penalized_noise_only": w_noise_only.ravel().tolist(),
        "w_analog": w_analog.ravel().tolist(),
        "sigma_abs": sigma_abs.ravel().tolist(),
        "hessian_eigenvalues": np.linalg.eigvalsh(A64.T @ A64 / n_samples).tolist(),
        "dist_analog_penalized": dist(w_analog, w_pen),
        "dist_analog_noise_only": dist(w_analog, w_noise_only),
        "dist_analog_star": dist(w_analog, w_star),
        "dist_penalized_star": dist(w_pen, w_star),
    }


# ----------------------------------------------------------------------------------------
# residual learning v2 vs v1 under coarse granularity and noisy reads


def granularity_v1_v2(
    *,
    states: int = 40,
    residual_states: int | None = None,
    read_noise: float = 0.05,
    steps: int = 1500,
    lr: float = 0.05,
    transfer_lr: float = 0.02,
    gamma: float = 0.4,
    tau: float = 1.0,
    n_samples: int = 100,
    n_in: int = 20,
    seed: int = 0,
) -> dict:
    """Residual learning v1 vs v2 with coarse devices and a noisy read of P, on least squares
    f = 1/2 mean ||A W - b||^2 (A ~ N(0,1) of shape (n_samples, n_in), W* ~ 0.3 N(0,1)).

    Both arrays are soft-bounds devices on [-tau, tau] with ``states`` levels
    (dw_min = 2 tau / states; P uses ``residual_states`` if given); gradient and transfer
    writes are "pulse" mode with stochastic rounding. With few states, v1 turns every
    small, noisy transfer ``beta * read(P)`` into random whole steps of W; v2 accumulates
    the reads in a digital buffer and fires only whole, filtered steps [RF App. D, limited
    response granularity].

    Returns:
      dict with ``final_loss`` per version (mean f over the last 10% of steps), the loss
      curves (every 10 steps) and the settings.
    """
    dw_min = 2 * tau / states
    device = devices.SoftBounds(tau=tau, dw_min=dw_min)
    residual_device = (
        None
        if residual_states is None
        else devices.SoftBounds(tau=tau, dw_min=2 * tau / residual_states)
    )
    prob = make_problem(seed, n_samples=n_samples, n_in=n_in, n_out=1, w_star_scale=0.3)
    A, b = prob["A"], prob["b"]
    results = {}
    for version in (1, 2):
        opt = optim.residual_learning(
            lr,
            transfer_lr,
            device,
            gamma=gamma,
            residual_device=residual_device,
            version=version,
            read=read_noise,
            update=pulse.UpdateConfig(mode="pulse"),
            key=seed + 1,
        )
        params = {"w": jnp.zeros((n_in, 1))}
        state = opt.init(params)

        def step(carry, _, opt=opt):
            params, state = carry
            loss, grad = jax.value_and_grad(_ls_loss)(params["w"], A, b)
            updates, state = opt.update({"w": grad}, state, params)
            return (optax.apply_updates(params, updates), state), loss

        run = jax.jit(lambda p, s, step=step: jax.lax.scan(step, (p, s), None, length=steps)[1])
        results[version] = np.asarray(run(params, state))
    tail = max(1, steps // 10)
    return {
        "states": states,
        "residual_states": states if residual_states is None else residual_states,
        "dw_min": dw_min,
        "read_noise": read_noise,
        "final_loss": {f"v{v}": float(np.mean(results[v][-tail:])) for v in results},
        "losses": {f"v{v}": results[v][::10].tolist() for v in results},
        "settings": dict(
            steps=steps,
            lr=lr,
            transfer_lr=transfer_lr,
            gamma=gamma,
            tau=tau,
            n_samples=n_samples,
            n_in=n_in,
            seed=seed,
        ),
    }
