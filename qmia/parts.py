"""The book's plan in parts: each part a named share of :func:`qmia.plan.book_plan` that fits one
GPU command (at most 8 minutes on one H100 in the ``paper`` profile), run on its own, resumable.

Every (target config, attack group) of the plan belongs to exactly one part: the first, in
:data:`PARTS`' order, whose rule takes it. The order is what the book needs most: the Tables 3-5
ResNet-20 models and the abstract's claims first, then LeNet, ResNet-50, Table 6 / Figure 6, LiRA,
and the sweep. This module is the partition and what each part needs (its models, its rows);
:mod:`qmia.part_status` says which are stored or available here, :mod:`qmia.estimates` what a part costs,
:mod:`qmia.part_runs` runs one (a shadow or reference model shared with another part is trained again,
identically by seed, unless its weights were carried: ``scripts/carry_models.py``, ``qmia.carry``) and writes
``<results>/parts/<name>.json``, and :mod:`qmia.executor` runs parts as jobs.

    python -m qmia sweep --profile paper --parts            # the parts, estimates, which are done
    python -m qmia sweep --profile paper --part tables-resnet20
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .attack_registry import models_needed
from .config import Profile, TrainConfig
from .experiment import row_keys
from .plan import (
    DEFENCE_ATTACKS,
    EXPOSURE_ATTACKS,
    RANKING_ATTACKS,
    STRONGER_ATTACKS,
    ExtractionRequest,
    book_plan,
    claim_configs,
    defence_configs,
    dorefa_configs,
    exposure_configs,
    extraction_plan,
    lira_configs,
    paper_configs,
    partial_configs,
    precision_configs,
    recipe_configs,
    sweep_configs,
)
from .train import starting_model
from .vocabulary import EXPOSURE_FAMILY_NAMES

Entry = tuple[TrainConfig, str]  # (target config, attack group)


@dataclass(frozen=True)
class Part:
    """A named share of the plan: ``takes(profile)`` is the set of (config, attack group) it may take. A part with
    ``trains`` takes no entries: it trains those models of a later part, whose weights the lease carries to the
    next (``scripts/carry_models.py``), so that a part too large for one command runs in several. A part with
    ``extracts`` takes no entries either: it trains those targets and runs their model extractions (records in
    ``<results>/extraction``, :mod:`qmia.extraction`)."""

    name: str
    title: str
    takes: Callable[[Profile], Callable[[Entry], bool]]
    trains: Callable[[Profile], list[TrainConfig]] | None = None
    extracts: Callable[[Profile], list[ExtractionRequest]] | None = None


def _configs(make: Callable[[Profile], list[TrainConfig]], groups: tuple[str, ...] | None = None):
    """A rule taking the entries whose config ``make(profile)`` lists (and whose group is in ``groups``)."""

    def takes(p: Profile) -> Callable[[Entry], bool]:
        configs = set(make(p))
        return lambda e: e[0] in configs and (groups is None or e[1] in groups)

    return takes


def _arch(
    arch: str,
    *,
    bits: tuple[int | None, ...] | None = None,
    groups: tuple[str, ...] | None = None,
    exclude: tuple[str, ...] = (),
):
    def takes(p: Profile) -> Callable[[Entry], bool]:
        return lambda e: (
            e[0].arch == arch
            and (bits is None or e[0].quant.bits in bits)
            and (groups is None or e[1] in groups)
            and e[1] not in exclude
        )

    return takes


def _tables(arch: str, literal: bool, bits: tuple[int, ...] | None = None):
    """Tables 3-5 and the readings page for ``arch`` at seed 0, not LiRA: full precision and the literal reading
    (``literal``; the shadow, adaptive and metric attacks), or the other readings (the shadow and adaptive attacks,
    what the readings page shows); at ``bits`` (default: every bitwidth)."""

    def make(p: Profile) -> list[TrainConfig]:
        pairs = [(a, d) for a, d in p.models if a == arch]
        readings = ["literal"] if literal else [r for r in p.readings if r != "literal"]
        wanted = bits if bits is not None else (None, *p.bits)
        return [
            c
            for r in readings
            for c in paper_configs(p, pairs, seeds=(0,), reading=r)
            if c.quant.bits in wanted and (literal or c.quant.method != "none")
        ]

    return _configs(make, groups=TABLE_GROUPS if literal else ("shadow", "adaptive"))


def _lira(arch: str, quant: str | None, groups: tuple[str, ...]):
    """The LiRA targets of ``arch`` (``quant``: 'fp', a reading, or None for all) and attack ``groups``."""

    def make(p: Profile) -> list[TrainConfig]:
        return [
            c
            for c in lira_configs(p)
            if c.arch == arch and (quant is None or c.quant.curve == ("none" if quant == "fp" else quant))
        ]

    return _configs(make, groups=groups)


def _defences(kind: str, sparsities: tuple[float, ...] | None = None):
    """The defences page's targets of one kind ('qat': quantization-aware training; or a defence kind), pruned
    ones at ``sparsities`` only (default: all)."""

    def make(p: Profile) -> list[TrainConfig]:
        return [
            c
            for c in defence_configs(p)
            if (c.defence.kind == kind if kind != "qat" else c.defence.kind == "none" and c.quant.method != "none")
            and (sparsities is None or c.defence.sparsity in sparsities)
        ]

    return _configs(make, groups=DEFENCE_ATTACKS)


def _dp_models(half: int):
    """The DP-SGD models of the frontier's DP-SGD targets: the first half of their reference models (``half`` 0), or
    the second half with the targets themselves (1), so that each half trains as one group."""

    def make(p: Profile) -> list[TrainConfig]:
        targets = [c for c in defence_configs(p) if c.defence.kind == "dp"]
        refs = [r for c in targets for r in models_needed(c, DEFENCE_ATTACKS, p.lira_refs)["refs_adaptive"]]
        cut = p.lira_refs // 2
        return (
            [r for r in refs if r.ref_index < cut] if half == 0 else [r for r in refs if r.ref_index >= cut] + targets
        )

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


def exposure_family(c: TrainConfig) -> str:
    """A target of the white-box and extraction page by family: 'fp', 'literal', 'centred', 'dorefa' or 'ptq'."""
    return "ptq" if c.defence.kind == "ptq" else "fp" if c.quant.method == "none" else c.quant.curve


def _exposure_rows(families: tuple[str, ...]):
    return _configs(
        lambda p: [c for c in exposure_configs(p) if exposure_family(c) in families], groups=EXPOSURE_ATTACKS
    )


def _extractions(families: tuple[str, ...]):
    return lambda p: [r for r in extraction_plan(p) if exposure_family(r[0]) in families]


TABLE_GROUPS = ("shadow", "adaptive", "metric")
PARTS: tuple[Part, ...] = (
    Part(
        "tables-resnet20",
        "Tables 3-5, ResNet-20: full precision and the literal reading (z = 2) at each bitwidth (seed 0)",
        _tables("resnet20", literal=True),
    ),
    Part(
        "readings-resnet20",
        "Tables 3-5, ResNet-20: the other readings at each bitwidth (seed 0)",
        _tables("resnet20", literal=False),
    ),
    Part(
        "claims-resnet20",
        "The abstract's claims: ResNet-20 full precision and 4-bit under every reading, seeds 1 and 2",
        _configs(claim_configs, groups=("shadow", "adaptive")),
    ),
    Part(
        "precision-resnet20",
        "The precision ablation: ResNet-20 at full precision and 16 bits (literal, centred, "
        "min-anchored) in float32, against the stored bf16 rows (seed 0, shadow attack)",
        _configs(precision_configs, groups=("shadow",)),
    ),
    Part(
        "tables-lenet",
        "Tables 3-5, LeNet-5: full precision and every reading at each bitwidth (seed 0)",
        _arch("lenet", exclude=(*STRONGER_ATTACKS, "whitebox")),
    ),
    Part("resnet50-fp", "Tables 3-5, ResNet-50: full precision", _tables("resnet50", literal=True, bits=(None,))),
    Part("resnet50-4bit", "Tables 3-5, ResNet-50: 4 bits, z = 2", _tables("resnet50", literal=True, bits=(4,))),
    Part(
        "resnet50-4bit-readings",
        "Tables 3-5, ResNet-50: 4 bits, the other readings",
        _tables("resnet50", literal=False, bits=(4,)),
    ),
    Part("resnet50-8bit", "Tables 3-5, ResNet-50: 8 bits, z = 2", _tables("resnet50", literal=True, bits=(8,))),
    Part(
        "resnet50-8bit-readings",
        "Tables 3-5, ResNet-50: 8 bits, the other readings",
        _tables("resnet50", literal=False, bits=(8,)),
    ),
    Part("resnet50-16bit", "Tables 3-5, ResNet-50: 16 bits", _arch("resnet50", bits=(16,), exclude=("lira",))),
    Part(
        "table6-fig6",
        "Table 6 (DoReFa-Net), Figure 6 (last 5 layers) and the recipe comparison, ResNet-20",
        _configs(
            lambda p: (
                dorefa_configs(p)
                + [c for r in p.readings for c in partial_configs(p, seeds=(0,), reading=r)]
                + partial_configs(p)
                + recipe_configs(p)
            ),
            groups=("shadow", "adaptive"),
        ),
    ),
    Part(
        "lira-lenet", "LiRA on LeNet-5: full precision and 4 bits (z = 2 and centred)", _lira("lenet", None, ("lira",))
    ),
    Part("lira-resnet20-fp", "LiRA on ResNet-20 at full precision", _lira("resnet20", "fp", ("lira",))),
    Part(
        "lira-resnet20-literal",
        "LiRA, RMIA and label-only attacks on ResNet-20 at 4 bits, z = 2",
        _lira("resnet20", "literal", STRONGER_ATTACKS),
    ),
    Part(
        "lira-resnet20-centred",
        "LiRA, RMIA and label-only attacks on ResNet-20 at 4 bits, centred",
        _lira("resnet20", "centred", STRONGER_ATTACKS),
    ),
    Part(
        "stronger-lenet",
        "RMIA and label-only attacks on LeNet-5's LiRA targets",
        _lira("lenet", None, ("rmia", "label")),
    ),
    Part(
        "stronger-resnet20-fp",
        "RMIA and label-only attacks on ResNet-20 at full precision",
        _lira("resnet20", "fp", ("rmia", "label")),
    ),
    Part(
        "defences-qat",
        "Defences side by side: DoReFa-Net at 4 bits with LiRA (the proposed quantizer's are LiRA parts)",
        _defences("qat"),
    ),
    *(
        Part(
            f"defences-prune-{'-'.join(f'{s:.0%}'.removesuffix('%') for s in sp)}",
            "Defences side by side: magnitude "
            f"pruning at {', '.join(f'{s:.0%}' for s in sp)}, fine-tuned, with LiRA on pruned reference models",
            _defences("prune", sp),
        )
        for sp in ((0.5, 0.8), (0.95,))
    ),
    Part(
        "defences-ptq",
        "Defences side by side: post-training quantization, with LiRA on quantized reference models",
        _defences("ptq"),
    ),
    Part(
        "defences-dp-models-a",
        "Defences side by side: DP-SGD, the first half of the reference models (trained and "
        "carried to defences-dp; no rows)",
        _nothing,
        trains=_dp_models(0),
    ),
    Part(
        "defences-dp-models-b",
        "Defences side by side: DP-SGD, the second half of the reference models and the "
        "target (trained and carried to defences-dp; no rows)",
        _nothing,
        trains=_dp_models(1),
    ),
    Part(
        "defences-dp",
        "Defences side by side: DP-SGD, with LiRA on reference models trained with DP-SGD (the DP-SGD "
        "models carried from defences-dp-models-a and -b)",
        _defences("dp"),
    ),
    # The lower half of the sweep by quantizer, its shadow and ranking attacks together, so that each of its models
    # trains once; the higher half's shadow rows were stored (sweep-high) before the ranking existed.
    *(
        Part(
            f"sweep-low-{'-'.join(curves)}",
            f"The privacy-utility sweep and the ranking's attacks (metric, label-only), "
            f"lower bitwidths: {', '.join(curves)}",
            _sweep(0, ("shadow", *RANKING_ATTACKS), curves),
        )
        for curves in (("literal", "centred"), ("min-anchored", "dorefa"))
    ),
    Part("sweep-high", "The privacy-utility sweep, higher bitwidths", _sweep(1, groups=("shadow",))),
    *(
        Part(
            f"ranking-high-{'-'.join(curves)}",
            f"The ranking's attacks (metric, label-only) on the sweep's higher bitwidths: {', '.join(curves)}",
            _sweep(1, RANKING_ATTACKS, curves),
        )
        for curves in (("literal", "centred"), ("min-anchored", "dorefa"))
    ),
    *(
        Part(
            f"whitebox-{'-'.join(families)}",
            "Beyond the black box: the white-box attack (and the shadow attack beside it) on the sweep model: "
            + ", ".join(EXPOSURE_FAMILY_NAMES[f] for f in families),
            _exposure_rows(families),
        )
        for families in (("fp", "literal", "centred"), ("dorefa", "ptq"))
    ),
    *(
        Part(
            f"extraction-{'-'.join(families)}",
            "Beyond the black box: model extraction at each access level and query budget (no rows): "
            + ", ".join(EXPOSURE_FAMILY_NAMES[f] for f in families),
            _nothing,
            extracts=_extractions(families),
        )
        for families in (("fp",), ("literal",), ("centred",), ("dorefa",), ("ptq",))
    ),
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


def part_of(p: Profile, config: TrainConfig, group: str) -> str | None:
    """The part of ``p``'s plan that computes (config, attack group), or None when the plan does not hold it."""
    if p.name not in _PART_OF:
        _PART_OF[p.name] = {(c.key, g): name for name, entries in assign(p).items() for c, g in entries}
    return _PART_OF[p.name].get((config.key, group))


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


