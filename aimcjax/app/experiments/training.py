"""Classifier training as one compiled program, and sweeps over devices x seeds via ``jax.vmap``.

A run is ``(TrainConfig, device, seed)``. The configuration is static (it fixes the program's
structure: model, algorithm, batch, epochs); the device (a pytree) and the seed are data, so
``jax.vmap`` over a stacked batch of devices and seeds trains a whole grid in one compiled
program. Algorithms differ in structure (state pytrees), so a sweep vmaps per algorithm.

One epoch is a jitted ``lax.scan`` over mini-batches; the Python loop over epochs only drives
the progress bar and the per-epoch metrics, and is the same for one run and for a sweep.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aimcjax import nn as analog_nn
from aimcjax.app.experiments import models as _models
from aimcjax.periphery import PeripheryConfig

__all__ = [
    "ALGORITHMS",
    "UPDATE_MODES",
    "TrainConfig",
    "Trainer",
    "build_optimizer",
    "get_trainer",
    "sweep",
    "train",
]

ALGORITHMS = (
    "digital",
    "analog-sgd",
    "tiki-taka",
    "residual",
    "residual-v2",
    "ttv2",
    "cttv2",
    "agad",
    "multi-tile",
    "mixed-precision",
)
UPDATE_MODES = ("pulse", "expected", "outer", "ideal")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static settings of a training run (hashable; everything that shapes the program).

    Attributes:
      model: "fcn" | "cnn" | "mlp".
      algorithm: one of :data:`ALGORITHMS`.
      epochs: epochs (>= 1).
      batch_size: mini-batch size.
      lr: learning rate (digital SGD and the analog gradient step alpha).
      transfer_lr: beta, the transfer rate of Tiki-Taka / residual learning / TTv2.
      gamma: residual learning's mixing weight of P in W + gamma P.
      lr_decay_epoch: the learning rate is halved from this epoch on (0 = never) [RF: 15 of 30].
      update: how analog writes become pulses ("pulse", "expected", "outer", "ideal").
      bl: maximal pulses per element and update.
      omega: weight-to-conductance mapping (aihwkit's weight_scaling_omega); 0 = off.
      train_size: use only the first ``train_size`` training samples (0 = all).
      periphery: the analog layers' periphery (forward reads; the backward reads use it without
        bound management, as aihwkit). Default: perfect (exact products). "digital" always
        computes exactly.
    """

    model: str = "fcn"
    algorithm: str = "digital"
    epochs: int = 10
    batch_size: int = 10
    lr: float = 0.1
    transfer_lr: float = 0.01
    gamma: float = 0.4
    lr_decay_epoch: int = 0
    update: str = "pulse"
    bl: int = 31
    omega: float = 0.0
    train_size: int = 0
    periphery: PeripheryConfig = PeripheryConfig.perfect()

    def __post_init__(self):
        if self.model not in _models.MODELS:
            raise ValueError(
                f"model must be one of {', '.join(_models.MODELS)}, got {self.model!r}"
            )
        if self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}"
            )
        if self.update not in UPDATE_MODES:
            raise ValueError(
                f"update must be one of {', '.join(UPDATE_MODES)}, got {self.update!r}"
            )
        for name in ("epochs", "batch_size", "bl"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        from aimcjax.pulse import MAX_BL

        if self.bl > MAX_BL:
            raise ValueError(f"bl must be <= {MAX_BL}, got {self.bl!r}")
        for name in ("lr_decay_epoch", "train_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        for name in ("lr", "transfer_lr"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if not (isinstance(self.gamma, (int, float)) and self.gamma >= 0):
            raise ValueError(f"gamma must be >= 0, got {self.gamma!r}")
        if not (isinstance(self.omega, (int, float)) and 0 <= self.omega <= 1):
            raise ValueError(f"omega must be in [0, 1], got {self.omega!r}")
        if not isinstance(self.periphery, PeripheryConfig):
            raise TypeError(
                f"periphery must be an aimcjax.periphery.PeripheryConfig, "
                f"got {type(self.periphery).__name__}"
            )

    @property
    def analog(self) -> bool:
        return self.algorithm != "digital"


def _schedule(cfg: TrainConfig, steps_per_epoch: int, lr: float):
    if cfg.lr_decay_epoch and cfg.lr_decay_epoch < cfg.epochs:
        return optax.piecewise_constant_schedule(lr, {cfg.lr_decay_epoch * steps_per_epoch: 0.5})
    return lr


def build_optimizer(cfg: TrainConfig, device, key, mask, steps_per_epoch: int):
    """The optax transformation of ``cfg.algorithm`` on ``device`` (tiles sampled from ``key``).

    Args:
      cfg: the run's :class:`TrainConfig`.
      device: an :mod:`aimcjax.devices` device (ignored by "digital").
      key: PRNG key for the tiles' device-to-device variation.
      mask: pytree of bools, True on analog leaves (or a callable params -> such a tree).
      steps_per_epoch: for the learning-rate schedule.

    Returns:
      An ``optax.GradientTransformationExtraArgs``.
    """
    lr = _schedule(cfg, steps_per_epoch, cfg.lr)
    if cfg.algorithm == "digital":
        return optax.with_extra_args_support(optax.sgd(lr))
    from aimcjax import optim
    from aimcjax.pulse import UpdateConfig

    update = UpdateConfig(mode=cfg.update, bl=cfg.bl)
    common = dict(device=device, update=update, key=key, mask=mask)
    if cfg.algorithm == "analog-sgd":
        return optim.analog_sgd(lr, **common)
    transfer_lr = cfg.transfer_lr
    if cfg.algorithm == "tiki-taka":
        return optim.tiki_taka(lr, transfer_lr, **common)
    if cfg.algorithm == "ttv2":
        return optim.ttv2(lr, transfer_lr, **common)
    if cfg.algorithm == "cttv2":
        return optim.chopped_ttv2(lr, transfer_lr, gamma=cfg.gamma, **common)
    if cfg.algorithm == "agad":
        return optim.agad(lr, transfer_lr, **common)
    if cfg.algorithm == "multi-tile":
        return optim.multi_tile_residual(lr, transfer_lr, gamma=cfg.gamma, **common)
    if cfg.algorithm == "mixed-precision":
        return optim.mixed_precision(lr, device, key=key, mask=mask)
    version = 2 if cfg.algorithm == "residual-v2" else 1
    return optim.residual_learning(lr, transfer_lr, gamma=cfg.gamma, version=version, **common)


def _device_w_max(device):
    return jnp.asarray(1.0 if device is None else device.w_max, jnp.float32)


class Trainer:
    """The compiled pieces of one configuration on one dataset.

    ``init(device, seed) -> carry`` and ``epoch(carry, epoch_index) -> (carry, metrics)`` are
    pure; ``jax.vmap`` of both over (device, seed) trains a batch of runs in one program.
    The model is a :class:`aimcjax.app.experiments.models.Classifier` of :mod:`aimcjax.nn` layers;
    each step takes the loss, gradients and per-sample factors from
    :func:`aimcjax.nn.grad_and_factors` and hands them to the :mod:`aimcjax.optim`
    transformation. The carry is ``(params, opt_state, constants, key)``, ``constants`` being
    the layers' fixed output scales (empty without weight-to-conductance mapping).

    Args:
      cfg: :class:`TrainConfig`.
      data: an :class:`aimcjax.app.data.Dataset` (images (N, H, W, C)).
    """

    def __init__(self, cfg: TrainConfig, data):
        self.cfg = cfg
        x_train, y_train = data.x_train, data.y_train
        if cfg.train_size:
            x_train, y_train = x_train[: cfg.train_size], y_train[: cfg.train_size]
        if len(x_train) < cfg.batch_size:
            raise ValueError(
                f"batch_size {cfg.batch_size} exceeds the {len(x_train)} training samples"
            )
        self.x_train = jnp.asarray(x_train)
        self.y_train = jnp.asarray(y_train)
        self.x_test = jnp.asarray(data.x_test)
        self.y_test = jnp.asarray(data.y_test)
        # Digital SGD is the floating-point reference: exact products, no conductance mapping.
        forward = cfg.periphery if cfg.analog else PeripheryConfig.perfect()
        self.model = _models.get(
            cfg.model,
            data.x_train.shape[1:],
            data.num_classes,
            forward=forward,
            omega=cfg.omega if cfg.analog else None,
        )
        self.noisy = not (self.model.forward.is_perfect and self.model.backward.is_perfect)
        self.steps_per_epoch = len(x_train) // cfg.batch_size
        self.outer = cfg.analog and cfg.update == "outer"

    # -- the program -------------------------------------------------------------------------
    def _optimizer(self, device, key):
        return build_optimizer(self.cfg, device, key, _models.analog_kernels, self.steps_per_epoch)

    def _rngs(self, key):
        return {"periphery": key} if self.noisy else None

    def init(self, device, seed):
        """Initial (params, opt_state, constants, key) of one run."""
        key = jax.random.PRNGKey(seed)
        k_params, k_tiles, k_run = jax.random.split(key, 3)
        variables = self.model.init(k_params, self.x_train[:1])
        variables = _models.to_device_range(variables, _device_w_max(device))
        params = variables["params"]
        constants = {k: v for k, v in variables.items() if k != "params"}
        opt = self._optimizer(device, k_tiles)
        return params, opt.init(params), constants, k_run

    def _step(self, device, carry, batch):
        params, state, constants, key = carry
        x, y, k_step = batch
        loss, grads, factors = analog_nn.grad_and_factors(
            self.model,
            lambda logits: _models.cross_entropy(logits, y),
            {"params": params, **constants},
            x,
            rngs=self._rngs(k_step),
        )
        opt = self._optimizer(device, k_step)  # same structure; the state carries the tiles
        if self.outer:
            updates, state = opt.update(grads, state, params, factors=factors)
        else:
            updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        return (params, state, constants, key), loss

    def start(self, device, seed):
        """Initial carry of one run and its test metrics before training."""
        carry = self.init(device, seed)
        return carry, self.evaluate(carry[0], carry[2], jax.random.fold_in(carry[3], 0))

    def evaluate(self, params, constants, key):
        """Test loss and accuracy, the network read through its periphery (noise from ``key``)."""
        # The test images are constants of the program; the barrier keeps XLA from folding the
        # periphery's input management over them at compile time (seconds, and a warning).
        x_test = jax.lax.optimization_barrier(self.x_test)
        logits = self.model.apply({"params": params, **constants}, x_test, rngs=self._rngs(key))
        acc = jnp.mean(jnp.argmax(logits, -1) == self.y_test)
        return _models.cross_entropy(logits, self.y_test), acc

    def epoch(self, device, carry):
        """One epoch: a seeded shuffle, a scan over mini-batches, then the test metrics."""
        params, state, constants, key = carry
        key, k_perm, k_steps, k_eval = jax.random.split(key, 4)
        b, s = self.cfg.batch_size, self.steps_per_epoch
        perm = jax.random.permutation(k_perm, self.x_train.shape[0])[: s * b].reshape(s, b)
        batches = (self.x_train[perm], self.y_train[perm], jax.random.split(k_steps, s))
        step = lambda c, xs: self._step(device, c, xs)
        (params, state, constants, _), losses = jax.lax.scan(
            step, (params, state, constants, key), batches
        )
        test_loss, test_acc = self.evaluate(params, constants, k_eval)
        metrics = {"train_loss": jnp.mean(losses), "test_loss": test_loss, "test_acc": test_acc}
        return (params, state, constants, key), metrics


def _progress(total, desc, quiet):
    if quiet:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is optional
        return None
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def _compiled(trainer: Trainer, vmapped: bool):
    """(start, epoch) jitted once per trainer (and vmapped for batches of runs)."""
    cache = trainer.__dict__.setdefault("_compiled", {})
    if vmapped not in cache:
        wrap = jax.vmap if vmapped else (lambda f: f)
        cache[vmapped] = (jax.jit(wrap(trainer.start)), jax.jit(wrap(trainer.epoch)))
    return cache[vmapped]


_TRAINERS: dict = {}


def get_trainer(cfg: TrainConfig, data) -> Trainer:
    """The :class:`Trainer` of ``(cfg, data)``, reused so that its programs compile once."""
    key = (cfg, id(data))
    hit = _TRAINERS.get(key)
    if hit is None or hit[0] is not data:
        if len(_TRAINERS) > 16:
            _TRAINERS.clear()
        hit = _TRAINERS[key] = (data, Trainer(cfg, data))
    return hit[1]


def _run_batch(
    trainer, devices, seeds, vmapped: bool, on_epoch=None, desc="train", quiet=True, checkpoint=None
):
    """Train runs (stacked devices and seeds when ``vmapped``) and return per-epoch metrics.

    ``checkpoint``: an :class:`aimcjax.app.experiments.output.CheckpointStage` (or None): the
    carry is saved after every epoch, and a loop that had been interrupted continues from its
    last saved epoch (one that had finished returns its saved history at once)."""
    if checkpoint is not None:
        done = checkpoint.finished()
        if done is not None:
            return done
    start, epoch = _compiled(trainer, vmapped)
    carry, (loss0, acc0) = start(devices, seeds)
    history = [
        {
            "train_loss": np.nan * np.asarray(loss0),
            "test_loss": np.asarray(loss0),
            "test_acc": np.asarray(acc0),
        }
    ]
    first = 0
    if checkpoint is not None:
        saved = checkpoint.restore(carry)
        if saved is not None:
            first, carry, history = saved
    bar = _progress(trainer.cfg.epochs, desc, quiet)
    if bar is not None and first:
        bar.update(first)
    for e in range(first, trainer.cfg.epochs):
        carry, m = epoch(devices, carry)
        m = jax.tree.map(np.asarray, m)
        history.append(m)
        if checkpoint is not None:
            checkpoint.save(e + 1, carry, history)
        if on_epoch is not None:
            on_epoch(e + 1, m)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(acc=f"{np.mean(m['test_acc']):.3f}")
    if bar is not None:
        bar.close()
    result = {k: np.stack([h[k] for h in history], axis=-1) for k in history[0]}
    if checkpoint is not None:
        checkpoint.finish(result)
    return result


def train(cfg: TrainConfig, data, device=None, seed: int = 0, on_epoch=None, quiet=True):
    """Train one run.

    Args:
      cfg: :class:`TrainConfig`.
      data: an :class:`aimcjax.app.data.Dataset`.
      device: the analog device (None for "digital").
      seed: seed of initial weights, tiles, shuffling and pulses.
      on_epoch: optional ``f(epoch, metrics)`` called after every epoch.
      quiet: no progress bar.

    Returns:
      Dict of numpy arrays of length ``epochs + 1`` (index 0 = before training):
      ``train_loss`` (NaN at 0), ``test_loss``, ``test_acc``.

    Example:
      >>> from aimcjax.app import data
      >>> h = train(TrainConfig(model="mlp", epochs=2), data.flatten(data.load("digits")))
    """
    if cfg.analog and device is None:
        raise ValueError(f"algorithm {cfg.algorithm!r} needs a device")
    trainer = get_trainer(cfg, data)
    return _run_batch(
        trainer, device, jnp.asarray(seed, jnp.uint32), False, on_epoch, cfg.algorithm, quiet
    )


def sweep(
    cfg: TrainConfig,
    data,
    devices,
    seeds,
    chunk_size: int = 0,
    on_epoch=None,
    quiet=True,
    checkpoints=None,
):
    """Train every (device, seed) pair of one algorithm in one vmapped program.

    Args:
      cfg: :class:`TrainConfig` shared by all runs.
      data: an :class:`aimcjax.app.data.Dataset`.
      devices: list of devices of one family (or None entries for "digital"), one per run.
      seeds: list of int seeds, one per run (same length as ``devices``).
      chunk_size: runs per compiled batch (0 = all at once); bounds memory.
      on_epoch: optional ``f(epoch, metrics)`` with metrics of the current chunk.
      quiet: no progress bar.
      checkpoints: optional :class:`aimcjax.app.experiments.output.RunCheckpoints`: every chunk
        saves its state after each epoch and resumes from it (see
        :meth:`aimcjax.app.experiments.output.OutputDir.checkpoints`).

    Returns:
      Dict of numpy arrays shaped (runs, epochs + 1), as :func:`train`.
    """
    from aimcjax import devices as _dev

    devices, seeds = list(devices), [int(s) for s in seeds]
    if len(devices) != len(seeds):
        raise ValueError(f"devices ({len(devices)}) and seeds ({len(seeds)}) differ in length")
    if not devices:
        raise ValueError("a sweep needs at least one run")
    if cfg.analog and any(d is None for d in devices):
        raise ValueError(f"algorithm {cfg.algorithm!r} needs a device for every run")
    if chunk_size < 0:
        raise ValueError(f"chunk_size must be >= 0, got {chunk_size}")
    chunk = chunk_size or len(devices)
    trainer = get_trainer(cfg, data)
    out = []
    for start in range(0, len(devices), chunk):
        ds = devices[start : start + chunk]
        ss = jnp.asarray(seeds[start : start + chunk], jnp.uint32)
        stacked = None if ds[0] is None else _dev.stack(ds)
        stage = None if checkpoints is None else checkpoints.stage(f"{cfg.algorithm}-{start}")
        if stacked is None:
            # "digital" ignores the device: vmap over seeds only.
            trainer_fn = _run_batch(
                _digital_adapter(trainer),
                ss,
                ss,
                True,
                on_epoch,
                f"{cfg.algorithm} {start + len(ds)}/{len(devices)}",
                quiet,
                stage,
            )
        else:
            trainer_fn = _run_batch(
                trainer,
                stacked,
                ss,
                True,
                on_epoch,
                f"{cfg.algorithm} {start + len(ds)}/{len(devices)}",
                quiet,
                stage,
            )
        out.append(trainer_fn)
    return {k: np.concatenate([o[k] for o in out]) for k in out[0]}


def _digital_adapter(trainer):
    adapter = trainer.__dict__.get("_digital_adapter")
    if adapter is None:
        adapter = trainer.__dict__["_digital_adapter"] = _DigitalAdapter(trainer)
    return adapter


class _DigitalAdapter:
    """Feeds a placeholder in place of the device so vmap has an axis to map."""

    def __init__(self, trainer):
        self.cfg = trainer.cfg
        self._t = trainer

    def start(self, _placeholder, seed):
        return self._t.start(None, seed)

    def epoch(self, _placeholder, carry):
        return self._t.epoch(None, carry)
