"""Paper reproductions and sweeps as plain functions, registered as named recipes.

``aimcjax reproduce NAME`` looks NAME up in :data:`RECIPES`. A recipe is a function
``recipe(*, full=False, seed=0, out=None, quiet=False, echo=print) -> dict`` that runs the
experiment (small CPU defaults, the paper's scale with ``full=True``), prints ours beside the
paper's numbers, writes its figure and files into ``out`` (an
:class:`aimcjax.app.experiments.output.OutputDir`) and returns the summary.
"""

from __future__ import annotations

import importlib

__all__ = ["RECIPES", "get_recipe"]

# name -> (module, function, description)
RECIPES = {
    "main": (
        "aimcjax.app.experiments.mnist",
        "main_job",
        "FCN on mnist5k, Power device (gamma=1, tau=0.6): digital vs Analog SGD vs Residual "
        "Learning (the `make run` job)",
    ),
    "fig2": (
        "aimcjax.app.experiments.recipes_ls",
        "fig2",
        "[RF Fig. 2] toy least squares: Analog SGD vs Tiki-Taka vs Residual Learning, "
        "c in {0, .1, .2, .3}",
    ),
    "implicit-penalty": (
        "aimcjax.app.experiments.recipes_ls",
        "implicit_penalty",
        "[RF Thm. 1] Analog SGD's fixed point on least squares: predicted vs observed",
    ),
    "table8": (
        "aimcjax.app.experiments.mnist",
        "table8",
        "[RF Table 8] FCN on MNIST across Power/Exponential responses, Analog SGD vs TT/RL",
    ),
    "table7": (
        "aimcjax.app.experiments.mnist",
        "table7",
        "[RF Table 7] cycle-to-cycle variation sigma_c on the FCN, Analog SGD vs TT",
    ),
    "csgd-ls": (
        "aimcjax.app.experiments.recipes_csgd",
        "csgd_ls",
        "[CSGD] linear regression over 10 workers: uploads of CSGD vs SGD vs LAG-S",
    ),
    "csgd-mnist": (
        "aimcjax.app.experiments.recipes_csgd",
        "csgd_mnist",
        "[CSGD] softmax regression on MNIST over 10 workers: uploads to 10% test error",
    ),
}


def get_recipe(name: str):
    """The recipe function registered as ``name``.

    Raises:
      ValueError: unknown name.
      RuntimeError: the module providing it is not available in this installation.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    module, fn, _ = RECIPES[name]
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise RuntimeError(
            f"recipe {name!r} needs {module}, which is not available ({e})"
        ) from None
    if not hasattr(mod, fn):
        raise RuntimeError(f"recipe {name!r}: {module} has no function {fn}")
    return getattr(mod, fn)
