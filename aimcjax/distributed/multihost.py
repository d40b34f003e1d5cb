"""Joining JAX's multi-process runtime: a thin layer over ``jax.distributed.initialize``.

On a cluster (GPU hosts, NCCL collectives) call :func:`initialize` with the coordinator's
address or with nothing on schedulers JAX detects itself (SLURM, Open MPI, Kubernetes
JobSet, Cloud TPU). Locally, ``python -m aimcjax.distributed.launch -n N`` starts N CPU
processes on 127.0.0.1 and passes their coordinates through the environment variables
below, which :func:`initialize` reads.
"""

from __future__ import annotations

import os

import jax

__all__ = [
    "ENV_COORDINATOR",
    "ENV_LOCAL_DEVICES",
    "ENV_NUM_PROCESSES",
    "ENV_PROCESS_ID",
    "initialize",
]

ENV_COORDINATOR = "AIMCJAX_COORDINATOR"
ENV_NUM_PROCESSES = "AIMCJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "AIMCJAX_PROCESS_ID"
ENV_LOCAL_DEVICES = "AIMCJAX_LOCAL_DEVICES"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an int, got {value!r}") from None


def _cluster_detected() -> bool:
    """Whether JAX's scheduler detection (SLURM, MPI, Kubernetes, TPU) finds a cluster."""
    try:
        from jax._src import clusters

        return any(env.is_env_present() for env in clusters.ClusterEnv._cluster_types)
    except (ImportError, AttributeError):  # private API moved: let JAX decide
        return True


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_cpu_devices: int | None = None,
    cpu_collectives: str = "gloo",
    timeout_s: int = 60,
    heartbeat_timeout_s: int = 30,
) -> None:
    """Connect this process to the others; afterwards ``jax.devices()`` lists all of them.

    Must run before anything else touches JAX's backends. Arguments left ``None`` are read
    from the launcher's environment (``AIMCJAX_COORDINATOR``, ``AIMCJAX_NUM_PROCESSES``,
    ``AIMCJAX_PROCESS_ID``, ``AIMCJAX_LOCAL_DEVICES``); with none of them set, JAX's own
    cluster auto-detection is used, and where it detects no cluster this is one process.
    A single process needs no coordinator and returns after configuring the CPU devices.

    Args:
      coordinator_address: ``host:port`` of process 0.
      num_processes: total number of processes.
      process_id: this process's rank in ``[0, num_processes)``.
      local_cpu_devices: number of CPU devices this process exposes (CPU runs only).
      cpu_collectives: CPU collectives implementation (``"gloo"``; GPUs use NCCL anyway).
      timeout_s: how long to wait for all processes to join before failing.
      heartbeat_timeout_s: after a peer stops answering for this long, the runtime aborts
        the survivors instead of leaving them blocked in a collective.

    Raises:
      ValueError: inconsistent arguments.
      RuntimeError: JAX's backends were initialised before this call.

    Example:
      In each process of a 4-process job (``rank`` its index)::

        initialize("10.0.0.1:1234", num_processes=4, process_id=rank)

      Inconsistent arguments fail before anything connects:

      >>> initialize("10.0.0.1:1234", num_processes=4, process_id=4)
      Traceback (most recent call last):
      ValueError: process_id must lie in [0, 4), got 4
    """
    coordinator_address = coordinator_address or os.environ.get(ENV_COORDINATOR)
    num_processes = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    if local_cpu_devices is None:
        local_cpu_devices = _env_int(ENV_LOCAL_DEVICES)
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must lie in [0, {num_processes}), got {process_id}")
    if local_cpu_devices is not None and local_cpu_devices < 1:
        raise ValueError(f"local_cpu_devices must be >= 1, got {local_cpu_devices}")
    for name, value in (("timeout_s", timeout_s), ("heartbeat_timeout_s", heartbeat_timeout_s)):
        if value <= 0:
            raise ValueError(f"{name} must be > 0, got {value}")

    from jax._src import xla_bridge  # backends cannot be reconfigured once created

    if xla_bridge.backends_are_initialized():
        raise RuntimeError(
            "aimcjax.distributed.initialize must be called before any JAX computation "
            "(JAX's backends are already initialised in this process)"
        )
    if local_cpu_devices is not None:
        jax.config.update("jax_num_cpu_devices", local_cpu_devices)
    if cpu_collectives is not None and "jax_cpu_collectives_implementation" in jax.config.values:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    if num_processes == 1:
        return
    nothing_given = coordinator_address is None and num_processes is None and process_id is None
    if nothing_given and not _cluster_detected():
        return  # nothing to join: a single process
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=int(timeout_s),
        heartbeat_timeout_seconds=int(heartbeat_timeout_s),
    )
    if os.environ.get(ENV_PROCESS_ID) is not None:  # started by aimcjax.distributed.launch
        from aimcjax.distributed.launch import exit_promptly_on_failure

        exit_promptly_on_failure()
