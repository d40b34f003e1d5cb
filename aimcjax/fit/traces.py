"""Pulse-response traces: the data a device fit starts from, and their file layouts.

A *trace* is what a measurement of one device gives: the conductance (in weight units) read
after each pulse of a pulse train, with the direction of that pulse. Many devices of one
array make a :class:`Traces` batch (rectangular, shorter traces padded and masked).

File layouts (both read by :func:`load_traces`, written by :func:`save_traces`):

CSV, one row per read, header required::

    device,pulse,direction,read[,read_noise]
    d0,0,none,0.0012        <- optional read before the first pulse (pulse 0, direction none)
    d0,1,up,0.0031          <- read after pulse 1, which went up
    d0,2,down,0.0019
    ...

  - ``device``: any label (text or number); rows of a device need not be contiguous.
  - ``pulse``: integer pulse index, per device consecutive (0 or 1, 2, 3, ...).
  - ``direction``: ``up``/``down`` (also ``+1``/``-1``, ``+``/``-``); ``none`` (or ``0``)
    only at pulse 0.
  - ``read``: the value read after the pulse (any consistent unit; the fit works in it).
  - ``read_noise`` (optional): the known std of one read (same unit), one value for the file;
    without it the read noise is fitted.

NPZ arrays: ``reads`` (n_devices, n_pulses + 1) with column 0 the read before the first pulse,
``direction`` (n_devices, n_pulses) of +1/-1; optional ``device`` (labels), ``n_pulses``
(pulses per device, for traces of unequal length: entries beyond are padding) and
``read_noise`` (scalar).

Errors are :class:`TraceError` (a ValueError) with one line naming the file and the problem.
"""

from __future__ import annotations

import csv
import os
from typing import Any, NamedTuple

import numpy as np

__all__ = ["CSV_COLUMNS", "TraceError", "Traces", "load_traces", "make_traces", "save_traces"]

CSV_COLUMNS = ("device", "pulse", "direction", "read")
_UP = {"up", "+1", "1", "+", "u"}
_DOWN = {"down", "-1", "-", "d"}
_NONE = {"none", "0", ""}


class TraceError(ValueError):
    """A traces file or array that cannot be used (one line naming the problem)."""


class Traces(NamedTuple):
    """Reads of pulse trains on a batch of devices.

    Attributes:
      reads: (n_devices, n_pulses + 1) float; ``reads[:, 0]`` before the first pulse,
        ``reads[:, t]`` after pulse t.
      direction: (n_devices, n_pulses) int8, +1 up / -1 down (0 only in padding).
      valid: (n_devices, n_pulses) bool, False on padding after a shorter trace's end.
      read_noise: known std of one read, or None (then it is fitted).
      device_ids: (n_devices,) labels as strings.
    """

    reads: np.ndarray
    direction: np.ndarray
    valid: np.ndarray
    read_noise: float | None
    device_ids: tuple[str, ...]

    @property
    def n_devices(self) -> int:
        return self.reads.shape[0]

    @property
    def n_pulses(self) -> int:
        return self.direction.shape[1]

    @property
    def n_observations(self) -> int:
        """Reads that follow a pulse (what the likelihood scores)."""
        return int(self.valid.sum())


