"""W2: pulsed update of one 512x512 tile, batch 64, BL 31, realistic gradient magnitudes.

    /work/main/.venv/bin/python benchmarks/aihwkit/w2.py [--check] [--record]

aihwkit: AnalogTile.update (its CPU StochasticCompressed kernel). aimcjax: pulse.outer_update
in "outer" mode (aihwkit's semantics) and pulse.update of the summed change in "pulse" mode.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C

CASES = [
    ("512x512 b64 SoftBounds, aimcjax outer", [], ["--mode", "outer"]),
    ("512x512 b64 SoftBounds, aimcjax pulse", [], ["--mode", "pulse"]),
]

if __name__ == "__main__":
    sys.exit(C.side_by_side("w2", CASES, defaults=["--steps", "10", "--repeats", "3"]))
