"""A suggested faster "outer" kernel, kept beside the benchmarks so it can be timed and
cross-checked without touching aimcjax/pulse.py (the lead's file); pulse_speedup.patch is the
same change as a diff of aimcjax/pulse.py.

What changes (same semantics, same distribution):
  * all samples' coincidence counts are drawn at once (one batched matmul) instead of one
    sample per scan step;
  * the per-pulse loop runs over the *batch's* pulse sequence of each element: iteration t
    applies each element's t-th pulse (in sample order, with that sample's direction), so the
    loop runs max_ij sum_b |n_bij| times instead of sum_b max_ij |n_bij| (one noise draw per
    iteration). Every element still sees its pulses one by one in the order aihwkit fires
    them (samples in sequence), response re-evaluated and noise drawn per pulse.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from aimcjax import pulse
from aimcjax.devices import ConstantStep, SoftBounds
from aimcjax.tile import Tile, as_key, matrix_shape


def _batch_counts(x, d, lr, dw_min, key, cfg):
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(lambda xb, db, kb: pulse._sample_pulse_counts(xb, db, lr, dw_min, kb, cfg))(
        x, d, keys)


def _apply_in_sequence(t: Tile, device, n, key):
    """Apply signed counts n[0], n[1], ... (shape (B, in, out)) pulse by pulse, in order."""
    batch = n.shape[0]
    order = jnp.arange(batch, dtype=jnp.int32).reshape((batch,) + (1,) * (n.ndim - 1))
    # nxt[b]: the first sample b' >= b that fires on the element (batch if none).
    nxt = jax.lax.cummin(jnp.where(n != 0, order, batch), axis=0, reverse=True)
    nxt = jnp.concatenate([nxt, jnp.full((1,) + n.shape[1:], batch, nxt.dtype)])
    total_max = jnp.max(jnp.sum(jnp.abs(n), axis=0))
    dtype = t.w.dtype
    sigma = jnp.asarray(device.dw_min_std, dtype)
    noisy = pulse._static_value(device.dw_min_std) != 0.0

    def count_at(ptr):
        return jnp.take_along_axis(n, jnp.minimum(ptr, batch - 1)[None], axis=0)[0]

    ptr0 = nxt[0]
    current0 = jnp.where(ptr0 < batch, count_at(ptr0), 0)

    def body(carry):
        step, w, ptr, current, left = carry
        active = left > 0
        up = current > 0
        qp, qm = device.response(w, t.w_min, t.w_max)
        q = jnp.where(up, qp, qm)
        if noisy:
            xi = jax.random.normal(jax.random.fold_in(key, step), w.shape, dtype)
            q = q + sigma * xi if device.noise == "additive" else q * (1 + sigma * xi)
        gain = jnp.where(up, t.gain_up, -t.gain_down)
        w = jnp.where(active, jnp.clip(w + gain * device.dw_min * q, t.w_min, t.w_max), w)
        left = left - active
        finished = active & (left == 0)
        ptr = jnp.where(finished, jnp.take_along_axis(nxt, (ptr + 1)[None], axis=0)[0], ptr)
        current = jnp.where(finished, jnp.where(ptr < batch, count_at(ptr), 0), current)
        left = jnp.where(finished, jnp.abs(current), left)
        return step + 1, w, ptr, current, left

    init = (jnp.zeros((), jnp.int32), t.w, ptr0, current0, jnp.abs(current0))
    _, w, *_ = jax.lax.while_loop(lambda c: c[0] < total_max, body, init)
    return w


def outer_update(tile, device, x, d, lr, key, cfg=pulse.UpdateConfig(mode="outer")):
    """Drop-in for aimcjax.pulse.outer_update (same arguments, same distribution)."""
    if cfg.mode != "outer":
        return pulse.outer_update(tile, device, x, d, lr, key, cfg)
    pulse._check_device_tile(tile, device)
    dtype = tile.w.dtype
    x = jnp.atleast_2d(jnp.asarray(x, dtype))
    d = jnp.atleast_2d(jnp.asarray(d, dtype))
    n_in, n_out = matrix_shape(tile.w.shape)
    lr = jnp.asarray(lr, dtype)
    k_bits, k_noise = jax.random.split(as_key(key))
    n = _batch_counts(x, d, lr, device.dw_min, k_bits, cfg)  # (B, in, out)
    flat = tile._replace(**{f: getattr(tile, f).reshape(n_in, n_out) for f in Tile._fields})
    exact = isinstance(device, (ConstantStep, SoftBounds)) and pulse._static_value(
        device.dw_min_std) == 0.0
    if exact:  # noise-free closed forms: one cheap pass per sample, no loop over pulses
        flat, _ = jax.lax.scan(
            lambda t, nb: (t._replace(w=pulse._closed_form_apply(t, device, nb)), None), flat, n)
        w = flat.w
    else:
        w = _apply_in_sequence(flat, device, n, k_noise)
    return tile._replace(w=w.reshape(tile.w.shape))
