"""Every docstring example of the library runs and shows its real output (doctest).

The library's modules are found by walking the ``aimcjax`` package, so a new module is
doctested without being listed here; the application (CLI, recipes, data readers, spec grammar,
demos) is left out: it is tested through its own tests. Floats whose last digits may differ
between JAX versions are printed rounded in the examples; ``...`` (ELLIPSIS) stands for output
that is not the point of an example.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil

import pytest

import aimcjax

# Application modules and packages (not the library's public API).
APP = (
    "aimcjax.__main__",
    "aimcjax.app",
    "aimcjax.cli",
    "aimcjax.data",
    "aimcjax.demo",
    "aimcjax.distributed.example",
    "aimcjax.experiments",
    "aimcjax.specs",
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _is_app(name: str) -> bool:
    return any(name == app or name.startswith(app + ".") for app in APP)


def library_modules() -> list[str]:
    """Dotted names of the library's modules (packages included), application left out."""
    names = ["aimcjax"]

    def walk(path: list[str], prefix: str) -> None:
        for info in pkgutil.iter_modules(path, prefix):
            if _is_app(info.name):
                continue
            names.append(info.name)
            if info.ispkg:
                walk(importlib.import_module(info.name).__path__, info.name + ".")

    walk(aimcjax.__path__, "aimcjax.")
    return sorted(names)


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = []
    for name in library_modules():
        tests += [t for t in finder.find(importlib.import_module(name)) if t.examples]
    return sorted(tests, key=lambda t: t.name)


DOCTESTS = _doctests()


def test_the_library_modules_are_found():
    modules = library_modules()
    for name in ("aimcjax.tile", "aimcjax.periphery", "aimcjax.optim.alias", "aimcjax.fit.select"):
        assert name in modules
    assert not any(_is_app(m) for m in modules)
    assert len(DOCTESTS) >= 40  # the docstring examples exist (a broken finder finds none)


@pytest.mark.parametrize("test", [pytest.param(t, id=t.name) for t in DOCTESTS])
def test_docstring_example(test: doctest.DocTest):
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(test, out=out.write, clear_globs=True)
    assert result.failed == 0, out.getvalue()
