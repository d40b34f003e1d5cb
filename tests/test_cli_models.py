"""The CLI's classifiers are aimcjax.nn layers: conductance mapping to the device range, the
analog mask, and the periphery acting on the reads."""

import jax
import jax.numpy as jnp
import numpy as np

from aimcjax import periphery
from aimcjax.app.experiments import models


def _init(model, shape=(8, 8, 1)):
    return model.init(jax.random.PRNGKey(0), jnp.zeros((1,) + shape))


def test_conductance_mapping_to_a_device_range_keeps_the_function():
    model = models.get("mlp", (8, 8, 1), 10, omega=0.6)
    variables = _init(model)
    x = jax.random.normal(jax.random.PRNGKey(1), (4, 8, 8, 1))
    w_max = 0.25
    mapped = models.to_device_range(variables, w_max)
    for layer in ("layer0", "layer1"):
        kernel = mapped["params"][layer]["kernel"]
        # aihwkit's weight_scaling_omega: every output column's largest |w| sits at omega * w_max.
        np.testing.assert_allclose(jnp.max(jnp.abs(kernel), axis=0), 0.6 * w_max, rtol=1e-6)
    np.testing.assert_allclose(
        model.apply(mapped, x), model.apply(variables, x), rtol=1e-5, atol=1e-6
    )
    # Without mapping there are no constants and nothing to rescale.
    plain = _init(models.get("mlp", (8, 8, 1), 10))
    assert models.to_device_range(plain, w_max) is plain


def test_analog_mask_marks_kernels_only():
    params = _init(models.get("fcn", (28, 28, 1), 10))["params"]
    mask = models.analog_kernels(params)
    assert mask == {f"layer{i}": {"kernel": True, "bias": False} for i in range(3)}


def test_cnn_shapes_and_noisy_reads():
    model = models.get("cnn", (28, 28, 1), 10, forward=periphery.PRESETS["default"])
    assert model.backward.bound_management == "none" and model.backward.out_noise == 0.06
    variables = _init(model, (28, 28, 1))
    assert variables["params"]["layer0"]["kernel"].shape == (5, 5, 1, 16)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 28, 28, 1))
    a = model.apply(variables, x, rngs={"periphery": jax.random.PRNGKey(2)})
    b = model.apply(variables, x, rngs={"periphery": jax.random.PRNGKey(3)})
    exact = models.get("cnn", (28, 28, 1), 10).apply(variables, x)
    assert a.shape == (2, 10) and bool(jnp.all(jnp.isfinite(a)))
    # The periphery acts (read noise, DAC/ADC steps), and the noise is the key's alone.
    assert not np.allclose(a, b) and not np.allclose(a, exact)
    np.testing.assert_array_equal(
        a, model.apply(variables, x, rngs={"periphery": jax.random.PRNGKey(2)})
    )
