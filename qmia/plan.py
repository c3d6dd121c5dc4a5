"""The book's experiments as data: which target configurations each result needs, and with which attacks.

Notebooks call these functions to build their configurations, and ``python -m qmia sweep``
runs :func:`book_plan` without Jupyter (e.g. on a GPU machine), so both always agree on
what the book shows. Every function takes the profile and optional overrides (bits, seeds,
readings) so a reader can rerun a notebook with other bitwidths.

The quantizer's readings (:data:`qmia.quantizers.PAPER_READINGS`) multiply the paper's
experiments; to keep the plan lean, each reading runs Tables 3-5 and Figure 6 at seed 0
(the adaptive shadow at the lowest bitwidth only), the abstract's claim rows (the ResNet at full
precision and at the lowest bitwidth) over the profile's ``claim_seeds``, and the recipe
comparison (the other training recipes) on the ResNet at full precision and the lowest bitwidth.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from .attack_registry import ATTACKS, models_needed
from .config import Profile, TrainConfig
from .defences import PTQ_MAX_BITS, PTQ_MIN_BITS, Defence
from .experiment import evaluate
from .extraction import ACCESS, extract, scaled_budgets
from .multitrain import train_many
from .quantizers import QuantSpec, curve_spec, reading_spec
from .train import train

Pair = tuple[str, str]  # (architecture, dataset)


def _seeds(p: Profile, seeds: Sequence[int] | None) -> tuple[int, ...]:
    return tuple(seeds) if seeds is not None else p.seeds


def paper_configs(
    p: Profile,
    models: Iterable[Pair] | None = None,
    bits: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    reading: str = "literal",
    recipe: str | None = None,
) -> list[TrainConfig]:
    """Tables 3-5 and Figure 5: each model at full precision and with the MIA quantizer at each bitwidth."""
    quants = [QuantSpec()] + [reading_spec(reading, b) for b in (bits or p.bits)]
    return [
        p.config(a, d, q, recipe=recipe, seed=s)
        for a, d in (models or p.models)
        for q in quants
        for s in _seeds(p, seeds)
    ]


def claim_configs(
    p: Profile, readings: Sequence[str] | None = None, bits: int | None = None, seeds: Sequence[int] | None = None
) -> list[TrainConfig]:
    """The abstract's claims: the profile's ResNet at full precision and at ``bits`` (default: the lowest),
    under each reading, over the profile's claim seeds."""
    b = bits or min(p.bits)
    seeds = tuple(seeds) if seeds is not None else p.claim_seeds
    quants = [QuantSpec()] + [reading_spec(r, b) for r in (readings or p.readings)]
    return [p.config(*p.resnet, q, seed=s) for q in quants for s in seeds]


def dorefa_configs(
    p: Profile, bits: Sequence[int] = (4, 8), seeds: Sequence[int] | None = None, reading: str = "literal"
) -> list[TrainConfig]:
    """Table 6: DoReFa-Net against the MIA quantizer (under ``reading``) on the profile's ResNet at each bitwidth."""
    a, d = p.resnet
    return [
        p.config(a, d, q, seed=s)
        for b in bits
        for q in (QuantSpec("dorefa", b), reading_spec(reading, b))
        for s in _seeds(p, seeds)
    ]


def partial_configs(
    p: Profile, bits: Sequence[int] = (4,), last: int = 5, seeds: Sequence[int] | None = None, reading: str = "literal"
) -> list[TrainConfig]:
    """Figure 6: only the last ``last`` layers quantized, against full precision and all layers."""
    a, d = p.resnet
    quants = [QuantSpec()] + [
        q for b in bits for q in (reading_spec(reading, b, layers=f"last:{last}"), reading_spec(reading, b))
    ]
    return [p.config(a, d, q, seed=s) for q in quants for s in _seeds(p, seeds)]


