"""What a part costs: the measured benchmark rates (GPU and CPU) scaled by what the stored part manifests measured,
per model, per part, and in words for the pages (:func:`part_cost`, :func:`pending_text`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .config import Profile, TrainConfig
from .defences import finetune_epochs_for
from .multitrain import dp_chunks, group_key, group_size_for
from .parts import (
    PART_NAMES,
    Entry,
    assign,
    carried_into,
    entry_keys,
    extraction_models,
    part_extractions,
    part_models,
    part_of,
    trained_for_later,
)
from .settings import results_root
from .store import DamagedEntry, read_sealed

# Training images per second of the whole GPU by architecture and models trained together, measured
# on an H200 (benchmarks/results/h200-group8.json, h200-group16.json: 15,000 images, batch 128).
BENCHMARK_RATES = {
    "lenet": {1: 80_000, 8: 576_000, 16: 820_000},
    "resnet20": {1: 40_000, 8: 64_000, 16: 79_000},
    "resnet50": {1: 7_600},
}

BENCHMARK_CARD = "NVIDIA H200 (benchmarks/results)"

# Training images per second of one model on 2 cores of a Xeon with AMX (bf16 autocast, channels_last; qmia's loop,
# benchmarks/bench_train.py --cpu-table; ResNet-50 from a bare step): models train one at a time on a CPU.
CPU_RATES = {"lenet": {1: 9_000}, "resnet20": {1: 750}, "resnet50": {1: 45}}

CPU_CARD = "2 cores of a Xeon with AMX (benchmarks/results/cpu-2core.json)"

# A float32 model (precision 'fp32') against bf16 on such a CPU: ResNet-20 368-416 img/s against 788-913 (two runs of
# benchmarks/bench_train.py --cpu-table); LeNet-5 about the same; ResNet-50 18 against 51 img/s (a bare step).
CPU_FP32_SLOWDOWN = {"lenet": 1.0, "resnet20": 2.2, "resnet50": 2.8}

# A part's seconds besides training on such a CPU: start-up (decoding the data) and each row's attack (inference of the
# target and its reference models, the label-only attack's 16 augmented queries per example).
CPU_STARTUP_SECONDS = 60.0

CPU_SECONDS_PER_ROW = {"lenet": 6.0, "resnet20": 40.0, "resnet50": 300.0}

# A CPU can finish a part in one run when its estimate is at most this (a night); longer ones still run, stopped by
# --budget and resumed.
CPU_NIGHT_HOURS = 12.0

# Seconds a part spends besides training: data decoding and start-up once, then inference and attacks per row.
STARTUP_SECONDS = 45.0

SECONDS_PER_ROW = {"lenet": 1.5, "resnet20": 2.5, "resnet50": 8.0}

LIMIT_SECONDS = 8 * 60

# DP-SGD (Opacus, per-example gradients) against plain training of one model: about 5-6x, measured on a CPU with
# LeNet-5 (qmia.defences), 2.6x with ResNet-20; not yet measured on a GPU.
DP_SLOWDOWN = 6.0

# DP-SGD of a group (qmia.multitrain.fit_many_dp) against plain training of the same group: 1.9x on a CPU
# (ResNet-20, 2 models, benchmarks/bench_train.py); on a GPU plain training has bf16 and CUDA graphs that the DP
# step has not, so 4x is assumed until benchmarks/bench_train.py measures it there.
DP_GROUP_SLOWDOWN = 4.0


def manifest_path(name: str):
    return results_root() / "parts" / f"{name}.json"


def read_manifest(name: str) -> dict | None:
    """A part's stored manifest (None when there is none); :class:`DamagedEntry` naming it when it fails its seal
    (edited since it was written, or written before manifests were sealed: ``scripts/seal_stored.py``)."""
    path = manifest_path(name)
    if not path.exists():
        return None
    try:
        return read_sealed(path)
    except DamagedEntry as e:
        raise DamagedEntry(f"{path}: {e}; restore it (git checkout -- {path.name}) or run the part again") from None


def _on_cpu(manifest: dict) -> bool:
    return str(manifest.get("gpu", "")).startswith("CPU")


# A CPU run shares its machine: a model's recorded seconds (wall time) include pauses and whatever ran beside it,
# which only ever slow it (measured here: 0.93x to 3.3x the benchmark for one ResNet-20 recipe). So a CPU rate is this
# quantile of the per-model ratios, the pace of an unhindered run, not their mean (which made --budget stop runs with
# time for another model left); a GPU rate is the total ratio, its runs having had the card to themselves.
CPU_RATE_QUANTILE = 0.25


def measured_rates(cpu: bool = False) -> tuple[dict[str, float], str]:
    """{architecture: measured training seconds / the benchmark rates' seconds for the same models (each at the
    group size it trained in)}, from the stored manifests of parts run on a GPU (``cpu``: on a CPU, against
    :data:`CPU_RATES`, a float32 model's against them times :data:`CPU_FP32_SLOWDOWN`, the
    :data:`CPU_RATE_QUANTILE` of the models' ratios), and the card(s) measured on; empty when no such part has
    run."""
    per: dict[str, list[tuple[float, float]]] = {}
    cards = set()
    for name in PART_NAMES:
        m = read_manifest(name)
        if not m or _on_cpu(m) != cpu:
            continue
        cards.add(m.get("gpu", "?"))
        for model in m.get("models", []):
            if model.get("defence", "none") != "none":  # fine-tuning or DP-SGD: not the plain rate
                continue
            size = model.get("trained_with", 1)
            bench = (
                _benchmark_seconds(model["arch"], size, model["epochs"] * model["n_train"], CPU_RATES if cpu else None)
                / size
            )
            bench *= _precision_factor(model["arch"], str(model.get("precision", "")), cpu)
            per.setdefault(model["arch"], []).append((model["seconds"], bench))
    if cpu:
        rates = {a: float(np.quantile([s / b for s, b in v], CPU_RATE_QUANTILE)) for a, v in per.items()}
    else:
        rates = {a: sum(s for s, _ in v) / sum(b for _, b in v) for a, v in per.items()}
    return rates, ", ".join(sorted(cards))


def _precision_factor(arch: str, precision: str, cpu: bool) -> float:
    """How much longer a model of ``precision`` ('fp32', 'bf16', or a manifest's record of it) trains than the
    benchmark rates (bf16) say: :data:`CPU_FP32_SLOWDOWN` for float32 on a CPU, else 1."""
    return CPU_FP32_SLOWDOWN.get(arch, 2.0) if cpu and precision.startswith("fp32") else 1.0


def _benchmark_seconds(arch: str, group: int, images: int, table: dict | None = None) -> float:
    """Seconds to train ``group`` models of ``arch`` together, each on ``images`` training images, at the benchmark
    rates (``table``: :data:`BENCHMARK_RATES`, the GPU's, by default; :data:`CPU_RATES`)."""
    rates = (table or BENCHMARK_RATES)[arch]
    size = max(g for g in rates if g <= group)
    return group * images / rates[size]


def estimate_seconds(
    p: Profile,
    entries: list[Entry],
    rates: dict[str, float] | None = None,
    have: Callable[[TrainConfig], bool] | None = None,
    models: list[TrainConfig] | None = None,
    cpu: bool = False,
) -> float:
    """Estimated GPU seconds of a part: start-up, training (grouped as :func:`qmia.multitrain.train_many`
    groups) at the benchmark rates, each architecture's scaled by its measured factor in ``rates``
    (:func:`measured_rates`), and a fixed cost per result row. Models for which ``have`` is true (e.g.
    :func:`qmia.part_status.available`: cached, or carried weights) cost nothing to train; by default every
    model is trained, as on a bare machine. ``models``: train these instead of the entries' (a models-only part).
    ``cpu``: on a CPU (:data:`CPU_RATES`, one model at a time, :data:`CPU_SECONDS_PER_ROW`) instead of the GPU."""
    if not entries and not models:
        return 0.0
    rates = rates or {}
    table = CPU_RATES if cpu else BENCHMARK_RATES
    groups: dict[TrainConfig, list[TrainConfig]] = {}
    dp_groups: dict[TrainConfig, list[TrainConfig]] = {}
    train = 0.0
    for m in models if models is not None else part_models(p, entries):
        if have is not None and have(m):
            continue
        if m.defence.kind in ("none", "dp"):
            (groups if m.defence.kind == "none" else dp_groups).setdefault(group_key(m), []).append(m)
            continue
        train += model_seconds(m, cpu) * rates.get(m.arch, 1.0)  # pruned or post-training quantized: one at a time
    for members in groups.values():
        m = members[0]
        images = m.epochs * m.n_per_split
        step = group_size_for(m.arch, 1 if cpu else 16)
        for start in range(0, len(members), step):
            size = len(members[start : start + step])
            train += (
                _benchmark_seconds(m.arch, size, images, table)
                * rates.get(m.arch, 1.0)
                * _precision_factor(m.arch, m.precision, cpu)
            )
    for members in dp_groups.values():  # in even groups (qmia.multitrain.dp_chunks); alone, Opacus itself
        m = members[0]
        for chunk in dp_chunks(len(members), group_size_for(m.arch, 1 if cpu else 16)):
            slowdown = DP_GROUP_SLOWDOWN if len(chunk) > 1 else DP_SLOWDOWN
            train += (
                _benchmark_seconds(m.arch, len(chunk), m.epochs * m.n_per_split, table)
                * rates.get(m.arch, 1.0)
                * slowdown
            )
    per_row = CPU_SECONDS_PER_ROW if cpu else SECONDS_PER_ROW
    rows = sum(per_row.get(c.arch, 2.0) for c, _ in entry_keys(p, entries)) + whitebox_seconds(entries, cpu)
    return (CPU_STARTUP_SECONDS if cpu else STARTUP_SECONDS) + train + rows


def model_seconds(m: TrainConfig, cpu: bool) -> float:
    """Estimated seconds to train one model alone (:data:`CPU_RATES` or the GPU's :data:`BENCHMARK_RATES`)."""
    seconds = _benchmark_seconds(
        m.arch, 1, m.epochs * m.n_per_split, CPU_RATES if cpu else BENCHMARK_RATES
    ) * _precision_factor(m.arch, m.precision, cpu)
    if m.defence.kind == "dp":
        return seconds * DP_SLOWDOWN
    if m.defence.kind == "prune":
        return seconds * finetune_epochs_for(m.defence, m.epochs) / m.epochs
    return 0.0 if m.defence.kind == "ptq" else seconds


# The white-box attack's per-example gradients (qmia.queries.gradient_features), images per second: on 2 cores of such
# a CPU, ResNet-20 measured at 38 img/s on one thread beside a training run (so 2 threads alone are assumed twice
# that), LeNet-5 at 1,646; on a GPU not yet measured, assumed 30 times the CPU's.
CPU_WHITEBOX_RATES = {"lenet": 3_000, "resnet20": 76, "resnet50": 4}
WHITEBOX_GPU_SPEEDUP = 30.0


def whitebox_seconds(entries: list[Entry], cpu: bool = False) -> float:
    """Estimated seconds of the white-box features of the entries' ``whitebox`` groups: each target's candidates
    and its adaptive shadow's population (4 x n_per_split examples; the full-precision shadow's are shared)."""
    speed = 1.0 if cpu else WHITEBOX_GPU_SPEEDUP
    return sum(4 * c.n_per_split / (CPU_WHITEBOX_RATES.get(c.arch, 10) * speed) for c, g in entries if g == "whitebox")


# An extraction's seconds besides training its surrogate: querying the target and predicting the test split.
SECONDS_PER_EXTRACTION = {"lenet": 1.0, "resnet20": 3.0, "resnet50": 10.0}
CPU_SECONDS_PER_EXTRACTION = {"lenet": 3.0, "resnet20": 30.0, "resnet50": 200.0}


def extraction_seconds(requests, rates: dict[str, float] | None = None, cpu: bool = False) -> float:
    """Estimated seconds of the extractions ``requests`` ((target, access, budget) each) once their targets are
    trained: each surrogate trains alone on ``budget`` images for the target's epochs, at the benchmark rates."""
    rates = rates or {}
    table = CPU_RATES if cpu else BENCHMARK_RATES
    fixed = CPU_SECONDS_PER_EXTRACTION if cpu else SECONDS_PER_EXTRACTION
    return sum(
        _benchmark_seconds(c.arch, 1, c.epochs * budget, table)
        * rates.get(c.arch, 1.0)
        * _precision_factor(c.arch, c.precision, cpu)
        + fixed.get(c.arch, 10.0)
        for c, _, budget in requests
    )


def part_estimate(
    p: Profile,
    name: str,
    rates: dict[str, float] | None = None,
    have: Callable[[TrainConfig], bool] | None = None,
    cpu: bool = False,
) -> float:
    """Estimated GPU (``cpu``: CPU) seconds of part ``name`` (:func:`estimate_seconds`), a models-only part's from
    its models, an extraction part's from its targets and surrogates (:func:`extraction_seconds`)."""
    requests = part_extractions(p, name)
    if requests:
        train = estimate_seconds(p, [], rates, have, models=extraction_models(requests), cpu=cpu)
        return train + extraction_seconds(requests, rates, cpu)
    return estimate_seconds(p, assign(p)[name], rates, have, models=trained_for_later(p, name) or None, cpu=cpu)


_PART_COST: dict[tuple[str, str], str] = {}


def part_cost(p: Profile, name: str) -> str:
    """A part's estimated cost in words: 'about 4.8 GPU-min or 1.2 CPU-h' (models carried into it counted as done)."""
    if (p.name, name) not in _PART_COST:
        carried = carried_into(p, name)
        gpu = part_estimate(p, name, measured_rates()[0], have=carried.__contains__) / 60
        cpu = part_estimate(p, name, measured_rates(cpu=True)[0], have=carried.__contains__, cpu=True) / 3600
        models = part_models(p, assign(p)[name]) + extraction_models(part_extractions(p, name))
        cpu_text = "" if any(m.arch == "resnet50" for m in models) else f" or {cpu:.1f} CPU-h"
        _PART_COST[(p.name, name)] = f"about {gpu:.1f} GPU-min{cpu_text}"
    return _PART_COST[(p.name, name)]


def pending_text(p: Profile | None, config: TrainConfig, group: str) -> str:
    """Why a row has no numbers yet, for a table cell: 'not computed yet: part `resnet50-fp`, about 4.8 GPU-min'; for
    a configuration outside the profile's plan (e.g. a notebook rerun with other bitwidths), how to compute it."""
    name = part_of(p, config, group) if p is not None else None
    if name is None:
        return (
            "not computed yet: not in the plan; compute it with TRAIN=1 (make notebook ... TRAIN=1) or "
            "python -m qmia run"
        )
    return f"not computed yet: part `{name}`, {part_cost(p, name)}"
