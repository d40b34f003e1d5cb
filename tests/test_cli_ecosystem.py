"""The command as a user meets it first: --help of every subcommand, --version, missing extras,
and ``devices --pulse-response``."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import aimcjax
from aimcjax import devices
from aimcjax.app import cli
from aimcjax.app.experiments import RECIPES, pulse_response

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _subcommands():
    return list(cli._subparsers(cli.build_parser()))


def test_the_parser_has_the_documented_subcommands():
    assert {"train", "sweep", "reproduce", "csgd", "devices"} <= set(_subcommands())


@pytest.mark.parametrize(
    "argv",
    [[c, "--help"] for c in _subcommands()]
    + [["reproduce", name, "--help"] for name in RECIPES]
    + [["--help"]],
    ids=lambda a: " ".join(a),
)
def test_help_of_every_subcommand(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: aimcjax")
    if argv[0] == "reproduce":  # every recipe is described, '%' printed as written
        assert all(name in out for name in RECIPES)
        assert "10% test error" in " ".join(out.split())


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"aimcjax {aimcjax.__version__}"


_WITHOUT_MATPLOTLIB = (
    "import sys; sys.modules['matplotlib'] = None\n"  # import matplotlib now raises ImportError
    "from aimcjax.app.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.parametrize(
    "argv", [["devices", "softbounds", "--out"], ["reproduce", "fig2", "--quiet", "--out"]]
)
def test_out_without_matplotlib_fails_in_one_line(argv, tmp_path):
    env = {**os.environ, "PYTHONPATH": ROOT}
    res = subprocess.run(
        [sys.executable, "-c", _WITHOUT_MATPLOTLIB, *argv, str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "matplotlib" in lines[0] and "aimcjax[plots]" in lines[0], lines
    assert not (tmp_path / "o").exists()  # failed before any work, nothing half-written


def test_output_figure_without_matplotlib_names_the_extra(monkeypatch):
    from aimcjax.app.experiments import output

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RuntimeError, match=r"aimcjax\[plots\]"):
        output.figure(1, 1)


def test_step_statistics_of_a_noise_free_constant_step_device():
    """Without noise or variation every pulse moves w by exactly ±dw_min away from the bounds."""
    dev = devices.ConstantStep(dw_min=0.05, w_min=-1.0, w_max=1.0)
    w, signs = pulse_response.simulate(dev, seeds=(0,), cycles=2, pulses=30, elements=4)
    assert w.shape == (1, 1 + 2 * 2 * 30, 4)
    # 30 up pulses from 0 reach 1.0 after 20 (clipped), 30 down from there end at -0.5
    np.testing.assert_allclose(w[0, 30], 1.0, atol=1e-6)
    np.testing.assert_allclose(w[0, 60], -0.5, atol=1e-5)
    stats = pulse_response.step_statistics(w, signs, bins=8)
    inner = (stats["centers"] > -0.4) & (stats["centers"] < 0.8)
    np.testing.assert_allclose(stats["up"]["mean"][inner], 0.05, rtol=1e-4)
    np.testing.assert_allclose(stats["down"]["mean"][inner], -0.05, rtol=1e-4)
    np.testing.assert_allclose(stats["up"]["std"][inner], 0.0, atol=1e-4)


def test_step_statistics_follow_the_response_with_noise_bands():
    """SoftBounds with cycle-to-cycle noise: binned mean Δw ≈ dw_min·q±(w), std ≈ dw_min·σ_c."""
    dev = devices.SoftBounds(tau=0.5, dw_min=0.02, dw_min_std=0.5)
    w, signs = pulse_response.simulate(dev, seeds=(0, 1), cycles=3, pulses=60, elements=64)
    stats = pulse_response.step_statistics(w, signs, bins=10)
    c = stats["centers"]
    ok = (np.abs(c) < 0.3) & (stats["up"]["count"] > 500)
    assert ok.sum() >= 3
    # the mean over n >= 500 pulses has std <= 0.02*0.5/sqrt(500) ~ 4.5e-4; bins are 0.1 wide,
    # so q varies by up to 0.1 / tau * dw_min / 2 = 2e-3 within one: tolerance 3e-3
    np.testing.assert_allclose(
        stats["up"]["mean"][ok], 0.02 * np.asarray(dev.q_plus(c[ok])), atol=3e-3
    )
    np.testing.assert_allclose(
        stats["down"]["mean"][ok], -0.02 * np.asarray(dev.q_minus(c[ok])), atol=3e-3
    )
    np.testing.assert_allclose(stats["up"]["std"][ok], 0.02 * 0.5, rtol=0.25)


def test_devices_pulse_response_writes_the_figure(tmp_path, capsys):
    out = tmp_path / "pr"
    assert (
        cli.main(
            [
                "devices",
                "reram_sb",
                "softbounds:tau=0.5,dw_min_std=0.3",
                "--pulse-response",
                "--pulses",
                "40",
                "--cycles",
                "2",
                "--elements",
                "8",
                "--seeds",
                "0",
                "1",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (out / "pulse_response.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pulse_response"]["reram_sb"]["pulses_per_half_cycle"] == 40
    assert summary["pulse_response"]["reram_sb"]["seeds"] == [0, 1]
    assert "reram_sb" in summary["devices"]


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["devices", "--pulse-response", "--out", "X"], "needs at least one SPEC"),
        (["devices", "reram_sb", "--pulse-response"], "give --out DIR"),
        (["devices", "reram_sb", "--pulse-response", "--cycles", "0", "--out", "X"], "--cycles"),
    ],
)
def test_pulse_response_bad_input_one_line(argv, needle, capsys, tmp_path):
    argv = [str(tmp_path / a) if a == "X" else a for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
