#!/usr/bin/env bash
# One run of the paper plan on a remote GPU machine whose transfers are limited (it starts empty, receives a bounded
# upload, returns a few files), as one prepared command: install the shipped wheels (Opacus, for DP-SGD), optionally
# measure speed (benchmarks/bench_train.py for BENCH_SECONDS, then a profile of BENCH_PROFILE_STEPS steps of each
# architecture, about a minute), then run the next missing parts of the plan in the time left of REMOTE_SECONDS
# (scripts/run_parts.py), the cache seeded with the carried weights. Everything that comes back is written under
# $OUT: parts.log, bench.json, results-NN and models-NN (chunks of CHUNK_MB; results in at most 4, models in 3).
#
# The limits are options, with the defaults of the machines this project used:
#   REMOTE_SECONDS=540   the run's time, benchmark included
#   CHUNK_MB=15          the largest file that comes back
#   CARRY_MB=40          weights of shared models sent back for the next run (scripts/carry_models.py --max-mb)
#   REMOTE_PROFILE=paper (smoke: the same run as a dry run on a CPU, before using a GPU)
# Upload: .device-data/cifar10-jpeg-q75.tar.gz, .device-data/wheels, .device-cache (what carry_models.py kept);
# .device-data/FashionMNIST (31 MB) only for a LeNet-5 part.
#   QMIA_COMMIT=<commit> BENCH_SECONDS=120 bash scripts/remote_run.sh [parts, in order]
#   dry run here first: PATH=.venv/bin:$PATH REMOTE_PROFILE=smoke QMIA_DATA=../shared/data QMIA_CACHE=/tmp/dry-cache \
#     QMIA_RESULTS=/tmp/dry-results OUT=/tmp/dry BENCH_SECONDS=20 BENCH_ARCHS=resnet20 bash scripts/remote_run.sh [parts]
#
# Before, here: .device-data/ holds a copy of the data root's cifar10-jpeg-q75.tar.gz (and FashionMNIST/) and
# wheels/ from `pip download opacus==1.6.0 opt_einsum==3.4.0 --no-deps -d .device-data/wheels`; .device-cache/ is
# what scripts/carry_models.py kept from earlier runs (it may be empty).
#
# Afterwards, here: unpack results-*.tgz.part into results/ (cat | tar xz), check `python -m qmia sweep --profile
# paper --parts`, and `python scripts/carry_models.py <returned folder>` for the next run.
set -u
OUT=${OUT:-out}
mkdir -p "$OUT"
profile=${REMOTE_PROFILE:-${LEASE_PROFILE:-paper}}
export PYTHONPATH=. PYTHONUNBUFFERED=1 QMIA_PROGRESS=0 QMIA_RESULTS=${QMIA_RESULTS:-results/$profile}
export QMIA_DATA=${QMIA_DATA:-.device-data} QMIA_CACHE=${QMIA_CACHE:-/tmp/qc}
start=$(date +%s)
{
  echo "remote run: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo no GPU), commit ${QMIA_COMMIT:-?}"
  python3 -c "import opacus" 2>/dev/null || python3 -m pip install -q --no-index --no-deps "$QMIA_DATA"/wheels/*.whl 2>&1 | tail -2
  if [ "${BENCH_SECONDS:-0}" -gt 0 ]; then
    timeout $((BENCH_SECONDS + 150)) python3 benchmarks/bench_train.py --archs "${BENCH_ARCHS:-resnet50,resnet20}" \
      --budget "$BENCH_SECONDS" --profile-steps "${BENCH_PROFILE_STEPS:-8}" --json "$OUT/bench.json" 2>&1 \
      | grep -v -i "warn\|profiler_st\|USDT"
    echo "benchmark: $(( $(date +%s) - start )) s"
  fi
} >> "$OUT/parts.log" 2>&1
left=$(( ${REMOTE_SECONDS:-${LEASE_SECONDS:-540}} - ($(date +%s) - start) ))
python3 scripts/run_parts.py --profile "$profile" --budget "$left" --seed-cache .device-cache --out "$OUT" \
  --chunk-mb "${CHUNK_MB:-15}" --carry-mb "${CARRY_MB:-40}" "$@"
tail -n 40 "$OUT/parts.log"
