"""The library/application boundary: where imports may point, and the old application paths.

The layering is read from the source (imports as the ``ast`` module parses them), so a new
import across the boundary fails here rather than in a review.
"""

import ast
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PKG = os.path.join(ROOT, "aimcjax")
# The old application paths: aliases of the moved modules (aimcjax/_deprecated.py).
SHIMS = {
    "aimcjax.cli": "aimcjax.app.cli",
    "aimcjax.data": "aimcjax.app.data",
    "aimcjax.demo": "aimcjax.app.demo",
    "aimcjax.distributed.example": "aimcjax.app.distributed_example",
    "aimcjax.experiments.least_squares": "aimcjax.app.experiments.least_squares",
    "aimcjax.experiments.csgd": "aimcjax.app.experiments.csgd",
    "aimcjax.experiments.training": "aimcjax.app.experiments.training",
    "aimcjax.experiments.pulse_response": "aimcjax.app.experiments.pulse_response",
}
# Library modules that still import the application (docs/architecture.md, "Layout").
KNOWN_LIBRARY_TO_APP = {"aimcjax.fit.plot"}


def _modules():
    for folder, _, files in os.walk(PKG):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ROOT)[: -len(".py")].replace(os.sep, ".")
                yield rel.removesuffix(".__init__"), path


def _imports(path):
    """(module, name) for every import in the file; name is None for ``import module``."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                yield node.module, alias.name


def _is_shim(module):
    """The old application paths, and ``python -m aimcjax`` (the command's entry point)."""
    return module in SHIMS or module in (
        "aimcjax._deprecated",
        "aimcjax.experiments",
        "aimcjax.__main__",
    )


def test_the_library_does_not_import_the_application():
    offenders = set()
    for module, path in _modules():
        if module.startswith("aimcjax.app") or _is_shim(module):
            continue
        for target, name in _imports(path):
            full = f"{target}.{name}" if name else target
            if full.startswith("aimcjax.app") or (target == "aimcjax" and name == "app"):
                offenders.add(module)
    assert offenders == KNOWN_LIBRARY_TO_APP


def test_the_application_imports_only_public_library_names():
    private = []
    for module, path in _modules():
        if not module.startswith("aimcjax.app"):
            continue
        for target, name in _imports(path):
            if not target.startswith("aimcjax") or target.startswith("aimcjax.app"):
                continue
            parts = target.split(".") + ([name] if name else [])
            if any(
                p.startswith("_") and not p.endswith("__") for p in parts
            ):  # __version__ is public
                private.append(f"{module}: {target} {name or ''}")
    assert private == []


def test_old_application_paths_are_the_new_modules_and_warn():
    code = (
        "import importlib, warnings\n"
        "warnings.simplefilter('always')\n"
        f"for old, new in {SHIMS!r}.items():\n"
        "    with warnings.catch_warnings(record=True) as caught:\n"
        "        module = importlib.import_module(old)\n"
        "    assert module is importlib.import_module(new), old\n"
        "    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message)\n"
        "               for w in caught), (old, [str(w.message) for w in caught])\n"
        "import aimcjax.experiments as e, aimcjax.app.experiments as n\n"
        "assert e.RECIPES is n.RECIPES and e.get_recipe is n.get_recipe\n"
        "print('ok')\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


@pytest.mark.parametrize(
    "module, args, expect",
    [
        ("aimcjax.cli", ["--version"], "aimcjax "),
        ("aimcjax.demo", ["--help"], "--steps"),
        ("aimcjax.distributed.example", ["--help"], "--out"),
    ],
)
def test_old_runnable_paths_still_run(module, args, expect):
    res = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert expect in res.stdout