def part_extractions(p: Profile, name: str) -> list[ExtractionRequest]:
    """The extractions part ``name`` runs (empty for a part without ``extracts``)."""
    part = get_part(name)
    return list(part.extracts(p)) if part.extracts is not None else []


def extraction_part_of(p: Profile, request: ExtractionRequest) -> str | None:
    """The part of ``p``'s plan that runs an extraction, or None when the plan does not hold it."""
    if p.name not in _EXTRACTION_PART:
        _EXTRACTION_PART[p.name] = {
            r: part.name for part in PARTS if part.extracts is not None for r in part.extracts(p)
        }
    return _EXTRACTION_PART[p.name].get(request)


_EXTRACTION_PART: dict[str, dict[ExtractionRequest, str]] = {}  # profile name -> {request: part}


def get_part(name: str) -> Part:
    for part in PARTS:
        if part.name == name:
            return part
    raise ValueError(f"unknown part {name!r}; valid: {', '.join(PART_NAMES)}")


def by_target(entries: list[Entry]) -> dict[TrainConfig, tuple[str, ...]]:
    """{target config: its attack groups}, in the entries' order."""
    out: dict[TrainConfig, list[str]] = {}
    for c, g in entries:
        out.setdefault(c, []).append(g)
    return {c: tuple(gs) for c, gs in out.items()}


def part_models(p: Profile, entries: list[Entry]) -> list[TrainConfig]:
    """The distinct models (targets, shadows, reference models) a part trains, in plan order, with the undefended
    models that pruned and post-training-quantized ones start from."""
    models = [
        m for c, gs in by_target(entries).items() for ms in models_needed(c, gs, p.lira_refs).values() for m in ms
    ]
    bases = [b for m in models if (b := starting_model(m)) is not None]
    return list(dict.fromkeys(models + bases))


def extraction_models(requests: list[ExtractionRequest]) -> list[TrainConfig]:
    """The targets the extractions query, with the undefended models that post-training-quantized ones start from."""
    targets = list(dict.fromkeys(c for c, _, _ in requests))
    return list(dict.fromkeys(targets + [b for m in targets if (b := starting_model(m)) is not None]))


def entry_keys(p: Profile, entries: list[Entry]) -> list[tuple[TrainConfig, str]]:
    """(target config, row key) of every result row the entries store."""
    return [(c, k) for c, g in entries for k in row_keys(c, g, p).values()]
