"""The book's plan in parts: each part a named share of :func:`qmia.plan.book_plan` that fits one
GPU command (at most 8 minutes on one H100 in the ``paper`` profile), run on its own, resumable,
and recorded with a manifest of where and how fast it ran.

Every (target config, attack group) of the plan belongs to exactly one part: the first, in
:data:`PARTS`' order, whose rule takes it. The order is what the book needs most: the Tables 3-5
ResNet-20 models and the abstract's claims first, then LeNet, ResNet-50, Table 6 / Figure 6, LiRA,
and the sweep. A part run on a fresh machine trains what it needs (a shadow or reference model shared
with another part is trained again, identically by seed, unless its weights were carried from an earlier
lease: ``scripts/carry_models.py``, then only its outputs are computed), skips every row already stored, and writes
``<results>/parts/<name>.json``: GPU, torch, commit, date, wall time per model and in all. The
estimates :func:`part_table` prints are the measured H200 rates of :data:`BENCHMARK_RATES` (by
architecture and models trained together), scaled per architecture by what the stored manifests measured.

    python -m qmia sweep --profile paper --parts            # the parts, estimates, which are done
    python -m qmia sweep --profile paper --part tables-resnet20
"""

from __future__ import annotations

import datetime
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from .config import Profile, TrainConfig
from .defences import finetune_epochs_for
from .plan import (
    DEFENCE_ATTACKS,
    RANKING_ATTACKS,
    STRONGER_ATTACKS,
    book_plan,
    claim_configs,
    defence_configs,
    dorefa_configs,
    lira_configs,
    paper_configs,
    partial_configs,
    precision_configs,
    recipe_configs,
    sweep_configs,
)
from .settings import results_root
from .store import DamagedEntry, atomic_write_json, read_sealed, seal

Entry = tuple[TrainConfig, str]  # (target config, attack group)

# Training images per second of the whole GPU by architecture and models trained together, measured
# on an H200 (benchmarks/results/h200-group8.json, h200-group16.json: 15,000 images, batch 128).
BENCHMARK_RATES = {"lenet": {1: 80_000, 8: 576_000, 16: 820_000},
                   "resnet20": {1: 40_000, 8: 64_000, 16: 79_000},
                   "resnet50": {1: 7_600}}
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


@dataclass(frozen=True)
class Part:
    """A named share of the plan: ``takes(profile)`` is the set of (config, attack group) it may take. A part with
    ``trains`` takes no entries: it trains those models of a later part, whose weights the lease carries to the
    next (``scripts/carry_models.py``), so that a part too large for one command runs in several."""

    name: str
    title: str
    takes: Callable[[Profile], Callable[[Entry], bool]]
    trains: Callable[[Profile], list[TrainConfig]] | None = None


def _configs(make: Callable[[Profile], list[TrainConfig]], groups: tuple[str, ...] | None = None):
    """A rule taking the entries whose config ``make(profile)`` lists (and whose group is in ``groups``)."""
    def takes(p: Profile) -> Callable[[Entry], bool]:
        configs = set(make(p))
        return lambda e: e[0] in configs and (groups is None or e[1] in groups)
    return takes


def _arch(arch: str, *, bits: tuple[int | None, ...] | None = None, groups: tuple[str, ...] | None = None,
          exclude: tuple[str, ...] = ()):
    def takes(p: Profile) -> Callable[[Entry], bool]:
        return lambda e: (e[0].arch == arch and (bits is None or e[0].quant.bits in bits)
                          and (groups is None or e[1] in groups) and e[1] not in exclude)
    return takes


def _tables(arch: str, literal: bool, bits: tuple[int, ...] | None = None):
    """Tables 3-5 and the readings page for ``arch`` at seed 0, not LiRA: full precision and the literal reading
    (``literal``; the shadow, adaptive and metric attacks), or the other readings (the shadow and adaptive attacks,
    what the readings page shows); at ``bits`` (default: every bitwidth)."""
    def make(p: Profile) -> list[TrainConfig]:
        pairs = [(a, d) for a, d in p.models if a == arch]
        readings = ["literal"] if literal else [r for r in p.readings if r != "literal"]
        wanted = bits if bits is not None else (None, *p.bits)
        return [c for r in readings for c in paper_configs(p, pairs, seeds=(0,), reading=r)
                if c.quant.bits in wanted and (literal or c.quant.method != "none")]
    return _configs(make, groups=TABLE_GROUPS if literal else ("shadow", "adaptive"))


