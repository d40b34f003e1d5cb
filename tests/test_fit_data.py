"""aimcjax.fit without fitting: trace files and their errors, the simulator against the pulse
kernel, the fit's response families against the devices', clipped moments, device JSON and
``--device @file.json``."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from aimcjax import devices
from aimcjax.app import specs
from aimcjax.devices import presets
from aimcjax.fit import (
    TraceError,
    family,
    load_traces,
    make_traces,
    ramp_directions,
    save_traces,
    simulate_directions,
    simulate_traces,
)
from aimcjax.fit.device_json import (
    device_from_dict,
    device_to_dict,
    load_device,
    save_device,
)
from aimcjax.fit.example import EXAMPLE_SETTINGS, load_example
from aimcjax.fit.likelihood import clipped_moments


def _csv(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = "device,pulse,direction,read\na,0,none,0.0\na,1,up,0.1\na,2,up,0.2\na,3,down,0.1\nb,1,up,0.0\nb,2,down,0.3\nb,3,down,0.2\n"


def test_csv_layout_reads_devices_padding_and_optional_initial_read(tmp_path):
    tr = load_traces(_csv(tmp_path, GOOD))
    assert tr.device_ids == ("a", "b")
    np.testing.assert_allclose(tr.reads[0], [0.0, 0.1, 0.2, 0.1])
    np.testing.assert_array_equal(tr.direction[0], [1, 1, -1])
    # b has no read before its first pulse: its first read starts the trace (2 pulses, padded).
    np.testing.assert_allclose(tr.reads[1, :3], [0.0, 0.3, 0.2])
    np.testing.assert_array_equal(tr.direction[1, :2], [-1, -1])
    np.testing.assert_array_equal(tr.valid, [[True, True, True], [True, True, False]])
    assert tr.read_noise is None and tr.n_observations == 5


@pytest.mark.parametrize(
    "text, message",
    [
        ("device,pulse,read\na,0,1\n", "missing column(s) direction"),
        ("device,pulse,direction,read\na,0,none,0\na,1,up,nan\na,2,up,1\n", "NaN or infinite"),
        (
            "device,pulse,direction,read\na,0,none,0\na,1,sideways,1\na,2,up,1\n",
            "unknown direction 'sideways'",
        ),
        ("device,pulse,direction,read\na,0,none,0\na,2,up,1\na,3,up,1\n", "not consecutive"),
        ("device,pulse,direction,read\na,0,none,0\na,1,up,1\na,1,up,1\n", "pulse 1 twice"),
        ("device,pulse,direction,read\na,0,up,0\na,1,up,1\na,2,up,1\n", "direction must be none"),
        (
            "device,pulse,direction,read\na,0,none,0\na,1,up,x\na,2,up,1\n",
            "read 'x' is not a number",
        ),
        ("device,pulse,direction,read\na,0,none,0\na,1.5,up,1\n", "not an integer"),
        (
            "device,pulse,direction,read,read_noise\na,0,none,0,0.1\na,1,up,1,0.2\na,2,up,1,0.1\n",
            "one value",
        ),
        ("device,pulse,direction,read\na,0,none,0\na,1,up,1\n", "n_pulses >= 2"),
    ],
)
def test_csv_errors_are_one_line_and_name_the_problem(tmp_path, text, message):
    with pytest.raises(TraceError) as err:
        load_traces(_csv(tmp_path, text))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "t.csv" in str(err.value)


def test_npz_and_file_errors(tmp_path):
    np.savez(tmp_path / "x.npz", reads=np.zeros((2, 4)))
    with pytest.raises(TraceError, match=r"missing array.*direction"):
        load_traces(str(tmp_path / "x.npz"))
    np.savez(tmp_path / "y.npz", reads=np.zeros((2, 4)), direction=np.full((2, 3), 2))
    with pytest.raises(TraceError, match=r"\+1 \(up\) or -1"):
        load_traces(str(tmp_path / "y.npz"))
    with pytest.raises(TraceError, match="no such file"):
        load_traces(str(tmp_path / "none.csv"))
    with pytest.raises(TraceError, match="unknown traces format"):
        load_traces(_csv(tmp_path, GOOD, "t.txt"))
    with pytest.raises(TraceError, match="shape"):
        make_traces(np.zeros((2, 4)), np.ones((2, 4)))


def test_csv_and_npz_round_trip(tmp_path):
    tr = simulate_traces(devices.SoftBounds(tau=0.6, dw_min=0.01, dw_min_std=0.2), 3, 1, 5, 1e-3, 0)
    for name in ("r.csv", "r.npz"):
        save_traces(tr, str(tmp_path / name))
        back = load_traces(str(tmp_path / name))
        np.testing.assert_allclose(back.reads, tr.reads, rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(back.direction, tr.direction)
        assert back.read_noise == pytest.approx(tr.read_noise) and back.device_ids == tr.device_ids


def test_simulation_is_the_pulse_kernel():
    """Noise-free, no read noise: each read moves by exactly the device's step from the last
    (gains and bounds of the sampled tile), and the ramps alternate as documented."""
    dev = devices.Power(
        tau=0.6, gamma=2.0, dw_min=0.01, asymmetry=0.1, dw_min_dtod=0.2, w_max_dtod=0.1
    )
    dirs = ramp_directions(2, 30)
    np.testing.assert_array_equal(dirs[:31], [1] * 30 + [-1])
    reads, t = simulate_directions(dev, dirs, 3, n_devices=4, return_tile=True)
    w = reads[:, :-1]
    qp, qm = dev.response(jnp.asarray(w, jnp.float32), t.w_min[:, None], t.w_max[:, None])
    step = np.where(
        dirs > 0,
        np.asarray(t.gain_up)[:, None] * 0.01 * np.asarray(qp),
        -np.asarray(t.gain_down)[:, None] * 0.01 * np.asarray(qm),
    )
    np.testing.assert_allclose(np.diff(reads, axis=1), step, rtol=2e-4, atol=2e-7)


@pytest.mark.parametrize(
    "name, dev, shape",
    [
        ("softbounds", devices.SoftBounds(tau=1.0), {}),
        ("power", devices.Power(tau=1.0, gamma=1.7), {"gamma": 1.7}),
        ("exp", devices.Exponential(tau=1.0, gamma=2.5), {"gamma": 2.5}),
        (
            "piecewise3",
            devices.Piecewise(up=(1.0, 0.6, 0.2), down=(0.3, 0.7, 1.0)),
            {"up": jnp.array([1.0, 0.6, 0.2]), "down": jnp.array([0.3, 0.7, 1.0])},
        ),
    ],
)
def test_fit_families_use_the_devices_response(name, dev, shape):
    w = jnp.linspace(-0.7, 0.9, 9)
    lo, hi = jnp.float32(-0.8), jnp.float32(1.1)
    got = family(name).response(shape, w, lo, hi)
    want = dev.response(w, lo, hi)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "mean, sd, bound, direction",
    [(0.0, 1.0, 0.5, 1), (0.3, 0.2, 0.1, -1), (0.0, 1.0, 5.0, 1), (1.0, 0.5, 0.2, 1)],
)
def test_clipped_moments_match_monte_carlo(mean, sd, bound, direction):
    x = mean + sd * np.random.default_rng(0).standard_normal(2_000_000)
    y = np.minimum(x, bound) if direction > 0 else np.maximum(x, bound)
    m, v = clipped_moments(jnp.float32(mean), jnp.float32(sd**2), jnp.float32(bound), direction)
    se = y.std() / np.sqrt(y.size)
    assert abs(float(m) - y.mean()) < 5 * se + 1e-6
    assert float(v) == pytest.approx(y.var(), rel=5e-3, abs=1e-7)


def test_device_json_round_trip_and_specs(tmp_path):
    for dev in (
        presets.ecram(),
        presets.reram_sb(),
        devices.Power(tau=0.5, gamma=2.0, noise="multiplicative"),
        devices.ConstantStep(dw_min=0.002, asymmetry=0.1),
        devices.ExpStep(dw_min=0.002, A_up=0.05, up_down=-0.2, noise="multiplicative"),
    ):
        back = device_from_dict(json.loads(json.dumps(device_to_dict(dev))))
        assert type(back) is type(dev) and repr(back) == repr(dev)
    path = str(tmp_path / "device.json")
    save_device(presets.capacitor(), path, {"fit": {"note": 1}})
    assert repr(load_device(path)) == repr(presets.capacitor())
    assert repr(specs.parse(f"@{path}")) == repr(presets.capacitor())
    assert specs.parse(f"@{path}:dw_min_std=0").dw_min_std == 0.0
    grid = specs.parse_grid(f"@{path}:dw_min_std=0/0.5")
    assert [d.dw_min_std for _, d in grid] == [0.0, 0.5]
    with pytest.raises(specs.SpecError, match="no such device file"):
        specs.parse(f"@{tmp_path}/missing.json")
    (tmp_path / "bad.json").write_text('{"family": "Memristor", "params": {}}')
    with pytest.raises(specs.SpecError, match="unknown family 'Memristor'"):
        specs.parse(f"@{tmp_path}/bad.json")
    (tmp_path / "bad2.json").write_text('{"family": "SoftBounds", "params": {"tau": -1}}')
    with pytest.raises(specs.SpecError, match="tau must be > 0"):
        specs.parse(f"@{tmp_path}/bad2.json")


def test_embedded_example_is_small_and_documented():
    tr = load_example()
    s = EXAMPLE_SETTINGS
    assert tr.reads.shape == (s["n_devices"], 2 * s["n_cycles"] * s["pulses_per_ramp"] + 1)
    assert tr.read_noise is None  # to be fitted
    np.testing.assert_array_equal(
        tr.direction[0], ramp_directions(s["n_cycles"], s["pulses_per_ramp"])
    )
