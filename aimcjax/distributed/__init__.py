"""Communication-censored distributed SGD over JAX devices and hosts [CSGD].

A worker uploads its mini-batch gradient only when it differs enough from the one the server
already holds; the server applies any optax transformation to the mean of the held
gradients. Runs over ``jax.vmap`` (simulation), ``jax.pmap`` (local devices) or
``jax.shard_map`` over a mesh that may span hosts (:func:`initialize`, and
``python -m aimcjax.distributed.launch`` for local multi-process runs).

References:
  [CSGD] Li, Wu, Chen, Li, Ling. Communication-Censored Distributed Stochastic Gradient
  Descent. arXiv:1909.03631 (IEEE TNNLS 2021).
"""

from aimcjax.distributed.censor import CSGDState, censored_mean, csgd, threshold
from aimcjax.distributed.config import (
    CensorConfig,
    batch_mask,
    batch_size,
    padded_batch_size,
)
from aimcjax.distributed.multihost import initialize
from aimcjax.distributed.step import (
    StepMetrics,
    TrainStep,
    logical_bytes,
    make_train_step,
    split_among_workers,
    state_partition_specs,
)

__all__ = [
    "CSGDState",
    "CensorConfig",
    "StepMetrics",
    "TrainStep",
    "batch_mask",
    "batch_size",
    "censored_mean",
    "csgd",
    "initialize",
    "logical_bytes",
    "make_train_step",
    "padded_batch_size",
    "split_among_workers",
    "state_partition_specs",
    "threshold",
]
