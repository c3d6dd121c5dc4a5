"""How one comparison is decided beyond noise, for the statement rules (:mod:`qmia.statement_rules`).

A rule returns one :class:`Cell`: agrees / disagrees when the comparison behind it is resolved (its 95 % interval
on one side), not measurable when it is not (``noise``), or because of a utility collapse, a baseline at chance, two
trainings of one key, or missing models. Comparisons of one attack on two targets are paired by seed and example
(:func:`drop_rule`, through :meth:`qmia.evidence.Evidence.compare`), their intervals at least as wide as two single
trainings' variation of the metric (:func:`attack_gap`); comparisons of two models' test accuracies use the
normal interval of a difference of two proportions, each model's variance at least the training-to-training variance
measured on the stored rows (:func:`model_gap`, :mod:`qmia.training_noise`): two single trainings differ by more than
their test examples say. Ties never agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .claims import (
    AGREES,
    CHANCE,
    DISAGREES,
    MAX_UTILITY_DROP,
    UNMEASURABLE,
    leaks,
    single_trainings,
)
from .config import TrainConfig
from .evidence import Evidence
from .plan import reading_bits, reading_spec
from .uncertainty import Z95, Comparison
from .vocabulary import ARCH_NAMES, MARK


@dataclass(frozen=True)
class Cell:
    """A statement checked under one reading: its status, the numbers why, and whether it is undecided only because
    of noise (``noise``: more data could decide it either way; :func:`choose_reading` counts such cells as open)."""

    status: str
    detail: str
    noise: bool = False

    @property
    def mark(self) -> str:
        return MARK[self.status]


@dataclass(frozen=True)
class Gap:
    """A difference with its 95 % interval (fractions: 0.01 = 1 point); ``training``: the training-to-training
    variation the interval holds, as text (empty for paired comparisons of one training)."""

    value: float
    lo: float
    hi: float
    training: str = ""

    def __str__(self) -> str:
        extra = f"; {self.training}" if self.training else ""
        return f"{100 * self.value:+.1f} points (95 % CI {100 * self.lo:+.1f} to {100 * self.hi:+.1f}{extra})"


def accuracy_gap(a: float, b: float, n_a: int, n_b: int, sd_a: float = 0.0, sd_b: float = 0.0) -> Gap:
    """a - b for two accuracies of two single trainings, measured on n_a and n_b examples: the normal interval of a
    difference of two independent proportions, each with a variance of at least its training's seed-to-seed
    variance ``sd_a``**2, ``sd_b``**2 (:mod:`qmia.training_noise`; that variance already holds the test examples'
    noise, as each seed draws its own split)."""
    var_a = max(max(a * (1 - a), 0.0) / n_a, sd_a**2)
    var_b = max(max(b * (1 - b), 0.0) / n_b, sd_b**2)
    se = math.sqrt(var_a + var_b)
    return Gap(a - b, a - b - Z95 * se, a - b + Z95 * se)


def model_gap(
    ev: Evidence, a: float, b: float, model_a: tuple[str, str], model_b: tuple[str, str] | None = None
) -> Gap:
    """:func:`accuracy_gap` of the test accuracies ``a`` and ``b`` of two single trainings of ``model_a`` and
    ``model_b`` ((architecture, dataset); default the same), each given the training variation measured on the
    stored rows (:meth:`qmia.evidence.Evidence.training_noise`); examples only where none is measured."""
    model_b = model_b or model_a
    noise = [ev.training_noise(arch) for arch, _ in (model_a, model_b)]
    sds = [n.sd if n is not None else 0.0 for n in noise]
    g = accuracy_gap(a, b, examples_per_split(ev, *model_a), examples_per_split(ev, *model_b), *sds)
    if noise[0] == noise[1]:
        said = str(noise[0]) if noise[0] is not None else "training variation not measured"
    else:
        said = "; ".join(
            f"{short_name(arch)}: {n if n is not None else 'training variation not measured'}"
            for (arch, _), n in zip((model_a, model_b), noise)
        )
    return replace(g, training=said)


def drop_gap(c: Comparison) -> Gap:
    """The drop before - after of a paired comparison, as a Gap (the examples' and seeds' noise only)."""
    return Gap(c.reduction, c.reduction_lo, c.reduction_hi)


def attack_gap(
    ev: Evidence,
    before: TrainConfig,
    after: TrainConfig,
    metric: str,
    *,
    chance: float | None = None,
    attack_after: str = "shadow",
) -> Gap:
    """The drop of one attack's ``metric`` from ``before`` to ``after`` (paired by example,
    :meth:`qmia.evidence.Evidence.compare`, credited only down to ``chance``), its interval at least as wide as two
    single trainings' variation of the metric (:func:`qmia.claims.single_trainings`)."""
    c = ev.compare(before, after, metric, chance=chance, attack_after=attack_after)
    widened, noise = single_trainings(ev, c, before.arch)
    return replace(drop_gap(widened), training=noise)


