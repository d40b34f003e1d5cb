"""Bad input to the library: every case ends in a clear error naming the argument, or in a
correct result (never NaN, zeros or a hang in silence). Issue #16.

Areas: devices, tiles and pulses, periphery and layers, distributed (censoring), data.
The command line and the launcher are in test_bad_inputs_cli.py.
"""

import gzip
import io
import os
import pickle
import subprocess
import sys
import tarfile
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aimcjax import devices as D
from aimcjax import distributed as dist
from aimcjax import pulse, tile
from aimcjax.app import data
from aimcjax.distributed.censor import censored_mean
from aimcjax.periphery import PeripheryConfig, mvm

INF, NAN = float("inf"), float("nan")

# -- devices -------------------------------------------------------------------------------------

FAMILIES = {
    "ConstantStep": D.ConstantStep,
    "SoftBounds": D.SoftBounds,
    "Power": D.Power,
    "Exponential": D.Exponential,
    "Piecewise": D.Piecewise,
}

# (family, keyword arguments, the argument the error must name)
BAD_DEVICES = [
    *[(fam, {"dw_min": v}, "dw_min") for fam in FAMILIES for v in (INF, NAN, 0.0, -1e-3)],
    *[
        (fam, {"w_max": v}, "w_max")
        for fam in ("ConstantStep", "Piecewise", "SoftBounds")
        for v in (INF, -0.5)
    ],
    *[
        (fam, {"w_min": v}, "w_min")
        for fam in ("ConstantStep", "Piecewise", "Power")
        for v in (-INF, 0.5)
    ],
    *[
        (fam, {"tau": v}, "tau")
        for fam in ("SoftBounds", "Power", "Exponential")
        for v in (INF, NAN, 0.0)
    ],
    *[
        (fam, {"gamma": v}, "gamma")
        for fam in ("Power", "Exponential")
        for v in (INF, NAN, 0.0, -1.0)
    ],
    ("Exponential", {"gamma": 100.0}, "gamma"),  # e^100 - 1 overflows float32
    ("Exponential", {"gamma": 44.5}, "gamma"),  # e^(2 gamma) at the far bound overflows float32
    ("Exponential", {"gamma": 20.0, "w_min": -1.0, "w_max": 0.2}, "gamma"),  # e^(gamma (1 + 5))
    ("Power", {"gamma": 130.0}, "gamma"),  # 2^130 overflows float32
    *[
        (fam, {"asymmetry": v}, "asymmetry")
        for fam in ("ConstantStep", "SoftBounds", "Power")
        for v in (1.0, INF)
    ],
    *[("Power", {name: v}, name) for name in D.VARIATION_FIELDS for v in (INF, -0.1)],
    *[("Exponential", {name: NAN}, name) for name in D.VARIATION_FIELDS],
    ("Piecewise", {"up": (1.0, INF), "down": (1.0, 1.0)}, "up"),
    ("Piecewise", {"up": (1.0, 1.0), "down": (NAN, 1.0)}, "down"),
    ("Piecewise", {"up": (0.5, 1.0), "down": (1.0, 1.0)}, "up"),  # increasing: not a device
    ("Piecewise", {"up": (1.0, 1.0, 1.0), "down": (1.0, 1.0)}, "up and down"),
    ("SoftBounds", {"noise": "gaussian"}, "noise"),
]


@pytest.mark.parametrize(
    "family, kwargs, name", BAD_DEVICES, ids=[f"{f}-{k}" for f, k, _ in BAD_DEVICES]
)
def test_bad_device_parameters_name_the_argument(family, kwargs, name):
    with pytest.raises(ValueError, match=name):
        FAMILIES[family](**kwargs)


BAD_CUSTOM = [
    (lambda w: -jnp.ones_like(w), lambda w: 1 + w, "q_plus"),  # writes against the direction
    (lambda w: 1 - w, lambda w: w, "q_minus"),  # negative below 0
    (lambda w: 1 - w, lambda w: jnp.log(w + 1), "q_minus"),  # -inf at w_min
    (lambda w: jnp.sqrt(w), lambda w: 1 + w, "q_plus"),  # NaN below 0
    (lambda w: 1 / (1 - w), lambda w: 1 + w, "q_plus"),  # inf at w_max
    (lambda w: undefined_name, lambda w: 1 + w, "q_plus"),  # noqa: F821 - raises
    (lambda w: jnp.ones((3,)), lambda w: 1 + w, "q_plus"),  # not elementwise
]


