#!/usr/bin/env bash
# W1-W3 (aimcjax only) on a GPU machine, within ~8 minutes; results under $OUT.
#
#   OUT=/some/dir benchmarks/gpu.sh        (run from the repository root, project venv active
#                                           or PY=/path/to/python)
#
# Each case is one process (fresh compile); its JSON line (median s/step, compile time,
# peak RSS) goes to $OUT/<case>.json, the log to $OUT/gpu.log, the machine to $OUT/machine.txt.
# Cases are ordered by importance and each has a timeout, so a slow case cannot eat the
# budget of the others; the whole script stops starting new cases after BUDGET_S seconds.
set -uo pipefail
OUT="${OUT:-out/gpu}"
PY="${PY:-python}"
BUDGET_S="${BUDGET_S:-450}"
mkdir -p "$OUT"
SIDE=benchmarks/aihwkit/aimcjax_side.py
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
  "$PY" -c "import jax; print('jax', jax.__version__, jax.devices())"
  lscpu | head -15
} > "$OUT/machine.txt" 2>&1

start=$(date +%s)
run_case() {  # name timeout_s args...
  local name=$1 limit=$2; shift 2
  local now=$(( $(date +%s) - start ))
  if (( now + 20 > BUDGET_S )); then
    echo "skip $name (budget spent: ${now}s)" | tee -a "$OUT/gpu.log"; return
  fi
  (( limit > BUDGET_S - now )) && limit=$(( BUDGET_S - now ))
  echo "== $name (limit ${limit}s)" | tee -a "$OUT/gpu.log"
  timeout "$limit" "$PY" "$SIDE" "$@" > "$OUT/$name.out" 2>> "$OUT/gpu.log"
  local rc=$?
  tail -n 1 "$OUT/$name.out" > "$OUT/$name.json"
  echo "   rc=$rc $(cat "$OUT/$name.json")" | tee -a "$OUT/gpu.log"
}

run_case w2_outer          90 w2 --mode outer --steps 20 --repeats 5
run_case w2_pulse          60 w2 --mode pulse --steps 20 --repeats 5
for b in 10 64; do
  run_case "w1_b${b}_sgd_softbounds_outer"  60 w1 --batch $b --algo sgd --device softbounds --mode outer
  run_case "w1_b${b}_sgd_softbounds_pulse"  60 w1 --batch $b --algo sgd --device softbounds --mode pulse
  run_case "w1_b${b}_tt_softbounds_outer"   60 w1 --batch $b --algo tiki_taka --device softbounds --mode outer
done
run_case w3_outer          150 w3 --mode outer --steps 200 --repeats 2
run_case w3_pulse          120 w3 --mode pulse --steps 200 --repeats 2
run_case w1_b10_sgd_power_outer 45 w1 --batch 10 --algo sgd --device power --mode outer

"$PY" - "$OUT" <<'EOF' | tee "$OUT/summary.txt"
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
print(f"{'case':34s} {'s/step':>10s} {'compile s':>10s}")
for f in sorted(out.glob("*.json")):
    try:
        r = json.loads(f.read_text())
    except Exception:
        print(f"{f.stem:34s} {'failed':>10s}"); continue
    print(f"{f.stem:34s} {r['median_s']:10.5f} {r.get('compile_s', 0):10.1f}")
EOF
echo "total $(( $(date +%s) - start ))s" | tee -a "$OUT/gpu.log"
