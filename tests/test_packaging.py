"""The package as a user installs it: the wheel, in a fresh venv, run outside the repository.

The fresh venv sees the dependencies (jax, optax, flax, ...) through a path entry to this
interpreter's site-packages, added as a plain path so that the ``.pth`` files there (among them
the editable install of the repository) are NOT processed: ``import aimcjax`` can only find the
installed wheel, which the test checks.
"""

import email
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile

import pytest

import aimcjax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SKIP = {
    ".git",
    ".venv",
    "build",
    "dist",
    "runs",
    "out",
    "site",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    ".ipynb_checkpoints",
}

SMOKE = """
import os, sys, jax, jax.numpy as jnp, optax
import aimcjax
from aimcjax import devices, optim, pulse
from aimcjax.nn import nnx as annx
from flax import nnx
here = os.path.dirname(aimcjax.__file__)
assert here.startswith(sys.argv[1]), (here, sys.argv[1])
assert os.path.isfile(os.path.join(here, "py.typed"))
params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}
opt = optim.analog_sgd(0.1, devices.SoftBounds(tau=0.6, dw_min=1e-2), key=0)
state = opt.init(params)
updates, state = opt.update({"w": jnp.ones((3, 2)), "b": jnp.ones(2)}, state, params)
new = optax.apply_updates(params, updates)
assert float(new["w"].mean()) < -0.05, new  # ~ -0.1 in whole pulses
assert abs(float(new["b"][0]) + 0.1) < 1e-6, new  # digital leaf: plain SGD
layer = annx.AnalogLinear(3, 2, rngs=nnx.Rngs(params=0, periphery=1))
assert layer(jnp.ones((4, 3))).shape == (4, 2)
print("smoke ok", aimcjax.__version__)
"""


def _copy_source(dst):
    def ignore(_, names):
        return [n for n in names if n in _SKIP or n.endswith(".egg-info")]

    shutil.copytree(ROOT, dst, ignore=ignore)
    return dst


def _run(cmd, **kw):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert res.returncode == 0, f"{cmd}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


def _clean_env():
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_outside_the_repo(tmp_path):
    src = _copy_source(tmp_path / "src")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        env=_clean_env(),
    )
    wheels = list((tmp_path / "dist").glob("aimcjax-*.whl"))
    assert len(wheels) == 1
    with zipfile.ZipFile(wheels[0]) as z:
        names = z.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(meta_name))
    assert "aimcjax/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert meta["Version"] == aimcjax.__version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert "Typing :: Typed" in meta.get_all("Classifier")
    assert any(r.startswith("flax>=0.12.6") for r in meta.get_all("Requires-Dist"))

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    site = _run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    # the dependencies, as a plain path: .pth files there (the editable repo) stay unprocessed
    with open(os.path.join(site, "deps.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheels[0]),
        ],
        env=_clean_env(),
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean_env()
    res = _run([str(py), "-c", SMOKE, site], cwd=elsewhere, env=env)
    assert f"smoke ok {aimcjax.__version__}" in res.stdout
    res = _run([str(venv / "bin" / "aimcjax"), "--version"], cwd=elsewhere, env=env)
    assert res.stdout.strip() == f"aimcjax {aimcjax.__version__}"
    res = _run(
        [str(venv / "bin" / "aimcjax"), "devices", "reram_sb", "--quiet"], cwd=elsewhere, env=env
    )
    assert "reram_sb: SoftBounds" in res.stdout


@pytest.mark.slow
def test_sdist_carries_license_tests_helpers_docs_and_notebooks(tmp_path):
    src = _copy_source(tmp_path / "src")
    code = (
        "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    )
    name = (
        _run([sys.executable, "-c", code, str(tmp_path / "dist")], cwd=src, env=_clean_env())
        .stdout.strip()
        .splitlines()[-1]
    )
    with tarfile.open(tmp_path / "dist" / name) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    for needed in (
        "LICENSE",
        "aimcjax/py.typed",
        "tests/_distributed_backends_check.py",
        "tests/test_packaging.py",
        "requirements.lock",
        "docs/index.md",
        "notebooks/01_quickstart.ipynb",
        "mkdocs.yml",
    ):
        assert needed in members, needed
