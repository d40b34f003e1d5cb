"""The ``aimcjax`` command (also ``python -m aimcjax``).

Subcommands::

    aimcjax train      train classifiers (several algorithms give a comparison table)
    aimcjax sweep      a grid over device parameters x algorithms x seeds, vmapped
    aimcjax reproduce  the paper experiments as named recipes
    aimcjax csgd       the communication-censored distributed experiments
    aimcjax devices    list device families/presets, plot response curves
    aimcjax fit        fit device models to measured pulse-response traces (device.json)

Every subcommand takes ``--out DIR`` (``config.json``, ``metrics.jsonl``, ``summary.json``,
PNG plots), ``--quiet`` and ``--config DIR/config.json`` (rerun a run exactly). Bad input exits
with status 2 and one line on stderr (set ``AIMCJAX_DEBUG=1`` for the traceback).

The run folder is safe: a run writes into ``DIR.partial`` and moves it to ``DIR`` when it has
finished; a non-empty ``DIR`` is refused unless ``--overwrite`` is given (and then replaced only
at the end), so a failed or interrupted run never damages an earlier one. Training saves an
orbax checkpoint after every epoch; after Ctrl-C (exit status 130) ``--resume DIR`` continues
the run from its last epoch and ends with the same files, byte for byte, as an uninterrupted run.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time

__all__ = ["build_parser", "main"]

CONFIG_VERSION = 1


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line (no usage dump)."""

    def error(self, message):
        raise CLIError(f"{self.prog}: error: {message} (see {self.prog} --help)")


# -- argument types ------------------------------------------------------------------------------


def _checked(cast, expected: str, valid, requirement: str):
    """An argparse type: ``cast`` the text (else "expected ..."), then check ``valid``."""

    def parse(text):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not valid(v):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return v

    return parse


_positive_int = _checked(int, "a positive integer", lambda v: v >= 1, ">= 1")
_nonneg_int = _checked(int, "an integer >= 0", lambda v: v >= 0, ">= 0")
_positive_float = _checked(
    float, "a positive number", lambda v: 0 < v < float("inf"), "a finite number > 0"
)
_nonneg_float = _checked(
    float, "a number >= 0", lambda v: 0 <= v < float("inf"), "a finite number >= 0"
)


def _overrides(text):
    """``epochs=1,taus=0.6/0.8`` -> {"epochs": 1, "taus": (0.6, 0.8)}."""

    def number(v):
        v = v.strip()
        for cast in (int, float):
            try:
                return cast(v)
            except ValueError:
                pass
        return v

    out = {}
    for item in text.split(","):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise argparse.ArgumentTypeError(f"expected name=value, got {item.strip()!r}")
        out[name] = tuple(number(v) for v in value.split("/")) if "/" in value else number(value)
    return out


def _lr_map(text):
    """``0.05`` or ``digital=0.1,analog-sgd=0.05``."""
    from aimcjax.app.experiments.training import ALGORITHMS

    if "=" not in text:
        return {"*": _positive_float(text)}
    out = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in ALGORITHMS:
            raise argparse.ArgumentTypeError(f"unknown algorithm {name!r} in --lr")
        out[name] = _positive_float(value)
    return out


# -- parser --------------------------------------------------------------------------------------


def _common(p, seeds=True):
    p.add_argument(
        "--out",
        metavar="DIR",
        help="write config.json, metrics.jsonl, summary.json and plots here "
        "(written to DIR.partial, moved into place when done)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out folder (only once the new run has finished)",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the interrupted run whose --out was DIR (same settings, from its last epoch)",
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="rerun from a config.json written by --out (flags given now override it)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars, only the result table")
    if seeds:
        p.add_argument(
            "--seeds",
            type=_nonneg_int,
            nargs="+",
            default=[0],
            metavar="S",
            help="seeds (each run repeated per seed; tables show mean ± std)",
        )


