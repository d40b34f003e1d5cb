"""The fused Pallas kernel (aimcjax.pulse.pallas) against the XLA path, bit for bit.

On CPU the kernel runs in Pallas interpret mode (``UpdateConfig(kernel="pallas")``); the
CUDA lowering (Triton) is checked with ``jax.export`` for platform "cuda", which needs no GPU.
Tiles are small and bl short: interpret mode is slow.

Both sides are compiled as one jitted update: the XLA path's own rounding of an update can
change in the last bit with the program around it (inside a ``lax.scan``, a sweep's pulse
update differed on ~6% of elements from the same update jitted alone: XLA fuses and contracts
to FMAs differently there), while the kernel's stays the same.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aimcjax import pulse as P
from aimcjax import tile as T
from aimcjax.devices import Exponential, Piecewise, Power, SoftBounds, stack
from aimcjax.pulse import pallas

TRITON_CALL = "__gpu$xla.gpu.triton"
VARIED = {
    "dw_min_dtod": 0.3,
    "up_down_dtod": 0.05,
    "w_max_dtod": 0.2,
    "w_min_dtod": 0.2,
    "dw_min_std": 0.3,
}

# (device pair swept by vmap, tile shape, bl): 40 x 24 and 130 x 70 pad the 16 x 128 blocks
# in both directions; bl = 1 is a block with a single pulse (nothing left to loop over).
CASES = [
    pytest.param(
        (
            Power(tau=0.6, gamma=0.5, dw_min=0.01, noise="multiplicative", **VARIED),
            Power(tau=0.8, gamma=2.0, dw_min=0.02, asymmetry=0.1, noise="multiplicative", **VARIED),
        ),
        (40, 24),
        5,
        id="power-multiplicative-40x24",
    ),
    pytest.param(
        (
            SoftBounds(tau=0.6, dw_min=0.01, asymmetry=0.1, **VARIED),
            SoftBounds(tau=0.5, dw_min=0.02, asymmetry=-0.2, **VARIED),
        ),
        (130, 70),
        4,
        id="softbounds-additive-130x70",
    ),
    pytest.param(
        (
            Power(tau=0.6, gamma=1.5, dw_min=0.05, **VARIED),
            Power(tau=0.7, gamma=0.7, dw_min=0.05, **VARIED),
        ),
        (40, 24),
        1,
        id="power-additive-bl1",
    ),
]


def _sweep(devices, shape):
    """Two devices stacked for vmap and a tile per device (their own d2d variation)."""
    devs = stack(devices)
    tiles = jax.vmap(lambda k, d: T.init(k, d, shape))(
        jax.random.split(jax.random.PRNGKey(0), 2), devs
    )
    return devs, tiles


def _both(run):
    """``run(kernel)`` jitted with kernel="xla" and "pallas", as numpy arrays."""
    return [
        np.asarray(jax.jit(lambda kernel=kernel: run(kernel))()) for kernel in ("xla", "pallas")
    ]


@pytest.mark.parametrize("devices,shape,bl", CASES)
def test_pulse_mode_kernel_equals_xla_path_under_vmap(devices, shape, bl):
    devs, tiles = _sweep(devices, shape)
    dW = 0.08 * jax.random.normal(jax.random.PRNGKey(1), (2, *shape))

    def run(kernel):
        cfg = P.UpdateConfig(mode="pulse", bl=bl, kernel=kernel)
        # One shared key for the sweep (as a sweep passes it), and the members' own counts.
        return jax.vmap(lambda t, d, g: P.update(t, d, g, 3, cfg).w)(tiles, devs, dW)

    xla, pallas = _both(run)
    assert np.abs(xla - np.asarray(tiles.w)).max() > 0.01  # pulses were applied
    np.testing.assert_array_equal(pallas, xla)


@pytest.mark.parametrize("devices,shape,bl", CASES[:2])
def test_outer_mode_kernel_equals_xla_path_under_vmap(devices, shape, bl):
    devs, tiles = _sweep(devices, shape)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 2, shape[0]))  # (members, samples, in)
    d = jax.random.normal(jax.random.PRNGKey(2), (2, 2, shape[1]))

    def run(kernel):
        cfg = P.UpdateConfig(mode="outer", bl=bl, kernel=kernel)
        keys = jax.random.split(jax.random.PRNGKey(4), 2)  # a key per member this time
        return jax.vmap(lambda t, dev, xb, db, k: P.outer_update(t, dev, xb, db, 0.1, k, cfg).w)(
            tiles, devs, x, d, keys
        )

    xla, pallas = _both(run)
    assert np.abs(xla - np.asarray(tiles.w)).max() > 0.01
    np.testing.assert_array_equal(pallas, xla)


def test_kernel_takes_any_tile_shape_and_known_device_parameters():
    """A 3-D kernel tile (viewed as 2-D) and a device closed over (parameters known at trace
    time: a known exponent takes ``**``, as in the XLA path)."""
    dev = Exponential(tau=0.6, gamma=2.0, dw_min=0.02, **VARIED)
    t = T.init(0, dev, (3, 5, 7))
    dW = 0.1 * jax.random.normal(jax.random.PRNGKey(1), (3, 5, 7))
    xla, pallas = _both(
        lambda kernel: P.update(t, dev, dW, 5, P.UpdateConfig(bl=6, kernel=kernel)).w
    )
    assert pallas.shape == (3, 5, 7)
    np.testing.assert_array_equal(pallas, xla)


def _uses_pallas(f, *args):
    return "pallas_call" in str(jax.make_jaxpr(f)(*args))


def test_dispatch_auto_is_xla_on_cpu_and_pallas_is_forced():
    dev = Power(tau=0.6, gamma=0.5, dw_min=0.01, dw_min_std=0.2)
    t = T.init(0, dev, (4, 3))
    dW = jnp.full((4, 3), 0.03)
    x, d = jnp.ones((2, 4)), jnp.ones((2, 3))
    for kernel, expected in (
        ("auto", jax.default_backend() == "gpu"),
        ("xla", False),
        ("pallas", True),
    ):
        cfg = P.UpdateConfig(bl=3, kernel=kernel)
        outer = dataclasses.replace(cfg, mode="outer")
        assert _uses_pallas(lambda t, cfg=cfg: P.update(t, dev, dW, 0, cfg), t) == expected, kernel
        assert (
            _uses_pallas(lambda t, cfg=outer: P.outer_update(t, dev, x, d, 0.1, 0, cfg), t)
            == expected
        ), kernel
    # Noise-free SoftBounds has an exact closed form: it stays on XLA even when forced.
    sb = SoftBounds(tau=0.6, dw_min=0.01)
    assert not _uses_pallas(
        lambda t: P.update(t, sb, dW, 0, P.UpdateConfig(kernel="pallas")), T.init(0, sb, (4, 3))
    )


def test_forcing_the_kernel_on_an_unsupported_update_is_a_clear_error():
    with pytest.raises(ValueError, match="kernel must be one of"):
        P.UpdateConfig(kernel="triton")
    dev = Power(tau=0.6, dw_min=0.01, dw_min_std=0.2)
    t = T.init(0, dev, (4, 3))
    dW = jnp.full((4, 3), 0.03)
    with pytest.raises(ValueError, match="rng='counter'"):
        P.update(t, dev, dW, 0, P.UpdateConfig(kernel="pallas", rng="threefry"))
    with pytest.raises(ValueError, match="float32"):
        P.update(
            T.init(0, dev, (4, 3), dtype=jnp.bfloat16), dev, dW, 0, P.UpdateConfig(kernel="pallas")
        )
    pw = Piecewise(up=[1.0, 0.5], down=[0.5, 1.0], dw_min_std=0.1)
    with pytest.raises(ValueError, match="Piecewise"):
        P.update(T.init(0, pw, (4, 3)), pw, dW, 0, P.UpdateConfig(kernel="pallas"))
    # "auto" falls back to XLA for these (no error).
    assert not _uses_pallas(
        lambda t: P.update(t, dev, dW, 0, P.UpdateConfig(kernel="auto", rng="threefry")), t
    )


@pytest.mark.parametrize("mode", ["pulse", "outer"])
def test_kernel_lowers_for_cuda(mode):
    """The Triton lowering of both kernels, under vmap (a sweep of 2 devices), for CUDA."""
    devs, tiles = _sweep(
        (
            Power(tau=0.6, gamma=0.5, dw_min=0.01, **VARIED),
            Power(tau=0.7, gamma=2.0, dw_min=0.01, **VARIED),
        ),
        (130, 70),
    )
    cfg = P.UpdateConfig(mode=mode, bl=31, kernel="pallas")

    def step(tiles, devs, a, b):
        if mode == "pulse":
            return jax.vmap(
                lambda t, d, g: pallas.pulse_update(
                    t, d, g.astype(jnp.int8), 3, 31, interpret=False
                )
            )(tiles, devs, a)
        return jax.vmap(
            lambda t, d, x, y: pallas.outer_update(t, d, x, y, 0.1, 3, cfg, interpret=False)
        )(tiles, devs, a, b)

    a = jnp.zeros((2, 130, 70)) if mode == "pulse" else jnp.ones((2, 8, 130))
    b = jnp.ones((2, 8, 70))
    # The Triton custom call has no serialization-compatibility guarantee: allowed explicitly.
    triton = jax.export.DisabledSafetyCheck.custom_call(TRITON_CALL)
    exported = jax.export.export(jax.jit(step), platforms=["cuda"], disabled_checks=[triton])(
        tiles, devs, a, b
    )
    assert exported.platforms == ("cuda",)
    assert exported.mlir_module().count(TRITON_CALL) == 1  # one launch for the whole update
    assert exported.out_avals[0].shape == tiles.w.shape
