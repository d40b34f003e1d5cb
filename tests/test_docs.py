"""The documentation site builds with warnings as errors, and README's nnx example runs."""

import doctest
import os
import re
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_mkdocs_builds_strict(tmp_path):
    pytest.importorskip("mkdocs")
    env = {**os.environ, "PYTHONPATH": ROOT, "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    for page in (
        "index.html",
        "getting-started/index.html",
        "algorithms/agad/index.html",
        "api/optim/index.html",
        "reproductions/index.html",
    ):
        assert (tmp_path / "site" / page).is_file(), page
    api = (tmp_path / "site" / "api" / "nn" / "index.html").read_text()
    assert "convert_to_analog" in api and "AnalogLinear" in api  # generated from docstrings


def _python_blocks(path):
    """The ```python blocks of a Markdown file as scripts (``>>>`` blocks: their sources)."""
    with open(path) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    return [
        "".join(e.source for e in doctest.DocTestParser().get_examples(b)) if ">>> " in b else b
        for b in blocks
    ]


@pytest.mark.parametrize("doc", ["README.md", "docs/getting-started.md"])
def test_the_nnx_example_runs_and_stays_analog(doc):
    from flax import nnx

    from aimcjax import optim, tile

    block = next(b for b in _python_blocks(os.path.join(ROOT, doc)) if "nnx.Optimizer" in b)
    ns = {}
    exec(compile(block, doc, "exec"), ns)
    model, optimizer, step = ns["model"], ns["optimizer"], ns["step"]
    x = np.asarray(np.random.default_rng(0).normal(size=(8, 784)), np.float32)
    y = np.arange(8) % 10
    for _ in range(3):
        step(model, optimizer, x, y)
    tiles = optim.analog_state(nnx.as_pure(optimizer.opt_state))
    # params + (new weights - params): the tiles' weights up to the rounding of that sum
    np.testing.assert_allclose(
        tile.weights(tiles.W["kernel"]), model.kernel[...], rtol=0, atol=1e-7
    )