def _training_args(p, algorithms_default):
    from aimcjax.app.data import EMBEDDED
    from aimcjax.app.experiments.models import MODELS
    from aimcjax.app.experiments.training import ALGORITHMS, UPDATE_MODES

    p.add_argument(
        "--dataset",
        default="mnist5k",
        help=f"embedded: {', '.join(EMBEDDED)}; with --data-path: mnist, fashion-mnist, cifar10, cifar100",
    )
    p.add_argument(
        "--data-path",
        metavar="PATH",
        help="your copy of the dataset (IDX folder, mnist.npz, CIFAR pickles)",
    )
    p.add_argument(
        "--model",
        choices=MODELS,
        default="fcn",
        help="fcn 784-256-128-10 sigmoid, cnn 2x conv5x5 + pool (tanh), mlp one hidden layer",
    )
    p.add_argument(
        "--algorithm",
        "--algorithms",
        dest="algorithms",
        nargs="+",
        choices=ALGORITHMS,
        default=algorithms_default,
        metavar="ALG",
        help=f"one or more of {', '.join(ALGORITHMS)}",
    )
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--batch-size", type=_positive_int, default=10)
    p.add_argument(
        "--lr",
        type=_lr_map,
        default=None,
        metavar="LR",
        help="learning rate for all algorithms, or per algorithm 'digital=0.1,residual=0.05' "
        "(default: digital 0.1, analog 0.05 as RF)",
    )
    p.add_argument(
        "--transfer-lr", type=_positive_float, default=0.01, help="beta of TT/RL/TTv2 (RF: 0.01)"
    )
    p.add_argument(
        "--gamma", type=_nonneg_float, default=0.4, help="residual learning's gamma in W + gamma P"
    )
    p.add_argument(
        "--lr-decay-epoch",
        type=_nonneg_int,
        default=0,
        help="halve the learning rate from this epoch on (RF: 15 of 30; 0 = never)",
    )
    p.add_argument(
        "--update",
        choices=UPDATE_MODES,
        default="pulse",
        help="how analog writes become pulses (outer = aihwkit's rank-1 pulse trains)",
    )
    p.add_argument("--bl", type=_positive_int, default=31, help="max pulses per element and update")
    p.add_argument(
        "--omega",
        type=_nonneg_float,
        default=0.0,
        help="weight-to-conductance scaling as aihwkit's weight_scaling_omega (0 = off)",
    )
    p.add_argument(
        "--train-size",
        type=_nonneg_int,
        default=0,
        help="use only this many training samples (0 = all)",
    )
    p.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="zero-mean unit-variance inputs (train statistics); see docs for why",
    )
    p.add_argument(
        "--chunk-size",
        type=_nonneg_int,
        default=0,
        help="runs per compiled vmapped batch (0 = all of an algorithm at once)",
    )
    _periphery_arg(p, "perfect")


def _periphery_arg(p, default):
    from aimcjax.periphery import PRESETS

    p.add_argument(
        "--periphery",
        default=default,
        metavar="SPEC",
        help=f"analog MVM periphery: a preset ({', '.join(PRESETS)}; default = RF Table 4 "
        "= aihwkit IOParameters) with overrides, e.g. 'default:out_noise=0.1,inp_bits=8'"
        + (f" (default: {default})" if default else " (default: perfect; 'default' with --full)"),
    )


