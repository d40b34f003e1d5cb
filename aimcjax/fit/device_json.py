"""Devices as JSON files: what ``aimcjax fit`` writes and ``--device @FILE.json`` reads.

Layout::

    {"family": "SoftBounds",                      # a class of aimcjax.devices
     "params": {"tau": 0.6, "dw_min": 0.001, ..., "noise": "additive"},
     "fit": {...}}                                # optional: estimates, errors, ranking

Only ``family`` and ``params`` are read back; ``params`` are the constructor's keywords.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from aimcjax import devices

__all__ = ["DEVICE_CLASSES", "device_from_dict", "device_to_dict", "load_device", "save_device"]

DEVICE_CLASSES = {
    cls.__name__: cls
    for cls in (
        devices.ConstantStep,
        devices.SoftBounds,
        devices.Power,
        devices.Exponential,
        devices.Piecewise,
        devices.ExpStep,
    )
}


def _plain(value: Any) -> Any:
    arr = np.asarray(value)
    return arr.tolist() if arr.ndim else (value if isinstance(value, str) else float(arr))


def device_to_dict(device: devices.Device) -> dict[str, Any]:
    """``{"family": class name, "params": constructor keywords}`` of a device."""
    name = type(device).__name__
    if name not in DEVICE_CLASSES:
        raise TypeError(
            f"cannot write a {name} device to JSON (supported: {', '.join(DEVICE_CLASSES)})"
        )
    params = {f.name: _plain(getattr(device, f.name)) for f in dataclasses.fields(device)}
    return {"family": name, "params": params}


def device_from_dict(data: Any, where: str = "device JSON") -> devices.Device:
    """The device of a :func:`device_to_dict` dict (ValueError naming ``where`` if malformed)."""
    if not isinstance(data, dict) or "family" not in data or "params" not in data:
        raise ValueError(f"{where}: expected an object with 'family' and 'params'")
    cls = DEVICE_CLASSES.get(data["family"])
    if cls is None:
        raise ValueError(
            f"{where}: unknown family {data['family']!r} (expected one of {', '.join(DEVICE_CLASSES)})"
        )
    params = data["params"]
    if not isinstance(params, dict):
        raise ValueError(f"{where}: 'params' must be an object")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"{where}: {cls.__name__} has no parameter {', '.join(unknown)}")
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None


def save_device(device: devices.Device, path: str, extra: dict[str, Any] | None = None) -> None:
    """Write a device (and optional ``extra`` entries, e.g. the fit report) as JSON."""
    data = device_to_dict(device)
    if extra:
        data.update(extra)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")


def load_device(path: str) -> devices.Device:
    """Read a device written by :func:`save_device` (or ``aimcjax fit``)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such device file") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e})") from None
    return device_from_dict(data, path)
