"""Mixed-precision training: a digital accumulator of the gradient, transferred to the analog
array in whole pulses [Nandakumar et al. 2020].

The weight update is computed and accumulated in high precision in digital memory,

    chi <- chi - lr * sum_b Q(x_b) Q(d_b)^T        (or chi <- chi - lr * g without factors)

and every ``transfer_every`` steps each element whose accumulated change reaches the device
granularity ``eps`` receives ``n = trunc(chi / eps)`` pulses (optionally capped), after which
``chi <- chi - n * eps``. The analog array thus only ever sees whole, sign-definite pulse
trains; what the device does with them (response, noise, bounds) is the new weight. ``Q``
optionally quantizes the per-sample inputs x and errors d to ``n_x_bins`` / ``n_d_bins``
levels of their absolute maximum (as aihwkit's MixedPrecisionCompound), which models a
low-precision digital outer product.

References:
  S. R. Nandakumar, M. Le Gallo, C. Piveteau, V. Joshi, G. Mariani, I. Boybat, G. Karunaratne,
  R. Khaddam-Aljameh, U. Egger, A. Petropoulos, T. Antonakopoulos, B. Rajendran, A. Sebastian,
  E. Eleftheriou, "Mixed-precision deep learning based on computational memory",
  Front. Neurosci. 14:406 (2020). [AIHWKIT] MixedPrecisionCompound.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aimcjax import pulse
from aimcjax import tile as tile_lib
from aimcjax.devices import Device
from aimcjax.optim import _common as common

__all__ = ["MixedPrecisionState", "mixed_precision", "quantize"]


class MixedPrecisionState(NamedTuple):
    """State of :func:`mixed_precision`.

    Attributes:
      count: number of updates so far (int32).
      key: raw PRNG key for the next update.
      tiles: the analog array W per analog leaf (``optax.MaskedNode()`` at digital leaves).
      accumulator: the digital accumulator chi per analog leaf (shaped like the leaf).
    """

    count: jax.Array
    key: jax.Array
    tiles: Any
    accumulator: Any


def quantize(v, n_bins: int, key=None):
    """Quantize each row of ``v`` (shape (B, n)) to ``n_bins`` levels of its absolute maximum:
    ``round(v / s) * s`` with ``s = max|v_b| / n_bins``; stochastic rounding when ``key`` is
    given. ``n_bins = 0`` returns ``v`` unchanged.

    Example:
      >>> quantize(jnp.array([[0.1, -1.0, 0.55]]), 2)
      Array([[ 0. , -1. ,  0.5]], dtype=float32)
    """
    if n_bins == 0:
        return v
    scale = jnp.max(jnp.abs(v), axis=-1, keepdims=True) / n_bins
    safe = jnp.where(scale > 0, scale, 1)
    r = v / safe
    r = jnp.floor(r + jax.random.uniform(key, r.shape, r.dtype)) if key is not None else jnp.round(r)
    return jnp.where(scale > 0, r * safe, 0.0)


def mixed_precision(
    learning_rate: optax.ScalarOrSchedule,
    device: Device,
    *,
    transfer_every: int = 1,
    granularity=None,
    max_pulses: int | None = None,
    n_x_bins: int = 0,
    n_d_bins: int = 0,
    stochastic_rounding: bool = False,
    mask: common.MaskOrFn = None,
    key=0,
) -> optax.GradientTransformationExtraArgs:
    """Mixed precision [Nandakumar et al. 2020]: accumulate ``-lr * g`` digitally, transfer whole
    pulses to the analog array every ``transfer_every`` steps.

    Args:
      learning_rate: float or optax schedule.
      device: the analog device of W.
      transfer_every: steps between transfers (>= 1).
      granularity: eps, the weight change one pulse is booked as (default: ``device.dw_min``).
      max_pulses: cap on pulses per element and transfer (None: no cap); what is not fired
        stays in the accumulator.
      n_x_bins, n_d_bins: quantize the per-sample x / d to this many levels of their absolute
        maximum (0: full precision). Needs ``update(..., factors=F)`` with ``(x, d)`` per
        analog leaf (see :func:`aimcjax.optim.analog_sgd`); without quantization factors are
        optional (then the gradient itself is accumulated).
      stochastic_rounding: round x and d stochastically when quantizing.
      mask: pytree of bools or callable marking analog leaves (default: rank >= 2); digital
        leaves get plain SGD.
      key: int seed or PRNG key for the tile and the pulse noise.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` with state :class:`MixedPrecisionState`.

    Example:
      >>> import jax.numpy as jnp
      >>> from aimcjax import devices, optim
      >>> opt = optim.mixed_precision(0.1, devices.SoftBounds(tau=0.6, asymmetry=0.3))
      >>> state = opt.init({"w": jnp.zeros((4, 2))})

    References:
      Nandakumar et al., Front. Neurosci. 14:406 (2020); [AIHWKIT] MixedPrecisionCompound.
    """
    common.check_rate("learning_rate", learning_rate)
    common.check_device("device", device)
    transfer_every = common.static_int("transfer_every", transfer_every, minimum=1)
    if granularity is not None:
        arr = common.concrete(granularity)
        if arr is not None and (arr.ndim != 0 or not np.isfinite(arr) or arr <= 0):
            raise ValueError(f"granularity must be a finite float > 0, got {granularity!r}")
    if max_pulses is not None:
        max_pulses = common.static_int("max_pulses", max_pulses, minimum=1)
    n_x_bins = common.static_int("n_x_bins", n_x_bins, minimum=0)
    n_d_bins = common.static_int("n_d_bins", n_d_bins, minimum=0)
    if not isinstance(stochastic_rounding, bool):
        raise TypeError(f"stochastic_rounding must be a bool, got {stochastic_rounding!r}")
    needs_factors = n_x_bins > 0 or n_d_bins > 0

    def init_fn(params):
        paths, leaves, treedef = common.flatten_params(params)
        flags = common.analog_flags(params, mask)
        key_state, keys = common.split_key(common.as_raw_key(key), len(leaves))
        tiles = [tile_lib.init(k, device, p.shape, w0=p) if flag else common.masked_node()
                 for k, p, flag in zip(keys, leaves, flags)]
        acc = [jnp.zeros_like(p) if flag else common.masked_node() for p, flag in zip(leaves, flags)]
        return MixedPrecisionState(jnp.zeros([], jnp.int32), key_state, treedef.unflatten(tiles), treedef.unflatten(acc))

    def update_fn(grads, state, params=None, *, factors=None, **extra_args):
        del extra_args
        paths, leaves, treedef = common.flatten_params(params)
        grad_leaves = treedef.flatten_up_to(grads)
        tiles = common.per_leaf(treedef, state.tiles)
        accs = common.per_leaf(treedef, state.accumulator)
        flags = [common.is_analog(t) for t in tiles]
        if needs_factors and factors is None:
            raise ValueError("factors are required when n_x_bins or n_d_bins > 0: "
                             "update(grads, state, params, factors=...) with (x, d) per analog leaf")
        per_factors = common.leaf_factors(factors, paths, flags, needed=factors is not None)
        count = state.count
        lr = common.rate_at(learning_rate, count)
        key_state, keys = common.split_key(state.key, len(leaves))
        do_transfer = (count + 1) % transfer_every == 0

        new_tiles, new_accs, updates = [], [], []
        for path, p, g, t, chi, f, k in zip(paths, leaves, grad_leaves, tiles, accs, per_factors, keys):
            common.check_grad(path, p, g)
            if not common.is_analog(t):
                new_tiles.append(t)
                new_accs.append(chi)
                updates.append(common.sgd_update(g, lr, p))
                continue
            shape2 = tile_lib.matrix_shape(p.shape)
            k_x, k_d, k_pulse = jax.random.split(k, 3)
            if f is not None:
                common.check_factors(path, p.shape, *f)
                x, d = (jnp.asarray(a, p.dtype) for a in f)
                x = quantize(x, n_x_bins, k_x if stochastic_rounding else None)
                d = quantize(d, n_d_bins, k_d if stochastic_rounding else None)
                grad2 = x.T @ d
            else:
                grad2 = g.reshape(shape2)
            chi2 = chi.reshape(shape2) - lr * grad2
            W2 = common.as_matrix(t)
            eps = jnp.asarray(device.dw_min if granularity is None else granularity, p.dtype)

            def transfer(operands, eps=eps, k_pulse=k_pulse):
                W2, chi2 = operands
                n = jnp.trunc(chi2 / eps)
                if max_pulses is not None:
                    n = jnp.clip(n, -max_pulses, max_pulses)
                return pulse.apply(W2, device, n.astype(jnp.int32), k_pulse), chi2 - n * eps

            if transfer_every == 1:
                W2, chi2 = transfer((W2, chi2))
            else:
                W2, chi2 = jax.lax.cond(do_transfer, transfer, lambda o: o, (W2, chi2))
            t = common.reshape_tile(W2, p.shape)
            new_tiles.append(t)
            new_accs.append(chi2.reshape(p.shape))
            updates.append((tile_lib.weights(t) - p).astype(p.dtype))

        new_state = MixedPrecisionState(count + 1, key_state, treedef.unflatten(new_tiles), treedef.unflatten(new_accs))
        return treedef.unflatten(updates), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