def _help_text(text: str) -> str:
    """argparse %-formats help strings: a literal '%' (e.g. "10% test error") must be doubled."""
    return text.replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``aimcjax`` command."""
    from aimcjax import __version__
    from aimcjax.app.experiments import RECIPES

    parser = _Parser(prog="aimcjax", description="Analog in-memory training, simulated in JAX.")
    parser.add_argument("--version", action="version", version=f"aimcjax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "train", help="train classifiers; several algorithms give a comparison table"
    )
    _training_args(p, ["digital"])
    p.add_argument(
        "--device",
        default="power:gamma=1,tau=0.6",
        help="device spec, e.g. 'power:gamma=1,tau=0.6,dw_min=1e-3' or a preset name",
    )
    _common(p)

    p = sub.add_parser(
        "sweep", help="device-parameter grid x algorithms x seeds in one vmapped program"
    )
    _training_args(p, ["analog-sgd"])
    p.add_argument(
        "--device",
        default="power:gamma=0.5/1/2,tau=0.6",
        help="grid spec: values separated by '/', e.g. 'power:gamma=0.5/1/2,tau=0.6/0.7/0.8'",
    )
    _common(p)

    p = sub.add_parser("reproduce", help="paper experiments as named recipes")
    p.add_argument(
        "name",
        nargs="?",
        choices=list(RECIPES),
        metavar="NAME",
        help=_help_text("; ".join(f"{k}: {v[2]}" for k, v in RECIPES.items())),
    )
    p.add_argument("--full", action="store_true", help="the paper's scale (hours on CPU)")
    p.add_argument("--list", action="store_true", help="list the recipes")
    p.add_argument(
        "--data-path",
        metavar="PATH",
        help="full MNIST (IDX folder or mnist.npz) for the MNIST recipes",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        type=_overrides,
        default={},
        metavar="K=V,...",
        help="override recipe settings, e.g. 'epochs=1,train_size=200,gammas=1/2' ('/' separates list items)",
    )
    _periphery_arg(p, None)
    _common(p, seeds=False)
    p.add_argument("--seed", type=_nonneg_int, default=0)

    p = sub.add_parser("csgd", help="communication-censored distributed SGD experiments")
    p.add_argument("experiment", nargs="?", choices=["ls", "mnist"], default="ls")
    p.add_argument(
        "--simulate",
        type=_positive_int,
        metavar="N",
        help="simulate N workers on CPU (else one worker per visible device)",
    )
    p.add_argument("--iterations", type=_positive_int, default=None)
    p.add_argument("--full", action="store_true")
    _common(p, seeds=False)
    p.add_argument("--seed", type=_nonneg_int, default=0)

    _fit_parser(sub)

    p = sub.add_parser(
        "devices", help="list families and presets; plot response curves, F/G, symmetric points"
    )
    p.add_argument(
        "specs", nargs="*", metavar="SPEC", help="devices to plot (specs or preset names)"
    )
    p.add_argument(
        "--pulse-response",
        action="store_true",
        help="also simulate up/down pulse trains on a small tile and plot weight vs pulse "
        "number (mean and spread over elements and seeds) and the step statistics "
        "dw vs w, as aihwkit's plot_device (needs --out)",
    )
    p.add_argument(
        "--cycles", type=_positive_int, default=3, help="up/down cycles of --pulse-response"
    )
    p.add_argument(
        "--pulses",
        type=_positive_int,
        default=0,
        help="pulses per half cycle (0 = enough to cross the device's range)",
    )
    p.add_argument(
        "--elements", type=_positive_int, default=64, help="elements per tile of --pulse-response"
    )
    p.add_argument(
        "--seeds",
        type=_nonneg_int,
        nargs="+",
        default=[0, 1, 2],
        metavar="S",
        help="seeds of --pulse-response (one tile with its d2d variation per seed)",
    )
    _common(p, seeds=False)
    return parser


def _fit_parser(sub):
    from aimcjax.devices import NOISE_MODES
    from aimcjax.fit.select import CRITERIA, DEFAULT_FAMILIES

    p = sub.add_parser(
        "fit",
        help="fit device models to pulse-response traces; writes device.json for --device @FILE",
    )
    p.add_argument(
        "traces",
        metavar="TRACES",
        help="CSV or NPZ traces (layout: aimcjax.fit.traces), or 'example' for the embedded example",
    )
    p.add_argument(
        "--families",
        nargs="+",
        default=list(DEFAULT_FAMILIES),
        metavar="FAMILY",
        help="candidates: constant, softbounds, power, exp, expstep, piecewiseN (N nodes)",
    )
    p.add_argument(
        "--noise",
        nargs="+",
        choices=NOISE_MODES,
        default=list(NOISE_MODES),
        help="cycle-to-cycle noise models to try",
    )
    p.add_argument(
        "--criterion", choices=CRITERIA, default="bic", help="model choice (default: BIC)"
    )
    p.add_argument(
        "--max-iter", type=_positive_int, default=100, help="Fisher-scoring steps per candidate"
    )
    p.add_argument(
        "--screen",
        type=_checked(int, "an integer", lambda v: v == 0 or v >= 2, "0 or >= 2"),
        default=128,
        metavar="N",
        help="with more than N devices, rank every candidate on N evenly spaced devices and "
        "refit the 2 best (plus their SoftBounds warm start) to all; 0: every candidate on "
        "every device (default: 128)",
    )
    _common(p, seeds=False)
    p.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the simulated overlay")


_NOT_SAVED = {"out", "config", "quiet", "command", "list", "overwrite", "resume"}


def _resume_config(args):
    """The config.json of the interrupted run ``--resume DIR`` continues."""
    from aimcjax.app.experiments.output import OutputDir, partial_path

    if args.config:
        raise CLIError(
            "--resume takes the interrupted run's own settings; do not combine it with --config"
        )
    if args.out and os.path.abspath(args.out) != os.path.abspath(args.resume):
        raise CLIError(f"--resume {args.resume} writes to that folder; --out {args.out} differs")
    path = os.path.join(partial_path(args.resume), "config.json")
    if not os.path.isfile(path):
        OutputDir(args.resume, resume=True)  # raises the reason (finished, or nothing there)
        raise CLIError(f"--resume: {path} is missing (the run was interrupted before it started)")
    return path


def _apply_config(parser, argv):
    """Reparse ``argv`` with a saved config's values as defaults (explicit flags still win)."""
    args = parser.parse_args(argv)
    resume = getattr(args, "resume", None)
    if not getattr(args, "config", None) and not resume:
        return args
    path = _resume_config(args) if resume else args.config
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    try:
        with open(path) as f:
            saved = json.load(f)
    except FileNotFoundError:
        raise CLIError(
            f"--config: no such file {path!r} (expected a config.json written by --out)"
        ) from None
    except (OSError, json.JSONDecodeError) as e:
        raise CLIError(f"--config: cannot read {path!r} as JSON ({e})") from None
    if not isinstance(saved, dict) or "command" not in saved or "args" not in saved:
        raise CLIError(f"--config: {path!r} is not an aimcjax config.json (no 'command'/'args')")
    if saved["command"] != args.command:
        raise CLIError(
            f"--config: {path!r} is a config of 'aimcjax {saved['command']}', "
            f"not of 'aimcjax {args.command}'"
        )
    subparser = _subparsers(parser)[args.command]
    known = {a.dest for a in subparser._actions}
    unknown = sorted(set(saved["args"]) - known)
    if unknown:
        raise CLIError(f"--config: {path!r} has unknown settings {', '.join(unknown)}")
    # Positional arguments are not overridden by defaults once given; saved values go in.
    defaults = dict(saved["args"])
    subparser.set_defaults(**defaults)
    args = parser.parse_args(argv)
    if resume:
        from aimcjax.app.experiments.output import to_jsonable

        now = to_jsonable(_saved_args(args))
        changed = sorted(
            k for k in set(now) | set(saved["args"]) if now.get(k) != saved["args"].get(k)
        )
        if changed:
            raise CLIError(
                f"--resume continues the interrupted run with its own settings; "
                f"{', '.join(changed)} differ from it"
            )
        args.out = resume
    return args


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    raise AssertionError("no subcommands")


