"""Local multi-process launcher: N JAX processes on 127.0.0.1, CPU devices each.

Usage::

    python -m aimcjax.distributed.launch -n 2 --local-devices 2 [--timeout 300] \\
        -- python my_script.py --my-args
    python -m aimcjax.distributed.launch -n 2 -m aimcjax.app.distributed_example --out r.npz

The script calls :func:`aimcjax.distributed.initialize` first; it reads the coordinator
address, process count, rank and device count that the launcher puts in its environment.
The launcher never hangs: when one process fails it terminates the others (which would
otherwise wait forever in a collective), and after ``--timeout`` seconds it kills them all;
both cases exit non-zero with a message saying which process and why.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from types import TracebackType
from typing import NamedTuple, NoReturn, cast

from aimcjax.distributed.multihost import (
    ENV_COORDINATOR,
    ENV_LOCAL_DEVICES,
    ENV_NUM_PROCESSES,
    ENV_PROCESS_ID,
)

__all__ = ["LaunchResult", "check_port", "exit_promptly_on_failure", "free_port", "launch", "main"]

TIMEOUT_EXIT_CODE = 124


class LaunchResult(NamedTuple):
    """Outcome of :func:`launch`: the exit code to report and a one-line explanation."""

    returncode: int
    returncodes: tuple
    message: str


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_port(port: object, host: str = "127.0.0.1") -> int:
    """``port`` if it is a TCP port number (1..65535) that ``host`` can bind now.

    Raises:
      ValueError: naming the port and why it cannot be used.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port must be an integer in [1, 65535], got {port!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as err:
            raise ValueError(
                f"port {port} on {host} cannot be used ({err.strerror or err}); "
                "choose another or leave it out for a free one"
            ) from None
    return port


def exit_promptly_on_failure() -> None:
    """In a launched process: a failing exit leaves at once, with its own exit code.

    JAX's distributed runtime waits at interpreter exit in a shutdown barrier for every peer;
    a process that fails (``sys.exit(3)``, an uncaught exception) would sit there until the
    survivors time out, and the launcher would see a survivor's code 1 half a minute later
    instead of the failing process's own code at once. Called by
    :func:`aimcjax.distributed.initialize` when the launcher started the process.
    """
    import traceback

    def leave(code: int) -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a closed stream: nothing left to lose
                stream.flush()
        os._exit(code)

    def excepthook(
        kind: type[BaseException], value: BaseException, tb: TracebackType | None
    ) -> None:
        if issubclass(kind, SystemExit):
            _on_system_exit(cast(SystemExit, value))
            return
        traceback.print_exception(kind, value, tb)
        leave(1)

    def _on_system_exit(value: SystemExit) -> None:
        code = value.code
        if code is None or code == 0:
            return
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        leave(code)

    original_exit = sys.exit

    def exit_(code: str | int | None = 0) -> NoReturn:
        try:
            original_exit(code)
        except SystemExit as stop:
            _on_system_exit(stop)
            raise

    sys.excepthook = excepthook
    sys.exit = exit_  # (a top-level ``raise SystemExit(3)`` still waits in the barrier)


def _stop(processes: Sequence[subprocess.Popen[bytes]], grace_s: float = 5.0) -> None:
    for proc in processes:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in processes:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def launch(
    command: Sequence[str],
    num_processes: int,
    *,
    local_devices: int = 1,
    timeout_s: float = 300.0,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> LaunchResult:
    """Run ``command`` as ``num_processes`` cooperating JAX processes on this machine.

    Args:
      command: argv of one process (e.g. ``[sys.executable, "train.py"]``).
      num_processes: N >= 1.
      local_devices: CPU devices per process.
      timeout_s: wall-clock limit for the whole run; then every process is killed.
      port: coordinator port on 127.0.0.1 (default: a free one).
      env: base environment (default: this process's).

    Returns:
      A :class:`LaunchResult`; ``returncode`` is 0 only if every process exited with 0,
      124 on timeout, else the first failing process's code.
    """
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"num_processes must be a positive int, got {num_processes!r}")
    if isinstance(local_devices, bool) or not isinstance(local_devices, int) or local_devices < 1:
        raise ValueError(f"local_devices must be a positive int, got {local_devices!r}")
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, (int, float))
        or not 0 < timeout_s < float("inf")
    ):
        raise ValueError(f"timeout_s must be a finite number > 0, got {timeout_s!r}")
    if not command:
        raise ValueError("command must not be empty")
    port = free_port() if port is None else check_port(port)
    base_env = dict(os.environ if env is None else env)
    processes = []
    for rank in range(num_processes):
        proc_env = dict(base_env)
        proc_env.update(
            {
                ENV_COORDINATOR: f"127.0.0.1:{port}",
                ENV_NUM_PROCESSES: str(num_processes),
                ENV_PROCESS_ID: str(rank),
                ENV_LOCAL_DEVICES: str(local_devices),
                "JAX_PLATFORMS": "cpu",
            }
        )
        processes.append(subprocess.Popen(list(command), env=proc_env, start_new_session=True))

    deadline = time.monotonic() + timeout_s
    try:
        while True:
            codes = [proc.poll() for proc in processes]
            failed = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                rank, code = failed[0]
                # The survivors sit in a collective or in JAX's shutdown barrier, where
                # SIGTERM is caught (preemption handling); a short grace, then SIGKILL.
                _stop(processes, grace_s=2.0)
                message = (
                    f"process {rank} exited with code {code}; terminated the other "
                    f"processes (they would block in collectives waiting for it)"
                )
                return LaunchResult(code, tuple(p.returncode for p in processes), message)
            if all(code == 0 for code in codes):
                return LaunchResult(0, tuple(codes), f"all {num_processes} processes finished")
            if time.monotonic() > deadline:
                waiting = [rank for rank, code in enumerate(codes) if code is None]
                _stop(processes)
                message = (
                    f"timed out after {timeout_s:g} s: processes {waiting} still running "
                    f"(a collective may be waiting for a peer that never arrived); killed"
                )
                return LaunchResult(
                    TIMEOUT_EXIT_CODE, tuple(p.returncode for p in processes), message
                )
            time.sleep(0.05)
    except BaseException:
        _stop(processes, grace_s=1.0)
        raise


