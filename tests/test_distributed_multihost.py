"""Multi-process runs through the local launcher (2 processes x 2 CPU devices, gloo)."""

import os
import pathlib
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from aimcjax.distributed import initialize, launch

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")


def run(args, timeout, **env):
    try:
        return subprocess.run(
            [sys.executable] + args,
            env=dict(ENV, **env),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} hung for more than {timeout} s")


def test_two_processes_match_one_process_with_four_devices(tmp_path):
    multi = run(
        [
            "-m",
            "aimcjax.distributed.launch",
            "-n",
            "2",
            "--local-devices",
            "2",
            "--timeout",
            "240",
            "-m",
            "aimcjax.app.distributed_example",
            "--out",
            str(tmp_path / "multi.npz"),
        ],
        timeout=300,
    )
    assert multi.returncode == 0, multi.stderr[-4000:]
    assert "all 2 processes finished" in multi.stderr
    single = run(
        ["-m", "aimcjax.app.distributed_example", "--out", str(tmp_path / "single.npz")],
        timeout=300,
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
    )
    assert single.returncode == 0, single.stderr[-4000:]
    a, b = np.load(tmp_path / "single.npz"), np.load(tmp_path / "multi.npz")
    assert int(a["process_count"]) == 1 and int(b["process_count"]) == 2
    assert int(a["workers"]) == int(b["workers"]) == 4
    np.testing.assert_array_equal(a["sent"], b["sent"])
    assert 0 < a["sent"].sum() < a["sent"].size  # some, not all, uploads censored
    # the same float32 programs, only the collectives' transport differs
    np.testing.assert_allclose(a["params"], b["params"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5, atol=1e-6)


CRASH = """
import os
from aimcjax.distributed import initialize
initialize()
import jax, jax.numpy as jnp
if jax.process_index() == 1:
    os._exit(3)  # dies without saying goodbye
mesh = jax.make_mesh((jax.device_count(),), ("w",))
f = jax.jit(jax.shard_map(lambda x: jax.lax.psum(x, "w"), mesh=mesh,
                          in_specs=jax.P("w"), out_specs=jax.P()))
x = jax.make_array_from_callback((jax.device_count(),), jax.NamedSharding(mesh, jax.P("w")),
                                 lambda i: jnp.ones(1))
print(f(x))  # process 0 waits here for a peer that never comes
"""


def test_crashed_process_stops_the_run_with_a_clear_message(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(CRASH))
    start = time.monotonic()
    done = run(
        [
            "-m",
            "aimcjax.distributed.launch",
            "-n",
            "2",
            "--local-devices",
            "1",
            "--timeout",
            "120",
            str(script),
        ],
        timeout=150,
    )
    assert done.returncode == 3
    assert "process 1 exited with code 3; terminated the other processes" in done.stderr
    assert time.monotonic() - start < 100  # well before the launcher's own timeout


def test_timeout_kills_everything_with_a_clear_message():
    start = time.monotonic()
    result = launch.launch([sys.executable, "-c", "import time; time.sleep(600)"], 2, timeout_s=2.0)
    assert result.returncode == launch.TIMEOUT_EXIT_CODE
    assert "timed out after 2 s: processes [0, 1] still running" in result.message
    assert all(code is not None for code in result.returncodes)
    assert time.monotonic() - start < 30


def test_launcher_bad_input():
    with pytest.raises(ValueError, match="num_processes"):
        launch.launch(["true"], 0)
    with pytest.raises(ValueError, match="timeout_s"):
        launch.launch(["true"], 1, timeout_s=0)
    with pytest.raises(ValueError, match="command"):
        launch.launch([], 1)
    done = run(["-m", "aimcjax.distributed.launch", "-n", "2"], timeout=60)
    assert done.returncode == 2 and "give a command" in done.stderr


def test_launcher_passes_coordinates(tmp_path):
    result = launch.launch(
        [
            sys.executable,
            "-c",
            textwrap.dedent("""
        import os, sys
        keys = ["AIMCJAX_COORDINATOR", "AIMCJAX_NUM_PROCESSES", "AIMCJAX_PROCESS_ID",
                "AIMCJAX_LOCAL_DEVICES"]
        open(sys.argv[1] + os.environ["AIMCJAX_PROCESS_ID"], "w").write(
            " ".join(os.environ[k] for k in keys))
        """),
            str(tmp_path / "rank"),
        ],
        3,
        local_devices=2,
        timeout_s=60,
        port=12345,
    )
    assert result.returncode == 0, result.message
    for rank in range(3):
        assert (tmp_path / f"rank{rank}").read_text() == f"127.0.0.1:12345 3 {rank} 2"


def test_initialize_validates_and_refuses_late_calls():
    with pytest.raises(ValueError, match="process_id"):
        initialize("127.0.0.1:1", num_processes=2, process_id=2)
    with pytest.raises(ValueError, match="local_cpu_devices"):
        initialize(local_cpu_devices=0)
    import jax

    jax.numpy.zeros(1).block_until_ready()  # backends are up in this test process
    with pytest.raises(RuntimeError, match="before any JAX computation"):
        initialize("127.0.0.1:1", num_processes=2, process_id=0)