def _saved_args(args) -> dict:
    return {k: v for k, v in vars(args).items() if k not in _NOT_SAVED}


# -- subcommands ---------------------------------------------------------------------------------


def _dataset(args):
    from aimcjax.app.data import EMBEDDED

    if args.data_path is None and args.dataset not in EMBEDDED:
        raise CLIError(
            f"--dataset {args.dataset} is read from your own files: give --data-path PATH "
            f"(embedded datasets: {', '.join(EMBEDDED)})"
        )
    return _load_dataset(args.dataset, args.data_path, args.standardize)


@functools.lru_cache(maxsize=4)
def _load_dataset(name, path, standardize):
    # Cached: one object per dataset lets repeated runs in a process reuse compiled programs.
    from aimcjax.app import data

    ds = data.load(name, path)
    return data.standardize(ds) if standardize else ds


def _base_config(args):
    from aimcjax.app import specs
    from aimcjax.app.experiments.training import TrainConfig

    return TrainConfig(
        model=args.model,
        algorithm=args.algorithms[0],
        epochs=args.epochs,
        batch_size=args.batch_size,
        transfer_lr=args.transfer_lr,
        gamma=args.gamma,
        lr_decay_epoch=args.lr_decay_epoch,
        update=args.update,
        bl=args.bl,
        omega=args.omega,
        train_size=args.train_size,
        periphery=specs.parse_periphery(args.periphery),
    )


def _lrs(args):
    if not args.lr:
        return {}
    if "*" in args.lr:
        return dict.fromkeys(args.algorithms, args.lr["*"])
    return dict(args.lr)


