#!/usr/bin/env bash
# Runs every benchmark script in benchmarks/ (each prints one JSON line per measurement), appends the lines, tagged
# with this run's id, to benchmarks/results.jsonl, and renders each script's latest run into docs/results.md
# (between the bench markers only).
#
#   bash benchmarks/run_all.sh [PYTHON]        (make bench passes the venv's python)
#
# Environment: BENCH_ARGS_<script> adds arguments to one script (e.g. BENCH_ARGS_train_step="--no_compile");
# BENCH_ONLY="train_step stft_loss" runs only those scripts. Scripts run one after another (never in parallel:
# they time themselves). A failing script is reported and skipped; the exit status is non-zero if any failed.
set -u -o pipefail

PYTHON="${1:-python3}"
cd "$(dirname "$0")/.."
RESULTS=benchmarks/results.jsonl
RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)"
# Library modules of benchmarks/, not benchmark scripts.
NOT_SCRIPTS=" __init__ common report torch_reference "

failed=()
for path in benchmarks/*.py; do
  script="$(basename "$path" .py)"
  case "$NOT_SCRIPTS" in *" $script "*) continue ;; esac
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $script "* ]]; then
    continue
  fi
  extra_var="BENCH_ARGS_${script}"
  # shellcheck disable=SC2086  # word splitting of the extra arguments is intended
  echo "== $script ${!extra_var:-}" >&2
  start=$(date +%s)
  if ! "$PYTHON" -m "benchmarks.$script" ${!extra_var:-} \
      | "$PYTHON" -m benchmarks.report tag --run_id "$RUN_ID" --script "$script" --out "$RESULTS"; then
    echo "== $script FAILED" >&2
    failed+=("$script")
  fi
  echo "== $script done in $(( $(date +%s) - start )) s" >&2
done

"$PYTHON" -m benchmarks.report render --results "$RESULTS" --doc docs/results.md
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
