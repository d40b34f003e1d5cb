"""Published devices with aihwkit's fitted numbers [AIHWKIT ``simulator/presets/devices.py``].

Each preset is a function returning a device of one of our families, so keyword overrides
work (``presets.reram_sb(dw_min_std=0.0)``) and the result is an ordinary pytree.
aihwkit's cycle-to-cycle ``dw_min_std`` is relative to ``dw_min`` as ours is; its
``mult_noise`` flag maps to ``noise="multiplicative"``. aihwkit's LinearStep devices (step
changing linearly with w, ``gamma_up/down`` slopes) are two-node :class:`Piecewise` devices.
"""

from __future__ import annotations

from typing import Any

from aimcjax.devices import ConstantStep, Piecewise, SoftBounds

__all__ = ["PRESETS", "capacitor", "ecram", "ecram_mo", "gokmen_vlasov", "idealized", "reram_sb"]


def idealized(**overrides: Any) -> ConstantStep:
    """Idealized constant step, ~10 000 states (Gokmen & Vlasov 2016, 5x finer steps)."""
    params: dict[str, Any] = dict(
        dw_min=2e-4,
        w_min=-1.0,
        w_max=1.0,
        dw_min_dtod=0.3,
        dw_min_std=0.3,
        w_max_dtod=0.3,
        w_min_dtod=0.3,
        noise="additive",
    )
    return ConstantStep(**{**params, **overrides})


def gokmen_vlasov(**overrides: Any) -> ConstantStep:
    """Constant step with 1 200 states (Gokmen & Vlasov, Front. Neurosci. 2016)."""
    params: dict[str, Any] = dict(
        dw_min=1.6e-3,
        w_min=-1.0,
        w_max=1.0,
        dw_min_dtod=0.3,
        dw_min_std=0.3,
        up_down_dtod=0.01,
        w_max_dtod=0.3,
        w_min_dtod=0.3,
        noise="additive",
    )
    return ConstantStep(**{**params, **overrides})


def reram_sb(**overrides: Any) -> SoftBounds:
    """ReRAM, soft bounds, loose fit to Gong et al., Nat. Commun. 2018 (symmetric point at 0)."""
    params: dict[str, Any] = dict(
        dw_min=2e-3,
        w_min=-0.75,
        w_max=1.25,
        dw_min_dtod=0.3,
        up_down_dtod=0.01,
        w_max_dtod=0.3 / 1.25,
        w_min_dtod=0.3 / 0.75,
        dw_min_std=3.75,
        noise="additive",
    )
    params = {**params, **overrides}
    # Each direction saturates at its own bound, so G(0) = 0 despite the asymmetric range.
    return SoftBounds(tau=params["w_max"], **params)


def _linear_step(
    dw_min: float, w_min: float, w_max: float, gamma_up: float, gamma_down: float, **params: Any
) -> Piecewise:
    # aihwkit LinearStep: up step dw_min*(1 - gamma_up*w/w_max), down step
    # dw_min*(1 + gamma_down*w/|w_min|); linear in w, so two nodes at the bounds are exact.
    up = (1 + gamma_up * (-w_min) / w_max, 1 - gamma_up)
    down = (1 - gamma_down, 1 + gamma_down * w_max / (-w_min))
    return Piecewise(up=up, down=down, w_min=w_min, w_max=w_max, dw_min=dw_min, **params)


def capacitor(**overrides: Any) -> Piecewise:
    """Capacitor cell, linear step fit to Li et al., VLSI 2018 (leakage not modelled)."""
    params: dict[str, Any] = dict(
        dw_min=5e-3,
        w_min=-1.0,
        w_max=1.0,
        gamma_up=0.05,
        gamma_down=0.05,
        dw_min_dtod=0.1,
        up_down_dtod=0.06,
        w_max_dtod=0.07,
        w_min_dtod=0.07,
        dw_min_std=0.3,
        noise="additive",
    )
    return _linear_step(**{**params, **overrides})


def ecram(**overrides: Any) -> Piecewise:
    """Li-based ECRAM, linear step fit to Tang et al., IEDM 2018."""
    params: dict[str, Any] = dict(
        dw_min=2e-3,
        w_min=-0.8276,
        w_max=1.1724,
        gamma_up=0.1153,
        gamma_down=0.5085,
        dw_min_dtod=0.1,
        up_down_dtod=0.01,
        w_max_dtod=0.05,
        w_min_dtod=0.05,
        dw_min_std=0.3,
        noise="multiplicative",
    )
    return _linear_step(**{**params, **overrides})


def ecram_mo(**overrides: Any) -> Piecewise:
    """Metal-oxide ECRAM, linear step, data of Kim et al., IEDM 2019."""
    params: dict[str, Any] = dict(
        dw_min=2.8214e-4,
        w_min=-0.8286,
        w_max=1.1714,
        gamma_up=0.4152,
        gamma_down=0.7342,
        dw_min_dtod=0.1,
        up_down_dtod=0.01,
        w_max_dtod=0.05,
        w_min_dtod=0.05,
        dw_min_std=2.0,
        noise="multiplicative",
    )
    return _linear_step(**{**params, **overrides})


PRESETS = {
    "idealized": idealized,
    "gokmen_vlasov": gokmen_vlasov,
    "reram_sb": reram_sb,
    "capacitor": capacitor,
    "ecram": ecram,
    "ecram_mo": ecram_mo,
}
