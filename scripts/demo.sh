#!/usr/bin/env bash
# make demo: render the embedded ChoraleMix dataset, build its TFRecords, train configs/demo.py (configs/best.py's
# family at the demo's budget) on it, evaluate on the test split and print the report. Every stage skips work
# that is already done, so a rerun resumes.
# Usage: scripts/demo.sh PYTHON DATA_DIR WORKDIR   (sizes: DEMO_TRACKS, DEMO_SECONDS, DEMO_STEPS)
set -euo pipefail
PY=${1:-.venv/bin/python}
DATA=${2:-data}
WORKDIR=${3:-runs/demo}
TRACKS=${DEMO_TRACKS:-32}
SECONDS_PER_TRACK=${DEMO_SECONDS:-20}
STEPS=${DEMO_STEPS:-3000}
start=$(date +%s)

echo "== 1/4 rendering ChoraleMix: $TRACKS tracks x ${SECONDS_PER_TRACK} s -> $DATA/chorale_mix"
"$PY" -m data_prep.chorale_mix --out="$DATA/chorale_mix" --num_tracks="$TRACKS" --seconds="$SECONDS_PER_TRACK"

echo "== 2/4 building TFRecords -> $DATA/tfds"
"$PY" -m data_prep.build --dataset=chorale_mix --musdb_root="$DATA/chorale_mix" --is_wav --data_dir="$DATA/tfds"

echo "== 3/4 training configs/demo.py for $STEPS steps -> $WORKDIR"
"$PY" -m srcvq_jax.train --config=configs/demo.py --workdir="$WORKDIR" \
  --config.data.dataset=chorale_mix --config.data.data_dir="$DATA/tfds" --config.train.num_steps="$STEPS"

echo "== 4/4 evaluating on the test split"
"$PY" -m srcvq_jax.evaluate --workdir="$WORKDIR" --split=test --data_dir="$DATA/tfds"

echo
"$PY" scripts/demo_report.py "$WORKDIR" --split=test
echo
echo "report:      $WORKDIR/report.md, $WORKDIR/eval/test/{results.md,results.json,tsne.png}"
echo "checkpoints: $WORKDIR/checkpoints   metrics: $WORKDIR/metrics.jsonl   TensorBoard: $WORKDIR/tensorboard"
echo "separate a song: $PY -m srcvq_jax.separate song.wav --workdir=$WORKDIR --out=stems/"
echo "demo took $(( $(date +%s) - start )) s"