def _lira(arch: str, quant: str | None, groups: tuple[str, ...]):
    """The LiRA targets of ``arch`` (``quant``: 'fp', a reading, or None for all) and attack ``groups``."""
    def make(p: Profile) -> list[TrainConfig]:
        return [c for c in lira_configs(p) if c.arch == arch
                and (quant is None or c.quant.curve == ("none" if quant == "fp" else quant))]
    return _configs(make, groups=groups)


def _defences(kind: str, sparsities: tuple[float, ...] | None = None):
    """The defences page's targets of one kind ('qat': quantization-aware training; or a defence kind), pruned
    ones at ``sparsities`` only (default: all)."""
    def make(p: Profile) -> list[TrainConfig]:
        return [c for c in defence_configs(p) if (c.defence.kind == kind if kind != "qat" else
                                                  c.defence.kind == "none" and c.quant.method != "none")
                and (sparsities is None or c.defence.sparsity in sparsities)]
    return _configs(make, groups=DEFENCE_ATTACKS)


def _dp_models(half: int):
    """The DP-SGD models of the frontier's DP-SGD targets: the first half of their reference models (``half`` 0), or
    the second half with the targets themselves (1), so that each half trains as one group."""
    def make(p: Profile) -> list[TrainConfig]:
        from .experiment import models_needed

        targets = [c for c in defence_configs(p) if c.defence.kind == "dp"]
        refs = [r for c in targets for r in models_needed(c, DEFENCE_ATTACKS, p.lira_refs)["refs_adaptive"]]
        cut = p.lira_refs // 2
        return [r for r in refs if r.ref_index < cut] if half == 0 else [r for r in refs if r.ref_index >= cut] + targets
    return make


def _nothing(p: Profile) -> Callable[[Entry], bool]:
    return lambda e: False


def _sweep(half: int, groups: tuple[str, ...] | None = None, curves: tuple[str, ...] | None = None):
    """The sweep's configurations at the lower (``half`` 0) or higher (1) half of its bitwidths, with full
    precision; of the quantizers ``curves`` only (default: all, :data:`qmia.plan.SWEEP_CURVES`)."""
    def make(p: Profile) -> list[TrainConfig]:
        bits = sorted(p.sweep_bits)
        cut = (len(bits) + 1) // 2
        configs = sweep_configs(p, bits[:cut] if half == 0 else bits[cut:])
        return [c for c in configs if curves is None or c.quant.curve in ("none", *curves)]
    return _configs(make, groups=groups)


