"""Where a W1 / W3 training step spends its time, op by op (jax.profiler trace of the compiled
program, each XLA op named by its output shape and the JAX code it came from).

    .venv/bin/python benchmarks/aihwkit/profile_step.py w3 --mode pulse
    .venv/bin/python benchmarks/aihwkit/profile_step.py w1 --algo tiki_taka --device power --mode outer
    .venv/bin/python benchmarks/aihwkit/profile_step.py w3 --mode pulse --hlo step.hlo --op minimum_select_fusion.5

Prints the time per step of the heaviest ops (summed over their executions inside the
program's loops; loops and conditionals themselves are containers and left out). The
profiler adds a fixed cost per op event, so programs of many small ops (the "outer" mode's
per-sample loops) sum to more than their unprofiled time: compare ops with each other. Then
optionally writes the optimized HLO and prints one fusion's body. This
is how session 4 found the shared random numbers recomputed inside every fusion that read
them, loop invariants hoisted into tile-sized temporaries and merged matmuls that needed
transposes (benchmarks/RESULTS.md, "Session 4"). The trace itself is left in --trace-dir for
TensorBoard/Perfetto.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aimcjax_side as S
import jax

# Host-side and bookkeeping events of the trace, and loops/conditionals (containers: their
# events span their bodies' ops, which are listed themselves).
_NOT_OPS = re.compile(r"^\$|Thunk|PjRt|Pjit|ParseArguments|Handle inputs|Await|^while|^cond")


def op_origins(hlo_text: str) -> dict[str, str]:
    """HLO instruction name -> "output shape  JAX op_name" from the optimized module's text."""
    origins = {}
    for line in hlo_text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+) .*op_name=\"([^\"]+)\"", line)
        if m:
            origins[m.group(1)] = f"{m.group(2)[:30]}  {m.group(3)}"
    return origins


def fusion_body(hlo_text: str, name: str) -> str:
    """The instructions of fusion ``name``'s computation (metadata stripped)."""
    m = re.search(r"\n\s*(?:ROOT )?%" + re.escape(name) + r" = [^\n]*calls=%([\w.\-]+)", hlo_text)
    if m is None:
        raise SystemExit(f"no fusion named {name!r} in the module")
    body = re.search(r"\n%" + re.escape(m.group(1)) + r" [^\n]*\{\n(.*?)\n\}", hlo_text, re.S)
    return "\n".join(
        re.sub(r", metadata=\{[^}]*\}", "", line).strip() for line in body.group(1).splitlines()
    )


def op_times(trace_dir: Path) -> collections.Counter:
    """Total microseconds per event name over all complete events of the trace."""
    files = sorted(trace_dir.glob("**/*.trace.json.gz"))
    if not files:
        raise SystemExit(f"no trace written under {trace_dir}")
    events = json.load(gzip.open(files[-1]))["traceEvents"]
    totals = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and "dur" in event:
            totals[event["name"]] += event["dur"]
    return totals


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("workload", choices=["w1", "w3"])
    p.add_argument("--mode", choices=["outer", "pulse", "expected", "ideal"], default="pulse")
    p.add_argument("--algo", choices=["sgd", "tiki_taka"], default="sgd", help="w1 only")
    p.add_argument(
        "--device", choices=["softbounds", "power"], default="softbounds", help="w1 only"
    )
    p.add_argument("--batch", type=int, default=10, help="w1 only")
    p.add_argument("--steps", type=int, default=20, help="steps per profiled call")
    p.add_argument("--top", type=int, default=25, help="ops to list")
    p.add_argument("--trace-dir", type=Path, default=Path("/tmp/aimcjax-profile"))
    p.add_argument("--hlo", type=Path, default=None, help="write the optimized HLO here")
    p.add_argument("--op", default=None, help="print this fusion's body")
    a = p.parse_args(argv)
    if a.steps < 1 or a.top < 1:
        p.error("--steps and --top must be >= 1")

    if a.workload == "w1":
        trainer = S.w1_trainer(a.algo, a.device, a.mode, a.batch)
    else:
        trainer = S.w3_trainer(a.mode)
    compiled, compile_s = trainer.compiled(a.steps)
    xs, key = trainer.inputs(), jax.random.PRNGKey(3)

    def call():
        trainer.state, losses = compiled(trainer.device, trainer.state, key, xs)
        jax.block_until_ready(losses)

    call()  # warm
    start, start_cpu = time.perf_counter(), time.process_time()
    call()
    wall, cpu = (time.perf_counter() - start) / a.steps, (time.process_time() - start_cpu) / a.steps
    shutil.rmtree(a.trace_dir, ignore_errors=True)
    with jax.profiler.trace(str(a.trace_dir)):
        call()

    hlo = compiled.as_text()
    origins = op_origins(hlo)
    ops = [
        (name, us) for name, us in op_times(a.trace_dir).most_common() if not _NOT_OPS.search(name)
    ]
    print(
        f"{a.workload} {a.mode}: {wall * 1e3:.2f} ms wall, {cpu * 1e3:.2f} ms CPU per step unprofiled "
        f"(compile {compile_s:.1f} s); profiled ops sum to {sum(us for _, us in ops) / 1e3 / a.steps:.2f} ms per step"
    )
    for name, us in ops[: a.top]:
        print(f"{us / 1e3 / a.steps:8.3f} ms  {name[:34]:34s} {origins.get(name, '')[-150:]}")
    if a.hlo:
        a.hlo.write_text(hlo)
        print(f"optimized HLO written to {a.hlo}")
    if a.op:
        print(f"== {a.op}\n{fusion_body(hlo, a.op)}")


if __name__ == "__main__":
    main()