@pytest.mark.parametrize(
    "q_plus, q_minus, name", BAD_CUSTOM, ids=[f"custom-{i}" for i in range(len(BAD_CUSTOM))]
)
def test_custom_responses_are_checked_on_a_grid(q_plus, q_minus, name):
    with pytest.raises(ValueError, match=name):
        D.Custom(q_plus=q_plus, q_minus=q_minus)


def test_custom_needs_callables():
    with pytest.raises(TypeError, match="q_plus"):
        D.Custom(q_plus=1.0, q_minus=lambda w: w)


def test_issue_exponential_example_stays_finite_in_every_mode():
    """The issue's Exponential(tau=1.5, gamma=13, dw_min_dtod=3, w_max_dtod=2) gave NaN
    weights (with zero shift: 9 of these 64 on main); the capped response keeps every
    element finite and within its bounds."""
    dev = D.Exponential(tau=1.5, gamma=13, dw_min=0.01, dw_min_dtod=3, w_max_dtod=2)
    update = jax.jit(pulse.update)  # one compilation per mode for both tiles and both steps
    outer = jax.jit(pulse.outer_update)
    for zero_shift in (False, True):
        t = tile.init(0, dev, (8, 8), zero_shift=zero_shift)
        assert np.isfinite(np.asarray(t.ref)).all()
        for mode in ("pulse", "expected"):
            cfg = pulse.UpdateConfig(mode=mode)
            t2 = update(t, dev, jnp.full((8, 8), 0.3), 1, cfg)
            t3 = update(t2, dev, jnp.full((8, 8), -0.3), 2, cfg)
            w = np.asarray(t3.w)
            assert np.isfinite(w).all(), (zero_shift, mode)
            assert (w >= np.asarray(t3.w_min)).all() and (w <= np.asarray(t3.w_max)).all()
        t4 = outer(
            t, dev, jnp.ones((2, 8)), jnp.ones((2, 8)), 0.1, 3, pulse.UpdateConfig(mode="outer")
        )
        assert np.isfinite(np.asarray(t4.w)).all()


def test_capped_response_is_exact_below_the_cap():
    """The cap changes nothing where the response is representable."""
    dev = D.Exponential(tau=0.6, gamma=5.0)
    w = jnp.linspace(-0.6, 0.6, 11)
    qp, qm = dev.response(w, dev.w_min, dev.w_max)
    g = 5.0
    np.testing.assert_array_equal(
        np.asarray(qp), np.asarray(jnp.expm1(g * jnp.maximum(1 - w / 0.6, 0)) / jnp.expm1(g))
    )
    np.testing.assert_array_equal(
        np.asarray(qm), np.asarray(jnp.expm1(g * jnp.maximum(1 + w / 0.6, 0)) / jnp.expm1(g))
    )


@pytest.mark.parametrize(
    "dtype, gamma, ok",
    [
        (jnp.float16, 5.6, False),
        (jnp.float16, 40.0, False),
        (jnp.float16, 5.4, True),
        (jnp.bfloat16, 40.0, True),
        (jnp.float32, 44.0, True),
    ],
)
def test_exponential_gamma_bound_follows_the_tile_dtype(dtype, gamma, ok):
    dev = D.Exponential(tau=0.6, gamma=gamma)
    if not ok:
        with pytest.raises(ValueError, match=r"gamma=.* is too steep for a float16 tile"):
            tile.init(0, dev, (4, 4), dtype=dtype)
        return
    t = tile.init(0, dev, (4, 4), dtype=dtype)
    t = pulse.update(t, dev, jnp.full((4, 4), 0.05, dtype), 1)
    assert np.isfinite(np.asarray(t.w, np.float32)).all()