TABLE_GROUPS = ("shadow", "adaptive", "metric")
PARTS: tuple[Part, ...] = (
    Part("tables-resnet20", "Tables 3-5, ResNet-20: full precision and the literal reading (z = 2) at each bitwidth (seed 0)",
         _tables("resnet20", literal=True)),
    Part("readings-resnet20", "Tables 3-5, ResNet-20: the other readings at each bitwidth (seed 0)",
         _tables("resnet20", literal=False)),
    Part("claims-resnet20", "The abstract's claims: ResNet-20 full precision and 4-bit under every reading, seeds 1 and 2",
         _configs(claim_configs, groups=("shadow", "adaptive"))),
    Part("precision-resnet20", "The precision ablation: ResNet-20 at full precision and 16 bits (literal, centred, "
         "min-anchored) in float32, against the stored bf16 rows (seed 0, shadow attack)",
         _configs(precision_configs, groups=("shadow",))),
    Part("tables-lenet", "Tables 3-5, LeNet-5: full precision and every reading at each bitwidth (seed 0)",
         _arch("lenet", exclude=STRONGER_ATTACKS)),
    Part("resnet50-fp", "Tables 3-5, ResNet-50: full precision", _tables("resnet50", literal=True, bits=(None,))),
    Part("resnet50-4bit", "Tables 3-5, ResNet-50: 4 bits, z = 2", _tables("resnet50", literal=True, bits=(4,))),
    Part("resnet50-4bit-readings", "Tables 3-5, ResNet-50: 4 bits, the other readings",
         _tables("resnet50", literal=False, bits=(4,))),
    Part("resnet50-8bit", "Tables 3-5, ResNet-50: 8 bits, z = 2", _tables("resnet50", literal=True, bits=(8,))),
    Part("resnet50-8bit-readings", "Tables 3-5, ResNet-50: 8 bits, the other readings",
         _tables("resnet50", literal=False, bits=(8,))),
    Part("resnet50-16bit", "Tables 3-5, ResNet-50: 16 bits", _arch("resnet50", bits=(16,), exclude=("lira",))),
    Part("table6-fig6", "Table 6 (DoReFa-Net), Figure 6 (last 5 layers) and the recipe comparison, ResNet-20",
         _configs(lambda p: dorefa_configs(p) + [c for r in p.readings for c in partial_configs(p, seeds=(0,), reading=r)]
                  + partial_configs(p) + recipe_configs(p), groups=("shadow", "adaptive"))),
    Part("lira-lenet", "LiRA on LeNet-5: full precision and 4 bits (z = 2 and centred)", _lira("lenet", None, ("lira",))),
    Part("lira-resnet20-fp", "LiRA on ResNet-20 at full precision", _lira("resnet20", "fp", ("lira",))),
    Part("lira-resnet20-literal", "LiRA, RMIA and label-only attacks on ResNet-20 at 4 bits, z = 2",
         _lira("resnet20", "literal", STRONGER_ATTACKS)),
    Part("lira-resnet20-centred", "LiRA, RMIA and label-only attacks on ResNet-20 at 4 bits, centred",
         _lira("resnet20", "centred", STRONGER_ATTACKS)),
    Part("stronger-lenet", "RMIA and label-only attacks on LeNet-5's LiRA targets", _lira("lenet", None, ("rmia", "label"))),
    Part("stronger-resnet20-fp", "RMIA and label-only attacks on ResNet-20 at full precision",
         _lira("resnet20", "fp", ("rmia", "label"))),
    Part("defences-qat", "Defences side by side: DoReFa-Net at 4 bits with LiRA (the proposed quantizer's are LiRA parts)",
         _defences("qat")),
    *(Part(f"defences-prune-{'-'.join(f'{s:.0%}'.removesuffix('%') for s in sp)}", "Defences side by side: magnitude "
           f"pruning at {', '.join(f'{s:.0%}' for s in sp)}, fine-tuned, with LiRA on pruned reference models",
           _defences("prune", sp)) for sp in ((0.5, 0.8), (0.95,))),
    Part("defences-ptq", "Defences side by side: post-training quantization, with LiRA on quantized reference models",
         _defences("ptq")),
    Part("defences-dp-models-a", "Defences side by side: DP-SGD, the first half of the reference models (trained and "
         "carried to defences-dp; no rows)", _nothing, trains=_dp_models(0)),
    Part("defences-dp-models-b", "Defences side by side: DP-SGD, the second half of the reference models and the "
         "target (trained and carried to defences-dp; no rows)", _nothing, trains=_dp_models(1)),
    Part("defences-dp", "Defences side by side: DP-SGD, with LiRA on reference models trained with DP-SGD (the DP-SGD "
         "models carried from defences-dp-models-a and -b)", _defences("dp")),
    # The lower half of the sweep by quantizer, its shadow and ranking attacks together, so that each of its models
    # trains once; the higher half's shadow rows were stored (sweep-high) before the ranking existed.
    *(Part(f"sweep-low-{'-'.join(curves)}", f"The privacy-utility sweep and the ranking's attacks (metric, label-only), "
           f"lower bitwidths: {', '.join(curves)}", _sweep(0, ("shadow", *RANKING_ATTACKS), curves))
      for curves in (("literal", "centred"), ("min-anchored", "dorefa"))),
    Part("sweep-high", "The privacy-utility sweep, higher bitwidths", _sweep(1, groups=("shadow",))),
    *(Part(f"ranking-high-{'-'.join(curves)}", f"The ranking's attacks (metric, label-only) on the sweep's higher "
           f"bitwidths: {', '.join(curves)}", _sweep(1, RANKING_ATTACKS, curves))
      for curves in (("literal", "centred"), ("min-anchored", "dorefa"))),
    Part("rest", "Anything of the plan no other part takes", lambda p: lambda e: True),
)
PART_NAMES = tuple(part.name for part in PARTS)