def not_measurable(why: str, noise: bool = False) -> Cell:
    return Cell(UNMEASURABLE, why, noise)


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def short_name(arch: str) -> str:
    return ARCH_NAMES.get(arch, arch)


def examples_per_split(ev: Evidence, arch: str, dataset: str) -> int:
    return ev.config(arch, dataset).n_per_split  # each split (the test split included) has this many examples


def bits_of(ev: Evidence, wanted: Sequence[int]) -> list[int]:
    return [b for b in ev.p.bits if b in wanted]


def sign(g: Gap, claimed_positive: bool = True) -> str:
    """'yes' when the interval lies above zero (below, for claimed_positive=False), 'no' when it lies on the other
    side, 'noise' when it holds zero (a tie included)."""
    if (g.lo > 0) if claimed_positive else (g.hi < 0):
        return "yes"
    if (g.hi < 0) if claimed_positive else (g.lo > 0):
        return "no"
    return "noise"


def decide(results: list[tuple[str, str]], collapsed: list[str] = ()) -> Cell:
    """One cell from several comparisons, each ('yes' | 'no' | 'noise', its text): any resolved against the
    statement disagrees; else a utility collapse makes it not measurable; else all resolved for it agrees; else it is
    not measurable at this size."""
    text = "; ".join(t for _, t in results)
    if collapsed:
        text = "; ".join([*(t for _, t in results), *(f"{c}: utility collapse" for c in collapsed)])
    if any(s == "no" for s, _ in results):
        return Cell(DISAGREES, text)
    if collapsed:
        return not_measurable("not measurable (utility collapse): " + text)
    if results and all(s == "yes" for s, _ in results):
        return Cell(AGREES, text)
    if not results:
        return not_measurable("nothing to compare")
    return not_measurable("not measurable at this size: " + text, noise=True)


def drop_rule(
    ev: Evidence,
    pairs: list[tuple[str, object, object]],
    metrics: Sequence[str],
    *,
    baseline=None,
    attack_after: str = "shadow",
) -> Cell:
    """ "``metrics`` of the attack are lower after than before" for every (label, before config, after config): paired
    comparisons, each credited only down to chance; the first before config's attack must leak (``baseline``: the
    config whose AUC must; default the first before); an after target that lost more than the utility tolerance
    against its before is a collapse."""
    base = baseline if baseline is not None else pairs[0][1]
    auc = ev.estimate([base])
    if not leaks(auc):
        return not_measurable(f"not measurable (the baseline attack is at chance: AUC {auc})")
    results, collapsed = [], []
    for label, before, after in pairs:
        b_row, a_row = ev.paired_rows([(before, "shadow"), (after, attack_after)])
        if b_row["target_test_acc"] - a_row["target_test_acc"] > MAX_UTILITY_DROP:
            collapsed.append(f"{label} (test acc. {pct(a_row['target_test_acc'])} vs {pct(b_row['target_test_acc'])})")
            continue
        for m in metrics:
            c = ev.compare(before, after, m, chance=CHANCE.get(m), attack_after=attack_after)
            g = attack_gap(ev, before, after, m, chance=CHANCE.get(m), attack_after=attack_after)
            text = f"{label} {m.replace('_', ' ')} {c.before.value:.3f} -> {c.after.value:.3f}, drop {g}"
            results.append((sign(g), text))
    return decide(results, collapsed)


def fp_vs(ev: Evidence, reading: str, models, bits, layers: str = "all") -> list[tuple[str, object, object]]:
    out = []
    for a, d in models:
        for b in [b for b in bits if b in reading_bits(ev.p, a)]:
            out.append(
                (f"{short_name(a)} {b}b", ev.config(a, d), ev.config(a, d, reading_spec(reading, b, layers=layers)))
            )
    return out


def models_of(ev: Evidence, without_resnet50: bool = False) -> list[tuple[str, str]]:
    return [m for m in ev.p.models if not (without_resnet50 and m[0] == "resnet50")]


def combine(cells: Sequence[Cell]) -> Cell:
    """Cells of one statement on several models: any disagreement disagrees; else any not measurable is not
    measurable (at this size only when all of those are); else it agrees."""
    text = "; ".join(c.detail for c in cells)
    if any(c.status == DISAGREES for c in cells):
        return Cell(DISAGREES, text)
    open_ = [c for c in cells if c.status == UNMEASURABLE]
    if open_:
        return not_measurable(text, noise=all(c.noise for c in open_))
    return Cell(AGREES, text) if cells else not_measurable("no models")


def drop_per_model(ev: Evidence, reading: str, models, bits, metrics: Sequence[str]) -> Cell:
    """:func:`drop_rule` for each model against its own full-precision baseline, combined."""
    cells = []
    for m in models:
        pairs = fp_vs(ev, reading, [m], bits)
        if pairs:
            cell = drop_rule(ev, pairs, metrics)
            cells.append(replace(cell, detail=f"{short_name(m[0])}: {cell.detail}"))
    return combine(cells)
