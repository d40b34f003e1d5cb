"""Pulses: turning a requested weight change into device pulses and applying them.

One pulse on an element with weight w (gains s+/s-, bounds [lo, hi]):

    up:    w <- clip(w + s+ * dw_min * resp(q_plus(w)),  lo, hi)
    down:  w <- clip(w - s- * dw_min * resp(q_minus(w)), lo, hi)

where ``resp`` adds the cycle-to-cycle noise of the device's ``noise`` mode. Pulses are
applied one at a time with the response re-evaluated after each; the only shortcuts are
exact closed forms (noise-free constant-step and soft-bounds devices) and, in "outer" mode,
running the per-pulse loop only over the rows and columns that carry pulses (exact). The
per-pulse noise and the stochastic rounding come from a fast counter-based generator by
default (``rng="threefry"``: jax.random, the reference; same distributions).

Modes of :class:`UpdateConfig` (see docs/architecture.md, "One training step"):
  "expected": the continuous analog update [RF eq. 5], no granularity, no noise.
  "pulse":    n = stochastic_round(dW / dw_min) clipped to +-bl, then n pulses.
  "outer":    aihwkit's stochastic-compressed rank-1 pulse trains per sample, with update
              management and update-BL management (see :func:`outer_update`).
  "ideal":    dW added exactly (digital baseline through the same code path, no clipping).

The package, one module per job:
  :mod:`~aimcjax.pulse.modes`   the public API above and the choice of implementation;
  :mod:`~aimcjax.pulse.loop`    the per-pulse loop and the exact closed forms;
  :mod:`~aimcjax.pulse.rng`     the counter-based generator of the per-element random numbers;
  :mod:`~aimcjax.pulse.trains`  "outer" mode's pulse trains and their coincidences;
  :mod:`~aimcjax.pulse.blocks`  "outer" mode's loop over the live rows and columns only;
  :mod:`~aimcjax.pulse.xla`     XLA workarounds (materialization, vmap-shared loop bounds);
  :mod:`~aimcjax.pulse.pallas`  the fused Pallas kernel for GPUs (same numbers as the loop).

References:
  [RF] arXiv:2502.06309, eqs. 3, 5, 26.  [AIHWKIT] PulsedRPUDevice / StochasticCompressed
  pulse type, update management (Gokmen & Vlasov 2016, arXiv:1603.07341).
"""

from aimcjax.pulse.modes import (
    KERNELS as KERNELS,  # not in __all__, as before the split
)
from aimcjax.pulse.modes import (
    MAX_BL,
    MODES,
    RNGS,
    UpdateConfig,
    apply,
    outer_update,
    pulse_counts,
    update,
)

__all__ = [
    "MAX_BL",
    "MODES",
    "RNGS",
    "UpdateConfig",
    "apply",
    "outer_update",
    "pulse_counts",
    "update",
]
