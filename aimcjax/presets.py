"""Ready-made analog training setups: a device, a periphery and an algorithm, as aihwkit's presets.

Each function returns a :class:`Preset` ``(device, periphery, optimizer)`` named after aihwkit's
rpu-config presets (``aihwkit.simulator.presets``): the device from
:mod:`aimcjax.devices.presets` (aihwkit's fitted numbers), the periphery of aihwkit's
``PresetIOParameters`` (7-bit DAC, 9-bit ADC over ±20, output noise 0.1, abs-max noise and
iterative bound management) and the optax transformation with the preset's update settings
(pulse-train length, transfer writes, chopper probability, granularity).

Example:
  >>> import jax, jax.numpy as jnp
  >>> from aimcjax import presets
  >>> from aimcjax.nn import AnalogDense
  >>> preset = presets.tiki_taka_reram_sb(0.1, 0.05, key=0)
  >>> device, periphery, opt = preset
  >>> type(device).__name__, periphery.out_bound, periphery.out_noise
  ('SoftBounds', 20.0, 0.1)
  >>> layer = AnalogDense(10, **preset.layer_kwargs())   # forward=periphery, backward=...
  >>> params = layer.init(jax.random.key(0), jnp.ones((1, 4)))["params"]
  >>> state = opt.init(params)

Where aimcjax has no exact counterpart the docstring says what was approximated.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import optax

from aimcjax import optim, pulse
from aimcjax import periphery as periphery_lib
from aimcjax._typing import KeyLike
from aimcjax.devices import Device, Exponential
from aimcjax.devices import presets as device_presets
from aimcjax.periphery import PeripheryConfig

__all__ = [
    "PRESETS",
    "Preset",
    "agad_ecram",
    "chopped_ttv2_ecram",
    "mixed_precision_pcm_like",
    "mixed_precision_reram_sb",
    "pcm_like",
    "preset_periphery",
    "tiki_taka_reram_sb",
    "ttv2_ecram",
]


class Preset(NamedTuple):
    """A device, the periphery of its reads and the algorithm that trains on it.

    Attributes:
      device: the device of every tile (:mod:`aimcjax.devices`).
      periphery: the forward read's :class:`~aimcjax.periphery.PeripheryConfig`.
      optimizer: the optax transformation (tiles sampled from its ``key``).
    """

    device: Device
    periphery: PeripheryConfig
    optimizer: optax.GradientTransformationExtraArgs

    def layer_kwargs(self) -> dict[str, PeripheryConfig]:
        """``forward``/``backward`` for :class:`aimcjax.nn.AnalogDense` and friends (backward
        without bound management, as aihwkit)."""
        return {
            "forward": self.periphery,
            "backward": dataclasses.replace(self.periphery, bound_management="none"),
        }


def preset_periphery() -> PeripheryConfig:
    """aihwkit's ``PresetIOParameters``: RF Table 4 with ``out_bound=20``, ``out_noise=0.1``."""
    return periphery_lib.PRESETS["aihwkit_preset"]


def _update(mode: str, bl: int, **kwargs: Any) -> pulse.UpdateConfig:
    return pulse.UpdateConfig(mode=mode, bl=bl, **kwargs)


def _transfer_update(mode: str) -> pulse.UpdateConfig:
    # aihwkit's TTv2/c-TTv2/AGAD presets: one pulse per transfer, no update management
    return pulse.UpdateConfig(mode=mode, bl=1, update_management=False, update_bl_management=False)


def tiki_taka_reram_sb(
    learning_rate: optax.ScalarOrSchedule = 0.1,
    transfer_lr: optax.ScalarOrSchedule = 0.05,
    *,
    mode: str = "pulse",
    key: KeyLike = 0,
) -> Preset:
    """aihwkit ``TikiTakaReRamSBPreset``: Tiki-Taka on two ReRAM soft-bounds arrays.

    aihwkit subtracts each element's symmetric point on both arrays
    (``subtract_symmetry_point=True``) and transfers one column per step; here that is
    :func:`aimcjax.optim.residual_learning` with ``gamma=0`` (the forward pass reads W only),
    ``zero_shift=True`` and ``transfer="column"``; BL 31 for the gradient and the transfer writes.

    Args:
      learning_rate: rate of the gradient writes into P.
      transfer_lr: rate of the transfers P -> W.
      mode: update mode of the writes (``"pulse"`` or ``"outer"``: aihwkit's pulse trains, which
        need ``factors`` in ``update``).
      key: seed of the tiles' device-to-device variation.
    """
    device = device_presets.reram_sb()
    opt = optim.residual_learning(
        learning_rate,
        transfer_lr,
        device,
        gamma=0.0,
        zero_shift=True,
        transfer="column",
        update=_update(mode, 31),
        transfer_update=_update(mode, 31),
        key=key,
    )
    return Preset(device, preset_periphery(), opt)


