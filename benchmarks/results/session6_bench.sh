#!/usr/bin/env bash
# W1 (all cases) and W3 on a quiet machine: helpers' niced jobs are paused (SIGSTOP) while it runs
# and resumed (SIGCONT) at the end.
cd /work/wt-bench
export PYTHONPATH=/work/wt-bench
PY=/work/main/.venv/bin/python
( while [ -f /work/notes/BENCH_RUNNING ]; do
    for p in $(ps -eo pid,ni,stat --no-headers | awk '$2>0 && $3 !~ /T/ {print $1}'); do kill -STOP $p 2>/dev/null; done
    sleep 2; done ) &
STOPPER=$!
sleep 3
set -x
date; uptime; git log --oneline -1
$PY benchmarks/aihwkit/w1.py --launches 3 --json benchmarks/results/w1_session6.json
date
$PY benchmarks/aihwkit/w3.py --launches 3 --json benchmarks/results/w3_session6.json
date; uptime
rm -f /work/notes/BENCH_RUNNING
kill $STOPPER; sleep 3
for p in $(ps -eo pid,stat --no-headers | awk '$2 ~ /T/ {print $1}'); do kill -CONT $p 2>/dev/null; done
