"""Bad input to the command line and the launcher: exit status 2 and one line naming the flag
(never a traceback), and a run folder that a failed, refused or interrupted run never damages.
Issue #16. Most cases fail before any training, so they run in-process through ``cli.main``.
"""

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from test_distributed_multihost import CRASH

from aimcjax.app import cli
from aimcjax.distributed import launch

SMALL = ["--model", "mlp", "--epochs", "1", "--train-size", "40", "--batch-size", "10", "--quiet"]
TINY = ["--dataset", "digits"] + SMALL


def _one_line_error(capsys, code=2):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _npz(path, y_train=None, x_train=None):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 255, (20, 4, 4), dtype=np.uint8) if x_train is None else x_train,
        y_train=np.arange(20) % 10 if y_train is None else y_train,
        x_test=rng.integers(0, 255, (10, 4, 4), dtype=np.uint8),
        y_test=np.arange(10),
    )
    return str(path)


BAD_ARGV = [
    # recipe settings: 0 must not silently run the default, a negative count must not reach XLA
    (["reproduce", "fig2", "--set", "steps=0"], "--set steps: expected an integer >= 1, got 0"),
    (["reproduce", "fig2", "--set", "steps=-5"], "--set steps: expected an integer >= 1, got -5"),
    (["reproduce", "fig2", "--set", "steps=2.5"], "--set steps: expected an integer >= 1"),
    (["reproduce", "fig2", "--set", "steps=nan"], "--set steps: expected a finite number"),
    (["reproduce", "main", "--set", "epochs=0"], "--set epochs: expected an integer >= 1, got 0"),
    (["reproduce", "main", "--set", "epochs=inf"], "--set epochs: expected a finite number"),
    (["reproduce", "main", "--set", "train_size=-1"], "--set train_size: expected an integer >= 0"),
    (["reproduce", "main", "--set", "update=fast"], "update must be one of pulse"),
    (["reproduce", "table8", "--set", "gammas=1/inf"], "--set gammas: expected a finite number"),
    (["reproduce", "table8", "--set", "seeds=0"], "--set seeds: expected an integer >= 1"),
    (
        ["reproduce", "csgd-ls", "--set", "iterations=0"],
        "--set iterations: expected an integer >= 1",
    ),
    # devices, update and periphery values
    (["train", "--device", "power:tau=inf"], "tau must be finite"),
    (["train", "--device", "power:dw_min=inf"], "dw_min must be finite"),
    (["train", "--device", "exp:gamma=100"], "gamma=100.0 is too steep"),
    (["train", "--device", "softbounds:w_max_dtod=nan"], "w_max_dtod must not be NaN"),
    (["sweep", "--device", "power:gamma=1/inf"], "gamma must be finite"),
    (["train", "--bl", "70000"], "bl must be <= 65536"),
    (["train", "--periphery", "default:out_bound=inf"], "out_bound must be a finite number > 0"),
    (["train", "--periphery", "default:out_bits=200"], "out_bits must be an integer in [1, 24]"),
    (["train", "--periphery", "default:out_noise=nan"], "out_noise must be a finite number"),
    (["train", "--lr", "inf"], "--lr"),
    (["train", "--gamma", "nan"], "--gamma"),
    (["train", "--transfer-lr", "-1"], "--transfer-lr"),
    # data
    (["train", "--dataset", "cifar10"], "--data-path"),
    (["train", "--dataset", "mnist", "--data-path", "/nonexistent/mnist.npz"], "/nonexistent"),
    # run folder
    (["train", "--resume", "/nonexistent/run"], "no interrupted run to resume"),
]


@pytest.mark.parametrize("argv, needle", BAD_ARGV, ids=[" ".join(a[:4]) for a, _ in BAD_ARGV])
def test_bad_flags_exit_2_with_one_line(argv, needle, capsys):
    assert cli.main(argv) == 2
    line = _one_line_error(capsys)
    assert needle in line, line


@pytest.mark.parametrize(
    "blob, needle",
    [
        (b"PK\x03\x04 not a zip", "not a readable .npz"),
        (b"", "not a readable .npz"),
    ],
)
def test_corrupt_data_file_one_line(tmp_path, blob, needle, capsys):
    path = tmp_path / "mnist.npz"
    path.write_bytes(blob)
    assert cli.main(["train", "--dataset", "mnist", "--data-path", str(path)] + SMALL) == 2
    assert needle in _one_line_error(capsys)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (
            {"y_train": np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 12] * 2)},
            "y_train has 2 labels outside [0, 9]",
        ),
        ({"y_train": -np.ones(20, int)}, "y_train has 20 labels outside"),
        ({"x_train": np.zeros((20, 4, 4), np.uint8)}, "same value"),
    ],
)
def test_bad_data_content_one_line(tmp_path, kwargs, needle, capsys):
    path = _npz(tmp_path / "mnist.npz", **kwargs)
    assert cli.main(["train", "--dataset", "mnist", "--data-path", path] + SMALL) == 2
    assert needle in _one_line_error(capsys)


# -- the run folder ------------------------------------------------------------------------------


def _snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "r"
    assert cli.main(["train"] + TINY + ["--out", str(out)]) == 0
    return out


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--device", "warp:gamma=1"],  # refused at once
        ["train", "--device", "exp:gamma=100"],
        ["train", "--epochs", "2"],  # a valid run: still refused, the folder holds a run
        ["sweep", "--periphery", "default:out_bits=200"],
    ],
)
def test_existing_run_is_never_damaged(finished_run, argv, capsys):
    before = _snapshot(finished_run)
    capsys.readouterr()
    assert cli.main(argv + TINY + ["--out", str(finished_run)]) == 2
    _one_line_error(capsys)
    assert _snapshot(finished_run) == before
    assert not os.path.exists(str(finished_run) + ".partial")