def recipe_configs(p: Profile, readings: Sequence[str] | None = None, bits: int | None = None) -> list[TrainConfig]:
    """The recipe comparison: the profile's ResNet at full precision and at ``bits`` (default: the lowest)
    under each reading, trained with each recipe of ``p.recipes`` (seed 0)."""
    b = bits or min(p.bits)
    quants = [QuantSpec()] + [reading_spec(r, b) for r in (readings or p.readings)]
    return list(dict.fromkeys(p.config(*p.resnet, q, recipe=r, seed=0) for r in p.recipes for q in quants))


PRECISION_READINGS = ("literal", "centred", "min-anchored")  # the 16-bit targets of the precision ablation


def precision_configs(p: Profile) -> list[TrainConfig]:
    """The precision ablation: the profile's ResNet at full precision and at its highest bitwidth under
    :data:`PRECISION_READINGS`, computed in the other precision than the profile's (paper: fp32 against the stored
    bf16 rows), seed 0; with the shadow attack, whose shadow is computed in that precision too."""
    other = "fp32" if p.precision == "bf16" else "bf16"
    b = max(p.bits)
    quants = [QuantSpec()] + [reading_spec(r, b) for r in PRECISION_READINGS]
    return [p.config(*p.resnet, q, seed=0, precision=other) for q in quants]


def lira_configs(p: Profile, bits: Sequence[int] = (4,), seeds: Sequence[int] | None = None) -> list[TrainConfig]:
    """LiRA targets: full precision and the MIA quantizer (z = 2 and centred) on the profile's LiRA models."""
    quants = [QuantSpec()] + [reading_spec(r, b) for b in bits for r in ("literal", "centred")]
    return [p.config(a, d, q, seed=s) for a, d in p.lira_models for q in quants for s in _seeds(p, seeds)]


SWEEP_CURVES = ("literal", "centred", "min-anchored", "dorefa")
# The LiRA targets meet every attack with reference models; the sweep's quantizers are ranked by the attacks that
# need no more than the full-precision shadow model (qmia.ranking).
STRONGER_ATTACKS = ("lira", "rmia", "label")
RANKING_ATTACKS = ("metric", "label")
DEFENCE_ATTACKS = ("shadow", "lira")  # the frontier: LiRA with reference models trained with the target's defence


def sweep_configs(
    p: Profile, bits: Sequence[int] | None = None, seeds: Sequence[int] | None = None
) -> list[TrainConfig]:
    """Privacy-utility sweep over ``sweep_bits``: DoReFa-Net and the MIA quantizer under three readings."""
    a, d = p.sweep
    quants = [QuantSpec()]
    for b in bits or p.sweep_bits:
        quants += [curve_spec(c, b) for c in SWEEP_CURVES]
    return [p.config(a, d, q, seed=s) for q in quants for s in _seeds(p, seeds)]


# Defences side by side (the frontier page), each with LiRA's reference models trained with the same defence.
PRUNE_SPARSITIES = (0.5, 0.8, 0.95)
PTQ_BITS = (8, 4, 2)
FRONTIER_QAT = (
    "literal",
    "centred",
    "dorefa",
)  # quantization-aware training at 4 bits: the paper's quantizer, DoReFa-Net


def defence_configs(p: Profile, seeds: Sequence[int] | None = None) -> list[TrainConfig]:
    """The frontier's targets on the profile's sweep model: full precision; quantization-aware training at 4 bits
    (the paper's quantizer, literal and centred, and DoReFa-Net); magnitude pruning at each of
    :data:`PRUNE_SPARSITIES` (global, fine-tuned); DP-SGD at each of the profile's ``dp_epsilons``; post-training
    quantization at each of :data:`PTQ_BITS`, per tensor and per channel."""
    a, d = p.sweep
    quants = [QuantSpec()] + [curve_spec(c, 4) for c in FRONTIER_QAT]
    defences = (
        [Defence("prune", sparsity=s) for s in PRUNE_SPARSITIES]
        + [Defence("dp", epsilon=e) for e in p.dp_epsilons]
        + [Defence("ptq", bits=b, granularity=g) for b in PTQ_BITS for g in ("tensor", "channel")]
    )
    configs = [p.config(a, d, q, seed=s) for q in quants for s in _seeds(p, seeds)]
    return configs + [p.config(a, d, defence=df, seed=s) for df in defences for s in _seeds(p, seeds)]


