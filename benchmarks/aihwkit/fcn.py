"""The W1/W3 model in aimcjax: FCN 784-256-128-10 (sigmoid, log-softmax, digital biases) on
analog tiles, trained by Analog SGD or Tiki-Taka, as aihwkit's AnalogSequential of
AnalogLinear layers with AnalogSGD does.

Written against the foundation API only (devices, tile, pulse): the forward/backward
matrix-vector products go through a small analog periphery (aihwkit's default IOParameters:
abs-max noise management, 7-bit DAC on [-1, 1], additive output noise 0.06, 9-bit ADC on
[-12, 12]) unless ``aimcjax.periphery`` is importable, in which case its ``mvm`` is used; the
per-layer factors (x, d) for the rank-1 updates are captured with a zero perturbation of each
layer's output (the flax ``perturb`` trick).
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp

from aimcjax import pulse, tile

import common as C

try:  # the library's periphery when it has landed
    from aimcjax import periphery as _periphery
    _PERIPHERY_CFG = _periphery.PeripheryConfig()
except ImportError:  # pragma: no cover - depends on what is on main
    _periphery = None


def _quantize(v, bound, res):
    step = 2 * bound * res
    return jnp.clip(jnp.round(v / step) * step, -bound, bound)


def _fallback_mvm(w, x, key, transpose):
    """aihwkit default IOParameters, minus iterative bound management (never triggers for
    these activations: |y| stays far below out_bound)."""
    mat = w.T if transpose else w
    scale = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
    scale = jnp.where(scale > 0, scale, 1)
    xq = _quantize(x / scale, 1.0, 1 / (2**7 - 2))
    y = xq @ mat
    y = y + 0.06 * jax.random.normal(key, y.shape, y.dtype)
    return _quantize(y, 12.0, 1 / (2**9 - 2)) * scale


def _mvm(w, x, key, transpose=False):
    if _periphery is not None:
        return _periphery.mvm(w, x, _PERIPHERY_CFG, key, transpose=transpose)
    return _fallback_mvm(w, x, key, transpose)


@functools.partial(jax.custom_vjp, nondiff_argnums=())
def analog_matmul(w, x, key):
    """y = x @ w read through the periphery; the input gradient is read through it too."""
    return _mvm(w, x, key)


def _am_fwd(w, x, key):
    return _mvm(w, x, key), (w, x, key)


def _am_bwd(res, g):
    w, x, key = res
    dx = _mvm(w, g, jax.random.fold_in(key, 1), transpose=True)
    return jnp.zeros_like(w), dx, None  # weight grads come from the captured (x, d)


analog_matmul.defvjp(_am_fwd, _am_bwd)


class Trainer:
    """FCN training steps on one device, or on a stacked batch of devices (vmapped sweep).

    Args:
      device: an aimcjax device, or ``devices.stack([...])`` of ``n_configs`` devices.
      algo: "sgd" (Analog SGD) or "tiki_taka" (TransferCompound: W = gamma*A + C, one input
        line of A transferred to C per step).
      mode: aimcjax update mode for the gradient writes ("outer" = aihwkit's semantics,
        "pulse", "expected", "ideal"); transfer writes always use "outer" (aihwkit's
        transfer_update).
      batch: mini-batch size.
      n_configs: leading size of a stacked ``device``; None for a single device.
      outer_update: the update kernel (default aimcjax.pulse.outer_update).
    """

    def __init__(self, device, algo, mode, batch, n_configs=None, outer_update=None):
        self.device, self.algo, self.batch, self.n_configs = device, algo, batch, n_configs
        self.outer_update = outer_update or pulse.outer_update
        self.cfg = pulse.UpdateConfig(mode=mode, bl=C.BL)
        self.transfer_cfg = pulse.UpdateConfig(mode="outer", bl=C.BL)
        key = jax.random.PRNGKey(0)
        kx, ky = jax.random.split(key)
        self.xs = jax.random.uniform(kx, (16, batch, C.FCN_SIZES[0]))
        self.ys = jax.random.randint(ky, (16, batch), 0, C.FCN_SIZES[-1])
        init = self._init if n_configs is None else jax.vmap(self._init)
        self.state = jax.jit(init)(device)
        self._compiled = {}

    # -- model ---------------------------------------------------------------------------
    def _init(self, device):
        layers = []
        key = jax.random.PRNGKey(1)
        for i, (n_in, n_out) in enumerate(zip(C.FCN_SIZES[:-1], C.FCN_SIZES[1:])):
            k_w, k_t = jax.random.split(jax.random.fold_in(key, i))
            bound = 1 / jnp.sqrt(n_in)  # torch.nn.Linear's init range, as aihwkit
            w0 = jax.random.uniform(k_w, (n_in, n_out), minval=-bound, maxval=bound)
            layer = {"b": jnp.zeros(n_out)}
            if self.algo == "sgd":
                layer["C"] = tile.init(k_t, device, (n_in, n_out), w0=w0)
            else:
                layer["C"] = tile.init(k_t, device, (n_in, n_out), w0=w0)
                layer["A"] = tile.init(jax.random.fold_in(k_t, 1), device, (n_in, n_out))
            layers.append(layer)
        return {"layers": layers, "step": jnp.zeros((), jnp.int32)}

    def _visible(self, layer):
        w = tile.weights(layer["C"])
        if "A" in layer:
            w = w + C.GAMMA * tile.weights(layer["A"])
        return w

    def _loss(self, perturbations, weights, biases, x, y, key):
        h, inputs = x, []
        n = len(weights)
        for i, (w, b, p) in enumerate(zip(weights, biases, perturbations)):
            inputs.append(h)
            z = analog_matmul(w, h, jax.random.fold_in(key, i)) + p + b
            h = jax.nn.sigmoid(z) if i < n - 1 else jax.nn.log_softmax(z)
        loss = -jnp.mean(jnp.take_along_axis(h, y[:, None], axis=1))
        return loss, inputs

    def _step(self, device, state, x, y, key):
        layers = state["layers"]
        weights = [self._visible(layer) for layer in layers]
        biases = [layer["b"] for layer in layers]
        zeros = [jnp.zeros((x.shape[0], w.shape[1]), w.dtype) for w in weights]
        k_fwd, k_upd = jax.random.split(key)
        (loss, inputs), ds = jax.value_and_grad(self._loss, has_aux=True)(
            zeros, weights, biases, x, y, k_fwd)
        new_layers = []
        for i, (layer, xi, di) in enumerate(zip(layers, inputs, ds)):
            k = jax.random.fold_in(k_upd, i)
            layer = dict(layer, b=layer["b"] - C.LR * jnp.sum(di, axis=0))
            target = "C" if self.algo == "sgd" else "A"
            layer[target] = self.outer_update(layer[target], device, xi, di, C.LR,
                                               jax.random.fold_in(k, 0), self.cfg)
            if self.algo == "tiki_taka":
                layer["C"] = self._transfer(device, layer, state["step"],
                                            jax.random.fold_in(k, 1))
            new_layers.append(layer)
        return {"layers": new_layers, "step": state["step"] + 1}, loss

    def _transfer(self, device, layer, step, key):
        """Read input line j of A (one-hot through the periphery), write C += beta * read."""
        n_in = layer["A"].w.shape[0]
        onehot = jax.nn.one_hot(step % n_in, n_in)[None]
        read = _mvm(tile.weights(layer["A"]), onehot, jax.random.fold_in(key, 0))
        # W <- W - lr * x d^T with lr = -beta: C gains +beta * read on line j.
        return self.outer_update(layer["C"], device, onehot, read, -C.TRANSFER_LR,
                                  jax.random.fold_in(key, 1), self.transfer_cfg)

    # -- driving ---------------------------------------------------------------------------
    def _run(self, device, state, key, xs, n_steps):
        def body(state, i):
            k = jax.random.fold_in(key, i)
            return self._step(device, state, xs[i % 16], self.ys[i % 16], k)

        return jax.lax.scan(body, state, jnp.arange(n_steps))

    def compiled(self, n_steps):
        if n_steps not in self._compiled:
            run = functools.partial(self._run, n_steps=n_steps)
            if self.n_configs is not None:
                # Every configuration gets its own (identical) copy of the batches: with a
                # shared x, XLA merges the 16 forward and update matmuls into one whose
                # operands and results need the weight-sized arrays transposed.
                run = jax.vmap(run, in_axes=(0, 0, None, 0))
            start = time.perf_counter()
            self._compiled[n_steps] = (
                jax.jit(run, donate_argnums=(1,)).lower(
                    self.device, self.state, jax.random.PRNGKey(2), self.inputs()).compile(),
                time.perf_counter() - start)
        return self._compiled[n_steps]

    def inputs(self):
        """The timed batches as the compiled run takes them (one copy per configuration)."""
        if self.n_configs is None:
            return self.xs
        return jnp.broadcast_to(self.xs, (self.n_configs, *self.xs.shape))

    def time(self, n_steps, repeats):
        compiled, compile_s = self.compiled(n_steps)
        key = [jax.random.PRNGKey(3)]
        xs = self.inputs()

        def run(_):
            key[0], k = jax.random.split(key[0])
            self.state, losses = compiled(self.device, self.state, k, xs)
            return losses

        out = C.time_runs(run, n_steps, repeats, warmup=1, sync=jax.block_until_ready)
        out["compile_s"] = compile_s
        return out

    def state_bytes(self):
        return sum(leaf.nbytes for leaf in jax.tree.leaves(self.state))