def make_traces(
    reads: Any,
    direction: Any,
    *,
    valid: Any = None,
    read_noise: float | None = None,
    device_ids: Any = None,
    where: str = "traces",
) -> Traces:
    """Validate arrays and build :class:`Traces`.

    Args:
      reads: (n_devices, n_pulses + 1) reads, column 0 before the first pulse.
      direction: (n_devices, n_pulses) of +1 / -1.
      valid: optional (n_devices, n_pulses) bool mask (True where a pulse was applied; a
        trace's valid pulses must come first).
      read_noise: known read-noise std (>= 0) or None.
      device_ids: optional labels.
      where: name used in error messages (a file name).

    Returns:
      :class:`Traces`.

    Raises:
      TraceError: on wrong shapes, NaN/inf reads, directions other than +-1, bad masks.
    """
    reads = np.asarray(reads, dtype=np.float64)
    direction = np.asarray(direction)
    if reads.ndim != 2 or reads.shape[1] < 3:
        raise TraceError(
            f"{where}: reads must have shape (n_devices, n_pulses + 1) with n_pulses >= 2, got {reads.shape}"
        )
    n, t1 = reads.shape
    if direction.shape != (n, t1 - 1):
        raise TraceError(
            f"{where}: direction must have shape {(n, t1 - 1)} (one per pulse), got {direction.shape}"
        )
    valid = np.ones((n, t1 - 1), bool) if valid is None else np.asarray(valid, bool)
    if valid.shape != direction.shape:
        raise TraceError(f"{where}: valid must have shape {direction.shape}, got {valid.shape}")
    if (np.diff(valid.astype(np.int8), axis=1) > 0).any():
        raise TraceError(
            f"{where}: a trace's valid pulses must come first (padding only at the end)"
        )
    if valid.sum(axis=1).min() < 2:
        raise TraceError(f"{where}: every device needs at least 2 pulses")
    used_reads = np.concatenate([np.ones((n, 1), bool), valid], axis=1)
    if not np.isfinite(reads[used_reads]).all():
        raise TraceError(f"{where}: reads contain NaN or infinite values")
    if not np.isin(direction[valid], (-1, 1)).all():
        raise TraceError(f"{where}: direction must be +1 (up) or -1 (down) on every pulse")
    if read_noise is not None:
        read_noise = float(read_noise)
        if not np.isfinite(read_noise) or read_noise < 0:
            raise TraceError(f"{where}: read_noise must be a finite number >= 0, got {read_noise}")
    ids = tuple(str(i) for i in (range(n) if device_ids is None else device_ids))
    if len(ids) != n:
        raise TraceError(f"{where}: {len(ids)} device labels for {n} devices")
    if len(set(ids)) != n:
        raise TraceError(f"{where}: device labels must be distinct")
    reads = np.where(used_reads, reads, reads[np.arange(n), valid.sum(axis=1)][:, None])
    return Traces(reads, np.where(valid, direction, 0).astype(np.int8), valid, read_noise, ids)


def _direction(text: str, where: str, line: int) -> int:
    word = text.strip().lower()
    if word in _UP:
        return 1
    if word in _DOWN:
        return -1
    if word in _NONE:
        return 0
    raise TraceError(
        f"{where}:{line}: unknown direction {text!r} (expected up, down, +1, -1 or none)"
    )