def assign(p: Profile) -> dict[str, list[Entry]]:
    """{part name: its (config, attack group) entries, in plan order}: each entry in exactly one part."""
    rules = [(part.name, part.takes(p)) for part in PARTS]
    out: dict[str, list[Entry]] = {name: [] for name in PART_NAMES}
    for config, groups in book_plan(p):
        for g in groups:
            out[next(name for name, takes in rules if takes((config, g)))].append((config, g))
    return out


_PART_OF: dict[str, dict[tuple[str, str], str]] = {}  # profile name -> {(target key, attack group): part}
_PART_COST: dict[tuple[str, str], str] = {}


def part_of(p: Profile, config: TrainConfig, group: str) -> str | None:
    """The part of ``p``'s plan that computes (config, attack group), or None when the plan does not hold it."""
    if p.name not in _PART_OF:
        _PART_OF[p.name] = {(c.key, g): name for name, entries in assign(p).items() for c, g in entries}
    return _PART_OF[p.name].get((config.key, group))


def part_cost(p: Profile, name: str) -> str:
    """A part's estimated cost in words: 'about 4.8 GPU-min or 1.2 CPU-h' (models carried into it counted as done)."""
    if (p.name, name) not in _PART_COST:
        carried = carried_into(p, name)
        gpu = part_estimate(p, name, measured_rates()[0], have=carried.__contains__) / 60
        cpu = part_estimate(p, name, measured_rates(cpu=True)[0], have=carried.__contains__, cpu=True) / 3600
        cpu_text = "" if any(m.arch == "resnet50" for m in part_models(p, assign(p)[name])) else f" or {cpu:.1f} CPU-h"
        _PART_COST[(p.name, name)] = f"about {gpu:.1f} GPU-min{cpu_text}"
    return _PART_COST[(p.name, name)]


def pending_text(p: Profile | None, config: TrainConfig, group: str) -> str:
    """Why a row has no numbers yet, for a table cell: 'not computed yet: part `resnet50-fp`, about 4.8 GPU-min'; for
    a configuration outside the profile's plan (e.g. a notebook rerun with other bitwidths), how to compute it."""
    name = part_of(p, config, group) if p is not None else None
    if name is None:
        return ("not computed yet: not in the plan; compute it with TRAIN=1 (make notebook ... TRAIN=1) or "
                "python -m qmia run")
    return f"not computed yet: part `{name}`, {part_cost(p, name)}"


def missing_parts(p: Profile) -> list[str]:
    """The parts of profile ``p`` with rows not stored under the results folder, in plan order."""
    return [name for name, entries in assign(p).items() if entries and missing_rows(p, entries)]


def trained_for_later(p: Profile, name: str) -> list[TrainConfig]:
    """The models a models-only part (one with ``trains``) trains for a later part; empty for another part."""
    part = get_part(name)
    return list(dict.fromkeys(part.trains(p))) if part.trains is not None else []


def carried_into(p: Profile, name: str) -> set[TrainConfig]:
    """The models that the models-only parts before part ``name`` train (and a lease carries to it)."""
    out: set[TrainConfig] = set()
    for part in PARTS:
        if part.name == name:
            return out
        out.update(trained_for_later(p, part.name))
    raise ValueError(f"unknown part {name!r}; valid: {', '.join(PART_NAMES)}")


def needed_models(p: Profile, names: list[str] | None = None) -> list[TrainConfig]:
    """The distinct models that parts ``names`` (default: those with missing rows, :func:`missing_parts`) train,
    in plan order: what a lease still needs trained or carried."""
    assigned = assign(p)
    return list(dict.fromkeys(m for n in (missing_parts(p) if names is None else names) for m in part_models(p, assigned[n])))


def needed_models_parts(p: Profile) -> list[str]:
    """The models-only parts whose models a part with missing rows still needs and that are not all available here."""
    wanted = set(needed_models(p))
    return [part.name for part in PARTS if part.trains is not None
            and any(m in wanted and not available(m) for m in trained_for_later(p, part.name))]


def get_part(name: str) -> Part:
    for part in PARTS:
        if part.name == name:
            return part
    raise ValueError(f"unknown part {name!r}; valid: {', '.join(PART_NAMES)}")


def _by_target(entries: list[Entry]) -> dict[TrainConfig, tuple[str, ...]]:
    out: dict[TrainConfig, list[str]] = {}
    for c, g in entries:
        out.setdefault(c, []).append(g)
    return {c: tuple(gs) for c, gs in out.items()}


