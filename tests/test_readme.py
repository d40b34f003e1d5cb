"""README's Python examples run and show their real output (each block is a doctest).

Every ```python block of README.md is written in ``>>>`` form; each runs on its own (fresh
names) and its shown output is compared, so a changed API or a changed number fails here.
"""

from __future__ import annotations

import doctest
import io
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def python_blocks(path: str) -> list[tuple[int, str]]:
    """``(line, text)`` of every ```python block of a Markdown file."""
    with open(path) as f:
        text = f.read()
    return [
        (text.count("\n", 0, m.start()) + 2, m.group(1))
        for m in re.finditer(r"```python\n(.*?)```", text, flags=re.S)
    ]


BLOCKS = python_blocks(README)


def test_every_readme_block_is_a_doctest():
    assert len(BLOCKS) >= 6
    for line, block in BLOCKS:
        code = [s for s in block.splitlines() if s.strip()]
        # every line is a prompt, a continuation or shown output: no unchecked script lines
        assert code[0].startswith(">>> "), f"README.md:{line}: a python block starts with >>>"
        assert doctest.DocTestParser().get_examples(block), f"README.md:{line}"


@pytest.mark.parametrize(
    "line,block", [pytest.param(line, block, id=f"README.md:{line}") for line, block in BLOCKS]
)
def test_readme_example(line, block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    test = doctest.DocTestParser().get_doctest(
        block, {"__name__": "README"}, f"README.md:{line}", README, line - 1
    )
    out = io.StringIO()
    result = doctest.DocTestRunner(optionflags=FLAGS).run(test, out=out.write)
    assert result.failed == 0, out.getvalue()
