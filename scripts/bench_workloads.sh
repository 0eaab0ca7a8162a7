#!/usr/bin/env bash
# Learning benchmarks on MNIST-1D and Shakespeare: accuracy, robustness and fairness, written to
# docs/benchmarks/<workload>/. Quick mode by default; `scripts/bench_workloads.sh --full` for the full-size runs
# (hours on a 2-core machine; a GPU is not used by the harness, which runs torch on one CPU thread).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:---quick}
for workload in mnist1d shakespeare; do
  for experiment in accuracy robustness fairness; do
    .venv/bin/python -m flchain.cli bench "$experiment" "$MODE" --workload "$workload" \
      --out "docs/benchmarks/$workload"
  done
done
