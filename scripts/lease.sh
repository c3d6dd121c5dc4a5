#!/usr/bin/env bash
# One GPU lease, as one prepared command: install the carried wheels (Opacus, for DP-SGD), optionally measure
# speed (benchmarks/bench_train.py for BENCH_SECONDS, then a profile of BENCH_PROFILE_STEPS steps of each
# architecture, about a minute), then run the next missing parts of the paper plan in the time left of LEASE_SECONDS (scripts/run_parts.py), the cache seeded with the carried weights; everything that
# comes back is written under $OUT: parts.log, bench.json, results-NN (15 MB chunks; 2 for the projected 28 MB)
# and models-NN (at most 3): 7 files, of the 8 a lease returns.
#
#   carry (64 MiB): .device-data/cifar10-jpeg-q75.tar.gz, .device-data/wheels, .device-cache (at most 40 MB);
#   .device-data/FashionMNIST (31 MB) only for a LeNet-5 part, with a smaller cache (carry_models.py --max-mb)
#   QMIA_COMMIT=<commit> BENCH_SECONDS=120 bash scripts/lease.sh [parts, in order]
#   dry run here first: PATH=.venv/bin:$PATH LEASE_PROFILE=smoke QMIA_DATA=../shared/data QMIA_CACHE=/tmp/dry-cache QMIA_RESULTS=/tmp/dry-results \
#     OUT=/tmp/dry BENCH_SECONDS=20 BENCH_ARCHS=resnet20 bash scripts/lease.sh [the same parts]
#
# Before, here: .device-data/ holds a copy of the data root's cifar10-jpeg-q75.tar.gz (and FashionMNIST/) and
# wheels/ from `pip download opacus==1.6.0 opt_einsum==3.4.0 --no-deps -d .device-data/wheels`; .device-cache/ is
# what scripts/carry_models.py kept from earlier leases (it may be empty).
#
# Afterwards, here: unpack results-*.tgz.part into results/ (cat | tar xz), check `python -m qmia sweep --profile
# paper --parts`, and `python scripts/carry_models.py <returned folder>` for the next lease.
set -u
OUT=${OUT:-out}
mkdir -p "$OUT"
profile=${LEASE_PROFILE:-paper}  # LEASE_PROFILE=smoke: the same lease as a dry run on a CPU, before a lease
export PYTHONPATH=. PYTHONUNBUFFERED=1 QMIA_PROGRESS=0 QMIA_RESULTS=${QMIA_RESULTS:-results/$profile}
export QMIA_DATA=${QMIA_DATA:-.device-data} QMIA_CACHE=${QMIA_CACHE:-/tmp/qc}
start=$(date +%s)
{
  echo "lease: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo no GPU), commit ${QMIA_COMMIT:-?}"
  python3 -c "import opacus" 2>/dev/null || python3 -m pip install -q --no-index --no-deps "$QMIA_DATA"/wheels/*.whl 2>&1 | tail -2
  if [ "${BENCH_SECONDS:-0}" -gt 0 ]; then
    timeout $((BENCH_SECONDS + 150)) python3 benchmarks/bench_train.py --archs "${BENCH_ARCHS:-resnet50,resnet20}" \
      --budget "$BENCH_SECONDS" --profile-steps "${BENCH_PROFILE_STEPS:-8}" --json "$OUT/bench.json" 2>&1 \
      | grep -v -i "warn\|profiler_st\|USDT"
    echo "benchmark: $(( $(date +%s) - start )) s"
  fi
} >> "$OUT/parts.log" 2>&1
left=$(( ${LEASE_SECONDS:-540} - ($(date +%s) - start) ))
python3 scripts/run_parts.py --profile "$profile" --budget "$left" --seed-cache .device-cache --out "$OUT" "$@"
tail -n 40 "$OUT/parts.log"
