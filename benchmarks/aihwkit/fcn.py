"""The W1/W3 model in aimcjax, written as a user would: the public API only.

FCN 784-256-128-10 (sigmoid, log-softmax, digital biases) of :class:`aimcjax.nn.AnalogDense`
layers (default periphery = aihwkit's default IOParameters = RF Table 4), trained by
:func:`aimcjax.optim.analog_sgd` or :func:`aimcjax.optim.tiki_taka` (gamma 0.4, one input
line transferred per step, transfer reads through the periphery, transfer writes in "outer"
mode as aihwkit's ``transfer_update``), factors from :func:`aimcjax.nn.grad_and_factors`:
the same model as aihwkit's AnalogSequential of AnalogLinear layers with AnalogSGD.

A sweep (W3) is a ``jax.vmap`` of the same step over a stacked batch of devices: the
optimizer is built inside the mapped function from the (traced) device.
"""

from __future__ import annotations

import functools
import time

import common as C
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from aimcjax import optim, pulse
from aimcjax.nn import AnalogDense, PeripheryConfig, grad_and_factors


def _torch_linear_init(key, shape, dtype=jnp.float32):
    """torch.nn.Linear's (and so aihwkit's) weight init: U(-1/sqrt(in), 1/sqrt(in))."""
    bound = 1 / jnp.sqrt(shape[0])
    return jax.random.uniform(key, shape, dtype, -bound, bound)


class FCN(nn.Module):
    """784-256-128-10, sigmoid hidden layers, log-softmax output; biases digital."""

    @nn.compact
    def __call__(self, x):
        for i, features in enumerate(C.FCN_SIZES[1:]):
            x = AnalogDense(features, kernel_init=_torch_linear_init)(x)
            x = jax.nn.sigmoid(x) if i < len(C.FCN_SIZES) - 2 else jax.nn.log_softmax(x)
        return x


class Trainer:
    """FCN training steps on one device, or on a stacked batch of devices (vmapped sweep).

    Args:
      device: an aimcjax device, or ``devices.stack([...])`` of ``n_configs`` devices.
      algo: "sgd" (Analog SGD) or "tiki_taka" (TransferCompound: W = C + gamma*A, one input
        line of A transferred to C per step).
      mode: update mode of the gradient writes ("outer" = aihwkit's semantics, "pulse",
        "expected", "ideal"); transfer writes always use "outer" (aihwkit's transfer_update).
      batch: mini-batch size.
      n_configs: leading size of a stacked ``device``; None for a single device.
    """

    def __init__(self, device, algo, mode, batch, n_configs=None):
        if algo not in ("sgd", "tiki_taka"):
            raise ValueError(f"algo must be 'sgd' or 'tiki_taka', got {algo!r}")
        self.device, self.algo, self.batch, self.n_configs = device, algo, batch, n_configs
        self.cfg = pulse.UpdateConfig(mode=mode, bl=C.BL)
        self.model = FCN()
        kx, ky = jax.random.split(jax.random.PRNGKey(0))
        self.xs = jax.random.uniform(kx, (16, batch, C.FCN_SIZES[0]))
        self.ys = jax.random.randint(ky, (16, batch), 0, C.FCN_SIZES[-1])
        init = self._init if n_configs is None else jax.vmap(self._init)
        self.state = jax.jit(init)(device)
        self._compiled = {}

    def _optimizer(self, device):
        if self.algo == "sgd":
            return optim.analog_sgd(C.LR, device, update=self.cfg, key=1)
        return optim.tiki_taka(
            C.LR,
            C.TRANSFER_LR,
            device,
            gamma=C.GAMMA,
            transfer="column",
            read=PeripheryConfig(),
            update=self.cfg,
            transfer_update=pulse.UpdateConfig(mode="outer", bl=C.BL),
            key=1,
        )

    def _init(self, device):
        params = self.model.init(jax.random.PRNGKey(1), self.xs[0])["params"]
        return {"params": params, "opt": self._optimizer(device).init(params)}

    def _step(self, device, state, x, y, key):
        def loss_fn(log_probs):
            return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))

        loss, grads, factors = grad_and_factors(
            self.model, loss_fn, {"params": state["params"]}, x, rngs={"periphery": key}
        )
        updates, opt_state = self._optimizer(device).update(
            grads, state["opt"], state["params"], factors=factors
        )
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt_state}, loss

    def _run(self, device, state, key, xs, n_steps):
        def body(state, i):
            return self._step(
                device, state, xs[i % 16], self.ys[i % 16], jax.random.fold_in(key, i)
            )

        return jax.lax.scan(body, state, jnp.arange(n_steps))

    def compiled(self, n_steps):
        """(compiled run of ``n_steps`` steps, compile seconds)."""
        if n_steps not in self._compiled:
            run = functools.partial(self._run, n_steps=n_steps)
            if self.n_configs is not None:
                # Every configuration gets its own (identical) copy of the batches: with a
                # shared x, XLA merges the 16 forward and update matmuls into one whose
                # operands and results need the weight-sized arrays transposed.
                run = jax.vmap(run, in_axes=(0, 0, None, 0))
            start = time.perf_counter()
            self._compiled[n_steps] = (
                jax.jit(run, donate_argnums=(1,))
                .lower(self.device, self.state, jax.random.PRNGKey(2), self.inputs())
                .compile(),
                time.perf_counter() - start,
            )
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