def test_power_with_huge_gamma_and_narrow_sampled_bounds_stays_finite():
    # base (1 - w/w_max) reaches ~100 on elements whose w_max came out at 1% of tau.
    dev = D.Power(tau=0.6, gamma=40.0, w_max_dtod=2.0, dw_min_dtod=3.0)
    t = tile.init(0, dev, (40, 40), zero_shift=True)
    t = pulse.update(t, dev, jnp.full((40, 40), -0.2), 1)
    assert np.isfinite(np.asarray(t.w)).all() and np.isfinite(np.asarray(t.ref)).all()


# -- tiles and pulses ----------------------------------------------------------------------------

BAD_UPDATE_CONFIGS = [
    ({"bl": 0}, ValueError, "bl"),
    ({"bl": -3}, ValueError, "bl"),
    ({"bl": pulse.MAX_BL + 1}, ValueError, "bl must be <= 65536"),
    ({"bl": 10**9}, ValueError, "bl must be <= 65536"),
    ({"bl": True}, ValueError, "bl"),
    ({"bl": 3.0}, ValueError, "bl"),
    ({"mode": "fast"}, ValueError, "mode"),
    ({"rng": "philox"}, ValueError, "rng"),
    ({"stochastic_rounding": 1}, TypeError, "stochastic_rounding"),
    ({"update_management": "yes"}, TypeError, "update_management"),
]


@pytest.mark.parametrize(
    "kwargs, error, match", BAD_UPDATE_CONFIGS, ids=[str(k) for k, _, _ in BAD_UPDATE_CONFIGS]
)
def test_bad_update_configs(kwargs, error, match):
    with pytest.raises(error, match=match):
        pulse.UpdateConfig(**kwargs)


def test_former_hang_bl_1e9_fails_at_once():
    """``pulse.update(..., UpdateConfig(bl=10**9))`` hung (deaf to Ctrl-C); now the config
    is refused. Run in a subprocess with a timeout so a regression cannot hang the suite."""
    code = textwrap.dedent("""
        import jax.numpy as jnp
        from aimcjax import devices, pulse, tile
        dev = devices.Power(tau=0.6, gamma=1.0, dw_min=1e-9)
        t = tile.init(0, dev, (4, 4))
        try:
            pulse.update(t, dev, jnp.full((4, 4), 0.5), 1, pulse.UpdateConfig(bl=10**9))
        except ValueError as e:
            print("REFUSED", e)
    """)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert "REFUSED bl must be <= 65536" in done.stdout, done.stderr[-2000:]


def test_the_largest_bl_runs_and_stays_in_bounds():
    dev = D.ConstantStep(dw_min=1e-6)  # noise-free: the closed form, exact for any count
    t = tile.init(0, dev, (3, 3))
    t = pulse.update(t, dev, jnp.full((3, 3), 10.0), 1, pulse.UpdateConfig(bl=pulse.MAX_BL))
    np.testing.assert_allclose(np.asarray(t.w), 1e-6 * pulse.MAX_BL, rtol=1e-5)


@pytest.mark.parametrize("value", [NAN, INF, -INF])
@pytest.mark.parametrize("mode", ["pulse", "expected", "ideal"])
def test_non_finite_requested_change_is_refused(mode, value):
    dev = D.SoftBounds()
    t = tile.init(0, dev, (2, 2))
    dW = jnp.zeros((2, 2)).at[0, 1].set(value)
    with pytest.raises(ValueError, match="dW contains NaN or infinite"):
        pulse.update(t, dev, dW, 0, pulse.UpdateConfig(mode=mode))


@pytest.mark.parametrize("name", ["x", "d"])
def test_non_finite_outer_factors_are_refused(name):
    dev = D.SoftBounds()
    t = tile.init(0, dev, (3, 2))
    x, d = jnp.ones((2, 3)), jnp.ones((2, 2))
    args = {"x": x, "d": d}
    args[name] = args[name].at[1, 0].set(NAN)
    with pytest.raises(ValueError, match=f"{name} contains NaN"):
        pulse.outer_update(t, dev, args["x"], args["d"], 0.1, 0, pulse.UpdateConfig(mode="outer"))