def _split_command(argv: list[str]) -> tuple[list[str], list[str]]:
    """Launcher options end at ``--``, at ``-m MODULE`` or at the first positional token."""
    for i, token in enumerate(argv):
        if token == "--":
            return argv[:i], list(argv[i + 1 :])
        if token == "-m":
            if i + 1 >= len(argv):
                return argv, []
            return argv[:i], [sys.executable, "-m", argv[i + 1]] + list(argv[i + 2 :])
        previous = argv[i - 1] if i else ""
        if not token.startswith("-") and not previous.startswith("-"):
            command = list(argv[i:])
            if token.endswith(".py"):
                command = [sys.executable] + command
            return argv[:i], command
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aimcjax.distributed.launch",
        description="Start N JAX processes on 127.0.0.1 (CPU devices) running one command: "
        "script.py [args], -m module [args] or -- program [args].",
    )
    parser.add_argument("-n", "--num-processes", type=int, required=True)
    parser.add_argument("--local-devices", type=int, default=1, help="CPU devices per process")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds before all are killed"
    )
    parser.add_argument("--port", type=int, default=None, help="coordinator port (default: free)")
    options, command = _split_command(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(options)
    if not command:
        parser.error("give a command: script.py [args], -m module [args] or -- program [args]")
    try:
        result = launch(
            command,
            args.num_processes,
            local_devices=args.local_devices,
            timeout_s=args.timeout,
            port=args.port,
        )
    except ValueError as err:
        parser.error(str(err))
    print(f"aimcjax.distributed.launch: {result.message}", file=sys.stderr, flush=True)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
