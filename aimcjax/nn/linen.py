"""Linen layers whose matrix products run on simulated analog crossbars."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from aimcjax.nn import _core
from aimcjax.periphery import PeripheryConfig

Initializer = Callable[..., jax.Array]

_BACKWARD_DEFAULT = PeripheryConfig(bound_management="none")


class _AnalogBase(nn.Module):
    """Shared machinery: kernel (optionally conductance-mapped), output scale, bias, factors."""

    if TYPE_CHECKING:  # attributes of every analog layer (declared, with defaults, in each)

        @property
        def forward(self) -> PeripheryConfig: ...
        @property
        def backward(self) -> PeripheryConfig: ...
        @property
        def max_tile(self) -> int | None: ...
        @property
        def weight_scaling_omega(self) -> float | None: ...
        @property
        def device_w_max(self) -> float: ...
        @property
        def learn_out_scale(self) -> bool: ...
        @property
        def use_bias(self) -> bool: ...
        @property
        def bias_init(self) -> Initializer: ...
        @property
        def param_dtype(self) -> Any: ...

    def _kernel_and_scale(
        self, shape: tuple[int, ...], kernel_init: Initializer
    ) -> tuple[jax.Array, jax.Array | None]:
        _core.check_layer_config(
            self.forward, self.backward, self.max_tile, self.weight_scaling_omega, self.device_w_max
        )
        features = shape[-1]
        if self.weight_scaling_omega is None:
            kernel = self.param("kernel", kernel_init, shape, self.param_dtype)
            scale = (
                self.param("out_scale", nn.initializers.ones, (features,), self.param_dtype)
                if self.learn_out_scale
                else None
            )
            return kernel, scale
        # The kernel is stored in device units; its initial column maxima fix the digital scale.
        mapped = None
        if self.is_initializing():
            w0 = kernel_init(self.make_rng("params"), shape, self.param_dtype)
            mapped = _core.map_to_conductances(w0, self.weight_scaling_omega, self.device_w_max)
        if mapped is None:
            # flax evaluates param initializers abstractly to check shapes on every apply.
            scale_init = lambda _rng: jnp.ones((features,), self.param_dtype)
            kernel_init_mapped = kernel_init
        else:
            scale_init = lambda _rng: mapped[1]
            kernel_init_mapped = lambda _rng, _shape, _dtype: mapped[0]
        if self.learn_out_scale:
            scale = self.param("out_scale", scale_init)
        else:
            if mapped is None and not self.has_variable("constants", "out_scale"):
                raise ValueError(
                    "weight_scaling_omega is set but variables lack "
                    "constants/out_scale: pass all variables from init to apply"
                )
            # (the initializer runs only at init, where mapped is set)
            scale = self.variable("constants", "out_scale", lambda: mapped[1]).value  # type: ignore[index]
        kernel = self.param("kernel", kernel_init_mapped, shape, self.param_dtype)
        return kernel, scale

    def _analog(self, x2d: jax.Array, kernel2d: jax.Array) -> jax.Array:
        if self.is_initializing():
            # init only needs shapes: skip the analog read (and its compile/eager cost).
            return jnp.matmul(x2d, kernel2d, precision=jax.lax.Precision.HIGHEST)
        key = (
            self.make_rng(_core.PERIPHERY_STREAM)
            if _core.needs_key(self.forward, self.backward)
            else None
        )
        self.sow("intermediates", _core.FACTOR_X, x2d)
        y = _core.analog_matmul(x2d, kernel2d, key, self.forward, self.backward, self.max_tile)
        return self.perturb(_core.FACTOR_D, y)

    def _digital_tail(self, y: jax.Array, scale: jax.Array | None, features: int) -> jax.Array:
        if scale is not None:
            y = y * scale.astype(y.dtype)
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (features,), self.param_dtype)
            y = y + bias.astype(y.dtype)
        return y


class AnalogDense(_AnalogBase):
    """A dense layer on an analog crossbar: ``y = scale * mvm(W, x) + b``.

    The forward product goes through the ``forward`` periphery (DAC, noise, ADC, management);
    the input gradient is the transposed read through the ``backward`` periphery; the kernel
    gradient is the exact outer product. Bias and output scale are digital.

    Per-sample factors for ``"outer"`` updates: the layer sows its MVM inputs as
    ``intermediates/analog_x`` and perturbs its MVM outputs as ``perturbations/analog_d``;
    :func:`aimcjax.nn.grad_and_factors` turns them into the ``factors`` pytree.

    Attributes:
      features: output width.
      use_bias: add a digital bias.
      forward: periphery of the forward read (default [RF] Table 4).
      backward: periphery of the backward read (default: the same without bound management,
        as aihwkit).
      max_tile: largest crossbar side; larger kernels are split into several arrays, each with
        its own periphery, outputs summed digitally (aihwkit default 512; None = one array).
      weight_scaling_omega: if set, the kernel is stored in device units with each output
        column's initial max ``|w|`` at ``omega * device_w_max``; a per-output digital scale
        restores the initial function (aihwkit's ``weight_scaling_omega``).
      device_w_max: the device's ``w_max`` that omega refers to (e.g. ``device.w_max``).
      learn_out_scale: the per-output scale is a trained parameter ``out_scale`` (else fixed,
        stored in the ``constants`` collection, and only present with ``weight_scaling_omega``).
      kernel_init, bias_init, param_dtype: as ``flax.linen.Dense``.

    Examples:
      >>> layer = AnalogDense(10)
      >>> x = jnp.ones((2, 784))
      >>> variables = layer.init(jax.random.key(0), x)  # exact product in init
      >>> y = layer.apply(variables, x, rngs={"periphery": jax.random.key(1)})
      >>> exact = x @ variables["params"]["kernel"]
      >>> y.shape, bool(jnp.allclose(y, exact, atol=0.5)), bool(jnp.all(y == exact))
      ((2, 10), True, False)

    References:
      [AIHWKIT] ``AnalogLinear``; [RF] Table 4 (periphery), Sec. 5 (learnable output scale).
    """

    features: int
    use_bias: bool = True
    forward: PeripheryConfig = PeripheryConfig()
    backward: PeripheryConfig = _BACKWARD_DEFAULT
    max_tile: int | None = None
    weight_scaling_omega: float | None = None
    device_w_max: float = 1.0
    learn_out_scale: bool = False
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        if x.ndim < 1:
            raise ValueError(f"x must have at least one dimension, got shape {x.shape}")
        if self.has_variable("params", "kernel"):
            _core.check_input_width(x, self.get_variable("params", "kernel").shape[0])
        kernel, scale = self._kernel_and_scale((x.shape[-1], self.features), self.kernel_init)
        lead = x.shape[:-1]
        y = self._analog(x.reshape(-1, x.shape[-1]), kernel.astype(x.dtype))
        y = y.reshape(lead + (self.features,))
        return self._digital_tail(y, scale, self.features)


class AnalogConv(_AnalogBase):
    """A convolution on an analog crossbar, mapped as aihwkit does: im2col patches, one analog
    MVM per output position, kernel ``(*kernel_size, C, features)`` viewed as
    ``(prod(kernel_size) * C, features)``.

    The factors are per patch: ``x`` of shape ``(B * positions, prod(kernel_size) * C)`` and
    ``d`` of shape ``(B * positions, features)``.

    Attributes:
      features: output channels.
      kernel_size: spatial window, required, as flax's ``Conv``: a tuple with one entry per
        spatial dimension (``(3, 3)`` for images); an int ``k`` is the 1-D window ``(k,)``.
        Inputs are channels-last ``(batch, *spatial, C)``, 1 to 3 spatial dims.
      strides: window strides.
      padding: ``"SAME"``, ``"VALID"`` or a sequence of ``(low, high)`` pairs.
      other attributes: as :class:`AnalogDense`.

    Examples:
      >>> conv = AnalogConv(16, kernel_size=(5, 5), padding="VALID")
      >>> variables = conv.init(jax.random.key(0), jnp.ones((1, 28, 28, 1)))
      >>> variables["params"]["kernel"].shape
      (5, 5, 1, 16)

    References:
      [AIHWKIT] ``AnalogConv2d``; [RF] App. (CNN on MNIST).
    """

    features: int
    kernel_size: int | Sequence[int]
    strides: int | Sequence[int] = 1
    padding: str | Sequence[tuple[int, int]] = "SAME"
    use_bias: bool = True
    forward: PeripheryConfig = PeripheryConfig()
    backward: PeripheryConfig = _BACKWARD_DEFAULT
    max_tile: int | None = None
    weight_scaling_omega: float | None = None
    device_w_max: float = 1.0
    learn_out_scale: bool = False
    kernel_init: Initializer = nn.initializers.lecun_normal()
    bias_init: Initializer = nn.initializers.zeros_init()
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        kernel_size = _core.conv_kernel_size(self.kernel_size)
        strides = _core.normalize_tuple(self.strides, len(kernel_size), "strides")
        channels = (
            self.get_variable("params", "kernel").shape[-2]
            if self.has_variable("params", "kernel")
            else None
        )
        _core.check_conv_input(x, kernel_size, self.kernel_size, channels)
        shape = kernel_size + (x.shape[-1], self.features)
        kernel, scale = self._kernel_and_scale(shape, self.kernel_init)
        patches = _core.extract_patches(x, kernel_size, strides, self.padding)
        lead = patches.shape[:-1]
        kernel2d = kernel.reshape(math.prod(kernel_size) * x.shape[-1], self.features)
        y = self._analog(patches.reshape(-1, patches.shape[-1]), kernel2d.astype(x.dtype))
        y = y.reshape(lead + (self.features,))
        return self._digital_tail(y, scale, self.features)
