#!/usr/bin/env bash
# Build aihwkit 1.2.0 from its PyPI sdist into its own venv, for the side-by-side benchmarks
# and the fidelity cross-check. Never a dependency of the library or of `make test`.
#
# Usage: benchmarks/aihwkit/setup.sh [VENV]   (default /work/aihwkit-venv; ~10-20 min on 2 cores)
set -euo pipefail
VENV="${1:-/work/aihwkit-venv}"

if ! dpkg -s libopenblas-dev >/dev/null 2>&1; then
    apt-get update && apt-get install -y libopenblas-dev
fi
test -x "$VENV/bin/python" || python3 -m venv "$VENV"
"$VENV/bin/pip" install torch==2.13.0
"$VENV/bin/pip" install 'cmake>=4.2.1' scikit-build 'pybind11>=3.0.1' mypy ninja scipy \
    scikit-learn requests tqdm
# aihwkit's build calls cmake/ninja/python by name: the venv's bin must come first.
PATH="$VENV/bin:$PATH" "$VENV/bin/pip" install --no-build-isolation --no-deps aihwkit==1.2.0
"$VENV/bin/python" -c "import aihwkit; from aihwkit.simulator.tiles import AnalogTile; print('aihwkit', aihwkit.__version__)"
