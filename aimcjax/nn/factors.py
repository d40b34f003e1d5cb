"""Per-sample factors (x, d) of analog layers, from one backward pass.

An analog optimizer in ``"outer"`` mode fires, for every sample b, rank-1 pulse trains built
from the layer input ``x_b`` and the gradient ``d_b`` at the layer's MVM output (aihwkit's
stochastic-compressed update), so it needs these factors rather than their sum
``grad = sum_b x_b ⊗ d_b``. The layers sow ``x`` (collection ``intermediates``, name
``analog_x``) and perturb their MVM output (collection ``perturbations``, name ``analog_d``);
the gradient of the loss with respect to that zero perturbation is ``d``. Both come out of the
same ``jax.grad`` call that gives the parameter gradients.

The factors pytree has the structure of ``params``; an analog kernel leaf holds ``(x, d)`` with
``x`` of shape ``(samples, in)`` and ``d`` of shape ``(samples, out)`` for the kernel viewed as
``(in, out)`` (for convolutions the samples are ``batch * positions`` patches); every other leaf
(biases, scales, digital layers) is ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from aimcjax.nn._core import FACTOR_D, FACTOR_X

_CAPTURE_COLLECTIONS = ("perturbations", "intermediates")


def assemble_factors(
    params: Mapping[str, Any], intermediates: Mapping[str, Any], d: Mapping[str, Any]
) -> Any:
    """Builds the factors pytree from the sown inputs and the perturbation gradients.

    Args:
      params: the parameter tree (nested dicts, as linen's ``variables["params"]``).
      intermediates: the ``intermediates`` collection of the same forward pass (``analog_x``
        entries, each a one-element tuple).
      d: the gradient with respect to the ``perturbations`` collection (``analog_d`` entries).

    Returns:
      A tree shaped like ``params``: ``(x, d)`` at each analog layer's ``kernel``, None elsewhere.

    Raises:
      ValueError: a layer was called more than once in the pass (its factors would be ambiguous:
        the perturbation is shared between calls).
    """
    flat_x = traverse_util.flatten_dict(_as_dict(intermediates))
    flat_d = traverse_util.flatten_dict(_as_dict(d))
    flat_params = traverse_util.flatten_dict(_as_dict(params))
    factors: dict[tuple[str, ...], Any] = {}
    for path in flat_params:
        module = path[:-1]
        x = flat_x.get(module + (FACTOR_X,))
        if path[-1] == "kernel" and x is not None:
            if len(x) != 1:
                raise ValueError(
                    f"analog layer {'/'.join(module)} was called {len(x)} times in "
                    "one pass; per-sample factors need one call per layer"
                )
            d_value = flat_d.get(module + (FACTOR_D,))
            if d_value is None:
                raise ValueError(f"no perturbation gradient for analog layer {'/'.join(module)}")
            factors[path] = (x[0], d_value)
        else:
            factors[path] = None
    return traverse_util.unflatten_dict(factors)


def _as_dict(tree: Any) -> dict[str, Any]:
    if hasattr(tree, "unfreeze"):
        tree = tree.unfreeze()
    return dict(tree)


def grad_and_factors(
    model: nn.Module,
    loss_fn: Callable[..., Any],
    variables: Mapping[str, Any],
    *inputs: Any,
    rngs: Any = None,
    has_aux: bool = False,
    **apply_kwargs: Any,
) -> tuple[Any, Any, dict[str, Any]]:
    """One backward pass through a linen model: the loss, the exact gradients and the factors.

    Args:
      model: a linen module containing :class:`~aimcjax.nn.AnalogDense` /
        :class:`~aimcjax.nn.AnalogConv` layers (digital layers are allowed: factors None).
      loss_fn: ``loss_fn(outputs) -> loss`` (or ``(loss, aux)`` with ``has_aux``); close over
        the targets.
      variables: the model variables (``params`` plus e.g. ``constants``); the gradient is taken
        with respect to ``variables["params"]``.
      *inputs: positional inputs of ``model.apply``.
      rngs: rngs of ``model.apply``, e.g. ``{"periphery": key}``.
      has_aux: whether ``loss_fn`` returns ``(loss, aux)``.
      **apply_kwargs: further keyword arguments of ``model.apply``.

    Returns:
      ``(value, grads, factors)`` where ``value`` is the loss (or ``(loss, aux)``), ``grads`` the
      gradient tree of ``params`` and ``factors`` the tree of :func:`assemble_factors`, so that
      ``grads[...]["kernel"] == x.T @ d`` (reshaped to the kernel) at every analog layer.

    Example:
      >>> import optax
      >>> from aimcjax import devices, optim, pulse
      >>> from aimcjax.nn import AnalogDense
      >>> model = AnalogDense(3)
      >>> images, labels = jnp.ones((4, 8)), jnp.arange(4) % 3
      >>> variables = model.init(jax.random.key(0), images)
      >>> loss, grads, factors = grad_and_factors(
      ...     model, lambda logits: optax.softmax_cross_entropy_with_integer_labels(
      ...         logits, labels).mean(), variables, images, rngs={"periphery": jax.random.key(1)})
      >>> x, d = factors["kernel"]
      >>> x.shape, d.shape, bool(jnp.allclose(grads["kernel"], x.T @ d, atol=1e-6))
      ((4, 8), (4, 3), True)
      >>> opt = optim.analog_sgd(0.1, devices.SoftBounds(), update=pulse.UpdateConfig(mode="outer"),
      ...                        key=0)
      >>> opt_state = opt.init(variables["params"])
      >>> updates, opt_state = opt.update(grads, opt_state, variables["params"],
      ...                                 factors=factors)
    """
    variables = _as_dict(variables)
    params = variables["params"]
    others = {k: v for k, v in variables.items() if k not in ("params",) + _CAPTURE_COLLECTIONS}

    def perturbation_shapes(params: Any) -> Any:
        _, state = model.apply(
            {"params": params, **others},
            *inputs,
            rngs=rngs,
            mutable=["perturbations"],
            **apply_kwargs,
        )
        return state.get("perturbations", {})

    zeros = jax.tree.map(
        lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(perturbation_shapes, params)
    )

    def loss_with_capture(params: Any, perturbations: Any) -> tuple[Any, tuple[Any, Any]]:
        outputs, state = model.apply(
            {"params": params, "perturbations": perturbations, **others},
            *inputs,
            rngs=rngs,
            mutable=["intermediates"],
            **apply_kwargs,
        )
        result = loss_fn(outputs)
        loss, aux = result if has_aux else (result, None)
        return loss, (aux, state.get("intermediates", {}))

    (loss, (aux, intermediates)), (grads, d) = jax.value_and_grad(
        loss_with_capture, argnums=(0, 1), has_aux=True
    )(params, zeros)
    factors = assemble_factors(params, intermediates, d)
    value = (loss, aux) if has_aux else loss
    return value, grads, factors
