"""A run's output folder: ``config.json``, ``metrics.jsonl``, ``summary.json`` and PNG plots.

Everything written is deterministic for a fixed configuration and seed (timings go to the
console, not into these files), so rerunning ``--config out/config.json`` reproduces
``summary.json`` byte for byte.

A run never damages an earlier one: it writes into ``DIR.partial`` (a sibling of ``DIR``) and
moves that into place only when it has finished (:meth:`OutputDir.commit`). An existing,
non-empty ``DIR`` is replaced only when asked to (``overwrite=True``), and then only at the
commit. While training, checkpoints of every epoch go to ``DIR.partial/checkpoints`` (orbax,
see :class:`RunCheckpoints`); an interrupted run keeps its ``DIR.partial``, and
``OutputDir(DIR, resume=True)`` continues it, bit for bit as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import threading

import numpy as np

__all__ = [
    "OutputDir",
    "RunCheckpoints",
    "RunFolderError",
    "check_writable",
    "mean_std",
    "partial_path",
    "to_jsonable",
]

PARTIAL_SUFFIX = ".partial"
CHECKPOINTS = "checkpoints"


class RunFolderError(OSError):
    """The output folder cannot be used as asked.

    Attributes:
      reason: "exists" (a non-empty folder, not to be overwritten), "interrupted" (an
        interrupted run waits in ``DIR.partial``), "nothing_to_resume" or "finished" (resume
        asked where there is no interrupted run).
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason

    def __str__(self):
        return self.args[0]


def partial_path(path: str) -> str:
    """Where a run writing to ``path`` keeps its files until it has finished."""
    return os.path.abspath(path).rstrip(os.sep) + PARTIAL_SUFFIX


def _non_empty(path: str) -> bool:
    return (os.path.isdir(path) and bool(os.listdir(path))) or os.path.isfile(path)


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

    Files go to ``path + ".partial"`` until :meth:`commit` moves them to ``path``.

    Args:
      path: the folder, or None to write nothing.
      overwrite: replace an existing non-empty ``path`` (at the commit) and discard an
        interrupted run waiting in ``path.partial``.
      resume: continue the interrupted run in ``path.partial`` (its checkpoints are restored
        by the training loop, see :class:`RunCheckpoints`).

    Raises:
      RunFolderError: ``path`` holds files and ``overwrite`` is off, an interrupted run is in
        the way, or there is nothing to resume.
    """

    def __init__(self, path, overwrite: bool = False, resume: bool = False):
        self.final = None if path is None else os.path.abspath(path)
        self.path = None
        self.resumed = False
        self._checkpoints = None
        if self.final is None:
            return
        work = partial_path(self.final)
        if resume:
            if not os.path.isdir(work):
                if _non_empty(self.final):
                    raise RunFolderError(
                        f"{self.final} holds a finished run; there is no interrupted run to resume",
                        "finished",
                    )
                raise RunFolderError(
                    f"no interrupted run to resume at {self.final} (expected {work})",
                    "nothing_to_resume",
                )
            self.resumed = True
        else:
            if os.path.isdir(work) and not overwrite:
                raise RunFolderError(
                    f"{work} holds an interrupted run; continue it or start over "
                    "(refusing to discard it)",
                    "interrupted",
                )
            if _non_empty(self.final) and not overwrite:
                raise RunFolderError(
                    f"output folder {self.final} is not empty (refusing to "
                    "overwrite an earlier run)",
                    "exists",
                )
            if os.path.isdir(work):
                shutil.rmtree(work)
        self.path = check_writable(work)
        # Every record is written again by a resumed run (from the restored histories).
        open(os.path.join(self.path, "metrics.jsonl"), "w").close()

    def checkpoints(self):
        """The run's :class:`RunCheckpoints` (None when nothing is written)."""
        if self.path is None:
            return None
        if self._checkpoints is None:
            self._checkpoints = RunCheckpoints(os.path.join(self.path, CHECKPOINTS))
        return self._checkpoints

    @property
    def has_checkpoints(self) -> bool:
        return self.path is not None and os.path.isdir(os.path.join(self.path, CHECKPOINTS))

    def commit(self) -> str | None:
        """Move the finished run into place (replacing an earlier run there only now).

        Returns:
          The final folder (None when nothing is written).
        """
        if self.path is None:
            return None
        shutil.rmtree(os.path.join(self.path, CHECKPOINTS), ignore_errors=True)
        old = None
        if os.path.lexists(self.final):
            old = f"{self.final}.old-{os.getpid()}"
            os.rename(self.final, old)
        os.rename(self.path, self.final)
        if old is not None:
            if os.path.isdir(old) and not os.path.islink(old):
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.remove(old)
        self.path = self.final
        return self.final

    def abandon(self, keep: bool) -> str | None:
        """After a failed or interrupted run: keep ``path.partial`` for a resume (``keep``)
        or remove it. Returns the kept folder, else None. An earlier run at the final path is
        never touched."""
        if self.path is None or self.path == self.final:
            return None
        if keep:
            return self.path
        shutil.rmtree(self.path, ignore_errors=True)
        return None

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