def test_non_empty_out_needs_overwrite(finished_run, capsys):
    capsys.readouterr()
    assert cli.main(["train"] + TINY + ["--out", str(finished_run)]) == 2
    assert "--overwrite" in _one_line_error(capsys)


def test_failed_overwrite_keeps_the_earlier_run(finished_run, capsys):
    before = _snapshot(finished_run)
    capsys.readouterr()
    # --overwrite with a run that fails (bad labels): the earlier run stays as it was.
    bad = _npz(finished_run.parent / "bad.npz", y_train=np.full(20, 11))
    assert (
        cli.main(
            [
                "train",
                "--dataset",
                "mnist",
                "--data-path",
                bad,
                "--model",
                "mlp",
                "--epochs",
                "1",
                "--quiet",
                "--overwrite",
                "--out",
                str(finished_run),
            ]
        )
        == 2
    )
    _one_line_error(capsys)
    assert _snapshot(finished_run) == before
    assert not os.path.exists(str(finished_run) + ".partial")


def test_overwrite_replaces_after_success(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "old.txt").write_text("an earlier file")
    assert cli.main(["train"] + TINY + ["--overwrite", "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["config.json", "curves.png", "metrics.jsonl", "summary.json"]
    assert not any(name.startswith("r.") for name in os.listdir(tmp_path))  # no leftovers


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("keep me")
    assert cli.main(["train"] + TINY + ["--out", str(target)]) == 2
    assert "not empty" in _one_line_error(capsys)
    assert target.read_text() == "keep me"


def test_resume_of_a_finished_run_is_refused(finished_run, capsys):
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(finished_run)]) == 2
    assert "holds a finished run" in _one_line_error(capsys)


def test_interrupted_run_blocks_a_fresh_one_until_resumed_or_overwritten(tmp_path, capsys):
    out = tmp_path / "r"
    partial = tmp_path / "r.partial"
    partial.mkdir()
    (partial / "config.json").write_text(json.dumps({"command": "train", "version": 1, "args": {}}))
    assert cli.main(["train"] + TINY + ["--out", str(out)]) == 2
    line = _one_line_error(capsys)
    assert "interrupted run" in line and "--resume" in line and "--overwrite" in line


def test_resume_refuses_changed_settings_and_config(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    _interrupt_after(monkeypatch, 1)
    assert cli.main(["train"] + TINY + ["--epochs", "2", "--out", str(out)]) == 130
    assert "--resume" in _one_line_error(capsys)
    monkeypatch.undo()
    assert cli.main(["train", "--resume", str(out), "--epochs", "3"]) == 2
    assert "epochs differ" in _one_line_error(capsys)
    assert cli.main(["train", "--resume", str(out), "--config", str(out)]) == 2
    assert "--config" in _one_line_error(capsys)
    assert cli.main(["sweep", "--resume", str(out)]) == 2
    assert "aimcjax train" in _one_line_error(capsys)


def _interrupt_after(monkeypatch, epochs):
    """Ctrl-C after ``epochs`` epochs: KeyboardInterrupt raised where a signal would surface."""
    from aimcjax.app.experiments import training

    original = training._compiled
    calls = {"n": 0}

    def compiled(trainer, vmapped):
        start, epoch = original(trainer, vmapped)

        def interrupted_epoch(*args):
            if calls["n"] == epochs:
                raise KeyboardInterrupt
            calls["n"] += 1
            return epoch(*args)

        return start, interrupted_epoch

    monkeypatch.setattr(training, "_compiled", compiled)


# -- the launcher --------------------------------------------------------------------------------


@pytest.mark.parametrize("port", [70000, 0, -1, 65536])
def test_launcher_port_out_of_range(port):
    with pytest.raises(ValueError, match="port must be an integer in"):
        launch.launch(["true"], 1, port=port)


def test_launcher_port_in_use():
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(
            ValueError, match=f"port {sock.getsockname()[1]} on 127.0.0.1 cannot be used"
        ):
            launch.launch(["true"], 1, port=sock.getsockname()[1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"timeout_s": float("inf")}, "timeout_s"),
        ({"timeout_s": float("nan")}, "timeout_s"),
        ({"local_devices": 0}, "local_devices"),
    ],
)
def test_launcher_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        launch.launch(["true"], 1, **kwargs)


def test_launcher_command_line_port_one_line():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "aimcjax.distributed.launch",
            "-n",
            "2",
            "--port",
            "70000",
            "--",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == 2
    assert "port must be an integer in [1, 65535], got 70000" in done.stderr


# The multi-host test's crash script, with a clean exit code instead of os._exit: JAX's
# shutdown barrier used to hold such a process until the survivors timed out.
EXIT_3 = "import sys\n" + textwrap.dedent(CRASH).replace("os._exit(3)", "sys.exit(3)")
assert "sys.exit(3)" in EXIT_3


def test_launcher_reports_the_failing_process_and_its_own_code(tmp_path):
    """A worker's ``sys.exit(3)`` is reported as process 1 with code 3, and process 0 is
    stopped by the launcher (killed by a signal) rather than failing on its own after the
    runtime's 30 s heartbeat timeout with code 1, which is what was reported before."""
    script = tmp_path / "exit3.py"
    script.write_text(EXIT_3)
    start = time.monotonic()
    result = launch.launch(
        [sys.executable, str(script)],
        2,
        timeout_s=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert result.returncode == 3, result
    assert result.message.startswith("process 1 exited with code 3"), result.message
    assert result.returncodes[1] == 3 and result.returncodes[0] < 0, result.returncodes
    assert time.monotonic() - start < 100