def part_models(p: Profile, entries: list[Entry]) -> list[TrainConfig]:
    """The distinct models (targets, shadows, reference models) a part trains, in plan order, with the undefended
    models that pruned and post-training-quantized ones start from."""
    from .experiment import models_needed
    from .train import starting_model

    models = [m for c, gs in _by_target(entries).items() for ms in models_needed(c, gs, p.lira_refs).values() for m in ms]
    bases = [b for m in models if (b := starting_model(m)) is not None]
    return list(dict.fromkeys(models + bases))


def entry_keys(p: Profile, entries: list[Entry]) -> list[tuple[TrainConfig, str]]:
    """(target config, row key) of every result row the entries store."""
    from .experiment import row_keys

    return [(c, k) for c, g in entries for k in row_keys(c, g, p).values()]


def available(config: TrainConfig) -> bool:
    """Whether a model needs no training here: cached, or carried weights whose outputs are computed at once."""
    from .train import has_weights, is_cached

    return is_cached(config) or has_weights(config)


def _stored(row_key: str) -> bool:
    """Whether a row is stored and intact (a damaged one is reported and moved aside by :func:`load_row`)."""
    from .results import load_row

    return load_row(row_key) is not None


def missing_rows(p: Profile, entries: list[Entry]) -> int:
    """How many of the part's result rows are not stored (intact) under the results folder."""
    return sum(not _stored(k) for _, k in entry_keys(p, entries))


# ----------------------------------------------------------------------------- estimates and manifests


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


def measured_rates(cpu: bool = False) -> tuple[dict[str, float], str]:
    """{architecture: measured training seconds / the benchmark rates' seconds for the same models (each at the
    group size it trained in)}, from the stored manifests of parts run on a GPU (``cpu``: on a CPU, against
    :data:`CPU_RATES`), and the card(s) measured on; empty when no such part has run."""
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
            bench = _benchmark_seconds(model["arch"], size, model["epochs"] * model["n_train"],
                                       CPU_RATES if cpu else None) / size
            per.setdefault(model["arch"], []).append((model["seconds"], bench))
    return {a: sum(s for s, _ in v) / sum(b for _, b in v) for a, v in per.items()}, ", ".join(sorted(cards))


def _precision_factor(m: TrainConfig, cpu: bool) -> float:
    return CPU_FP32_SLOWDOWN.get(m.arch, 2.0) if cpu and m.precision == "fp32" else 1.0


def _benchmark_seconds(arch: str, group: int, images: int, table: dict | None = None) -> float:
    """Seconds to train ``group`` models of ``arch`` together, each on ``images`` training images, at the benchmark
    rates (``table``: :data:`BENCHMARK_RATES`, the GPU's, by default; :data:`CPU_RATES`)."""
    rates = (table or BENCHMARK_RATES)[arch]
    size = max(g for g in rates if g <= group)
    return group * images / rates[size]


def estimate_seconds(p: Profile, entries: list[Entry], rates: dict[str, float] | None = None,
                     have: Callable[[TrainConfig], bool] | None = None, models: list[TrainConfig] | None = None,
                     cpu: bool = False) -> float:
    """Estimated GPU seconds of a part: start-up, training (grouped as :func:`qmia.multitrain.train_many`
    groups) at the benchmark rates, each architecture's scaled by its measured factor in ``rates``
    (:func:`measured_rates`), and a fixed cost per result row. Models for which ``have`` is true (e.g.
    :func:`available`: cached, or carried weights) cost nothing to train; by default every model is trained,
    as on a bare machine. ``models``: train these instead of the entries' (a models-only part). ``cpu``: on a CPU
    (:data:`CPU_RATES`, one model at a time, :data:`CPU_SECONDS_PER_ROW`) instead of the GPU."""
    from .multitrain import dp_chunks, group_key, group_size_for

    if not entries and not models:
        return 0.0
    rates = rates or {}
    table = CPU_RATES if cpu else BENCHMARK_RATES
    groups: dict[TrainConfig, list[TrainConfig]] = {}
    dp_groups: dict[TrainConfig, list[TrainConfig]] = {}
    train = 0.0
    for m in (models if models is not None else part_models(p, entries)):
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
            size = len(members[start:start + step])
            train += _benchmark_seconds(m.arch, size, images, table) * rates.get(m.arch, 1.0) * _precision_factor(m, cpu)
    for members in dp_groups.values():  # in even groups (qmia.multitrain.dp_chunks); alone, Opacus itself
        m = members[0]
        for chunk in dp_chunks(len(members), group_size_for(m.arch, 1 if cpu else 16)):
            slowdown = DP_GROUP_SLOWDOWN if len(chunk) > 1 else DP_SLOWDOWN
            train += (_benchmark_seconds(m.arch, len(chunk), m.epochs * m.n_per_split, table) * rates.get(m.arch, 1.0)
                      * slowdown)
    per_row = CPU_SECONDS_PER_ROW if cpu else SECONDS_PER_ROW
    rows = sum(per_row.get(c.arch, 2.0) for c, _ in entry_keys(p, entries))
    return (CPU_STARTUP_SECONDS if cpu else STARTUP_SECONDS) + train + rows


