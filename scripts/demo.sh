#!/usr/bin/env bash
# make demo: train configs/small.py for a few minutes and say where the results are.
# Usage: scripts/demo.sh PYTHON DATA_DIR WORKDIR
set -euo pipefail
PY=${1:-.venv/bin/python}
DATA=${2:-data}
WORKDIR=${3:-runs/demo}
STEPS=${DEMO_STEPS:-600}

echo "== training configs/small.py for $STEPS steps on synthetic data -> $WORKDIR"
"$PY" -m srcvq_jax.train --config=configs/small.py --workdir="$WORKDIR" \
  --config.data.source=synthetic --config.train.num_steps="$STEPS"

echo
echo "checkpoints: $WORKDIR/checkpoints   metrics: $WORKDIR/metrics.jsonl   TensorBoard: $WORKDIR/tensorboard"