def _run_training(args, out, grid, title):
    from aimcjax.app.experiments import sweep

    base = _base_config(args)
    ds = _dataset(args)
    if not args.quiet:
        print(
            f"{args.dataset}: {len(ds.x_train)} train / {len(ds.x_test)} test; model {args.model}; "
            f"{len(grid)} device(s) x {len(args.seeds)} seed(s); algorithms {', '.join(args.algorithms)}; "
            f"periphery {args.periphery}"
        )
    summary, _timings = sweep.run_grid(
        base,
        args.algorithms,
        grid,
        args.seeds,
        ds,
        out,
        lrs=_lrs(args),
        chunk_size=args.chunk_size,
        quiet=args.quiet,
        echo=(lambda *_: None) if args.quiet else print,
    )
    print(sweep.format_table(summary["table"]))
    sweep.plot_curves(summary, out, title=title)
    return summary


def cmd_train(args, out):
    from aimcjax.app import specs

    device = specs.parse(args.device)
    return _run_training(
        args, out, [({}, device)], f"{args.model} on {args.dataset}, {args.device}"
    )


def cmd_sweep(args, out):
    from aimcjax.app import specs

    grid = specs.parse_grid(args.device)
    return _run_training(args, out, grid, f"sweep {args.device}")


def cmd_reproduce(args, out):
    from aimcjax.app.experiments import RECIPES, get_recipe

    if args.list or not args.name:
        for name, (_, _, desc) in RECIPES.items():
            print(f"{name:18s} {desc}")
        if not args.name:
            return None
    recipe = get_recipe(args.name)
    extra = {"data_path": args.data_path} if args.data_path else {}
    if args.periphery is not None:
        from aimcjax.app import specs

        specs.parse_periphery(args.periphery)  # a bad spec fails before the recipe starts
        extra["periphery"] = args.periphery
    # --set seed=N is the same as --seed N (the README's spelling); --set wins if both are given.
    settings = {"seed": args.seed, **extra, **_checked_overrides(args.overrides or {})}
    try:
        return recipe(full=args.full, out=out, quiet=args.quiet, **settings)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise CLIError(
                f"aimcjax reproduce: error: {args.name} does not take that setting ({e})"
            ) from None
        raise


# Recipe settings that count something: an integer >= the minimum (0 must not fall back to a
# default, a negative count must not reach a compiled loop).
_COUNT_SETTINGS = {
    "steps": 1,
    "epochs": 1,
    "iterations": 1,
    "seeds": 1,
    "train_size": 0,
    "chunk_size": 0,
    "num_workers": 1,
    "workers": 1,
    "dim": 1,
    "window": 1,
    "batch_size": 1,
}


def _checked_overrides(overrides: dict) -> dict:
    """``--set`` values: numbers finite, counts integers within range; else one-line errors."""
    for name, value in overrides.items():
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, float) and not math.isfinite(v):
                raise CLIError(f"--set {name}: expected a finite number, got {v}")
            if name in _COUNT_SETTINGS:
                least = _COUNT_SETTINGS[name]
                if not isinstance(v, int) or v < least:
                    raise CLIError(f"--set {name}: expected an integer >= {least}, got {v!r}")
    return overrides


def cmd_csgd(args, out):
    from aimcjax.app.experiments import get_recipe

    recipe = get_recipe("csgd-ls" if args.experiment == "ls" else "csgd-mnist")
    return recipe(
        full=args.full,
        seed=args.seed,
        out=out,
        quiet=args.quiet,
        simulate=args.simulate,
        iterations=args.iterations,
    )


def cmd_devices(args, out):
    from aimcjax.app.experiments import device_report

    if args.pulse_response:
        if not args.specs:
            raise CLIError("aimcjax devices: error: --pulse-response needs at least one SPEC")
        if out.path is None:
            raise CLIError(
                "aimcjax devices: error: --pulse-response draws a figure: give --out DIR"
            )
    summary = device_report.run(args.specs, out)
    if args.pulse_response:
        from aimcjax.app.experiments import pulse_response

        summary = {
            "devices": summary,
            "pulse_response": pulse_response.run(
                args.specs,
                out,
                cycles=args.cycles,
                pulses=args.pulses or None,
                elements=args.elements,
                seeds=args.seeds,
                echo=(lambda *_: None) if args.quiet else print,
            ),
        }
    return summary