def _number(text: str, name: str, where: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{where}:{line}: {name} {text!r} is not a number") from None
    if not np.isfinite(value):
        raise TraceError(f"{where}:{line}: {name} is {text.strip()} (NaN or infinite)")
    return value


def _load_csv(path: str) -> Traces:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise TraceError(f"{path}: empty file")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise TraceError(
            f"{path}: missing column(s) {', '.join(missing)} (header needs {', '.join(CSV_COLUMNS)}[, read_noise])"
        )
    col = {name: header.index(name) for name in header}
    per_device: dict[str, list] = {}
    noise_values = set()
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise TraceError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        pulse_text = row[col["pulse"]].strip()
        try:
            pulse = int(pulse_text)
        except ValueError:
            raise TraceError(
                f"{path}:{line}: pulse index {pulse_text!r} is not an integer"
            ) from None
        direction = _direction(row[col["direction"]], path, line)
        read = _number(row[col["read"]], "read", path, line)
        if "read_noise" in col and row[col["read_noise"]].strip():
            noise_values.add(_number(row[col["read_noise"]], "read_noise", path, line))
        per_device.setdefault(row[col["device"]].strip(), []).append((pulse, direction, read, line))
    if not per_device:
        raise TraceError(f"{path}: no data rows")
    if len(noise_values) > 1:
        raise TraceError(
            f"{path}: read_noise must be one value for the file, got {sorted(noise_values)[:4]}"
        )
    read_noise = noise_values.pop() if noise_values else None
    traces = []
    for dev, entries in per_device.items():
        entries.sort(key=lambda e: e[0])
        pulses = [e[0] for e in entries]
        if len(set(pulses)) != len(pulses):
            dup = next(p for p in pulses if pulses.count(p) > 1)
            raise TraceError(f"{path}: device {dev!r} has pulse {dup} twice")
        start = pulses[0]
        if start not in (0, 1):
            raise TraceError(f"{path}: device {dev!r} starts at pulse {start} (expected 0 or 1)")
        if pulses != list(range(start, start + len(pulses))):
            gap = next(p for i, p in enumerate(pulses) if p != start + i)
            raise TraceError(
                f"{path}: device {dev!r}: pulse indices are not consecutive (jump to {gap})"
            )
        for pulse, direction, _, line in entries:
            if pulse == 0 and direction != 0:
                raise TraceError(
                    f"{path}:{line}: pulse 0 is the read before any pulse; its direction must be none"
                )
            if pulse > 0 and direction == 0:
                raise TraceError(f"{path}:{line}: pulse {pulse} needs a direction (up or down)")
        reads = [e[2] for e in entries]
        dirs = [e[1] for e in entries if e[0] > 0]
        if start == 1:  # no read before the first pulse: the first read starts the trace
            dirs = dirs[1:]
        traces.append((dev, reads, dirs))
    return _pad(traces, read_noise, path)


def _pad(
    traces: list[tuple[str, list[float], list[int]]], read_noise: float | None, where: str
) -> Traces:
    n_max = max(len(d) for _, _, d in traces)
    n = len(traces)
    reads = np.zeros((n, n_max + 1))
    direction = np.zeros((n, n_max), np.int8)
    valid = np.zeros((n, n_max), bool)
    for i, (_, r, d) in enumerate(traces):
        reads[i, : len(r)] = r
        direction[i, : len(d)] = d
        valid[i, : len(d)] = True
    return make_traces(
        reads,
        direction,
        valid=valid,
        read_noise=read_noise,
        device_ids=[t[0] for t in traces],
        where=where,
    )


def _load_npz(path: str) -> Traces:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile / format errors
        raise TraceError(f"{path}: not a readable .npz file ({e})") from None
    missing = [k for k in ("reads", "direction") if k not in data]
    if missing:
        raise TraceError(
            f"{path}: missing array(s) {', '.join(missing)} (needs reads, direction[, device, n_pulses, read_noise])"
        )
    reads, direction = data["reads"], data["direction"]
    if reads.ndim != 2:
        raise TraceError(
            f"{path}: reads must be 2-D (n_devices, n_pulses + 1), got shape {reads.shape}"
        )
    valid = None
    if "n_pulses" in data:
        counts = np.asarray(data["n_pulses"])
        if (
            counts.shape != (reads.shape[0],)
            or (counts < 2).any()
            or (counts > reads.shape[1] - 1).any()
        ):
            raise TraceError(
                f"{path}: n_pulses must hold one count in [2, {reads.shape[1] - 1}] per device"
            )
        valid = np.arange(reads.shape[1] - 1)[None, :] < counts[:, None]
    read_noise = float(data["read_noise"]) if "read_noise" in data else None
    ids = data["device"].tolist() if "device" in data else None
    return make_traces(
        reads, direction, valid=valid, read_noise=read_noise, device_ids=ids, where=path
    )


def load_traces(path: str) -> Traces:
    """Read traces from a ``.csv`` or ``.npz`` file (layouts in the module docstring).

    Args:
      path: the file.

    Returns:
      :class:`Traces`.

    Raises:
      TraceError: missing file or columns, NaN reads, unknown direction, pulse indices that
        are not consecutive, ... (one line naming the file and, for CSV, the line).

    Example:
      >>> from aimcjax.fit.example import EXAMPLE_PATH   # the embedded example (an .npz)
      >>> traces = load_traces(EXAMPLE_PATH)
      >>> traces.n_devices, traces.n_pulses, traces.read_noise is None
      (8, 2000, True)
    """
    if not os.path.isfile(path):
        raise TraceError(f"{path}: no such file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        return _load_csv(path)
    if ext == ".npz":
        return _load_npz(path)
    raise TraceError(
        f"{path}: unknown traces format {ext or '(no extension)'!r} (expected .csv or .npz)"
    )


def save_traces(traces: Traces, path: str) -> None:
    """Write traces as ``.csv`` or ``.npz`` (by extension), readable by :func:`load_traces`."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        extra: dict[str, Any] = (
            {} if traces.read_noise is None else {"read_noise": np.float64(traces.read_noise)}
        )
        np.savez_compressed(
            path,
            reads=traces.reads.astype(np.float32),
            direction=traces.direction,
            device=np.asarray(traces.device_ids),
            n_pulses=traces.valid.sum(axis=1),
            **extra,
        )
    elif ext == ".csv":
        with open(path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(list(CSV_COLUMNS) + ([] if traces.read_noise is None else ["read_noise"]))
            noise = [] if traces.read_noise is None else [repr(traces.read_noise)]
            for i, dev in enumerate(traces.device_ids):
                out.writerow([dev, 0, "none", repr(float(traces.reads[i, 0]))] + noise)
                for t in range(int(traces.valid[i].sum())):
                    out.writerow(
                        [
                            dev,
                            t + 1,
                            "up" if traces.direction[i, t] > 0 else "down",
                            repr(float(traces.reads[i, t + 1])),
                        ]
                        + noise
                    )
    else:
        raise TraceError(f"{path}: unknown traces format {ext!r} (expected .csv or .npz)")