# Beyond the black box: the white-box attack and model extraction, on the sweep model at the profile's bitwidths.
EXPOSURE_CURVES = ("literal", "centred", "dorefa")  # quantization-aware training; post-training quantization besides
EXPOSURE_ATTACKS = ("shadow", "whitebox")  # the black-box attack beside the white-box one, on the same targets


def exposure_configs(
    p: Profile, bits: Sequence[int] | None = None, seeds: Sequence[int] | None = None
) -> list[TrainConfig]:
    """The targets of the white-box and extraction page on the profile's sweep model: full precision; the paper's
    quantizer (literal and centred) and DoReFa-Net at each of ``bits`` (default: the profile's); post-training
    quantization per output channel at each of ``bits`` (those from 2 to 16)."""
    a, d = p.sweep
    configs = [p.config(a, d, seed=s) for s in _seeds(p, seeds)]
    for b in bits or p.bits:
        configs += [p.config(a, d, curve_spec(c, b), seed=s) for c in EXPOSURE_CURVES for s in _seeds(p, seeds)]
        if PTQ_MIN_BITS <= b <= PTQ_MAX_BITS:
            ptq = Defence("ptq", bits=b, granularity="channel")
            configs += [p.config(a, d, defence=ptq, seed=s) for s in _seeds(p, seeds)]
    return configs


ExtractionRequest = tuple[
    TrainConfig, str, int
]  # (target, access level, query budget); the surrogate: the target's arch


def extraction_budgets(p: Profile) -> tuple[int, ...]:
    """The query budgets at the profile's scale: 1k / 5k / 15k of the paper's 30,000-image pool, scaled to the sweep
    model's pool (2 x n_per_split)."""
    a, d = p.sweep
    return scaled_budgets(2 * p.config(a, d).n_per_split)


def extraction_plan(
    p: Profile, bits: Sequence[int] | None = None, seeds: Sequence[int] | None = None
) -> list[ExtractionRequest]:
    """Every extraction the page needs: each target of :func:`exposure_configs` at each access level and budget."""
    return [
        (c, access, b) for c in exposure_configs(p, bits, seeds) for access in ACCESS for b in extraction_budgets(p)
    ]


# ResNet-50 is the costliest model by far; the paper's statements about it are about 4 and 8 bits only.
READING_BITS = {"resnet50": (4, 8)}


def reading_bits(p: Profile, arch: str) -> tuple[int, ...]:
    """The bitwidths at which the readings page runs (and its statements read) ``arch``."""
    return tuple(b for b in p.bits if runs_reading(arch, b, "other"))


def runs_reading(arch: str, bits: int, reading: str) -> bool:
    """Whether the book runs ``arch`` at ``bits`` under ``reading``: always for the literal reading, and
    for the others except where :data:`READING_BITS` limits the model (ResNet-50: 4 and 8 bits)."""
    return reading == "literal" or arch not in READING_BITS or bits in READING_BITS[arch]