def model_seconds(m: TrainConfig, cpu: bool) -> float:
    """Estimated seconds to train one model alone (:data:`CPU_RATES` or the GPU's :data:`BENCHMARK_RATES`)."""
    seconds = (_benchmark_seconds(m.arch, 1, m.epochs * m.n_per_split, CPU_RATES if cpu else BENCHMARK_RATES)
               * _precision_factor(m, cpu))
    if m.defence.kind == "dp":
        return seconds * DP_SLOWDOWN
    if m.defence.kind == "prune":
        return seconds * finetune_epochs_for(m.defence, m.epochs) / m.epochs
    return 0.0 if m.defence.kind == "ptq" else seconds


def part_estimate(p: Profile, name: str, rates: dict[str, float] | None = None,
                  have: Callable[[TrainConfig], bool] | None = None, cpu: bool = False) -> float:
    """Estimated GPU (``cpu``: CPU) seconds of part ``name`` (:func:`estimate_seconds`), a models-only part's from
    its models."""
    return estimate_seconds(p, assign(p)[name], rates, have, models=trained_for_later(p, name) or None, cpu=cpu)


def part_table(p: Profile) -> pd.DataFrame:
    """One row per non-empty part: name, what it holds, models by architecture, rows, estimated GPU minutes
    (and where the rate came from; a part after models-only parts counts their models as carried), measured
    minutes and status (a models-only part is done when no part with missing rows needs its models)."""
    rates, cards = measured_rates()
    cpu_rates, cpus = measured_rates(cpu=True)
    assigned = assign(p)
    missing_of = {name: missing_rows(p, es) for name, es in assigned.items() if es}
    wanted = set(needed_models(p, [name for name, k in missing_of.items() if k]))
    out = []
    for name, entries in assigned.items():
        later = trained_for_later(p, name)
        if not entries and not later:
            continue
        counts: dict[str, int] = {}
        for m in later or part_models(p, entries):
            counts[m.arch] = counts.get(m.arch, 0) + 1
        n_rows = len(entry_keys(p, entries))
        missing = missing_of.get(name, 0)
        manifest = read_manifest(name)
        carried = carried_into(p, name)
        status = ("done" if not wanted.intersection(later) else "needed") if later else \
            "done" if missing == 0 else f"missing {missing} of {n_rows} rows"
        out.append({
            "part": name, "holds": get_part(name).title,
            "models": ", ".join(f"{v} {k}" for k, v in sorted(counts.items())),
            "rows": n_rows,
            "estimated GPU min": round(part_estimate(p, name, rates, have=carried.__contains__) / 60, 1),
            "measured GPU min": round(manifest["wall_seconds"] / 60, 1) if manifest and not _on_cpu(manifest) else None,
            "estimated CPU h": round(part_estimate(p, name, cpu_rates, have=carried.__contains__, cpu=True) / 3600, 1),
            "measured CPU h": round(manifest["wall_seconds"] / 3600, 2) if manifest and _on_cpu(manifest) else None,
            "status": status,
        })
    df = pd.DataFrame(out)
    df["CPU can finish"] = [("yes" if h <= CPU_NIGHT_HOURS else "in runs") if "resnet50" not in m else "no (ResNet-50)"
                            for h, m in zip(df["estimated CPU h"], df["models"])]
    df.attrs["rates_from"] = f"measured parts ({cards})" if rates else BENCHMARK_CARD
    df.attrs["cpu_rates_from"] = f"measured parts ({cpus})" if cpu_rates else CPU_CARD
    return df


