#!/usr/bin/env bash
# The GPU check of the speed issue, for a machine without Jupyter (the device image): the
# throughput benchmark with its accuracy comparison, then as much of the paper profile's sweep
# as fits in SWEEP_SECONDS (trained models are cached, so a later run resumes), and a report of
# every model trained. Writes into $OUT (default out/).
#   OUT=out QMIA_DATA=data bash benchmarks/gpu_check.sh
set -u
OUT=${OUT:-out}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export QMIA_PROGRESS=0 QMIA_CACHE=${QMIA_CACHE:-cache} QMIA_RESULTS=${QMIA_RESULTS:-results}
python -c "import tqdm" 2>/dev/null || pip install -q --no-deps wheels/tqdm-*.whl
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null; python -c "import torch; print('torch', torch.__version__)"; } | tee "$OUT/machine.txt"
start=$(date +%s)
python benchmarks/bench_train.py --device "$DEVICE" --budget "${BENCH_SECONDS:-150}" --accuracy \
  --data-root "${QMIA_DATA:-data}" --json "$OUT/bench.json" ${BENCH_ARGS:-} 2>&1 | grep -v Warning | tee "$OUT/bench.log"
echo "benchmark: $(( $(date +%s) - start )) s" | tee -a "$OUT/bench.log"
start=$(date +%s)
timeout "${SWEEP_SECONDS:-180}" python -m qmia sweep --profile "${SWEEP_PROFILE:-paper}" --data-root "${QMIA_DATA:-data}" \
  --device "$DEVICE" --no-progress > "$OUT/sweep.log" 2>&1
echo "sweep exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/sweep.log"
python benchmarks/models_report.py "$QMIA_CACHE" > "$OUT/models.jsonl"
tail -3 "$OUT/sweep.log"
