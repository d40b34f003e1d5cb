"""W3's memory: the running sweep's resident memory against the raw bytes of its states.

    /work/main/.venv/bin/python benchmarks/aihwkit/w3_memory.py [--steps 50] [pulse outer]

Issue 7 asks for the peak RSS of W3 within 2x of the raw bytes of its 16 stacked model states.
A process's peak RSS also holds the Python/JAX runtime (~155 MB after ``import jax``) and the
compiler's (LLVM's) working memory, neither of which grows with the states, so each mode runs
in a fresh process that

1. builds the 16 states (resident from then on) and compiles the sweep,
2. returns freed heap to the system (``malloc_trim``) and resets the kernel's peak-RSS mark
   (``/proc/self/clear_refs``, ``5``), noting the RSS as the baseline,
3. runs the sweep (``--steps`` steps, state donated, twice), then reads the peak-RSS mark.

The sweep's memory is then state + (peak during the run - baseline): what the running program
adds on top of the states it holds. XLA's own accounting (``compiled.memory_analysis()``:
arguments, aliased outputs, temporaries) and the process's lifetime peak RSS are printed beside.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import re
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _status_kb(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def child(mode: str, steps: int) -> dict:
    import aimcjax_side as S
    import jax

    rss_import_mb = _status_kb("VmRSS") / 1024
    trainer = S.w3_trainer(mode)
    compiled, compile_s = trainer.compiled(steps)
    analysis = compiled.memory_analysis()
    state_bytes = trainer.state_bytes()
    xs = trainer.inputs()
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    baseline_mb = _status_kb("VmRSS") / 1024
    _reset_peak_rss()
    key = jax.random.PRNGKey(3)
    for _ in range(2):
        key, k = jax.random.split(key)
        trainer.state, losses = compiled(trainer.device, trainer.state, k, xs)
        jax.block_until_ready((trainer.state, losses))
    run_peak_mb = _status_kb("VmHWM") / 1024
    state_mb = state_bytes / 2**20
    growth_mb = max(run_peak_mb - baseline_mb, 0.0)
    return {
        "mode": mode,
        "steps": steps,
        "compile_s": compile_s,
        "state_mb": state_mb,
        "rss_after_import_mb": rss_import_mb,
        "baseline_rss_mb": baseline_mb,
        "run_peak_rss_mb": run_peak_mb,
        "run_growth_mb": growth_mb,
        "sweep_over_state": (state_mb + growth_mb) / state_mb,
        "lifetime_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "xla_arguments_mb": analysis.argument_size_in_bytes / 2**20,
        "xla_aliased_mb": analysis.alias_size_in_bytes / 2**20,
        "xla_temporaries_mb": analysis.temp_size_in_bytes / 2**20,
        "xla_over_state": (analysis.argument_size_in_bytes + analysis.temp_size_in_bytes)
        / state_bytes,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("modes", nargs="*", default=["pulse", "outer"])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help="also write the rows to this file")
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.modes[0], a.steps)))
        return 0
    rows = []
    for mode in a.modes:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", "--steps", str(a.steps), mode],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"w3_memory child ({mode}) failed:\n{proc.stderr[-4000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(
            f"{mode}: state {r['state_mb']:.1f} MiB; RSS before the run {r['baseline_rss_mb']:.0f} "
            f"MiB (runtime after import {r['rss_after_import_mb']:.0f} MiB), peak during the run "
            f"{r['run_peak_rss_mb']:.0f} MiB (+{r['run_growth_mb']:.1f}): sweep / state "
            f"{r['sweep_over_state']:.2f}x; XLA: arguments {r['xla_arguments_mb']:.1f} MiB "
            f"(aliased {r['xla_aliased_mb']:.1f}) + temporaries {r['xla_temporaries_mb']:.1f} "
            f"MiB = {r['xla_over_state']:.2f}x state; lifetime peak RSS "
            f"{r['lifetime_peak_rss_mb']:.0f} MiB (compiler included)",
            flush=True,
        )
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