def _on_cpu(manifest: dict) -> bool:
    return str(manifest.get("gpu", "")).startswith("CPU")


MANIFEST_FIELDS = ("part", "profile", "gpu", "torch", "commit", "date", "wall_seconds", "models", "rows")


def _clean(commit: str) -> bool:
    return commit not in ("", "unknown") and not commit.endswith("-dirty")


def verify_stored(p: Profile) -> list[str]:
    """Problems with the stored parts of profile ``p`` (empty when every manifest is complete and true): each
    manifest has its fields, names a clean commit, and lists only rows that are stored, intact, of this profile
    and computed at that commit."""
    from .results import load_row

    problems = []
    for name in PART_NAMES:
        try:
            m = read_manifest(name)
        except DamagedEntry as e:
            problems.append(f"{name}: {e}")
            continue
        if m is None:
            continue
        lacking = [f for f in MANIFEST_FIELDS if f not in m]
        if lacking:
            problems.append(f"{name}: manifest lacks {', '.join(lacking)}")
            continue
        if m["profile"] != p.name or m["part"] != name:
            problems.append(f"{name}: manifest is of part {m['part']!r}, profile {m['profile']!r}")
        if not _clean(m["commit"]):
            problems.append(f"{name}: manifest commit {m['commit']!r} is not a clean commit")
        commits = {m["commit"], *(r.get("commit") for r in m.get("runs", []))}
        for run in m.get("runs", []):
            if not _clean(run.get("commit", "")):
                problems.append(f"{name}: a run's commit {run.get('commit')!r} is not a clean commit")
        for key in m["rows"]:
            row = load_row(key)
            if row is None:
                problems.append(f"{name}: row {key} is missing or damaged")
            elif row.get("profile") != p.name or row.get("commit") not in commits:
                problems.append(f"{name}: row {key} is of profile {row.get('profile')!r}, commit {row.get('commit')!r}")
    return problems


def _gpu_name(device) -> str:
    import torch

    dev = torch.device(device) if device is not None else None
    if torch.cuda.is_available() and (dev is None or dev.type == "cuda"):
        return torch.cuda.get_device_name(dev if dev is not None and dev.index is not None else 0)
    return f"CPU ({platform.processor() or platform.machine()})"


def _machine(device) -> dict:
    """Where a part runs, as its manifest records it: the GPU or CPU, torch's threads, and on a CPU whether bf16 is
    native."""
    import torch

    from .train import cpu_native_bf16

    out = {"gpu": _gpu_name(device), "threads": torch.get_num_threads()}
    if out["gpu"].startswith("CPU"):
        out["cpu_native_bf16"] = cpu_native_bf16()
    return out


