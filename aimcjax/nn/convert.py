"""Turn an existing flax model analog: its Dense/Linear and Conv layers read through crossbars.

:func:`convert_to_analog` takes a linen module or an nnx module:

- **linen**: the result wraps the module and runs it under ``flax.linen.intercept_methods``;
  every ``nn.Dense`` / ``nn.Conv`` call becomes the analog product of
  :class:`~aimcjax.nn.AnalogDense` / :class:`~aimcjax.nn.AnalogConv` (same parameter names and
  shapes, so the original ``variables`` are used as they are, and
  :func:`aimcjax.nn.grad_and_factors` finds the factors at the same paths).
- **nnx**: module surgery on a copy: every ``nnx.Linear`` / ``nnx.Conv`` is replaced by an
  :class:`~aimcjax.nn.nnx.AnalogLinear` / :class:`~aimcjax.nn.nnx.AnalogConv` holding the same
  kernel and bias.

Features the analog layers do not have (dilation, grouped convolutions, circular padding,
masks) raise a ``ValueError`` naming the layer instead of being dropped.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

from aimcjax.nn import _core
from aimcjax.nn import nnx as annx
from aimcjax.nn.linen import _BACKWARD_DEFAULT
from aimcjax.periphery import PeripheryConfig

__all__ = ["AnalogModel", "convert_to_analog"]


def convert_to_analog(
    module: nn.Module | nnx.Module,
    *,
    forward: PeripheryConfig = PeripheryConfig(),
    backward: PeripheryConfig = _BACKWARD_DEFAULT,
    max_tile: int | None = None,
    rngs: nnx.Rngs | None = None,
) -> AnalogModel | nnx.Module:
    """The same model with its dense and convolution layers on analog crossbars.

    Args:
      module: a ``flax.linen.Module`` or an ``nnx.Module``.
      forward, backward: peripheries of the forward read and the transposed (input-gradient)
        read, as in :class:`~aimcjax.nn.AnalogDense`.
      max_tile: largest crossbar side (None: one array per layer).
      rngs: nnx only: an ``nnx.Rngs`` with a ``periphery`` stream, needed when the periphery
        is noisy (linen models take ``rngs={"periphery": key}`` in ``apply``).

    Returns:
      linen: an :class:`AnalogModel` with ``init``/``apply`` as the module's (same variables).
      nnx: a converted copy of the module (the original is left alone).

    Raises:
      TypeError: ``module`` is neither a linen nor an nnx module, or ``rngs`` is missing for a
        noisy nnx conversion.
      ValueError: a layer uses a feature the analog layers do not model.

    Example:
      >>> class MLP(nn.Module):
      ...     @nn.compact
      ...     def __call__(self, x):
      ...         return nn.Dense(3)(jax.nn.relu(nn.Dense(4)(x)))
      >>> mlp, x = MLP(), jnp.ones((2, 8))
      >>> variables = mlp.init(jax.random.key(0), x)
      >>> analog = convert_to_analog(mlp)                    # linen: the same variables
      >>> y = analog.apply(variables, x, rngs={"periphery": jax.random.key(1)})
      >>> bool(jnp.allclose(y, mlp.apply(variables, x), atol=0.3))
      True
      >>> model = nnx.Linear(8, 3, rngs=nnx.Rngs(0))
      >>> analog_model = convert_to_analog(model, rngs=nnx.Rngs(periphery=1))   # nnx: a copy
      >>> type(analog_model).__name__, bool(jnp.all(analog_model.kernel[...] == model.kernel[...]))
      ('AnalogLinear', True)
    """
    _core.check_layer_config(forward, backward, max_tile, None, 1.0)
    if isinstance(module, nn.Module):
        return AnalogModel(module, forward, backward, max_tile)
    if isinstance(module, nnx.Module):
        return _convert_nnx(module, forward, backward, max_tile, rngs)
    raise TypeError(f"module must be a flax linen or nnx Module, got {type(module).__name__}")


# -- linen: method interception -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AnalogModel:
    """A linen module whose ``nn.Dense``/``nn.Conv`` calls run as analog reads.

    ``init`` and ``apply`` take what the wrapped module's take; the variables are the module's.
    Pass it to :func:`aimcjax.nn.grad_and_factors` like a module.
    """

    module: nn.Module
    forward: PeripheryConfig
    backward: PeripheryConfig
    max_tile: int | None

    def init(self, *args: Any, **kwargs: Any) -> Any:
        with nn.intercept_methods(self._intercept):
            return self.module.init(*args, **kwargs)

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        with nn.intercept_methods(self._intercept):
            return self.module.apply(*args, **kwargs)

    def _intercept(
        self,
        next_fun: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        context: Any,
    ) -> Any:
        layer = context.module
        if (
            context.method_name != "__call__"
            or not isinstance(layer, (nn.Dense, nn.Conv))
            or layer.is_initializing()
        ):
            return next_fun(*args, **kwargs)  # init creates the very same parameters
        if kwargs or len(args) != 1:
            raise ValueError(f"{_name(layer)}: expected one input array")
        if isinstance(layer, nn.Dense):
            return self._dense(layer, jnp.asarray(args[0]))
        return self._conv(layer, jnp.asarray(args[0]))

    def _analog(self, layer: nn.Module, x2d: jax.Array, kernel2d: jax.Array) -> jax.Array:
        key = (
            layer.make_rng(_core.PERIPHERY_STREAM)
            if _core.needs_key(self.forward, self.backward)
            else None
        )
        layer.sow("intermediates", _core.FACTOR_X, x2d)
        y = _core.analog_matmul(x2d, kernel2d, key, self.forward, self.backward, self.max_tile)
        return layer.perturb(_core.FACTOR_D, y)

    def _tail(self, layer: nn.Dense | nn.Conv, y: jax.Array) -> jax.Array:
        if layer.use_bias:
            y = y + layer.get_variable("params", "bias").astype(y.dtype)
        return y

    def _dense(self, layer: nn.Dense, x: jax.Array) -> jax.Array:
        kernel: jax.Array = layer.get_variable("params", "kernel")
        _core.check_input_width(x, kernel.shape[0])
        y = self._analog(layer, x.reshape(-1, x.shape[-1]), kernel.astype(x.dtype))
        return self._tail(layer, y.reshape(x.shape[:-1] + (kernel.shape[-1],)))

    def _conv(self, layer: nn.Conv, x: jax.Array) -> jax.Array:
        kernel_size = _core.conv_kernel_size(layer.kernel_size)
        n = len(kernel_size)
        _check_conv_features(
            layer,
            n,
            layer.input_dilation,
            layer.kernel_dilation,
            layer.feature_group_count,
            layer.padding,
            layer.mask,
        )
        strides = _core.normalize_tuple(layer.strides or 1, n, "strides")
        kernel: jax.Array = layer.get_variable("params", "kernel")
        _core.check_conv_input(x, kernel_size, layer.kernel_size, kernel.shape[-2])
        return self._tail(
            layer,
            _conv_product(
                lambda x2d, k2d: self._analog(layer, x2d, k2d),
                x,
                kernel,
                kernel_size,
                strides,
                layer.padding,
            ),
        )


def _conv_product(
    analog: Callable[[jax.Array, jax.Array], jax.Array],
    x: jax.Array,
    kernel: jax.Array,
    kernel_size: Sequence[int],
    strides: Sequence[int],
    padding: Any,
) -> jax.Array:
    patches = _core.extract_patches(x, kernel_size, strides, padding)
    width, features = math.prod(kernel_size) * x.shape[-1], kernel.shape[-1]
    y = analog(patches.reshape(-1, width), kernel.reshape(width, features).astype(x.dtype))
    return y.reshape(patches.shape[:-1] + (features,))


def _name(layer: object) -> str:
    return f"{type(layer).__name__} {getattr(layer, 'name', '') or ''}".strip()


def _check_conv_features(
    layer: object,
    n: int,
    input_dilation: Any,
    kernel_dilation: Any,
    groups: int,
    padding: Any,
    mask: Any,
) -> None:
    def is_one(v: Any) -> bool:
        return v is None or (v == 1 if isinstance(v, int) else tuple(v) == (1,) * n)

    problems: list[str] = []
    if not is_one(input_dilation) or not is_one(kernel_dilation):
        problems.append("dilation")
    if groups != 1:
        problems.append(f"feature_group_count={groups}")
    if isinstance(padding, str) and padding.upper() not in ("SAME", "VALID"):
        problems.append(f"padding={padding!r}")
    if isinstance(padding, int):
        problems.append("integer padding (give pairs)")
    if mask is not None:
        problems.append("a kernel mask")
    if problems:
        raise ValueError(
            f"{_name(layer)} uses {', '.join(problems)}, which the analog "
            "convolution does not model"
        )


# -- nnx: module surgery --------------------------------------------------------------------------


def _convert_nnx(
    module: nnx.Module,
    forward: PeripheryConfig,
    backward: PeripheryConfig,
    max_tile: int | None,
    rngs: nnx.Rngs | None,
) -> nnx.Module:
    noisy = _core.needs_key(forward, backward)
    if noisy and not isinstance(rngs, nnx.Rngs):
        raise TypeError(
            "rngs must be an nnx.Rngs with a 'periphery' stream when the periphery "
            "is noisy (or pass forward/backward=PeripheryConfig.perfect())"
        )

    def layer_rngs() -> nnx.Rngs:
        return nnx.Rngs(params=0, periphery=cast(nnx.Rngs, rngs).periphery() if noisy else 0)

    if isinstance(module, (nnx.Linear, nnx.Conv)):
        return _analog_nnx_layer(module, forward, backward, max_tile, layer_rngs(), ())
    model = nnx.clone(module)
    for path, node in list(nnx.iter_graph(model)):
        if not path or not isinstance(node, (nnx.Linear, nnx.Conv)):
            continue
        parent: Any = model
        for part in path[:-1]:
            parent = parent[part] if isinstance(part, int) else getattr(parent, str(part))
        new = _analog_nnx_layer(node, forward, backward, max_tile, layer_rngs(), path)
        if isinstance(path[-1], int):
            parent[path[-1]] = new
        else:
            setattr(parent, str(path[-1]), new)
    return model


def _analog_nnx_layer(
    layer: nnx.Linear | nnx.Conv,
    forward: PeripheryConfig,
    backward: PeripheryConfig,
    max_tile: int | None,
    rngs: nnx.Rngs,
    path: tuple[Any, ...],
) -> annx.AnalogLinear | annx.AnalogConv:
    kernel = layer.kernel[...]
    common: dict[str, Any] = dict(
        use_bias=layer.bias is not None,
        forward=forward,
        backward=backward,
        max_tile=max_tile,
        param_dtype=kernel.dtype,
        rngs=rngs,
    )
    new: annx.AnalogLinear | annx.AnalogConv
    if isinstance(layer, nnx.Linear):
        new = annx.AnalogLinear(layer.in_features, layer.out_features, **common)
    else:
        n = len(layer.kernel_size)
        _check_conv_features(
            layer,
            n,
            layer.input_dilation,
            layer.kernel_dilation,
            layer.feature_group_count,
            layer.padding,
            layer.mask,
        )
        if kernel.ndim != n + 2:
            raise ValueError(
                f"{'/'.join(map(str, path))}: kernel of rank {kernel.ndim} does not "
                f"match kernel_size {layer.kernel_size}"
            )
        new = annx.AnalogConv(
            layer.in_features,
            layer.out_features,
            layer.kernel_size,
            strides=layer.strides or 1,
            padding=cast(str | Sequence[tuple[int, int]], layer.padding),  # (int: rejected above)
            **common,
        )
    new.kernel[...] = kernel
    if layer.bias is not None and new.bias is not None:  # (new has a bias exactly then)
        new.bias[...] = layer.bias[...]
    return new