BAD_TILE_CALLS = [
    (lambda: tile.init(0, D.SoftBounds(), (0, 3)), ValueError, "shape"),
    (lambda: tile.init(0, D.SoftBounds(), (2, 3), w0=jnp.ones((3, 2))), ValueError, "w0"),
    (lambda: tile.init(0, D.SoftBounds(), (2, 3), dtype=jnp.int32), TypeError, "dtype"),
    (lambda: tile.init(0, "softbounds", (2, 3)), TypeError, "device"),
    (lambda: tile.init("seed", D.SoftBounds(), (2, 3)), TypeError, "key"),
    (
        lambda: tile.program(tile.init(0, D.SoftBounds(), (2, 3)), jnp.ones((3, 3))),
        ValueError,
        "w_eff",
    ),
    (
        lambda: pulse.apply(tile.init(0, D.SoftBounds(), (2,)), D.SoftBounds(), jnp.ones(2), 0),
        TypeError,
        "n must be an integer",
    ),
    (
        lambda: pulse.apply(
            tile.init(0, D.SoftBounds(), (2,)), D.SoftBounds(), jnp.ones(3, jnp.int32), 0
        ),
        ValueError,
        "n has shape",
    ),
    (
        lambda: pulse.update(
            tile.init(0, D.SoftBounds(), (2,)), D.SoftBounds(), jnp.ones(2), 0, "pulse"
        ),
        TypeError,
        "cfg",
    ),
    (
        lambda: pulse.update(
            tile.init(0, D.SoftBounds(), (2,)),
            D.SoftBounds(),
            jnp.ones(2),
            0,
            pulse.UpdateConfig(mode="outer"),
        ),
        ValueError,
        "outer_update",
    ),
]


@pytest.mark.parametrize(
    "call, error, match", BAD_TILE_CALLS, ids=[m for _, _, m in BAD_TILE_CALLS]
)
def test_bad_tile_and_pulse_calls(call, error, match):
    with pytest.raises(error, match=match):
        call()


# -- periphery and layers ------------------------------------------------------------------------

BAD_PERIPHERY = [
    ({"out_bound": INF}, "out_bound"),  # read all zeros before
    ({"out_bound": NAN}, "out_bound"),
    ({"out_bound": 0.0}, "out_bound"),
    ({"out_bound": -12.0}, "out_bound"),
    ({"inp_bound": INF, "noise_management": "none"}, "inp_bound"),
    ({"out_bits": 200}, "out_bits"),  # read NaN before
    ({"out_bits": 25}, "out_bits"),
    ({"out_bits": 0}, "out_bits"),
    ({"out_bits": 8.0}, "out_bits"),
    ({"inp_bits": 129}, "inp_bits"),
    ({"out_noise": INF}, "out_noise"),
    ({"out_noise": NAN}, "out_noise"),
    ({"out_noise": -0.1}, "out_noise"),
    ({"w_noise": INF}, "w_noise"),
    ({"nm_thres": NAN}, "nm_thres"),
    ({"max_bm_res": INF}, "max_bm_res"),
    ({"max_bm_res": 0.0}, "max_bm_res"),
    ({"max_bm_factor": 0}, "max_bm_factor"),
    ({"max_bm_factor": 2**40}, "max_bm_factor"),
    ({"max_bm_factor": True}, "max_bm_factor"),
    ({"noise_management": "l2"}, "noise_management"),
    ({"bound_management": "shift"}, "bound_management"),
]


@pytest.mark.parametrize("kwargs, name", BAD_PERIPHERY, ids=[str(k) for k, _ in BAD_PERIPHERY])
def test_bad_periphery_parameters_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PeripheryConfig(**kwargs)