class RunCheckpoints:
    """Per-epoch checkpoints of a run's training loops, in the order the loops run.

    Each call of the training loop (one algorithm's chunk of vmapped runs) takes the next
    :meth:`stage`; the stage saves the loop's carry with orbax after every epoch (and the
    metric history beside it), and the whole history once the loop has finished. A resumed
    run makes the same calls in the same order, so each loop finds its own stage: finished
    loops are skipped, the interrupted one restarts from its last epoch, bit for bit (the carry
    holds the weights, optimizer state and PRNG key; every epoch is a function of it).

    Args:
      folder: where the stages live.
    """

    def __init__(self, folder: str):
        self.folder = folder
        self._count = 0

    def stage(self, name: str) -> CheckpointStage:
        """The next training loop's checkpoints (``name`` labels the folder)."""
        self._count += 1
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        return CheckpointStage(os.path.join(self.folder, f"{self._count:04d}-{safe}"))


@contextlib.contextmanager
def _sigint_deferred():
    """Hold SIGINT (Ctrl-C) until the block is done, then raise it as KeyboardInterrupt.

    Interrupted inside orbax's save, the checkpointer's context closed while its asynchronous
    save was in flight; that thread then submitted to a shut-down executor ("cannot schedule
    new futures after shutdown") and the process did not exit (seen in
    tests/test_resume.py::test_resume_after_a_real_sigint, once in a clean-clone CI run).
    Off the main thread (where handlers cannot be set) the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(signal.SIGINT, None)  # Python's default: raises KeyboardInterrupt
    elif caught and previous != signal.SIG_IGN:
        raise KeyboardInterrupt


def _save_npz(path: str, arrays: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _load_npz(path: str) -> dict:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _stack_history(history) -> dict:
    return {k: np.stack([np.asarray(h[k]) for h in history], axis=-1) for k in history[0]}


class CheckpointStage:
    """Checkpoints of one training loop: ``epoch-NNNN/`` (orbax carry + ``history.npz``),
    ``latest`` (the last complete epoch, written after its files) and ``done.npz``."""

    def __init__(self, folder: str):
        self.folder = folder

    def _epoch_dir(self, epoch: int) -> str:
        return os.path.join(self.folder, f"epoch-{epoch:04d}")

    def finished(self):
        """The loop's stacked history if it had finished, else None."""
        path = os.path.join(self.folder, "done.npz")
        return _load_npz(path) if os.path.isfile(path) else None

    def restore(self, like):
        """``(epoch, carry, history)`` of the last saved epoch (carry shaped as ``like``), or
        None when the loop has not saved one."""
        latest = os.path.join(self.folder, "latest")
        if not os.path.isfile(latest):
            return None
        with open(latest) as f:
            epoch = int(f.read().strip())
        import orbax.checkpoint as ocp

        with ocp.StandardCheckpointer() as ckpt:
            carry = ckpt.restore(os.path.join(self._epoch_dir(epoch), "carry"), like)
        stacked = _load_npz(os.path.join(self._epoch_dir(epoch), "history.npz"))
        length = next(iter(stacked.values())).shape[-1]
        history = [{k: v[..., i] for k, v in stacked.items()} for i in range(length)]
        return epoch, carry, history

    def save(self, epoch: int, carry, history) -> None:
        """Save the carry after ``epoch`` epochs and the history so far (the previous epoch's
        files are removed once this one is complete). A Ctrl-C during the save is held until
        it is complete (see :func:`_sigint_deferred`)."""
        with _sigint_deferred():
            self._save(epoch, carry, history)

    def _save(self, epoch: int, carry, history) -> None:
        import orbax.checkpoint as ocp

        folder = self._epoch_dir(epoch)
        shutil.rmtree(folder, ignore_errors=True)  # a half-written one from an interruption
        os.makedirs(folder)
        with ocp.StandardCheckpointer() as ckpt:
            ckpt.save(os.path.join(folder, "carry"), carry)
            ckpt.wait_until_finished()
        _save_npz(os.path.join(folder, "history.npz"), _stack_history(history))
        latest = os.path.join(self.folder, "latest")
        previous = None
        if os.path.isfile(latest):
            with open(latest) as f:
                previous = int(f.read().strip())
        with open(latest + ".tmp", "w") as f:
            f.write(f"{epoch}\n")
        os.replace(latest + ".tmp", latest)
        if previous is not None and previous != epoch:
            shutil.rmtree(self._epoch_dir(previous), ignore_errors=True)

    def finish(self, stacked: dict) -> None:
        """Record the loop's final history; its epoch checkpoints are no longer needed."""
        os.makedirs(self.folder, exist_ok=True)
        _save_npz(os.path.join(self.folder, "done.npz"), stacked)
        for name in os.listdir(self.folder):
            if name.startswith("epoch-") or name == "latest":
                path = os.path.join(self.folder, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
