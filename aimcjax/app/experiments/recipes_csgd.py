"""CSGD recipes for ``aimcjax reproduce csgd-ls|csgd-mnist`` and ``aimcjax csgd``.

The experiments live in :mod:`aimcjax.app.experiments.csgd`; these wrappers pick the workers
(``simulate=N``: N workers vmapped on one device; otherwise one worker per visible device
when there are several, else the paper's 10 simulated), small/full settings, and write the
table and plot.
"""

from __future__ import annotations

import jax

from aimcjax.app.experiments.output import OutputDir

__all__ = ["csgd_ls", "csgd_mnist"]


def _workers(simulate):
    if simulate:
        return int(simulate), "vmap"
    n = jax.device_count()
    if n > 1:
        return n, "pmap"
    return 10, "vmap"


def _finish(results, out, echo):
    echo(results["table"])
    summary = {k: v for k, v in results.items() if k != "table"}
    return summary


def csgd_ls(
    *,
    full=False,
    seed=0,
    out=None,
    quiet=False,
    echo=print,
    simulate=None,
    iterations=None,
    batch_max=None,
    **settings,
):
    """[CSGD] least squares as the authors' script runs it: uploads of CSGD, LAG-S and SGD
    (all workers' uploads on one counter) to ||x - x*|| < 1e-4.

    ``full`` is the authors' setting (batch cap 1e5 per worker); the small default caps the
    growing batch at 1 000 (it binds from k = 37, after CSGD's and SGD's usual target).
    Further keywords (``modes``, ``xi``, ``slack_scaling``, ``force_first_upload``, ...) go to
    :func:`aimcjax.app.experiments.csgd.least_squares`.
    """
    from aimcjax.app.experiments import csgd

    out = out or OutputDir(None)
    workers, backend = _workers(simulate)
    kwargs = dict(
        seed=seed,
        num_workers=workers,
        backend=backend,
        batch_max=batch_max or (100_000 if full else 1000),
        plot_path=out.file("csgd_ls.png"),
        **settings,
    )
    if iterations:
        kwargs["iterations"] = iterations
    echo(
        f"CSGD least squares (the authors' 1LS/csgd.py setting): {workers} workers ({backend}), "
        f"batch cap {kwargs['batch_max']}, seed {seed}"
    )
    return _finish(csgd.least_squares(**kwargs), out, echo)


def csgd_mnist(
    *,
    full=False,
    seed=0,
    out=None,
    quiet=False,
    echo=print,
    simulate=None,
    iterations=None,
    **settings,
):
    """[CSGD] softmax regression on MNIST as the authors' ``2mnist/csgd.py`` runs it, on the
    embedded MNIST-5k: uploads to test error < 10%.

    ``full`` runs the authors' 500 iterations; the small default 120. Further keywords go
    to :func:`aimcjax.app.experiments.csgd.softmax_regression`.
    """
    from aimcjax.app.experiments import csgd

    out = out or OutputDir(None)
    workers, backend = _workers(simulate)
    kwargs = dict(
        seed=seed,
        num_workers=workers,
        backend=backend,
        iterations=iterations or (500 if full else 120),
        plot_path=out.file("csgd_mnist.png"),
        **settings,
    )
    echo(
        f"CSGD softmax regression on {kwargs.get('dataset', 'mnist5k')}: {workers} workers "
        f"({backend}), {kwargs['iterations']} iterations, seed {seed}"
    )
    return _finish(csgd.softmax_regression(**kwargs), out, echo)
