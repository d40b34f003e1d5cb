"""Compact device specs for the command line: ``power:gamma=1,tau=0.6,dw_min=1e-3`` or a preset.

Grammar::

    spec     := family [":" params] | preset [":" params] | "@" file.json [":" params]
    params   := name "=" value ("," name "=" value)*
    value    := number | word (noise=multiplicative, range_normalization=aihwkit)
              | list for Piecewise nodes "1;0.8;0.5"

Families: ``constant`` (ConstantStep), ``softbounds`` / ``linear`` (SoftBounds), ``power``,
``exp`` / ``exponential``, ``piecewise``, ``expstep`` (ExpStep, aihwkit's). Presets are those of
:mod:`aimcjax.devices.presets`; parameters after a preset override its values. ``@path/device.json``
loads a device written by ``aimcjax fit`` (:mod:`aimcjax.fit.device_json`), again with optional
overrides. For sweeps a value may list alternatives
separated by ``/`` (``power:gamma=0.5/1/2,tau=0.6/0.8`` is a grid of 6 devices), see
:func:`parse_grid`.

Peripheries (:func:`parse_periphery`) use the same style: a preset of
:data:`aimcjax.periphery.PRESETS` with optional :class:`~aimcjax.periphery.PeripheryConfig`
overrides, ``default:out_noise=0.1,inp_bits=8`` (``none`` for an unbounded/unquantized
converter, ``true``/``false`` for the stochastic-rounding switches).

Example:
  >>> parse("power:gamma=2,tau=0.7")  # doctest: +ELLIPSIS
  Power(tau=0.7, ..., gamma=2.0, ...)
  >>> parse_periphery("default:out_noise=0.1")  # doctest: +ELLIPSIS
  PeripheryConfig(..., out_noise=0.1, ...)
"""

from __future__ import annotations

import dataclasses
import itertools

__all__ = [
    "FAMILIES",
    "SpecError",
    "family_classes",
    "family_fields",
    "parse",
    "parse_grid",
    "parse_params",
    "parse_periphery",
    "presets",
]


class SpecError(ValueError):
    """A device spec that cannot be parsed or names unknown parameters."""


def family_classes() -> dict:
    """Spec family name -> device class (aliases included: ``linear`` is ``softbounds``).

    Example:
      >>> from aimcjax.app import specs
      >>> specs.family_classes()["linear"].__name__
      'SoftBounds'
    """
    from aimcjax import devices

    return {
        "constant": devices.ConstantStep,
        "softbounds": devices.SoftBounds,
        "linear": devices.SoftBounds,
        "power": devices.Power,
        "exp": devices.Exponential,
        "exponential": devices.Exponential,
        "piecewise": devices.Piecewise,
        "expstep": devices.ExpStep,
    }


FAMILIES = (
    "constant",
    "softbounds",
    "linear",
    "power",
    "exp",
    "exponential",
    "piecewise",
    "expstep",
)
_WORD_PARAMS = ("noise", "range_normalization")  # parameters whose values are names


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
    if name in _WORD_PARAMS:
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


def _split(spec: str, what: str = "device"):
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"a {what} spec must be a non-empty string, got {spec!r}")
    head, _, tail = spec.strip().partition(":")
    return head.strip().lower(), tail


def _file_spec(spec: str):
    """``@path[:params]`` -> (path, params text); the params part is the text after the last
    ':' when it holds a '=' (paths may contain ':')."""
    body = spec.strip()[1:]
    path, sep, tail = body.rpartition(":")
    if not sep or "=" not in tail:
        path, tail = body, ""
    if not path:
        raise SpecError(f"{spec!r}: '@' must be followed by a device JSON file")
    return path, tail


def _from_file(path: str, params: dict, spec: str):
    from aimcjax.fit.device_json import load_device

    try:
        device = load_device(path)
        return device.replace(**params) if params else device
    except (TypeError, ValueError) as e:
        raise SpecError(f"{spec!r}: {e}") from None


def _build(head: str, params: dict, spec: str):
    fams = family_classes()
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
        raise SpecError(
            f"unknown device {head!r} in {spec!r}; families: {', '.join(FAMILIES)}; "
            f"presets: {', '.join(known)}"
        )
    if fields is not None:
        bad = sorted(set(params) - set(fields))
        if bad:
            raise SpecError(
                f"{head} has no parameter {', '.join(bad)}; "
                f"it takes {', '.join(f for f in fields if f not in ('q_plus_fn', 'q_minus_fn'))}"
            )
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
        ``"reram_sb"``, ``"ecram:dw_min_std=0"`` or ``"@fit/device.json"`` (a device file
        written by ``aimcjax fit``, optionally ``"@fit/device.json:dw_min_std=0"``).

    Returns:
      An :mod:`aimcjax.devices` device.

    Raises:
      SpecError: unknown family/preset/parameter, or a value the device rejects.
    """
    if isinstance(spec, str) and spec.strip().startswith("@"):
        path, tail = _file_spec(spec)
        return _from_file(path, parse_params(tail), spec)
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
    from_file = isinstance(spec, str) and spec.strip().startswith("@")
    if from_file:
        path, tail = _file_spec(spec)
    else:
        head, tail = _split(spec)
    grid = parse_params(tail, alternatives=True)
    names = list(grid)
    out = []
    for combo in itertools.product(*(grid[n] for n in names)):
        params = dict(zip(names, combo))
        out.append(
            (params, _from_file(path, params, spec) if from_file else _build(head, params, spec))
        )
    return out


def _periphery_value(name: str, text: str, default):
    """A periphery field from text, typed like the field's default where that is ambiguous."""
    text = text.strip()
    word = text.lower()
    if not text:
        raise SpecError(f"periphery parameter {name!r} has no value")
    if word == "none":
        return None
    if word in ("true", "false"):
        return word == "true"
    try:
        number = float(text)
    except ValueError:
        return text  # a mode name (noise_management=max); the config validates it
    # Bits and the bound-management factor are integers: "8" and "8.0" both mean 8.
    if isinstance(default, int) and not isinstance(default, bool) and number.is_integer():
        return int(number)
    return number


def parse_periphery(spec: str):
    """Build a :class:`aimcjax.periphery.PeripheryConfig` from a spec string.

    Args:
      spec: a preset name (``perfect``, ``default``, ``aihwkit_preset``) with optional
        overrides, e.g. ``"default:out_noise=0.1,inp_bits=8,out_bound=none"``.

    Returns:
      A :class:`~aimcjax.periphery.PeripheryConfig`.

    Raises:
      SpecError: unknown preset or field, or a value the config rejects.
    """
    from aimcjax import periphery

    head, tail = _split(spec, "periphery")
    if head not in periphery.PRESETS:
        raise SpecError(
            f"unknown periphery preset {head!r}; presets: {', '.join(periphery.PRESETS)}"
        )
    fields = {f.name: f.default for f in dataclasses.fields(periphery.PeripheryConfig)}
    params = {}
    for item in filter(str.strip, tail.split(",")):
        if "=" not in item:
            raise SpecError(f"expected name=value in periphery {spec!r}, got {item.strip()!r}")
        name, value = (t.strip() for t in item.split("=", 1))
        if name not in fields:
            raise SpecError(f"periphery has no parameter {name!r}; it takes {', '.join(fields)}")
        if name in params:
            raise SpecError(f"periphery parameter {name!r} given twice")
        params[name] = _periphery_value(name, value, fields[name])
    try:
        return periphery.preset(head, **params)
    except (TypeError, ValueError) as e:
        raise SpecError(f"periphery {spec!r}: {e}") from None
