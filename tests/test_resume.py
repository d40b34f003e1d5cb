"""An interrupted and resumed run ends with the same files, byte for byte, as an uninterrupted
one (``aimcjax train`` and ``aimcjax sweep``, tiny configs). Issue #16.

The interruption is a KeyboardInterrupt raised between epochs (where Ctrl-C surfaces in the
training loop: the compiled epoch returns, then Python sees the signal); the last test sends a
real SIGINT to a separate process.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from aimcjax.app import cli
from aimcjax.app.experiments import training

TRAIN = [
    "train",
    "--dataset",
    "digits",
    "--model",
    "mlp",
    "--epochs",
    "3",
    "--train-size",
    "40",
    "--batch-size",
    "10",
    "--quiet",
    "--algorithm",
    "digital",
    "analog-sgd",
    "--device",
    "power:gamma=0.5,tau=0.6,dw_min_std=0.1",
    "--seeds",
    "0",
    "1",
]
SWEEP = [
    "sweep",
    "--dataset",
    "digits",
    "--model",
    "mlp",
    "--epochs",
    "3",
    "--train-size",
    "40",
    "--batch-size",
    "10",
    "--quiet",
    "--algorithm",
    "analog-sgd",
    "--device",
    "power:gamma=0.5/2,tau=0.6,dw_min_std=0.1",
    "--seeds",
    "0",
    "1",
    "--chunk-size",
    "2",
]
# Both share the analog-sgd program (2 Power runs per vmapped chunk): it compiles once.


def _files(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def _interrupt_at(monkeypatch, epoch_call):
    """Raise KeyboardInterrupt instead of the ``epoch_call``-th epoch (0-based, counted over
    all training loops of the run)."""
    original = training._compiled
    calls = {"n": 0}

    def compiled(trainer, vmapped):
        start, epoch = original(trainer, vmapped)

        def epoch_or_interrupt(*args):
            if calls["n"] == epoch_call:
                calls["n"] += 1
                raise KeyboardInterrupt
            calls["n"] += 1
            return epoch(*args)

        return start, epoch_or_interrupt

    monkeypatch.setattr(training, "_compiled", compiled)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted runs."""
    root = tmp_path_factory.mktemp("reference")
    out = {}
    for name, argv in (("train", TRAIN), ("sweep", SWEEP)):
        assert cli.main(argv + ["--out", str(root / name)]) == 0
        out[name] = _files(root / name)
    return out


# train: 2 loops (digital, analog-sgd) x 3 epochs; sweep: 2 chunks x 3 epochs. Interrupt in
# the first loop, in the middle of the second, at the second's start; twice in one run.
@pytest.mark.parametrize(
    "command, argv, cuts",
    [
        ("train", TRAIN, (1, 4)),
        ("train", TRAIN, (3,)),
        ("sweep", SWEEP, (2, 2)),  # (counts restart in the resumed run)
        ("sweep", SWEEP, (5,)),
    ],
)
def test_interrupted_and_resumed_equals_uninterrupted(
    reference, tmp_path, monkeypatch, capsys, command, argv, cuts
):
    out = tmp_path / "run"
    first = True
    for cut in cuts:
        _interrupt_at(monkeypatch, cut)
        args = argv + ["--out", str(out)] if first else [command, "--resume", str(out), "--quiet"]
        assert cli.main(args) == 130
        assert "--resume" in capsys.readouterr().err
        assert not out.exists() and (tmp_path / "run.partial" / "checkpoints").is_dir()
        monkeypatch.undo()
        first = False
    assert cli.main([command, "--resume", str(out), "--quiet"]) == 0
    assert _files(out) == reference[command]
    assert sorted(os.listdir(tmp_path)) == ["run"]  # no partial folder, no checkpoints left


@pytest.mark.slow  # three fresh processes, each compiling its programs
def test_resume_after_a_real_sigint(reference, tmp_path):
    """Ctrl-C (SIGINT) to a running ``python -m aimcjax``: exit 130, the unfinished run kept,
    and ``--resume`` completes it to the same bytes."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "MPLBACKEND": "Agg"}
    argv = [a if a != "3" else "40" for a in TRAIN]  # long enough to be caught mid-run
    proc = subprocess.Popen(
        [sys.executable, "-m", "aimcjax"] + argv + ["--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoints = tmp_path / "run.partial" / "checkpoints"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if checkpoints.is_dir() and any(checkpoints.glob("*/latest")):
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err[-2000:]
    assert "the unfinished run is kept in" in err
    resumed = subprocess.run(
        [sys.executable, "-m", "aimcjax", "train", "--resume", str(out), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    full = tmp_path / "full"
    done = subprocess.run(
        [sys.executable, "-m", "aimcjax"] + argv + ["--out", str(full)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert _files(out) == _files(full)


def test_ctrl_c_during_a_checkpoint_save_waits_for_it(tmp_path, monkeypatch):
    """SIGINT inside a save is held until the epoch's files and ``latest`` are written, then
    raised (interrupted mid-save, orbax's asynchronous save once left the process hanging)."""
    import numpy as np

    from aimcjax.app.experiments import output

    real = output._save_npz

    def interrupted_save(path, arrays):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the save
        real(path, arrays)

    monkeypatch.setattr(output, "_save_npz", interrupted_save)
    stage = output.RunCheckpoints(str(tmp_path)).stage("loop")
    carry = {"w": np.arange(4.0)}
    with pytest.raises(KeyboardInterrupt):
        stage.save(1, carry, [{"loss": np.float32(0.5)}])
    # The save completed before the interrupt surfaced: the epoch can be restored.
    epoch, restored, history = stage.restore(carry)
    assert epoch == 1 and np.array_equal(restored["w"], carry["w"])
    assert float(history[0]["loss"]) == 0.5