def test_periphery_at_the_bit_limit_reads_correctly():
    """24-bit converters (the limit) quantize finer than float32 at full scale: the read is
    the exact product up to float32 rounding, not NaN or zeros."""
    w = jax.random.normal(jax.random.key(0), (8, 4)) * 0.3
    x = jax.random.uniform(jax.random.key(1), (5, 8), minval=-1, maxval=1)
    cfg = PeripheryConfig(inp_bits=24, out_bits=24, out_noise=0.0)
    y = mvm(w, x, cfg, jax.random.key(2))
    np.testing.assert_allclose(np.asarray(y), np.asarray(x @ w), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("value", [NAN, INF])
def test_non_finite_input_sample_reads_non_finite_and_leaves_others_alone(value):
    """A NaN/inf input propagates to its own sample's read (visible), never hidden as zeros,
    and the other samples read as without it."""
    w = jax.random.normal(jax.random.key(0), (6, 3)) * 0.3
    x = jax.random.uniform(jax.random.key(1), (4, 6), minval=-1, maxval=1)
    cfg = PeripheryConfig()
    read = jax.jit(lambda x: mvm(w, x, cfg, jax.random.key(2)))
    clean, bad = read(x), read(x.at[2, 1].set(value))
    assert not np.isfinite(np.asarray(bad[2])).all()
    rows = np.array([0, 1, 3])
    np.testing.assert_array_equal(np.asarray(bad[rows]), np.asarray(clean[rows]))


def test_layer_with_a_bad_periphery_fails_at_construction():
    from aimcjax.app.specs import SpecError, parse_periphery

    with pytest.raises((SpecError, ValueError), match="out_bound"):
        parse_periphery("default:out_bound=inf")
    with pytest.raises((SpecError, ValueError), match="out_bits"):
        parse_periphery("default:out_bits=200")


# -- distributed (censoring) ---------------------------------------------------------------------

BAD_CENSOR = [
    ({"xi": INF}, ValueError, "xi"),
    ({"xi": NAN}, ValueError, "xi"),
    ({"xi": -1.0}, ValueError, "xi"),
    ({"learning_rate": 1e-25}, ValueError, "learning_rate"),  # xi / lr^2 overflows float32
    ({"learning_rate": 0.0}, ValueError, "learning_rate"),
    ({"learning_rate": INF}, ValueError, "learning_rate"),
    ({"learning_rate": NAN}, ValueError, "learning_rate"),
    ({"sigma_decay": 1.5}, ValueError, "sigma_decay"),  # the slack would overflow to inf
    ({"sigma_decay": NAN}, ValueError, "sigma_decay"),
    ({"sigma0": INF}, ValueError, "sigma0"),
    ({"sigma0": -1.0}, ValueError, "sigma0"),
    ({"window": 0}, ValueError, "window"),
    ({"batch0": INF}, ValueError, "batch0"),
    ({"max_staleness": 0}, ValueError, "max_staleness"),
    ({"mode": "fedavg"}, ValueError, "mode"),
]


@pytest.mark.parametrize("kwargs, error, match", BAD_CENSOR, ids=[str(k) for k, _, _ in BAD_CENSOR])
def test_bad_censor_configs(kwargs, error, match):
    with pytest.raises(error, match=match):
        dist.CensorConfig(**kwargs)


@pytest.mark.parametrize(
    "tau, error, match",
    [
        (NAN, ValueError, "tau must not be NaN"),
        (np.array([0.1, 0.2]), ValueError, "tau must be a scalar"),
        ("0.1", TypeError, "tau"),
    ],
)
def test_bad_censoring_thresholds(tau, error, match):
    f = jax.vmap(lambda g, h: censored_mean(g, h, tau, "w"), axis_name="w")
    with pytest.raises(error, match=match):
        f(jnp.ones((2, 1)), jnp.zeros((2, 1)))


def test_large_finite_threshold_coefficient_censors_without_nan():
    """At the float32 limit of xi / (lr^2 D) the threshold stays a number (no inf * 0)."""
    cfg = dist.CensorConfig(learning_rate=1e-18, xi=1.0, window=1)
    tau = dist.threshold(cfg, jnp.zeros(1), jnp.int32(0), 2)
    assert np.isfinite(float(tau))


# -- data ----------------------------------------------------------------------------------------


def _npz(path, n=6, labels=None, x=None, **override):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 255, (n, 4, 4), dtype=np.uint8) if x is None else x,
        "y_train": np.arange(n) % 10 if labels is None else labels,
        "x_test": rng.integers(0, 255, (3, 4, 4), dtype=np.uint8),
        "y_test": np.arange(3),
    }
    arrays.update(override)
    np.savez(path, **arrays)
    return path