def cmd_fit(args, out):
    from aimcjax.fit import cli_fit

    return cli_fit.run(
        args.traces,
        out,
        families=args.families,
        noises=args.noise,
        criterion=args.criterion,
        max_iter=args.max_iter,
        screen=args.screen or None,
        seed=args.seed,
        quiet=args.quiet,
    )


COMMANDS = {
    "train": cmd_train,
    "sweep": cmd_sweep,
    "reproduce": cmd_reproduce,
    "csgd": cmd_csgd,
    "devices": cmd_devices,
    "fit": cmd_fit,
}


def _compilation_cache():
    """Keep compiled XLA programs across invocations (reruns and sweeps skip most compile time).

    ``AIMCJAX_CACHE_DIR`` chooses the folder (default ``~/.cache/aimcjax/xla``); set it to an
    empty string to disable.
    """
    path = os.environ.get(
        "AIMCJAX_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "aimcjax", "xla")
    )
    if not path:
        return
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return  # an unwritable cache only costs time
    import jax

    if jax.config.jax_compilation_cache_dir is None:
        jax.config.update("jax_compilation_cache_dir", path)


def _require_plots():
    """--out writes PNG plots: without matplotlib say so in one line before any work is done."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError(
            "aimcjax: error: --out writes PNG plots and needs matplotlib: "
            "pip install 'aimcjax[plots]' (or run without --out)"
        ) from None


def run(argv=None):
    """Parse ``argv`` and run; raises on errors (see :func:`main` for the exit-status wrapper)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    _compilation_cache()
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _apply_config(parser, argv)
    if getattr(args, "out", None):
        _require_plots()
    from aimcjax.app.experiments.output import OutputDir

    out = OutputDir(args.out, overwrite=args.overwrite, resume=bool(args.resume))
    t0 = time.perf_counter()
    try:
        out.write_json(
            "config.json",
            {"command": args.command, "version": CONFIG_VERSION, "args": _saved_args(args)},
        )
        summary = COMMANDS[args.command](args, out)
        if summary is not None:
            out.write_json("summary.json", summary)
    except KeyboardInterrupt:
        raise _Interrupted(args.command, out.final, out.abandon(keep=True)) from None
    except BaseException as e:
        kept = out.abandon(keep=out.has_checkpoints)
        if kept and isinstance(e, Exception):
            e.args = (
                f"{e}; the unfinished run is kept in {kept} "
                f"(continue it with: aimcjax {args.command} --resume {out.final})",
            )
        raise
    final = out.commit()
    if not args.quiet:
        where = f"; files in {final}" if final else ""
        print(f"done in {time.perf_counter() - t0:.1f}s{where}")
    return summary


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; says where the unfinished run waits for ``--resume``."""

    def __init__(self, command, final, kept):
        super().__init__()
        self.command, self.final, self.kept = command, final, kept

    def __str__(self):
        if not self.kept:
            return "interrupted"
        return (
            f"interrupted; the unfinished run is kept in {self.kept} "
            f"(continue it with: aimcjax {self.command} --resume {self.final})"
        )


def main(argv=None) -> int:
    """Entry point of the ``aimcjax`` console script; returns the exit status."""
    from aimcjax.app.data import DataError
    from aimcjax.app.experiments.output import RunFolderError
    from aimcjax.app.specs import SpecError

    try:
        run(argv)
    except CLIError as e:
        text = str(e)
        print(text if text.startswith("aimcjax") else f"aimcjax: error: {text}", file=sys.stderr)
        return 2
    except RunFolderError as e:
        print(f"aimcjax: error: {_with_flag_hint(e)}", file=sys.stderr)
        return 2
    except (SpecError, DataError, ValueError, TypeError, RuntimeError, OSError) as e:
        if os.environ.get("AIMCJAX_DEBUG"):
            raise
        print(f"aimcjax: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"aimcjax: {str(e) or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as e:  # a bug, not a user error: still one line (the traceback on request)
        if os.environ.get("AIMCJAX_DEBUG"):
            raise
        print(
            f"aimcjax: internal error: {type(e).__name__}: {_one_line(e)} "
            "(set AIMCJAX_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


def _one_line(e) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _with_flag_hint(e) -> str:
    """The run-folder error with the flag that resolves it."""
    hints = {
        "exists": "; pass --overwrite to replace it (once the new run has finished)",
        "interrupted": "; continue it with --resume or start over with --overwrite",
    }
    return f"{e}{hints.get(e.reason, '')}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