def run_part(p: Profile, name: str, data_root=None, device=None, progress: bool | None = None,
             budget: float | None = None) -> dict:
    """Train and attack everything part ``name`` holds (stored rows are skipped), then write its manifest.

    ``budget``: seconds from now after which no model starts whose estimated training time does not fit in what is
    left (:func:`model_seconds`); the targets whose models are all trained are attacked and their rows stored, the
    finished models' weights are kept in the results folder for the next run (:func:`qmia.carry.keep`), and the
    manifest says ``complete: false``. A rerun (here or on another machine with the results folder) seeds the cache
    with those weights (:func:`qmia.carry.seed`) and goes on. Returns the manifest: {part, profile, gpu, threads,
    torch, commit, date, wall_seconds, estimate_seconds, models, rows, complete, runs}."""
    import torch

    from . import carry
    from .experiment import evaluate, models_needed
    from .multitrain import train_many
    from .train import TrainedModel, default_device, git_commit

    entries = assign(p)[get_part(name).name]
    later = trained_for_later(p, name)
    if not entries and not later:
        raise ValueError(f"part {name!r} holds nothing of profile {p.name!r}")
    start = time.perf_counter()
    deadline = None if budget is None else time.monotonic() + budget
    on_cpu = (torch.device(device) if device is not None else default_device()).type == "cpu"
    keys = entry_keys(p, entries)
    missing = {c for c, k in keys if not _stored(k)}
    todo = {c: gs for c, gs in _by_target(entries).items() if c in missing}
    models = later or part_models(p, [(c, g) for c, gs in todo.items() for g in gs])
    carry.seed(models)
    trained_before = {m for m in models if available(m)}  # carried weights count as trained elsewhere
    to_train = [m for m in models if m not in trained_before]
    rates = measured_rates(cpu=on_cpu)[0]
    done = [0]

    def may_start(chunk: list[TrainConfig]) -> bool:
        if on_cpu and done[0]:  # what is trained so far reaches the next run even if this one is killed
            carry.keep(p)
        need = sum(model_seconds(m, on_cpu) * rates.get(m.arch, 1.0) for m in chunk)
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and need > left:
            print(f"part {name}: budget: {chunk[0].label} needs about {need / 60:.0f} min, {max(left, 0) / 60:.0f} min "
                  f"left; stopping after {done[0]} of {len(to_train)} models", flush=True)
            return False
        done[0] += len(chunk)
        print(f"part {name}: model {done[0]} of {len(to_train)}: {chunk[0].label}"
              + (f" (+{len(chunk) - 1})" if len(chunk) > 1 else "")
              + f"; about {need / 60:.1f} min; {(time.perf_counter() - start) / 60:.0f} min elapsed"
              + (f", {left / 60:.0f} min of the budget left" if left is not None else ""), flush=True)
        return True

    train_many(models, data_root, device, progress, may_start=may_start if (budget is not None or on_cpu) else None)
    clip_model = p.config(*p.resnet, seed=0)
    if clip_model in models and available(clip_model):  # the clipping pages read these weights' statistics
        from .results import weight_stats

        weight_stats(clip_model, data_root)
    attacked = 0
    for c, gs in todo.items():
        if all(available(m) for ms in models_needed(c, gs, p.lira_refs).values() for m in ms):
            evaluate(c, gs, profile=p, data_root=data_root, device=device, progress=progress)
            attacked += 1
    wall = time.perf_counter() - start
    stored = sorted(k for _, k in keys if _stored(k))
    complete = len(stored) == len(keys) and all(available(m) for m in later)
    trained = []
    for m in models:
        if m in trained_before or not available(m):
            continue
        meta = TrainedModel(m).meta
        trained.append({"label": m.label, "key": m.key, "arch": m.arch, "defence": m.defence.kind,
                        "epochs": m.epochs, "n_train": m.n_per_split,
                        "trained_with": meta.get("trained_with", 1),
                        "seconds": round(meta["train_seconds"] / meta.get("trained_with", 1), 3),
                        "test_acc": meta["accuracy"].get("target_out"), "device": meta.get("device", ""),
                        "precision": meta.get("precision", "")})
    machine = _machine(device)
    run = {"commit": git_commit(), "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           **machine, "wall_seconds": round(wall, 1), "estimate_seconds": 0.0,
           "models_trained": len(trained), "targets_attacked": attacked, "budget_seconds": budget}
    old = read_manifest(name)
    if old and not trained and not attacked:  # a rerun that found everything stored keeps the first run's record
        return old
    if old is not None and old.get("complete", True) is False:  # resuming: add this run to the record
        runs = old.get("runs", []) + [run]
        old_models = [x for x in old["models"] if x["key"] not in {t["key"] for t in trained}]
        trained, wall = old_models + trained, old["wall_seconds"] + wall
    else:
        runs = [run]
    estimate = part_estimate(p, name, rates, have=trained_before.__contains__, cpu=on_cpu)
    run["estimate_seconds"] = round(estimate, 1)
    manifest = {
        "part": name, "profile": p.name, **machine, "torch": torch.__version__,
        "cuda": torch.version.cuda, "commit": runs[0]["commit"], "date": run["date"],
        "wall_seconds": round(wall, 1), "estimate_seconds": runs[0]["estimate_seconds"] or round(estimate, 1),
        "train_seconds": round(sum(t["seconds"] for t in trained), 1),
        "models": trained,
        "rows": stored,
        "complete": complete,
        "runs": runs,
    }
    if not trained and not attacked and not complete:  # a run that did nothing (no budget left) leaves no record
        return manifest
    atomic_write_json(seal(manifest), manifest_path(name))
    if on_cpu:  # what a CPU run trained reaches the next run, on any machine (a GPU lease carries its own)
        carried, size = carry.keep(p)
        print(f"part {name}: {len(carried)} models' weights carried in {carry.carried_root()} ({size / 2**20:.1f} MB)")
    return manifest