BAD_NPZ = [
    ({"labels": np.array([0, 1, 2, 10, 4, 5])}, "y_train has 1 labels outside \\[0, 9\\]"),
    ({"labels": np.array([0, 1, -1, 3, 4, 5])}, "y_train has 1 labels outside"),
    ({"y_test": np.array([0, 1, 99])}, "y_test has 1 labels outside"),
    ({"labels": np.array([0, 1, 2.5, 3, 4, 5])}, "y_train must hold integer class labels"),
    ({"labels": np.array([0, 1, NAN, 3, 4, 5])}, "y_train must hold integer class labels"),
    ({"labels": np.array(["a"] * 6)}, "y_train must hold integer class labels"),
    ({"labels": np.arange(5)}, "do not match"),
    ({"x": np.zeros((6, 16), np.uint8)}, "do not match"),
    ({"x_test": np.zeros((3, 5, 5), np.uint8)}, "differ in shape"),
    ({"x": np.zeros((0, 4, 4), np.uint8), "labels": np.zeros(0, int)}, "train split is empty"),
]


@pytest.mark.parametrize("kwargs, match", BAD_NPZ, ids=[m[:30] for _, m in BAD_NPZ])
def test_bad_npz_content(tmp_path, kwargs, match):
    path = _npz(tmp_path / "mnist.npz", **kwargs)
    with pytest.raises(data.DataError, match=match) as e:
        data.load("mnist", path)
    assert "\n" not in str(e.value)


def _write_bytes(path, blob):
    path.write_bytes(blob)
    return path


def _gzip_with_garbage_body():
    good = gzip.compress(b"\x00\x00\x08\x01" + b"\x00\x00\x00\x02" + b"\x01\x02")
    return good[:10] + bytes(range(40)) + good[-8:]


CORRUPT_FILES = [
    ("mnist.npz", b"PK\x03\x04garbage that is no zip", "not a readable .npz"),
    ("mnist.npz", b"not even a zip", "not a readable .npz"),
    ("cifar.tar.gz", b"\x1f\x8b\x08\x00garbage", "not a readable CIFAR-10 .tar.gz"),
    ("cifar.tar.gz", None, "not a readable CIFAR-10 .tar.gz"),  # a truncated real archive
    ("train-labels-idx1-ubyte.gz", _gzip_with_garbage_body(), "cannot read"),
    (
        "train-labels-idx1-ubyte.gz",
        gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09")[:15],
        "cannot read",
    ),
]


@pytest.mark.parametrize(
    "name, blob, match",
    CORRUPT_FILES,
    ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(CORRUPT_FILES)],
)
def test_corrupt_files_give_one_line_errors(tmp_path, name, blob, match):
    if blob is None:  # a real archive cut in half
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            payload = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
            info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        blob = buf.getvalue()[: len(buf.getvalue()) // 2]
    path = _write_bytes(tmp_path / name, blob)
    with pytest.raises(data.DataError, match=match) as e:
        if name.endswith(".npz"):
            data.load_mnist_npz(path)
        elif name.endswith(".tar.gz"):
            data.load_cifar(path)
        else:
            data.read_idx(path)
    assert "\n" not in str(e.value)


def test_constant_images_cannot_be_standardized(tmp_path):
    path = _npz(tmp_path / "mnist.npz", x=np.full((6, 4, 4), 7, np.uint8))
    ds = data.load("mnist", path)
    with pytest.raises(data.DataError, match="same value"):
        data.standardize(ds)


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda ds: ds._replace(
                x_train=ds.x_train.copy().__setitem__((0, 0, 0, 0), np.nan) or ds.x_train
            ),
            None,
        ),
        (lambda ds: ds._replace(num_classes=1), "num_classes"),
        (lambda ds: ds._replace(x_train=ds.x_train[..., 0]), "x_train must be images"),
        (lambda ds: ds._replace(y_test=ds.y_test[:-1]), "y_test must hold one label per image"),
    ],
)
def test_check_dataset(tmp_path, change, match):
    ds = data.load("mnist", _npz(tmp_path / "mnist.npz"))
    assert data.check_dataset(ds) is ds
    if match is None:  # NaN pixels
        x = ds.x_train.copy()
        x[0, 0, 0, 0] = np.nan
        bad, match = ds._replace(x_train=x), "x_train contains NaN"
    else:
        bad = change(ds)
    with pytest.raises(data.DataError, match=match):
        data.check_dataset(bad)


def test_library_errors_name_no_command_line_flags():
    with pytest.raises(data.DataError) as e:
        data.load("cifar10")
    assert "--" not in str(e.value)
