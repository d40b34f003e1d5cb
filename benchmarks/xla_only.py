"""Run a benchmark script with the fused Pallas kernel switched off for ``kernel="auto"``.

    python benchmarks/xla_only.py benchmarks/aihwkit/aimcjax_side.py w1 --batch 10 --mode outer

The library chooses the kernel itself (``UpdateConfig(kernel="auto")``: the fused kernel on a
GPU); the benchmark scripts build their configs with the default. This wrapper makes "auto"
resolve to the XLA path, so that ``benchmarks/gpu.sh`` can time a workload on both paths
(and still get numbers if the kernel fails on the machine). An explicit ``kernel="pallas"``
is untouched.
"""

import runpy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aimcjax.pulse import pallas

_choose = pallas.use_kernel


def _xla_for_auto(kernel, *args):
    return False if kernel == "auto" else _choose(kernel, *args)


pallas.use_kernel = _xla_for_auto

if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
