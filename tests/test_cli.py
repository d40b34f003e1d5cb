"""The `aimcjax` command on tiny settings: files written, exact config reruns, one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from aimcjax import periphery
from aimcjax.app import cli, specs

TINY = [
    "--dataset",
    "digits",
    "--model",
    "mlp",
    "--epochs",
    "1",
    "--train-size",
    "60",
    "--batch-size",
    "10",
    "--quiet",
]


def _files(path):
    return sorted(f for f in os.listdir(path) if not f.startswith("."))


def test_devices_lists_families_and_presets(capsys):
    assert cli.main(["devices"]) == 0
    text = capsys.readouterr().out
    for word in ("Power", "Exponential", "SoftBounds", "Piecewise", "reram_sb", "ecram"):
        assert word in text


def test_devices_plot_and_symmetric_points(tmp_path, capsys):
    out = tmp_path / "dev"
    assert (
        cli.main(
            ["devices", "softbounds:tau=0.5,asymmetry=0.2", "power:gamma=2", "--out", str(out)]
        )
        == 0
    )
    assert _files(out) == ["config.json", "devices.png", "metrics.jsonl", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    # SoftBounds' symmetric point is c*tau ([RF] arXiv:2502.06309; devices.SoftBounds): 0.2 * 0.5.
    assert summary["softbounds:tau=0.5,asymmetry=0.2"]["symmetric_point"] == pytest.approx(
        0.1, abs=1e-6
    )
    assert summary["power:gamma=2"]["symmetric_point"] == pytest.approx(0.0, abs=1e-6)


def test_train_writes_files_and_config_rerun_is_exact(tmp_path, capsys):
    out1, out2 = tmp_path / "a", tmp_path / "b"
    args = TINY + [
        "--algorithm",
        "digital",
        "analog-sgd",
        "--device",
        "softbounds:asymmetry=0.3",
        "--seeds",
        "0",
        "1",
        "--out",
        str(out1),
    ]
    assert cli.main(["train"] + args) == 0
    table = capsys.readouterr().out
    assert "digital" in table and "analog-sgd" in table
    assert _files(out1) == ["config.json", "curves.png", "metrics.jsonl", "summary.json"]
    config = json.loads((out1 / "config.json").read_text())
    assert config["command"] == "train" and config["args"]["algorithms"] == [
        "digital",
        "analog-sgd",
    ]
    records = [json.loads(line) for line in (out1 / "metrics.jsonl").read_text().splitlines()]
    # 2 algorithms x 2 seeds x (epoch 0 + 1 epoch)
    assert len(records) == 8 and {r["epoch"] for r in records} == {0, 1}
    summary = json.loads((out1 / "summary.json").read_text())
    assert len(summary["runs"]) == 4
    assert all(0.0 <= r["final_test_acc"] <= 1.0 for r in summary["runs"])

    assert (
        cli.main(["train", "--config", str(out1 / "config.json"), "--out", str(out2), "--quiet"])
        == 0
    )
    assert (out2 / "summary.json").read_bytes() == (out1 / "summary.json").read_bytes()
    assert (out2 / "metrics.jsonl").read_bytes() == (out1 / "metrics.jsonl").read_bytes()


def test_sweep_grid_in_one_program(tmp_path, capsys):
    out = tmp_path / "s"
    args = TINY + [
        "--algorithm",
        "analog-sgd",
        "--device",
        "softbounds:asymmetry=0/0.3,tau=0.6/0.8",
        "--out",
        str(out),
    ]
    assert cli.main(["sweep"] + args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["table"]["analog-sgd"]) == [
        "asymmetry=0,tau=0.6",
        "asymmetry=0,tau=0.8",
        "asymmetry=0.3,tau=0.6",
        "asymmetry=0.3,tau=0.8",
    ]
    assert "asymmetry=0.3,tau=0.8" in capsys.readouterr().out


def test_reproduce_main_recipe_tiny(tmp_path, capsys):
    out = tmp_path / "r"
    assert (
        cli.main(
            ["reproduce", "main", "--set", "epochs=1,train_size=30", "--quiet", "--out", str(out)]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "98.17" in text  # the paper's digital number is printed beside ours
    assert "update mode pulse" in text  # the job says which update mode it ran
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["table"]) == {"digital", "analog-sgd", "residual"}
    assert summary["update"] == summary["settings"]["config"]["update"] == "pulse"
    assert (out / "curves.png").exists()


def test_reproduce_table8_and_table7_tiny(tmp_path, capsys):
    # Same FCN settings as the main recipe above, so the compiled programs are shared.
    out = tmp_path / "t8"
    assert (
        cli.main(
            [
                "reproduce",
                "table8",
                "--set",
                "epochs=1,train_size=30,gammas=1,taus=0.6,families=power",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "97.39" in text and "<15" in text  # RF Table 8's power gamma=1 tau=0.6 row
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["family"], r["gamma"], r["tau"]) for r in summary["rows"]] == [("power", 1.0, 0.6)]
    assert (out / "table8.png").exists()


@pytest.mark.slow
def test_reproduce_table7_tiny(tmp_path, capsys):
    out = tmp_path / "t7"
    assert (
        cli.main(
            [
                "reproduce",
                "table7",
                "--set",
                "epochs=1,train_size=30,sigmas=0.1/1.2",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert [r["sigma_c"] for r in summary["rows"]] == [0.1, 1.2]
    assert "97.66" in capsys.readouterr().out


def test_reproduce_list(capsys):
    assert cli.main(["reproduce", "--list"]) == 0
    text = capsys.readouterr().out
    for name in ("fig2", "table8", "table7", "implicit-penalty", "csgd-ls", "csgd-mnist"):
        assert name in text


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--algorithm", "adamw"], "invalid choice: 'adamw'"),
        (["train", "--epochs", "-3"], "--epochs: must be >= 1"),
        (["train", "--device", "power:gama=1"], "power has no parameter gama"),
        (["train", "--device", "power:gamma"], "expected name=value"),
        (["sweep", "--device", "warp:gamma=1"], "unknown device 'warp'"),
        (["train", "--dataset", "mnist"], "--data-path"),
        (["reproduce", "nope"], "invalid choice: 'nope'"),
        (["reproduce", "main", "--set", "colour=blue"], "does not take that setting"),
        (["train", "--config", "/nonexistent/config.json"], "no such file"),
        (
            ["train", "--periphery", "warp"],
            "unknown periphery preset 'warp'; presets: perfect, default",
        ),
        (["sweep", "--periphery", "default:out_nois=0.1"], "periphery has no parameter 'out_nois'"),
        (
            ["train", "--periphery", "default:out_noise=-1"],
            "out_noise must be a finite number >= 0",
        ),
        (["reproduce", "main", "--periphery", "default:inp_bits"], "expected name=value"),
        (["reproduce", "fig2", "--periphery", "default"], "does not take that setting"),
    ],
)
def test_bad_input_one_line(argv, needle, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a folder cannot be created below a file, even as root
    assert cli.main(["devices", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "cannot write to output folder" in err and err.count("\n") == 1


def test_config_of_other_command_is_rejected(tmp_path, capsys):
    assert cli.main(["devices", "--out", str(tmp_path)]) == 0
    assert cli.main(["train", "--config", str(tmp_path / "config.json")]) == 2
    assert "config of 'aimcjax devices'" in capsys.readouterr().err


def test_python_m_exits_nonzero_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.run(
        [sys.executable, "-m", "aimcjax", "train", "--epochs", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--epochs" in lines[0], proc.stderr


def test_csgd_subcommand_tiny(tmp_path, capsys):
    pytest.importorskip("aimcjax.app.experiments.csgd")
    out = tmp_path / "c"
    assert (
        cli.main(
            ["csgd", "ls", "--simulate", "4", "--iterations", "5", "--quiet", "--out", str(out)]
        )
        == 0
    )
    assert "uploads" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["num_workers"] == 4 and summary["settings"]["iterations"] == 5
    assert (out / "csgd_ls.png").exists()


@pytest.mark.slow
def test_reproduce_least_squares_recipes_tiny(tmp_path, capsys):
    # Each fig2 run compiles its own program (3 algorithms here): slow on a busy CPU.
    out = tmp_path / "f2"
    assert (
        cli.main(
            ["reproduce", "fig2", "--set", "steps=20,up_downs=0.3", "--quiet", "--out", str(out)]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["final_loss"]) == {"analog_sgd", "tiki_taka", "residual_learning"}
    assert set(summary["final_loss"]["tiki_taka"]) == {"0.3"}
    assert (out / "fig2.png").exists()
    out = tmp_path / "ip"
    assert (
        cli.main(
            [
                "reproduce",
                "implicit-penalty",
                "--set",
                "steps=300,asymmetries=0.3",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "W_pen" in capsys.readouterr().out
    assert (out / "implicit_penalty.png").exists()


@pytest.mark.slow
def test_table8_sweeps_extra_algorithms(tmp_path, capsys):
    out = tmp_path / "t8x"
    assert (
        cli.main(
            [
                "reproduce",
                "table8",
                "--set",
                "epochs=1,train_size=30,gammas=1,taus=0.6,families=power,extra=agad",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert "agad" in capsys.readouterr().out
    (row,) = json.loads((out / "summary.json").read_text())["rows"]
    assert 0.0 <= row["agad"]["mean"] <= 1.0


@pytest.mark.slow
def test_train_runs_the_rest_of_the_field(tmp_path, capsys):
    algorithms = ["cttv2", "agad", "multi-tile", "mixed-precision"]
    args = TINY + [
        "--algorithm",
        *algorithms,
        "--device",
        "softbounds:tau=1",
        "--quiet",
        "--out",
        str(tmp_path / "o"),
    ]
    assert cli.main(["train"] + args) == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert sorted(r["algorithm"] for r in summary["runs"]) == sorted(algorithms)
    assert all(0.0 <= r["final_test_acc"] <= 1.0 for r in summary["runs"])


def test_periphery_specs_presets_and_overrides():
    assert specs.parse_periphery("perfect").is_perfect
    assert specs.parse_periphery("default") == periphery.PeripheryConfig()  # RF Table 4
    assert specs.parse_periphery("aihwkit_preset") == periphery.PRESETS["aihwkit_preset"]
    cfg = specs.parse_periphery(
        "default: out_noise=0.1, inp_bits=8.0, out_bound=none, "
        "inp_sto_round=true, noise_management=max"
    )
    assert cfg == periphery.PeripheryConfig(
        out_noise=0.1,
        inp_bits=8,
        out_bound=None,
        out_bits=9,
        inp_sto_round=True,
        noise_management="max",
    )
    assert isinstance(cfg.inp_bits, int)
    for bad, needle in [
        ("Default:w_noise=0.1,w_noise=0.2", "given twice"),
        ("", "non-empty"),
        ("default:inp_bits=7.5", "inp_bits must be an integer"),
    ]:
        with pytest.raises(specs.SpecError, match=needle):
            specs.parse_periphery(bad)


def test_periphery_acts_and_config_round_trip(tmp_path, capsys):
    noisy, again, exact = tmp_path / "noisy", tmp_path / "again", tmp_path / "exact"
    args = TINY + ["--algorithm", "analog-sgd", "--device", "softbounds:asymmetry=0.3"]
    spec = "default:out_noise=0.5,inp_bits=4"
    assert cli.main(["train"] + args + ["--periphery", spec, "--out", str(noisy)]) == 0
    assert json.loads((noisy / "config.json").read_text())["args"]["periphery"] == spec
    assert cli.main(["train", "--config", str(noisy), "--out", str(again), "--quiet"]) == 0
    assert (again / "summary.json").read_bytes() == (noisy / "summary.json").read_bytes()
    assert (again / "metrics.jsonl").read_bytes() == (noisy / "metrics.jsonl").read_bytes()
    # The same run with exact products differs: the periphery is in the forward, backward and
    # test reads (a 4-bit DAC and noise 0.5 change every logit of the 359 test images).
    assert cli.main(["train"] + args + ["--periphery", "perfect", "--out", str(exact)]) == 0
    loss = lambda path: [
        r["final_test_loss"] for r in json.loads((path / "summary.json").read_text())["runs"]
    ]
    assert loss(exact) != loss(noisy)


def test_full_reproductions_read_through_the_papers_periphery():
    """RF's Table 7/8 runs used the Table 4 periphery: --full picks it unless one is given."""
    from aimcjax.app.experiments.mnist import resolve_periphery

    assert resolve_periphery(None, full=True) == "default"
    assert resolve_periphery(None, full=False) == "perfect"
    assert resolve_periphery("perfect", full=True) == "perfect"
    assert resolve_periphery("default:out_noise=0.1", full=False) == "default:out_noise=0.1"
