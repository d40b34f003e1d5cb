"""CSGD paper reproductions as the authors' code runs them (github Weiyu-USTC/CSGD).

Two settings of [CSGD] Section V, each a plain function returning a results dict (plus an
optional plot of the metric against cumulative uploads):

* :func:`least_squares`: the authors' ``1LS/csgd.py``: 10 workers, d = 10, fresh Gaussian
  samples every iteration (worker 0's features shifted by 1, label noise N(0, 0.001^2)),
  x^0 = x* + 0.01, gradient A^T(Ax - b)/B, alpha = 0.2, B^k = floor(1.2^{k+1}) capped at
  1e5, sigma^k = 5 * 0.85^{k+1}, 100 iterations, target ||x - x*|| < 1e-4. Its data stream
  is drawn with the same ``np.random.RandomState`` calls as their script
  (:func:`authors_ls_stream`), so both see the same problem for a seed.
* :func:`softmax_regression`: the authors' ``2mnist/csgd.py`` on the embedded MNIST-5k:
  raw pixels, alpha = 0.1, B^0 = 50 x1.01 up to 1000 drawn with replacement,
  sigma^k = 0.7 * 6000^2 * 0.991^k, their pre-trained start, target test error < 10%.

Conventions, all the authors' (where their code and the paper's text differ, the code):

* The threshold is :class:`~aimcjax.distributed.CensorConfig`'s default, their ``tao``:
  tau^k = (xi/(alpha^2 D) sum of the D - 1 moves in the window + sigma^k) / M^2, held
  gradients start at zero, nothing forced at k = 0. Their least-squares script never adds
  to its window, so there tau^k = sigma^k / M^2 (``xi=0`` here).
* Uploads are worker -> server messages of all workers on one counter, for every mode
  (their saved least-squares run: CSGD 20 to the target, from two workers, SGD 240).
* Slacks are in their units: mean gradients over a worker's batch; on MNIST raw 0..255
  pixel intensities (their comment: the 6000^2 scaling "should be equivalently put in the
  gradients").

Every mode sees the same data stream.

References:
  [CSGD] Li, Wu, Chen, Li, Ling. arXiv:1909.03631, Section V; code github.com/Weiyu-USTC/CSGD.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aimcjax import distributed as dist

__all__ = [
    "PAPER",
    "authors_ls_stream",
    "authors_mnist_init",
    "format_table",
    "least_squares",
    "plot",
    "softmax_regression",
]

MODES = ("csgd", "lag", "sgd")

# Uploads to the target in the authors' saved runs, all workers on one counter
# (github.com/Weiyu-USTC/CSGD; [CSGD] arXiv:1909.03631).
PAPER = {
    "least_squares": {"csgd": 20, "sgd": 240, "lag": None},
    "softmax_regression": {"csgd": 115, "sgd": 2330, "lag": 2390},
}


def _check_modes(modes):
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"modes must be a non-empty subset of {MODES}, got {modes}")
    return modes


def _train(
    *,
    loss_fn: Callable,
    params0,
    config: dist.CensorConfig,
    sample: Callable,
    evaluate: Callable,
    iterations: int,
    target: float,
    num_workers: int,
    backend: str,
    bucket_growth: int = 4,
    stop_below: float | None = None,
    evaluate_every: int = 1,
):
    """Run one mode; returns per-evaluation metric, loss and cumulative uploads (host lists).

    ``sample(k, padded)`` is called once per iteration, in order. The metric is evaluated
    after iterations k with (k + 1) % evaluate_every == 0; the run stops early when it falls
    below ``stop_below``.
    """
    kwargs = {"num_workers": num_workers} if backend == "vmap" else {}
    tx = dist.csgd(optax.sgd(config.learning_rate), config)
    train = dist.make_train_step(loss_fn, tx, backend=backend, **kwargs)
    if train.num_workers != num_workers:
        raise ValueError(f"backend {backend!r} has {train.num_workers} workers, need {num_workers}")
    params, state = train.init(params0)
    metric, loss, uploads, evaluated_at = [], [], [], []
    reached = None
    per_worker = np.zeros(num_workers, int)
    for k in range(iterations):
        mask = dist.batch_mask(config, k, num_workers, bucket_growth)
        batch = sample(k, mask.shape[1])
        params, state, step_metrics = train.step(params, state, batch, mask)
        per_worker = np.asarray(step_metrics.uploads)
        if (k + 1) % evaluate_every:
            continue
        metric.append(float(evaluate(train.server_params(params))))
        loss.append(float(np.mean(step_metrics.loss)))
        uploads.append(int(step_metrics.total_uploads))
        evaluated_at.append(k + 1)
        if reached is None and metric[-1] < target:
            reached = len(metric) - 1
        if stop_below is not None and metric[-1] < stop_below:
            break
    return {
        "metric": metric,
        "loss": loss,
        "uploads": uploads,
        "iterations": evaluated_at,
        "iterations_to_target": None if reached is None else evaluated_at[reached],
        "uploads_to_target": None if reached is None else uploads[reached],
        "final_metric": metric[-1] if metric else None,
        "total_uploads": int(per_worker.sum()),
        "uploads_per_worker": per_worker.astype(int).tolist(),
        "ratio_to_sgd": int(per_worker.sum()) / (num_workers * (k + 1)),
    }


def _summarise(name, settings, runs, metric_name, target, plot_path):
    results = {
        "experiment": name,
        "settings": settings,
        "metric": metric_name,
        "target": target,
        "modes": runs,
        "paper_uploads_to_target": PAPER[name],
    }
    sgd = runs.get("sgd", {}).get("uploads_to_target")
    for run in runs.values():
        ours = run["uploads_to_target"]
        run["uploads_vs_sgd"] = None if (ours is None or not sgd) else ours / sgd
    results["table"] = format_table(results)
    if plot_path is not None:
        plot(results, plot_path)
    return results


def authors_ls_stream(
    seed: int, num_workers: int, dim: int, shift: float, noise: float, dtype=np.float32
):
    """x* and a sampler drawing least-squares data exactly as the authors' script does.

    One ``np.random.RandomState(seed)`` stream: x* ~ U(-2, 2)^d first (their
    ``create_data.py``), then per iteration, per worker m: A ~ N(0, 1) of shape (B, d)
    (``+ shift`` for worker 0), label noise ~ N(0, noise^2) of shape (B, 1), b = A x* + noise:
    the same calls in the same order as their ``Machine.update``, so after
    ``np.random.seed(seed)`` their script sees the same x* and samples.

    Returns:
      ``(x_star, sample)``: x* of shape (d,) float64; ``sample(batch, padded)`` returns
      ``{"a": (M, padded, d), "y": (M, padded)}`` of ``dtype``, zero beyond ``batch`` rows.
      Call it once per iteration, in order.
    """
    rng = np.random.RandomState(seed)
    x_star = rng.uniform(-2.0, 2.0, size=(dim, 1))

    def sample(batch, padded):
        a = np.zeros((num_workers, padded, dim), dtype)
        y = np.zeros((num_workers, padded), dtype)
        for m in range(num_workers):
            features = rng.normal(0.0, 1.0, size=(batch, dim))
            if m == 0:
                features += shift
            labels = features @ x_star + rng.normal(0.0, noise, size=(batch, 1))
            a[m, :batch] = features
            y[m, :batch] = labels[:, 0]
        return {"a": a, "y": y}

    return x_star[:, 0], sample


def least_squares(
    modes=MODES,
    *,
    num_workers: int = 10,
    dim: int = 10,
    iterations: int = 100,
    learning_rate: float = 0.2,
    sigma0: float = 5 * 0.85,
    sigma_decay: float = 0.85,
    batch0: float = 1.2,
    batch_growth: float = 1.2,
    batch_max: int = 100_000,
    shift: float = 1.0,
    noise: float = 0.001,
    start_offset: float = 0.01,
    xi: float = 0.0,
    window: int = 10,
    slack_scaling: str = "workers_squared",
    move_window: str = "authors",
    force_first_upload: bool = False,
    stop_below: float | None = 1e-6,
    target: float = 1e-4,
    dtype: str = "float32",
    seed: int = 0,
    backend: str = "vmap",
    bucket_growth: int = 4,
    plot_path=None,
) -> dict:
    """[CSGD] least squares as the authors' script ``1LS/csgd.py`` runs it.

    Worker m draws fresh samples every iteration (:func:`authors_ls_stream`: features
    N(0, I), worker 0's shifted by ``shift``; labels a^T x* + N(0, noise^2)); the loss is
    (a^T x - y)^2 / 2, so a worker's gradient is A^T(Ax - b)/B; x^0 = x* + start_offset * 1.
    B^k = floor(1.2^{k+1}) capped at 1e5, sigma^k = 5 * 0.85^{k+1}, alpha = 0.2, 100
    iterations, stopping early once ||x - x*|| < ``stop_below`` (their 1e-6).

    The threshold is the authors' (:class:`~aimcjax.distributed.CensorConfig`) with
    ``xi = 0``: their least-squares script never appends to its window list (it holds x^0
    only), so its threshold is sigma^k / M^2 at every iteration. ``xi=1/60`` gives the
    paper's rule with the move term.

    Args:
      modes: any of ``"csgd"``, ``"lag"``, ``"sgd"`` (a name or a sequence).
      num_workers, dim, iterations, learning_rate, sigma0, sigma_decay, batch0,
        batch_growth, batch_max: the authors' setting by default
        (B^k = min(batch_max, floor(batch0 * batch_growth^k)), sigma^k = sigma0 * sigma_decay^k).
      shift: feature mean of worker 0.
      noise: standard deviation of the label noise.
      start_offset: x^0 = x* + start_offset (every coordinate).
      xi, window, slack_scaling, move_window, force_first_upload: the threshold rule
        (:class:`~aimcjax.distributed.CensorConfig`).
      stop_below: stop a mode once ||x - x*|| falls below this (None: run all iterations).
      target: ||x - x*|| < target counts as reached.
      dtype: ``"float32"`` or ``"float64"`` (the authors' precision; needs
        ``JAX_ENABLE_X64=1``) for the data, iterates and gradients.
      seed: seeds x* and the sample stream (the same for every mode).
      backend: ``"vmap"`` (one device), ``"pmap"`` or ``"shard_map"`` (M devices).
      bucket_growth: batches are padded to the next power of this (capped at batch_max);
        each padded size compiles once.
      plot_path: if given, save a plot of ||x - x*|| against cumulative uploads there.

    Returns:
      A dict with ``settings``, per-mode ``modes[mode]`` (``metric``, ``loss``,
      ``uploads`` per iteration; ``iterations_to_target``, ``uploads_to_target`` (all
      workers' uploads), ``uploads_per_worker``, ``uploads_vs_sgd``, ``ratio_to_sgd``), the
      authors' numbers and a printable ``table``.

    Example:
      >>> r = least_squares(iterations=40, batch_max=1000)  # doctest: +SKIP
      >>> print(r["table"])  # doctest: +SKIP
    """
    modes = _check_modes(modes)
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("dtype='float64' needs 64-bit JAX: set JAX_ENABLE_X64=1 before starting")

    def loss_fn(params, example):
        return 0.5 * (example["a"] @ params - example["y"]) ** 2

    runs = {}
    for mode in modes:
        config = dist.CensorConfig(
            mode=mode,
            learning_rate=learning_rate,
            xi=xi,
            window=window,
            sigma0=sigma0,
            sigma_decay=sigma_decay,
            batch0=batch0,
            batch_growth=batch_growth,
            batch_max=batch_max,
            slack_scaling=slack_scaling,
            move_window=move_window,
            force_first_upload=force_first_upload,
        )
        x_star, draw = authors_ls_stream(seed, num_workers, dim, shift, noise, np.dtype(dtype))
        runs[mode] = _train(
            loss_fn=loss_fn,
            params0=jnp.asarray(x_star + start_offset, dtype),
            config=config,
            sample=lambda k, padded, draw=draw, config=config: draw(
                dist.batch_size(config, k), padded
            ),
            evaluate=lambda params, x_star=x_star: np.linalg.norm(params - x_star),
            iterations=iterations,
            target=target,
            num_workers=num_workers,
            backend=backend,
            bucket_growth=bucket_growth,
            stop_below=stop_below,
        )
    settings = dict(
        num_workers=num_workers,
        dim=dim,
        iterations=iterations,
        learning_rate=learning_rate,
        sigma0=sigma0,
        sigma_decay=sigma_decay,
        batch0=batch0,
        batch_growth=batch_growth,
        batch_max=batch_max,
        shift=shift,
        noise=noise,
        start_offset=start_offset,
        xi=xi,
        window=window,
        slack_scaling=slack_scaling,
        move_window=move_window,
        force_first_upload=force_first_upload,
        stop_below=stop_below,
        dtype=dtype,
        seed=seed,
        backend=backend,
        bucket_growth=bucket_growth,
    )
    return _summarise("least_squares", settings, runs, "||x - x*||", target, plot_path)


def _load_images(dataset: str, pixels: str, seed: int):
    """Train and test images as float32 rows (raw intensities or in [0, 1]) with int labels,
    from :mod:`aimcjax.app.data` (embedded, seeded stratified split; training set shuffled)."""
    from aimcjax.app import data

    if pixels not in ("raw", "unit"):
        raise ValueError(f"pixels must be 'raw' or 'unit', got {pixels!r}")
    if dataset not in data.EMBEDDED:
        raise ValueError(f"dataset must be one of {data.EMBEDDED}, got {dataset!r}")
    ds = data.load(dataset, seed=seed)
    top = 16.0 if dataset == "digits" else 255.0
    scale = top if pixels == "raw" else 1.0
    # The loaders divide by `top`; rounding restores the shipped integer intensities exactly.
    rows = lambda x: (np.rint(x.reshape(len(x), -1) * top) * (scale / top)).astype(np.float32)
    return (
        rows(ds.x_train),
        ds.y_train.astype(np.int32),
        rows(ds.x_test),
        ds.y_test.astype(np.int32),
    )


def _softmax_grads(theta, x, onehot):
    """Mean gradient of the softmax cross-entropy over rows of x (float64 numpy)."""
    logits = x @ theta["w"] + theta["b"]
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    err = (p - onehot) / len(x)
    return {"w": x.T @ err, "b": err.sum(axis=0)}


def authors_mnist_init(
    shards_x, shards_y, classes, rng, iterations=10, learning_rate=1e-4, growth=1.5
):
    """The authors' ``create_init.py``: their start point is the iterate after 10 plain
    averaged-SGD steps from zero (alpha = 1e-4, worker batches floor(1.5^{k+1}) read as a
    contiguous, wrapping window of the shard from a random start); no upload is counted."""
    workers, shard, features = shards_x.shape
    theta = {"w": np.zeros((features, classes)), "b": np.zeros(classes)}
    batch = growth
    for _ in range(iterations):
        grads = []
        for m in range(workers):
            idx = (rng.integers(0, shard + 1) + np.arange(int(batch))) % shard
            grads.append(
                _softmax_grads(
                    theta, shards_x[m, idx].astype(np.float64), np.eye(classes)[shards_y[m, idx]]
                )
            )
        theta = jax.tree.map(lambda t, *g: t - learning_rate * np.mean(g, axis=0), theta, *grads)
        batch = min(shard, batch * growth)
    return theta


def softmax_regression(
    modes=MODES,
    *,
    dataset: str = "mnist5k",
    pixels: str = "raw",
    num_workers: int = 10,
    iterations: int = 500,
    learning_rate: float = 0.1,
    sigma0: float = 0.7 * 6000**2,
    sigma_decay: float = 0.991,
    batch0: float = 50,
    batch_growth: float = 1.01,
    batch_max: int = 1000,
    xi: float = 1.0 / 60.0,
    window: int = 10,
    slack_scaling: str = "workers_squared",
    move_window: str = "authors",
    force_first_upload: bool = False,
    init: str = "authors",
    evaluate_every: int = 2,
    stop_at_target: bool = True,
    target: float = 0.10,
    seed: int = 0,
    backend: str = "vmap",
    bucket_growth: int = 4,
    plot_path=None,
) -> dict:
    """[CSGD] softmax regression as the authors' ``2mnist/csgd.py`` runs it, on embedded data.

    The authors' setting: 10 workers, each an equal contiguous shard of the (shuffled)
    training set; every iteration each worker samples B^k examples *with replacement* from
    its shard (B^k = floor(50 * 1.01^k), cap 1000); raw pixel intensities (0..255) plus a
    bias; unregularised softmax cross-entropy (mean over the batch); alpha = 0.1; slack
    sigma^k = 0.7 * 6000^2 * 0.991^k (their units: raw pixels, mean gradients) and the
    authors' threshold rule with D = 10, xi = 1/60 (:class:`~aimcjax.distributed.CensorConfig`);
    start at the authors' pre-trained point (:func:`authors_mnist_init`); test error
    after every second iteration, stopping once it is below 10%, at most 500 iterations.

    Where it must differ: the data. The authors train on MNIST's 60 000 images (6 000 per
    worker) and test on 10 000; the embedded MNIST-5k gives 4 000 / 1 000 (400 per
    worker, so a batch of up to 1 000 draws with replacement from 400 images), with a
    seeded stratified split. Their start point is a file in their repository; we recompute
    it by their recipe on our data. Their softmax does not subtract the max logit (it
    overflows to NaN for large logits); ours is the stable log-softmax.

    Args:
      modes: any of ``"csgd"``, ``"lag"``, ``"sgd"`` (a name or a sequence).
      dataset: an embedded dataset of :mod:`aimcjax.app.data` (``"mnist5k"`` or ``"digits"``).
      pixels: ``"raw"`` (as shipped, the authors' choice) or ``"unit"`` ([0, 1]).
      num_workers: M; must divide the training-set size.
      iterations, learning_rate, sigma0, sigma_decay, batch0, batch_growth, batch_max:
        the authors' setting by default.
      xi, window, slack_scaling, move_window, force_first_upload: the threshold rule.
      init: ``"authors"`` (their pre-trained start, recomputed) or ``"zeros"``.
      evaluate_every: test error after every this many iterations (authors: 2).
      stop_at_target: stop a mode once its test error is below ``target`` (authors: yes).
      target: test error that counts as reached.
      seed: data split, start point and mini-batch stream (the same for every mode).
      backend: ``"vmap"``, ``"pmap"`` or ``"shard_map"``.
      bucket_growth: as in :func:`least_squares`.
      plot_path: if given, save test error against cumulative uploads there.

    Returns:
      A results dict shaped like :func:`least_squares`'s.
    """
    modes = _check_modes(modes)
    if init not in ("authors", "zeros"):
        raise ValueError(f"init must be 'authors' or 'zeros', got {init!r}")
    x_train, y_train, test_x, test_y = _load_images(dataset, pixels, seed)
    shards = dist.split_among_workers({"x": x_train, "label": y_train}, num_workers)
    shard_size = shards["label"].shape[1]
    classes = int(max(y_train.max(), test_y.max())) + 1
    if init == "authors":
        theta = authors_mnist_init(
            shards["x"], shards["label"], classes, np.random.default_rng([seed, 2])
        )
    else:
        theta = {"w": np.zeros((x_train.shape[1], classes)), "b": np.zeros(classes)}
    params0 = jax.tree.map(lambda t: jnp.asarray(t, jnp.float32), theta)
    shards = jax.tree.map(jnp.asarray, shards)
    stream = jax.random.PRNGKey(seed + 1)

    @jax.jit(static_argnums=1)
    def sample_with_key(key, padded):
        # With replacement, as the authors' random.randint per example.
        order = jax.random.randint(key, (num_workers, padded), 0, shard_size)
        return jax.tree.map(
            lambda x: jnp.take_along_axis(
                x, order.reshape(order.shape + (1,) * (x.ndim - 2)), axis=1
            ),
            shards,
        )

    sample = lambda k, padded: sample_with_key(jax.random.fold_in(stream, k), padded)

    def loss_fn(params, example):
        logits = example["x"] @ params["w"] + params["b"]
        return -jax.nn.log_softmax(logits)[example["label"]]

    def evaluate(params):
        predictions = np.argmax(test_x @ params["w"] + params["b"], axis=1)
        return float(np.mean(predictions != test_y))

    runs = {}
    for mode in modes:
        config = dist.CensorConfig(
            mode=mode,
            learning_rate=learning_rate,
            xi=xi,
            window=window,
            sigma0=sigma0,
            sigma_decay=sigma_decay,
            batch0=batch0,
            batch_growth=batch_growth,
            batch_max=batch_max,
            slack_scaling=slack_scaling,
            move_window=move_window,
            force_first_upload=force_first_upload,
        )
        runs[mode] = _train(
            loss_fn=loss_fn,
            params0=params0,
            config=config,
            sample=sample,
            evaluate=evaluate,
            iterations=iterations,
            target=target,
            num_workers=num_workers,
            backend=backend,
            bucket_growth=bucket_growth,
            stop_below=target if stop_at_target else None,
            evaluate_every=evaluate_every,
        )
    settings = dict(
        dataset=dataset,
        pixels=pixels,
        num_workers=num_workers,
        train_size=len(y_train),
        test_size=len(test_y),
        shard_size=shard_size,
        iterations=iterations,
        learning_rate=learning_rate,
        sigma0=sigma0,
        sigma_decay=sigma_decay,
        batch0=batch0,
        batch_growth=batch_growth,
        batch_max=batch_max,
        xi=xi,
        window=window,
        slack_scaling=slack_scaling,
        move_window=move_window,
        force_first_upload=force_first_upload,
        init=init,
        evaluate_every=evaluate_every,
        stop_at_target=stop_at_target,
        seed=seed,
        backend=backend,
        bucket_growth=bucket_growth,
    )
    return _summarise("softmax_regression", settings, runs, "test error", target, plot_path)


def format_table(results: dict) -> str:
    """Markdown table: per mode, iterations and uploads to the target, vs SGD, vs the paper."""
    paper = results["paper_uploads_to_target"]
    lines = [
        f"{results['experiment']}: uploads (all workers, one counter) to {results['metric']} "
        f"< {results['target']:g}",
        "| mode | iterations to target | uploads to target | vs SGD | total uploads "
        "(ratio to SGD) | authors' saved run |",
        "|---|---|---|---|---|---|",
    ]
    for mode, run in results["modes"].items():
        to_target = run["uploads_to_target"]
        vs_sgd = run.get("uploads_vs_sgd")
        lines.append(
            f"| {mode} | {run['iterations_to_target'] or 'not reached'} | "
            f"{'-' if to_target is None else to_target} | "
            f"{'-' if vs_sgd is None else f'{100 * vs_sgd:.1f}%'} | "
            f"{run['total_uploads']} ({run['ratio_to_sgd']:.3f}) | "
            f"{'-' if paper.get(mode) is None else paper[mode]} |"
        )
    return "\n".join(lines)


def plot(results: dict, path) -> None:
    """Save the metric against cumulative uploads, one line per mode (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for mode, run in results["modes"].items():
        ax.plot(run["uploads"], run["metric"], label={"lag": "LAG-S"}.get(mode, mode.upper()))
    ax.axhline(results["target"], color="grey", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("cumulative uploads (worker -> server)")
    ax.set_ylabel(results["metric"])
    dataset = results["settings"].get("dataset")
    ax.set_title(results["experiment"].replace("_", " ") + (f" ({dataset})" if dataset else ""))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    """``python -m aimcjax.app.experiments.csgd {least_squares,mnist,digits} [--plot P] [--json J]``
    (``mnist`` = the embedded MNIST-5k)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(
        prog="python -m aimcjax.app.experiments.csgd",
        description="CSGD vs LAG-S vs SGD: uploads to a target.",
    )
    parser.add_argument("experiment", choices=("least_squares", "mnist", "digits"))
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="vmap", choices=("vmap", "pmap", "shard_map"))
    parser.add_argument("--plot", default=None, help="save the plot here (png, pdf, ...)")
    parser.add_argument("--json", default=None, help="save the results dict here")
    args = parser.parse_args(argv)
    kwargs = {"seed": args.seed, "backend": args.backend, "plot_path": args.plot}
    if args.iterations is not None:
        kwargs["iterations"] = args.iterations
    if args.experiment == "least_squares":
        results = least_squares(**kwargs)
    else:
        results = softmax_regression(
            dataset={"mnist": "mnist5k"}.get(args.experiment, args.experiment), **kwargs
        )
    print(results["table"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
