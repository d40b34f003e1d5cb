"""Compact device specs for the command line: ``power:gamma=1,tau=0.6,dw_min=1e-3`` or a preset.

Grammar::

    spec     := family [":" params] | preset [":" params]
    params   := name "=" value ("," name "=" value)*
    value    := number | word (e.g. noise=multiplicative) | list for Piecewise nodes "1;0.8;0.5"

Families: ``constant`` (ConstantStep), ``softbounds`` / ``linear`` (SoftBounds), ``power``,
``exp`` / ``exponential``, ``piecewise``. Presets are those of :mod:`aimcjax.devices.presets`;
parameters after a preset override its values. For sweeps a value may list alternatives
separated by ``/`` (``power:gamma=0.5/1/2,tau=0.6/0.8`` is a grid of 6 devices), see
:func:`parse_grid`.

Example:
  >>> parse("power:gamma=2,tau=0.7")
  Power(tau=0.7, gamma=2.0, ...)
"""

from __future__ import annotations

import dataclasses
import itertools

__all__ = ["SpecError", "FAMILIES", "parse", "parse_grid", "parse_params", "family_fields",
           "presets"]


class SpecError(ValueError):
    """A device spec that cannot be parsed or names unknown parameters."""


def _families():
    from aimcjax import devices
    return {
        "constant": devices.ConstantStep,
        "softbounds": devices.SoftBounds,
        "linear": devices.SoftBounds,
        "power": devices.Power,
        "exp": devices.Exponential,
        "exponential": devices.Exponential,
        "piecewise": devices.Piecewise,
    }


FAMILIES = ("constant", "softbounds", "linear", "power", "exp", "exponential", "piecewise")


def presets() -> dict:
    """Name -> preset constructor (``aimcjax.devices.presets.PRESETS``)."""
    from aimcjax.devices import presets as p
    return dict(p.PRESETS)


def family_fields(cls) -> list[str]:
    """Parameters a family accepts (its dataclass fields)."""
    return [f.name for f in dataclasses.fields(cls)]


def _value(name: str, text: str):
    text = text.strip()
    if not text:
        raise SpecError(f"parameter {name!r} has no value")
    if ";" in text:
        return tuple(_value(name, t) for t in text.split(";"))
    try:
        return float(text)
    except ValueError:
        pass
    if name == "noise":
        return text
    raise SpecError(f"parameter {name!r}: {text!r} is not a number")


def parse_params(text: str, alternatives: bool = False) -> dict:
    """``"a=1,b=2"`` -> ``{"a": 1.0, "b": 2.0}``; with ``alternatives`` each value is a list
    split on ``/``."""
    out = {}
    if not text.strip():
        return out
    for item in text.split(","):
        if "=" not in item:
            raise SpecError(f"expected name=value, got {item.strip()!r}")
        name, value = (s.strip() for s in item.split("=", 1))
        if not name.isidentifier():
            raise SpecError(f"bad parameter name {name!r}")
        if name in out:
            raise SpecError(f"parameter {name!r} given twice")
        if alternatives:
            out[name] = [_value(name, v) for v in value.split("/")]
        else:
            out[name] = _value(name, value)
    return out


def _split(spec: str):
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"a device spec must be a non-empty string, got {spec!r}")
    head, _, tail = spec.strip().partition(":")
    return head.strip().lower(), tail


def _build(head: str, params: dict, spec: str):
    fams = _families()
    known = presets()
    if head in fams:
        cls = fams[head]
        fields = family_fields(cls)
        make = cls
    elif head in known:
        cls = None
        fields = None
        make = known[head]
    else:
        raise SpecError(f"unknown device {head!r} in {spec!r}; families: {', '.join(FAMILIES)}; "
                        f"presets: {', '.join(known)}")
    if fields is not None:
        bad = sorted(set(params) - set(fields))
        if bad:
            raise SpecError(f"{head} has no parameter {', '.join(bad)}; "
                            f"it takes {', '.join(f for f in fields if f not in ('q_plus_fn', 'q_minus_fn'))}")
    try:
        return make(**params)
    except TypeError as e:
        raise SpecError(f"{spec!r}: {e}") from None
    except ValueError as e:
        raise SpecError(f"{spec!r}: {e}") from None


def parse(spec: str):
    """Build one device from a spec string.

    Args:
      spec: e.g. ``"power:gamma=1,tau=0.6,dw_min=1e-3"``, ``"softbounds:asymmetry=0.2"``,
        ``"reram_sb"`` or ``"ecram:dw_min_std=0"``.

    Returns:
      An :mod:`aimcjax.devices` device.

    Raises:
      SpecError: unknown family/preset/parameter, or a value the device rejects.
    """
    head, tail = _split(spec)
    params = parse_params(tail)
    return _build(head, params, spec)


def parse_grid(spec: str) -> list[tuple[dict, object]]:
    """All devices of a grid spec (values separated by ``/``), in row-major order.

    Args:
      spec: e.g. ``"power:gamma=0.5/1/2,tau=0.6/0.7/0.8"``.

    Returns:
      A list of ``(params, device)``, params being the chosen values of this grid point.
    """
    head, tail = _split(spec)
    grid = parse_params(tail, alternatives=True)
    names = list(grid)
    out = []
    for combo in itertools.product(*(grid[n] for n in names)):
        params = dict(zip(names, combo))
        out.append((params, _build(head, params, spec)))
    return out
