"""W3: 16 device configurations (Power, gamma x tau grid) x the W1 model x 200 steps.

    /work/main/.venv/bin/python benchmarks/aihwkit/w3.py [--check] [--record]

aihwkit: 16 models trained one after another, measured as one single-thread process and as
one single-thread process per core running concurrently (each a share of the grid), as a user
would run a sweep; compared at the faster (by default; --aihwkit to change). aimcjax: the 16 devices stacked and the whole
sweep vmapped in one jitted program. Time per step is per sweep step (all 16 configurations).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C

STEPS = ["--steps", str(C.W3_STEPS), "--repeats", "2"]
CASES = [
    ("16 Power configs b10 sgd, aimcjax outer", STEPS, [*STEPS, "--mode", "outer"]),
    ("16 Power configs b10 sgd, aimcjax pulse", STEPS, [*STEPS, "--mode", "pulse"]),
]

if __name__ == "__main__":
    sys.exit(C.side_by_side("w3", CASES, aihwkit_default=f"1,1x{C.CORES}"))
