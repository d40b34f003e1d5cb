"""W3's memory as XLA accounts it: arguments, outputs and temporaries of the compiled sweep.

    /work/main/.venv/bin/python benchmarks/aihwkit/w3_memory.py pulse outer

Compares with the raw bytes of the 16 stacked model states (issue 7: within 2x). Peak RSS of
a process also counts the compiler and the runtime, so it is printed by w3.py separately.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aimcjax_side as S  # noqa: E402
import common as C  # noqa: E402
import fcn  # noqa: E402

from aimcjax import devices  # noqa: E402

if __name__ == "__main__":
    devs = devices.stack([S.power(gamma=g, tau=t) for g, t in C.w3_grid()])
    for mode in sys.argv[1:] or ["pulse", "outer"]:
        trainer = fcn.Trainer(devs, "sgd", mode, C.W3_BATCH, n_configs=len(C.w3_grid()))
        compiled, _ = trainer.compiled(10)
        m = compiled.memory_analysis()
        state = trainer.state_bytes()
        print(f"{mode}: state {state / 1e6:.1f} MB; arguments {m.argument_size_in_bytes / 1e6:.1f} MB "
              f"(aliased to outputs {m.alias_size_in_bytes / 1e6:.1f} MB), temporaries "
              f"{m.temp_size_in_bytes / 1e6:.1f} MB; program / state "
              f"{(m.argument_size_in_bytes + m.temp_size_in_bytes) / state:.2f}x")
