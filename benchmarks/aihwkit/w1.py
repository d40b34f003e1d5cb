"""W1: FCN 784-256-128-10 training step on MNIST-shaped random data, default periphery.

    /work/main/.venv/bin/python benchmarks/aihwkit/w1.py [--check] [--record] [--only b10]

Batch 10 and 64; Analog SGD and Tiki-Taka (TransferCompound, gamma 0.4, one column per
step); SoftBounds and Power devices; aimcjax in "outer" mode (aihwkit's update semantics)
and "pulse" mode.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common as C

CASES = []
for batch in (10, 64):
    for algo in ("sgd", "tiki_taka"):
        for device in ("softbounds", "power"):
            for mode in ("outer", "pulse"):
                common = ["--batch", str(batch), "--algo", algo, "--device", device]
                CASES.append(
                    (f"b{batch} {algo} {device} {mode}", common, [*common, "--mode", mode])
                )

if __name__ == "__main__":
    sys.exit(C.side_by_side("w1", CASES, defaults=["--steps", "30", "--repeats", "5"]))
