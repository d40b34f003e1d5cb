"""A run's output folder: ``config.json``, ``metrics.jsonl``, ``summary.json`` and PNG plots.

Everything written is deterministic for a fixed configuration and seed (timings go to the
console, not into these files), so rerunning ``--config out/config.json`` reproduces
``summary.json`` byte for byte.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

__all__ = ["OutputDir", "to_jsonable", "check_writable", "mean_std"]


def to_jsonable(obj):
    """numpy / jax scalars and arrays to plain JSON values (NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return to_jsonable(obj.tolist())
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    return obj


def mean_std(values):
    """(mean, std) of a list of numbers (std 0 for one value)."""
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std()) if v.size > 1 else 0.0


def check_writable(path: str) -> str:
    """Create ``path`` (a folder) if needed and make sure files can be written in it.

    Raises:
      OSError: with a message naming the folder.
    """
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, ".aimcjax-write-test")
        with open(probe, "w") as f:
            f.write("")
        os.remove(probe)
    except OSError as e:
        raise OSError(f"cannot write to output folder {path!r}: {e.strerror or e}") from None
    return path


class OutputDir:
    """Writer of one run's files; a no-op when ``path`` is None.

    Args:
      path: the folder (created), or None to write nothing.
    """

    def __init__(self, path):
        self.path = None if path is None else check_writable(path)
        if self.path is not None:
            open(os.path.join(self.path, "metrics.jsonl"), "w").close()

    def file(self, name):
        return None if self.path is None else os.path.join(self.path, name)

    def write_json(self, name, obj):
        if self.path is None:
            return
        with open(self.file(name), "w") as f:
            json.dump(to_jsonable(obj), f, indent=2, sort_keys=True)
            f.write("\n")

    def log(self, record: dict):
        if self.path is None:
            return
        with open(self.file("metrics.jsonl"), "a") as f:
            f.write(json.dumps(to_jsonable(record), sort_keys=True) + "\n")

    def savefig(self, fig, name):
        """Save a matplotlib figure as PNG (and close it); returns the path or None."""
        import matplotlib.pyplot as plt
        path = self.file(name)
        if path is not None:
            fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return path


def figure(*args, **kwargs):
    """A matplotlib figure on the headless Agg backend.

    Raises:
      RuntimeError: matplotlib is not installed (one line naming the extra that brings it).
    """
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("plots need matplotlib: pip install 'aimcjax[plots]'") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt.subplots(*args, **kwargs)