def readings_plan(p: Profile) -> list[tuple[TrainConfig, tuple[str, ...]]]:
    """What the readings page needs: every reading's Tables 3-5 and Figure 6 configurations (seed 0, at
    :func:`reading_bits`; the adaptive shadow at the lowest bitwidth, not for ResNet-50), Table 6's
    DoReFa-Net, the claim rows and the recipe comparison."""
    low = min(p.bits)
    plan: list[tuple[TrainConfig, tuple[str, ...]]] = []
    for r in p.readings:
        for c in paper_configs(p, seeds=(0,), reading=r):
            if c.quant.method == "mia" and not runs_reading(c.arch, c.quant.bits, r):
                continue
            plan.append((c, ("shadow", "adaptive") if c.quant.bits == low and c.arch != "resnet50" else ("shadow",)))
        plan += [(c, ("shadow",)) for c in partial_configs(p, seeds=(0,), reading=r)]
    plan += [(c, ("shadow",)) for c in dorefa_configs(p, seeds=(0,))]
    plan += [(c, ("shadow",)) for c in claim_configs(p) + recipe_configs(p)]
    merged: dict[TrainConfig, set[str]] = {}
    for c, attacks in plan:  # the full-precision targets recur under every reading: one entry each
        merged.setdefault(c, set()).update(attacks)
    return [(c, tuple(a for a in ("shadow", "adaptive") if a in attacks)) for c, attacks in merged.items()]


def book_plan(p: Profile) -> list[tuple[TrainConfig, tuple[str, ...]]]:
    """Every (target config, attack groups) the book's notebooks evaluate under profile ``p``."""
    plan: dict[TrainConfig, set[str]] = {}

    def add(configs: list[TrainConfig], attacks: tuple[str, ...]) -> None:
        for c in configs:
            plan.setdefault(c, set()).update(attacks)

    add(paper_configs(p), ("shadow", "adaptive", "metric"))
    for c, attacks in readings_plan(p):
        add([c], attacks)
    add(dorefa_configs(p), ("shadow",))
    add(partial_configs(p), ("shadow",))
    add(lira_configs(p), ("shadow",) + STRONGER_ATTACKS)
    add(sweep_configs(p), ("shadow",) + RANKING_ATTACKS)
    add(defence_configs(p), DEFENCE_ATTACKS)
    add(precision_configs(p), ("shadow",))
    add(exposure_configs(p), EXPOSURE_ATTACKS)
    return [(c, tuple(a for a in ATTACKS if a in attacks)) for c, attacks in plan.items()]


def run_plan(p: Profile, data_root=None, device=None, progress: bool | None = None) -> pd.DataFrame:
    """Evaluate the whole book plan; returns all rows. Cached models and rows are reused."""
    plan = book_plan(p)
    start = time.perf_counter()
    # every model of the plan first, so that models of one shape train together on a GPU
    needed = [c for config, attacks in plan for cs in models_needed(config, attacks, p.lira_refs).values() for c in cs]
    train_many(needed, data_root, device, progress)
    frames = []
    for config, attacks in tqdm(plan, desc=f"{p.name} plan", unit="target", disable=progress is False):
        frames.append(evaluate(config, attacks, profile=p, data_root=data_root, device=device, progress=progress))
    run_extractions(extraction_plan(p), data_root, device, progress)
    df = pd.concat(frames, ignore_index=True)
    df.attrs["seconds"] = time.perf_counter() - start
    return df


def run_extractions(
    requests: list[ExtractionRequest], data_root=None, device=None, progress: bool | None = None
) -> list[dict]:
    """Each extraction's record (:func:`qmia.extraction.extract`; stored ones are read), its target trained or read
    from the cache first."""
    out = []
    for c, access, b in tqdm(requests, desc="extraction", unit="surrogate", disable=progress is False):
        out.append(
            extract(
                train(c, data_root, device, progress=progress),
                access,
                b,
                None,
                data_root,
                device,
                progress=bool(progress),
            )
        )
    return out


def count_models(p: Profile) -> dict[str, int]:
    """Distinct models the plan trains, by architecture (targets, shadows and reference models)."""
    models = {
        c for config, attacks in book_plan(p) for cs in models_needed(config, attacks, p.lira_refs).values() for c in cs
    }
    out: dict[str, int] = {}
    for c in models:
        out[c.arch] = out.get(c.arch, 0) + 1
    return out
