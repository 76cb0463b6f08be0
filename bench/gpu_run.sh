#!/usr/bin/env bash
# The GPU work of issue "Training on the GPU" in one resumable command, on a machine with an NVIDIA GPU:
#
#   bash bench/gpu_run.sh            # after `make setup`; run it again until it prints "gpu_run: all done"
#
# 0. the CUDA tests of tests/test_training.py, where pytest is installed
# 1. bench/bench_training.py --compile        step time per model: first-landed vs engine vs compiled, batch 64
# 2. bench/bench_training.py --batch-size 1024  the same at batch 1024
# 3. bench/bench_sweep.py --jobs 1 2 4 8      N runs sharing the GPU
# 4. bench/bench_batch_scaling.py             batch 64 (20 epochs) vs $BATCH (sqrt-rule lr, 40 epochs): learning
#                                             curves side by side, wall time to batch 64's best validation error
# 5. bench/bench_stacked.py --compile          stacked step against lone steps, R = 1 .. 128 runs per stack
# 6. the `paper` preset's Table II (5 methods x 3 scenes x Mix/OOD x 5 seeds) and its ablations, batch $BATCH
#    per run for $EPOCHS epochs, as stacked models of up to $STACK runs of one method (scadf_lib.engine),
#    $JOBS stacks at once, compiled ($COMPILE), into $RESULTS (REPORT.md, runs.csv, sweeps.csv). Sizing:
#    bench/README.md "Stacked runs" (bench/size_paper_preset.py): 170 runs, 13.6 PFLOP, the longest run
#    42,400 steps; about 4.6 min if a CUDA-graph stacked step takes <= 4 ms and the model reaches 5 % of
#    the bf16 peak, 11 min launch-bound at 16 ms eager (estimates: no GPU has been lent yet).
# then bench/summarize.py renders the figures into bench/README.md.
#
# Every step is skipped once done (markers in $WORK/steps/), training runs resume from their last epoch.
# TIME_LIMIT_MIN=9 makes one call stop starting work that would end later (for machines lent by the
# quarter hour); PACK=dir writes what a later call on a bare machine needs (finished runs' tables, no
# checkpoints) to dir/gpu_state.tgz: unpack it in the repository root, then call again.
# A bare image without netCDF4 may carry its wheels in .whl/ (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
# The paper's batch of 64 per run: the stacks, not a larger batch, fill the GPU (a larger batch learns less
# per epoch: bench/README.md, "Batch size against accuracy").
BATCH=${BATCH:-64}
EPOCHS=${EPOCHS:-40}
STACK=${STACK:-64}
JOBS=${JOBS:-9}
COMPILE=${COMPILE:-reduce-overhead}
STUDIES=${STUDIES:-main ablation}
PRESET=${PRESET:-paper}
SCENES=${SCENES:-munich etoile florence}
METHODS=${METHODS:-concat fullcon transfusion softmoe scadf}
DATA_DIR=${DATA_DIR:-data}
WORK=${WORK:-runs/paper}
RESULTS=${RESULTS:-results/paper}
BENCH=${BENCH:-1}
START=$(date +%s)

if ! "$PY" -c 'import netCDF4' 2>/dev/null; then
  if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "gpu_run: netCDF4 is missing; run 'make setup' (or carry its wheels in .whl/)" >&2
    exit 2
  fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  if [ "${ALLOW_CPU:-0}" != 1 ]; then
    echo "gpu_run: no CUDA device here; this script measures the GPU (ALLOW_CPU=1 runs it anyway, for tests)" >&2
    exit 2
  fi
fi

minutes_left() {  # whole minutes left under TIME_LIMIT_MIN (999 without a limit)
  if [ -z "${TIME_LIMIT_MIN:-}" ]; then echo 999; else
    "$PY" -c "print(int($TIME_LIMIT_MIN - ($(date +%s) - $START) / 60))"; fi
}

mkdir -p "$WORK/steps"
step() {  # step NAME MINUTES CMD...: run CMD once, if about MINUTES are left
  local name=$1 need=$2; shift 2
  [ -f "$WORK/steps/$name.done" ] && return 0
  if [ "$(minutes_left)" -lt "$need" ]; then echo "gpu_run: $name left for the next call"; return 0; fi
  echo "== gpu_run: $name" && "$@" && touch "$WORK/steps/$name.done"
}

if [ "$BENCH" = 1 ]; then
  if "$PY" -c 'import pytest' 2>/dev/null; then  # resume on CUDA, no host sync in a step (skipped on CPUs)
    step cuda_tests 2 "$PY" -m pytest -q -p no:cacheprovider tests/test_training.py -k cuda \
      || echo "gpu_run: the CUDA tests FAILED (output above)"
  fi
  step bench_training 6 "$PY" bench/bench_training.py --compile
  step bench_training_b1024 2 "$PY" bench/bench_training.py --batch-size 1024
  step bench_sweep 3 "$PY" bench/bench_sweep.py --jobs 1 2 4 8
  step bench_batch_scaling 6 "$PY" bench/bench_batch_scaling.py --batches 64 512 --epochs 20 --epochs-large 40 \
    --train-per-point 1
  step bench_stacked 3 "$PY" bench/bench_stacked.py --stacks 1 8 32 128 --compile
  "$PY" bench/summarize.py
fi

LEFT=$(minutes_left)
if [ "$LEFT" -ge 2 ]; then
  LIMIT=()
  [ -n "${TIME_LIMIT_MIN:-}" ] && LIMIT=(--time-limit-min "$((LEFT - 1))")
  # shellcheck disable=SC2086
  CMP=()
  [ "$COMPILE" != none ] && CMP=(--compile "$COMPILE")
  # shellcheck disable=SC2086
  "$PY" -m scadf_lib.experiments --preset "$PRESET" --studies $STUDIES --scenes $SCENES --methods $METHODS \
    --data-dir "$DATA_DIR" --stack "$STACK" "${CMP[@]}" \
    --jobs "$JOBS" --batch-size "$BATCH" --epochs "$EPOCHS" --work "$WORK" --results "$RESULTS" "${LIMIT[@]}"
fi

if [ -n "${PACK:-}" ]; then
  mkdir -p "$PACK"
  find "$WORK" "$RESULTS" bench/results -type f ! -name '*.pt' 2>/dev/null \
    | tar czf "$PACK/gpu_state.tgz" -T -
  [ -d "$RESULTS/models" ] && tar czf "$PACK/gpu_models.tgz" "$RESULTS/models"
fi

if [ -f "$RESULTS/sweeps.csv" ] && "$PY" - "$RESULTS/sweeps.csv" <<'EOF'
import sys, pandas as pd
last = pd.read_csv(sys.argv[1]).iloc[-1]
sys.exit(0 if last.finished_after == last.runs else 1)
EOF
then
  benches_done=1
  for s in bench_training bench_training_b1024 bench_sweep bench_batch_scaling bench_stacked; do
    [ -f "$WORK/steps/$s.done" ] || benches_done=0
  done
  if [ "$BENCH" != 1 ] || [ "$benches_done" = 1 ]; then echo "gpu_run: all done"; exit 0; fi
fi
echo "gpu_run: not finished; run the same command again"
