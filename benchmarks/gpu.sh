#!/usr/bin/env bash
# W1-W3 (aimcjax only) and the fused-kernel micro-benchmark on a GPU machine, in < 8 minutes;
# results under $OUT.
#
#   OUT=/some/dir benchmarks/gpu.sh        (run from the repository root, project venv active
#                                           or PY=/path/to/python)
#
# First the machine (JAX version, devices, GPU) to stdout and $OUT/machine.txt; then
# benchmarks/kernel_bench.py (the update alone, XLA path vs fused Pallas kernel, pulse and
# outer, 784x256 and a 16-config sweep; $OUT/kernel_bench.jsonl); then the W1-W3 cases, each
# one process (fresh compile) whose JSON line (median s/step, compile time, peak RSS) goes to
# $OUT/<case>.json. W cases run with the library's default (kernel "auto": the fused kernel
# on a GPU); a case that fails is rerun on the XLA path (benchmarks/xla_only.py) as
# <case>_xla, and the most telling ones are also run on the XLA path for comparison while
# time is left. Every step has a timeout and a failing step does not stop the script; no new
# step starts after BUDGET_S seconds. Log: $OUT/gpu.log (with set -x on stderr).
set -uo pipefail
set -x
OUT="${OUT:-out/gpu}"
PY="${PY:-python}"
BUDGET_S="${BUDGET_S:-440}"
mkdir -p "$OUT"
SIDE=benchmarks/aihwkit/aimcjax_side.py
XLA_ONLY=benchmarks/xla_only.py
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false
start=$(date +%s)

{
  date -u
  git rev-parse HEAD 2>/dev/null || true
  timeout 60 "$PY" -c "import jax, jaxlib; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'backend', jax.default_backend()); print(jax.devices())"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
  lscpu | head -15
} 2>&1 | tee "$OUT/machine.txt"

elapsed() { echo $(( $(date +%s) - start )); }

SKIPPED=3
run_step() {  # name limit_s command...: run with a timeout inside the budget; returns its rc
  local name=$1 limit=$2; shift 2     # (or SKIPPED when the budget is spent)
  local now; now=$(elapsed)
  if (( now + 15 > BUDGET_S )); then
    echo "skip $name (budget spent: ${now}s)" | tee -a "$OUT/gpu.log"; return $SKIPPED
  fi
  (( limit > BUDGET_S - now )) && limit=$(( BUDGET_S - now ))
  echo "== $name (limit ${limit}s, at ${now}s)" | tee -a "$OUT/gpu.log"
  timeout -k 5 "$limit" "$@" > "$OUT/$name.out" 2>> "$OUT/gpu.log"
  local rc=$?
  echo "   $name rc=$rc ($(elapsed)s)" | tee -a "$OUT/gpu.log"
  return $rc
}

run_case() {  # name limit_s side-args...: a W case on the default path, rerun on XLA if it fails
  local name=$1 limit=$2; shift 2
  run_step "$name" "$limit" "$PY" "$SIDE" "$@"
  local rc=$?
  if (( rc == 0 )); then
    tail -n 1 "$OUT/$name.out" > "$OUT/$name.json"
  elif (( rc != SKIPPED )); then
    run_xla "$name" "$limit" "$@"
  fi
  return 0
}

run_xla() {  # name limit_s side-args...: the same W case on the XLA path, for comparison
  local name=$1 limit=$2; shift 2
  [[ -e "$OUT/${name}_xla.json" ]] && return 0
  if run_step "${name}_xla" "$limit" "$PY" "$XLA_ONLY" "$SIDE" "$@"; then
    tail -n 1 "$OUT/${name}_xla.out" > "$OUT/${name}_xla.json"
  fi
  return 0
}

run_step kernel_bench 150 "$PY" benchmarks/kernel_bench.py --steps 10 --repeats 5 --out "$OUT"
cat "$OUT/kernel_bench.out" 2>/dev/null | grep -v '^{' || true

for b in 10 64; do
  run_case "w1_b${b}_sgd_softbounds_outer" 50 w1 --batch $b --algo sgd --device softbounds --mode outer
  run_case "w1_b${b}_sgd_softbounds_pulse" 40 w1 --batch $b --algo sgd --device softbounds --mode pulse
done
run_case w3_pulse 60 w3 --mode pulse --steps 100 --repeats 2
run_case w3_outer 80 w3 --mode outer --steps 100 --repeats 2
run_case w2_outer 50 w2 --mode outer --steps 20 --repeats 5
run_xla w1_b10_sgd_softbounds_outer 50 w1 --batch 10 --algo sgd --device softbounds --mode outer
run_xla w1_b10_sgd_softbounds_pulse 40 w1 --batch 10 --algo sgd --device softbounds --mode pulse
run_case w1_b10_tt_softbounds_outer 50 w1 --batch 10 --algo tiki_taka --device softbounds --mode outer
run_case w2_pulse 40 w2 --mode pulse --steps 20 --repeats 5

timeout 30 "$PY" - "$OUT" <<'PYEOF' 2>&1 | tee "$OUT/summary.txt"
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print(f"{'case':40s} {'s/step':>10s} {'compile s':>10s}")
for f in sorted(out.glob("*.json")):
    try:
        r = json.loads(f.read_text())
        print(f"{f.stem:40s} {r['median_s']:10.5f} {r.get('compile_s', 0):10.1f}")
    except Exception:
        print(f"{f.stem:40s} {'failed':>10s}")
PYEOF
echo "total $(elapsed)s" | tee -a "$OUT/gpu.log"
