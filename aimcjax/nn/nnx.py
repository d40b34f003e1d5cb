"""nnx layers on simulated analog crossbars: :class:`AnalogLinear`, :class:`AnalogConv`.

Same maths as the linen layers (:mod:`aimcjax.nn.linen`); the periphery noise is drawn from
the ``"periphery"`` stream of the ``nnx.Rngs`` given at construction. Factors for ``"outer"``
updates come from :func:`grad_and_factors` (built on ``nnx.capture``, ``Module.sow`` and
``Module.perturb``).

Example:
  >>> import optax
  >>> from aimcjax import devices, optim, pulse
  >>> model = AnalogLinear(8, 3, rngs=nnx.Rngs(params=0, periphery=1))
  >>> outer = pulse.UpdateConfig(mode="outer")
  >>> optimizer = nnx.Optimizer(
  ...     model, optim.analog_sgd(0.05, devices.SoftBounds(), update=outer, key=0), wrt=nnx.Param)
  >>> def loss_fn(model, x, y):
  ...     return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
  >>> images, labels = jnp.ones((4, 8)), jnp.arange(4) % 3
  >>> loss, grads, factors = grad_and_factors(loss_fn, model, images, labels)
  >>> _ = optimizer.update(model, grads, factors=factors)
  >>> tiles = optim.analog_state(nnx.as_pure(optimizer.opt_state))
  >>> bool(jnp.allclose(tiles.W["kernel"].w, model.kernel[...]))  # the tile holds the weights
  True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from flax import nnx

from aimcjax.nn import _core
from aimcjax.nn.factors import assemble_factors
from aimcjax.periphery import PeripheryConfig

__all__ = ["AnalogConv", "AnalogLinear", "AnalogScale", "grad_and_factors"]

_BACKWARD_DEFAULT = PeripheryConfig(bound_management="none")


class AnalogScale(nnx.Variable):
    """A fixed (not trained) per-output digital scale, e.g. from ``weight_scaling_omega``."""


class _AnalogBase(nnx.Module):
    if TYPE_CHECKING:  # set by _setup
        forward: PeripheryConfig
        backward: PeripheryConfig
        max_tile: int | None
        kernel: nnx.Param[jax.Array]
        out_scale: nnx.Variable[jax.Array] | None
        bias: nnx.Param[jax.Array] | None
        rngs: Any

    def _setup(
        self,
        kernel_shape: tuple[int, ...],
        *,
        use_bias: bool,
        forward: PeripheryConfig,
        backward: PeripheryConfig,
        max_tile: int | None,
        weight_scaling_omega: float | None,
        device_w_max: float,
        learn_out_scale: bool,
        kernel_init: Callable[..., jax.Array],
        bias_init: Callable[..., jax.Array],
        param_dtype: Any,
        rngs: nnx.Rngs,
    ) -> None:
        _core.check_layer_config(forward, backward, max_tile, weight_scaling_omega, device_w_max)
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"rngs must be an nnx.Rngs, got {type(rngs).__name__}")
        features = kernel_shape[-1]
        self.forward, self.backward, self.max_tile = forward, backward, max_tile
        w0 = kernel_init(rngs.params(), kernel_shape, param_dtype)
        scale = None
        if weight_scaling_omega is not None:
            w0, scale = _core.map_to_conductances(w0, weight_scaling_omega, device_w_max)
        elif learn_out_scale:
            scale = jnp.ones((features,), param_dtype)
        self.kernel = nnx.Param(w0)
        if scale is None:
            self.out_scale = None
        else:
            self.out_scale = nnx.Param(scale) if learn_out_scale else AnalogScale(scale)
        self.bias = (
            nnx.Param(bias_init(rngs.params(), (features,), param_dtype)) if use_bias else None
        )
        self.rngs = (
            rngs[_core.PERIPHERY_STREAM].fork() if _core.needs_key(forward, backward) else None
        )

    def _analog(self, x2d: jax.Array, kernel2d: jax.Array) -> jax.Array:
        key = None
        if self.rngs is not None:
            key = self.rngs()
        # Factors are recorded only inside nnx.capture (grad_and_factors); a plain call stays a
        # plain call (sow/perturb outside capture would store state on the module).
        capturing = hasattr(self, "__captures__")
        if capturing:
            self.sow(nnx.Intermediate, _core.FACTOR_X, x2d)
        y = _core.analog_matmul(x2d, kernel2d, key, self.forward, self.backward, self.max_tile)
        return self.perturb(_core.FACTOR_D, y) if capturing else y

    def _digital_tail(self, y: jax.Array) -> jax.Array:
        if self.out_scale is not None:
            y = y * self.out_scale[...].astype(y.dtype)
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y


class AnalogLinear(_AnalogBase):
    """A linear layer on an analog crossbar: ``y = scale * mvm(W, x) + b`` (nnx).

    Args:
      in_features, out_features: kernel shape ``(in_features, out_features)``.
      use_bias: digital bias.
      forward, backward: peripheries of the forward and backward (transposed) reads.
      max_tile: largest crossbar side (None: one array).
      weight_scaling_omega, device_w_max: conductance mapping as aihwkit (see
        :class:`aimcjax.nn.AnalogDense`).
      learn_out_scale: per-output scale as an ``nnx.Param`` (else a fixed :class:`AnalogScale`,
        only with ``weight_scaling_omega``).
      kernel_init, bias_init, param_dtype: as ``nnx.Linear``.
      rngs: ``nnx.Rngs`` with a ``params`` stream and (for a noisy periphery) a ``periphery``
        stream.

    Example:
      >>> layer = AnalogLinear(784, 256, rngs=nnx.Rngs(params=0, periphery=1))
      >>> y = layer(jnp.ones((8, 784)))
      >>> y.shape
      (8, 256)

    References:
      [AIHWKIT] ``AnalogLinear``; [RF] Table 4.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
        forward: PeripheryConfig = PeripheryConfig(),
        backward: PeripheryConfig = _BACKWARD_DEFAULT,
        max_tile: int | None = None,
        weight_scaling_omega: float | None = None,
        device_w_max: float = 1.0,
        learn_out_scale: bool = False,
        kernel_init: Callable[..., jax.Array] = nnx.initializers.lecun_normal(),
        bias_init: Callable[..., jax.Array] = nnx.initializers.zeros_init(),
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.in_features, self.out_features = in_features, out_features
        self._setup(
            (in_features, out_features),
            use_bias=use_bias,
            forward=forward,
            backward=backward,
            max_tile=max_tile,
            weight_scaling_omega=weight_scaling_omega,
            device_w_max=device_w_max,
            learn_out_scale=learn_out_scale,
            kernel_init=kernel_init,
            bias_init=bias_init,
            param_dtype=param_dtype,
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        _core.check_input_width(x, self.in_features)
        lead = x.shape[:-1]
        kernel = self.kernel[...].astype(x.dtype)
        y = self._analog(x.reshape(-1, self.in_features), kernel)
        return self._digital_tail(y.reshape(lead + (self.out_features,)))


class AnalogConv(_AnalogBase):
    """A convolution on an analog crossbar via im2col patches (nnx; see
    :class:`aimcjax.nn.AnalogConv`). Inputs are channels-last ``(N, *spatial, C)``.

    Args:
      in_features, out_features: input and output channels.
      kernel_size, strides, padding: as ``nnx.Conv``: ``kernel_size`` a tuple per spatial
        dimension (``(3, 3)`` for images), an int ``k`` the 1-D window ``(k,)``; padding
        ``"SAME"``, ``"VALID"`` or pairs.
      other arguments: as :class:`AnalogLinear`.

    Example:
      >>> conv = AnalogConv(1, 16, (5, 5), padding="VALID",
      ...                   rngs=nnx.Rngs(params=0, periphery=1))
      >>> conv(jnp.ones((1, 28, 28, 1))).shape
      (1, 24, 24, 16)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        *,
        strides: int | Sequence[int] = 1,
        padding: str | Sequence[tuple[int, int]] = "SAME",
        use_bias: bool = True,
        forward: PeripheryConfig = PeripheryConfig(),
        backward: PeripheryConfig = _BACKWARD_DEFAULT,
        max_tile: int | None = None,
        weight_scaling_omega: float | None = None,
        device_w_max: float = 1.0,
        learn_out_scale: bool = False,
        kernel_init: Callable[..., jax.Array] = nnx.initializers.lecun_normal(),
        bias_init: Callable[..., jax.Array] = nnx.initializers.zeros_init(),
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        self.kernel_size = _core.conv_kernel_size(kernel_size)
        self.strides = _core.normalize_tuple(strides, len(self.kernel_size), "strides")
        self._int_kernel_size = kernel_size if isinstance(kernel_size, int) else None
        self.padding = padding
        self.in_features, self.out_features = in_features, out_features
        self._setup(
            self.kernel_size + (in_features, out_features),
            use_bias=use_bias,
            forward=forward,
            backward=backward,
            max_tile=max_tile,
            weight_scaling_omega=weight_scaling_omega,
            device_w_max=device_w_max,
            learn_out_scale=learn_out_scale,
            kernel_init=kernel_init,
            bias_init=bias_init,
            param_dtype=param_dtype,
            rngs=rngs,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        _core.check_conv_input(x, self.kernel_size, self._int_kernel_size, self.in_features)
        patches = _core.extract_patches(x, self.kernel_size, self.strides, self.padding)
        lead = patches.shape[:-1]
        width = math.prod(self.kernel_size) * self.in_features
        kernel2d = self.kernel[...].reshape(width, self.out_features).astype(x.dtype)
        y = self._analog(patches.reshape(-1, width), kernel2d)
        return self._digital_tail(y.reshape(lead + (self.out_features,)))


def grad_and_factors(
    loss_fn: Callable[..., Any], model: nnx.Module, *args: Any, has_aux: bool = False
) -> tuple[Any, nnx.State, dict[str, Any]]:
    """One backward pass through an nnx model: loss, exact gradients and per-sample factors.

    Args:
      loss_fn: ``loss_fn(model, *args) -> loss`` (or ``(loss, aux)`` with ``has_aux``).
      model: an nnx module containing :class:`AnalogLinear` / :class:`AnalogConv` layers.
      *args: further arguments of ``loss_fn`` (inputs, labels).
      has_aux: whether ``loss_fn`` returns ``(loss, aux)``.

    Returns:
      ``(value, grads, factors)``: ``grads`` is the ``nnx.State`` of the ``nnx.Param``
      gradients (as ``nnx.grad`` gives); ``factors`` is a nested dict of the same structure
      (a pure dict, as ``nnx.to_pure_dict``) with ``(x, d)`` at analog kernels and None
      elsewhere, ready for
      ``optimizer.update(model, grads, factors=factors)``.

    Examples:
      >>> import optax
      >>> model = AnalogLinear(8, 3, rngs=nnx.Rngs(params=0, periphery=1))
      >>> def loss_fn(model, x, y):
      ...     return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
      >>> images, labels = jnp.ones((4, 8)), jnp.arange(4) % 3
      >>> loss, grads, factors = grad_and_factors(loss_fn, model, images, labels)
      >>> x, d = factors["kernel"]
      >>> x.shape, d.shape, bool(jnp.allclose(grads["kernel"][...], x.T @ d, atol=1e-6))
      ((4, 8), (4, 3), True)
    """

    def perturbation_shapes(model: nnx.Module) -> Any:
        return nnx.capture(loss_fn, nnx.Perturbation)(model, *args)[1]

    shapes = nnx.eval_shape(perturbation_shapes, model)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def loss_with_capture(model: nnx.Module, perturbations: Any) -> tuple[Any, Any]:
        result, intermediates = nnx.capture(loss_fn, nnx.Intermediate, init=perturbations)(
            model, *args
        )
        loss, aux = result if has_aux else (result, None)
        return loss, (aux, intermediates)

    (loss, (aux, intermediates)), (grads, d) = nnx.value_and_grad(
        loss_with_capture, argnums=(0, 1), has_aux=True
    )(model, zeros)
    params = nnx.state(model, nnx.Param)
    factors = assemble_factors(
        params.to_pure_dict(), intermediates.to_pure_dict(), d.to_pure_dict()
    )
    value = (loss, aux) if has_aux else loss
    return value, grads, factors