def ttv2_ecram(
    learning_rate: optax.ScalarOrSchedule = 0.1,
    transfer_lr: optax.ScalarOrSchedule = 0.1,
    *,
    mode: str = "pulse",
    key: KeyLike = 0,
) -> Preset:
    """aihwkit ``TTv2EcRamPreset``: TTv2 on two ECRAM arrays.

    :func:`aimcjax.optim.chopped_ttv2` without choppers (``in_chop_prob=0``, which is
    :func:`aimcjax.optim.ttv2`) with aihwkit's ``auto_granularity=500``; gradient writes BL 100,
    transfer writes one pulse without update management. aihwkit's ``fast_lr=0.1`` is
    ``learning_rate``; its ``auto_scale`` of the fast rate is not reproduced.
    """
    device = device_presets.ecram()
    opt = optim.chopped_ttv2(
        learning_rate,
        transfer_lr,
        device,
        zero_shift=False,
        in_chop_prob=0.0,
        auto_granularity=500.0,
        update=_update(mode, 100),
        transfer_update=_transfer_update(mode),
        key=key,
    )
    return Preset(device, preset_periphery(), opt)


def chopped_ttv2_ecram(
    learning_rate: optax.ScalarOrSchedule = 0.1,
    transfer_lr: optax.ScalarOrSchedule = 0.1,
    *,
    mode: str = "pulse",
    key: KeyLike = 0,
) -> Preset:
    """aihwkit ``ChoppedTTv2EcRamPreset``: c-TTv2 on two ECRAM arrays (chopper probability
    0.01 per read, ``auto_granularity=500``, gradient BL 100, one-pulse transfers)."""
    device = device_presets.ecram()
    opt = optim.chopped_ttv2(
        learning_rate,
        transfer_lr,
        device,
        zero_shift=False,
        in_chop_prob=0.01,
        auto_granularity=500.0,
        update=_update(mode, 100),
        transfer_update=_transfer_update(mode),
        key=key,
    )
    return Preset(device, preset_periphery(), opt)


def agad_ecram(
    learning_rate: optax.ScalarOrSchedule = 0.1,
    transfer_lr: optax.ScalarOrSchedule = 0.1,
    *,
    mode: str = "pulse",
    key: KeyLike = 0,
) -> Preset:
    """aihwkit ``AGADEcRamPreset``: AGAD on ECRAM (chopper probability 0.005,
    ``tail_weighting=50``, ``auto_granularity=750``, gradient BL 31, one-pulse transfers)."""
    device = device_presets.ecram()
    opt = optim.agad(
        learning_rate,
        transfer_lr,
        device,
        in_chop_prob=0.005,
        tail_weighting=50.0,
        auto_granularity=750.0,
        update=_update(mode, 31),
        transfer_update=_transfer_update(mode),
        key=key,
    )
    return Preset(device, preset_periphery(), opt)


def mixed_precision_reram_sb(
    learning_rate: optax.ScalarOrSchedule = 0.1, *, key: KeyLike = 0
) -> Preset:
    """aihwkit ``MixedPrecisionReRamSBPreset``: digital accumulator, whole pulses to ReRAM-SB
    (Nandakumar et al. 2020)."""
    device = device_presets.reram_sb()
    return Preset(device, preset_periphery(), optim.mixed_precision(learning_rate, device, key=key))


def pcm_like(**overrides: Any) -> Exponential:
    """A PCM-like device: steps that shrink steeply towards the bound they approach.

    aihwkit's ``PCMPresetDevice`` (Nandakumar et al. 2020) is one-directional (SET only) and
    used in pairs with refresh, which aimcjax does not model. This bidirectional stand-in keeps
    its step size (``dw_min=0.01``, 200 states over [-1, 1]), its exponential saturation
    (``gamma=2.5``), its device-to-device spreads (20 % step, 5 % up/down, 10 % bound) and its
    large cycle-to-cycle noise (60 %, multiplicative).
    """
    params: dict[str, Any] = dict(
        tau=1.0,
        gamma=2.5,
        dw_min=0.01,
        dw_min_dtod=0.2,
        up_down_dtod=0.05,
        w_max_dtod=0.1,
        w_min_dtod=0.1,
        dw_min_std=0.6,
        noise="multiplicative",
    )
    return Exponential(**{**params, **overrides})


def mixed_precision_pcm_like(
    learning_rate: optax.ScalarOrSchedule = 0.1, *, key: KeyLike = 0
) -> Preset:
    """aihwkit ``MixedPrecisionPCMPreset`` on :func:`pcm_like` (see there what is approximated)."""
    device = pcm_like()
    return Preset(device, preset_periphery(), optim.mixed_precision(learning_rate, device, key=key))


PRESETS = {
    "tiki_taka_reram_sb": tiki_taka_reram_sb,
    "ttv2_ecram": ttv2_ecram,
    "chopped_ttv2_ecram": chopped_ttv2_ecram,
    "agad_ecram": agad_ecram,
    "mixed_precision_reram_sb": mixed_precision_reram_sb,
    "mixed_precision_pcm_like": mixed_precision_pcm_like,
}
