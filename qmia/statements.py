"""The paper's checkable statements, each decided only beyond noise, and the reading of the quantizer they choose.

Each statement of Section 4.2 and of the abstract (:data:`STATEMENTS`) is checked under each reading on the
stored rows (:class:`qmia.evidence.Evidence`) by a stated rule that returns one :class:`Cell`:

* **agrees** / **disagrees**: the comparison behind it is resolved, with its 95 % interval in the detail;
* **not measurable**: at this size (``noise``: the interval holds zero, or straddles the statement's
  tolerance), because of a utility collapse (a quantized target that lost more than
  :data:`qmia.claims.MAX_UTILITY_DROP` of test accuracy: an attack that drops on a model that learned nothing
  is not the paper's claim), because the full-precision attack is at chance (nothing to reduce), because two
  rows to be compared come from two trainings of one key (:meth:`qmia.evidence.Evidence.paired_rows`), or because
  the profile lacks the models;
* **pending**: its rows are in the plan but not stored yet.

Comparisons of one attack on two targets are paired by seed and example (:func:`qmia.uncertainty.compare`);
comparisons of accuracies use the normal interval of a difference of two proportions over the test examples
(:func:`accuracy_gap`). Ties never agree. "Significant" in the paper's sentence means the interval excludes
zero. :func:`choose_reading` counts only decided cells and names the readings it cannot separate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pandas as pd

from .claims import (
    ABSTRACT_CLAIMS,
    AGREES,
    CHANCE,
    DISAGREES,
    LEAK_MARGIN,
    MAX_UTILITY_DROP,
    PENDING,
    UNMEASURABLE,
    claim_seeds,
    leaks,
)
from .evidence import Evidence, MissingRow, MixedInstances
from .plan import reading_bits, reading_spec
from .quantizers import QuantSpec
from .uncertainty import Comparison

MARK = {AGREES: "✓", DISAGREES: "✗", UNMEASURABLE: "–", PENDING: "…"}
Z95 = 1.959964
SIMILAR_POINTS = 0.05  # "behaves similarly": test accuracy within 5 points (the utility tolerance; seed noise is ~2)
UNDISRUPTED_POINTS = 0.10  # "does not disrupt the training": no quantized target loses more than 10 points
SMALL_POINTS = 0.03  # "only a small difference in attack accuracy": within 3 points
NEARLY_30_POINTS = 0.20  # "a nearly 30-point reduction in TP": at least 20 points of TPR
MEMBER_PRECISION_POINTS = (0.07, 0.09)  # the Introduction's "7 to 9 point accuracy drop in the precision of MIA"


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
class Statement:
    """A checkable statement of the paper: its words, where it is, the result page, its rule, and its kind:
    'utility' (about the target's accuracy) or 'attack' (about the attack's numbers)."""

    key: str
    quote: str
    where: str
    page: str
    rule: str
    check: Callable[[Evidence, str], Cell]
    kind: str = "attack"


@dataclass(frozen=True)
class Gap:
    """A difference with its 95 % interval (fractions: 0.01 = 1 point)."""

    value: float
    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{100 * self.value:+.1f} points (95 % CI {100 * self.lo:+.1f} to {100 * self.hi:+.1f})"


def accuracy_gap(a: float, b: float, n_a: int, n_b: int) -> Gap:
    """a - b for two accuracies measured on n_a and n_b examples: the normal interval of a difference of two
    independent proportions (the test examples' noise; two trainings of one key differ by ~0.3 points more)."""
    se = math.sqrt(max(a * (1 - a), 0.0) / n_a + max(b * (1 - b), 0.0) / n_b)
    return Gap(a - b, a - b - Z95 * se, a - b + Z95 * se)


def _gap(c: Comparison) -> Gap:
    """The drop before - after of a paired comparison, as a Gap."""
    return Gap(c.reduction, c.reduction_lo, c.reduction_hi)


def _na(why: str, noise: bool = False) -> Cell:
    return Cell(UNMEASURABLE, why, noise)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _short(arch: str) -> str:
    from .book import ARCH_NAMES

    return ARCH_NAMES.get(arch, arch)


def _n(ev: Evidence, arch: str, dataset: str) -> int:
    return ev.config(arch, dataset).n_per_split  # each split (the test split included) has this many examples


def _bits(ev: Evidence, wanted: Sequence[int]) -> list[int]:
    return [b for b in ev.p.bits if b in wanted]


def _sign(g: Gap, claimed_positive: bool = True) -> str:
    """'yes' when the interval lies above zero (below, for claimed_positive=False), 'no' when it lies on the other
    side, 'noise' when it holds zero (a tie included)."""
    if (g.lo > 0) if claimed_positive else (g.hi < 0):
        return "yes"
    if (g.hi < 0) if claimed_positive else (g.lo > 0):
        return "no"
    return "noise"


def _decide(results: list[tuple[str, str]], collapsed: list[str] = ()) -> Cell:
    """One cell from several comparisons, each ('yes' | 'no' | 'noise', its text): any resolved against the
    statement disagrees; else a utility collapse makes it not measurable; else all resolved for it agrees; else it is
    not measurable at this size."""
    text = "; ".join(t for _, t in results)
    if collapsed:
        text = "; ".join([*(t for _, t in results), *(f"{c}: utility collapse" for c in collapsed)])
    if any(s == "no" for s, _ in results):
        return Cell(DISAGREES, text)
    if collapsed:
        return _na("not measurable (utility collapse): " + text)
    if results and all(s == "yes" for s, _ in results):
        return Cell(AGREES, text)
    if not results:
        return _na("nothing to compare")
    return _na("not measurable at this size: " + text, noise=True)


# ----------------------------------------------------------------------------- shared rules


def _drop_rule(ev: Evidence, pairs: list[tuple[str, object, object]], metrics: Sequence[str], *,
               baseline=None, attack_after: str = "shadow") -> Cell:
    """"``metrics`` of the attack are lower after than before" for every (label, before config, after config): paired
    comparisons, each credited only down to chance; the first before config's attack must leak (``baseline``: the
    config whose AUC must; default the first before); an after target that lost more than the utility tolerance
    against its before is a collapse."""
    base = baseline if baseline is not None else pairs[0][1]
    auc = ev.estimate([base])
    if not leaks(auc):
        return _na(f"not measurable (the baseline attack is at chance: AUC {auc})")
    results, collapsed = [], []
    for label, before, after in pairs:
        b_row, a_row = ev.paired_rows([(before, "shadow"), (after, attack_after)])
        if b_row["target_test_acc"] - a_row["target_test_acc"] > MAX_UTILITY_DROP:
            collapsed.append(f"{label} (test acc. {_pct(a_row['target_test_acc'])} vs {_pct(b_row['target_test_acc'])})")
            continue
        for m in metrics:
            c = ev.compare(before, after, m, chance=CHANCE.get(m), attack_after=attack_after)
            g = _gap(c)
            text = f"{label} {m.replace('_', ' ')} {c.before.value:.3f} -> {c.after.value:.3f}, drop {g}"
            results.append((_sign(g), text))
    return _decide(results, collapsed)


def _fp_vs(ev: Evidence, reading: str, models, bits, layers: str = "all") -> list[tuple[str, object, object]]:
    out = []
    for a, d in models:
        for b in [b for b in bits if b in reading_bits(ev.p, a)]:
            out.append((f"{_short(a)} {b}b", ev.config(a, d), ev.config(a, d, reading_spec(reading, b, layers=layers))))
    return out


def _models(ev: Evidence, without_resnet50: bool = False) -> list[tuple[str, str]]:
    return [m for m in ev.p.models if not (without_resnet50 and m[0] == "resnet50")]


# ----------------------------------------------------------------------------- the rules, one per statement


def _undisrupted(ev: Evidence, reading: str) -> Cell:
    results = []
    for a, d in _models(ev):
        n = _n(ev, a, d)
        fp = ev.row(ev.config(a, d))["target_test_acc"]
        for b in reading_bits(ev.p, a):
            q = ev.row(ev.config(a, d, reading_spec(reading, b)))["target_test_acc"]
            loss = accuracy_gap(fp, q, n, n)
            state = "yes" if loss.hi <= UNDISRUPTED_POINTS else "no" if loss.lo > UNDISRUPTED_POINTS else "noise"
            results.append((state, f"{_short(a)} {b}b loses {loss}"))
    return _decide(results)


def _abstract(key: str) -> Callable[[Evidence, str], Cell]:
    claim = ABSTRACT_CLAIMS[key]

    def check(ev: Evidence, reading: str) -> Cell:
        """The paper's quantity (hard decisions), full precision against the lowest bitwidth over the claim seeds:
        agrees when the relative reduction's interval holds the claimed value (no more, no less) and lies above
        zero, disagrees when it excludes the claimed value, and is not measurable at this size when it holds both
        the claim and zero; a collapsed quantized model or a baseline at chance is not measurable."""
        b = min(ev.p.bits)
        seeds, note = claim_seeds(ev, reading, b)
        fp = [ev.config(*ev.p.resnet, seed=s) for s in seeds]
        q = [ev.config(*ev.p.resnet, reading_spec(reading, b), seed=s) for s in seeds]
        auc = ev.estimate(fp)
        if not leaks(auc):
            return _na(f"not measurable (the full-precision attack is at chance: AUC {auc})")
        drop = sum(ev.row(f)["target_test_acc"] - ev.row(x)["target_test_acc"] for f, x in zip(fp, q)) / len(seeds)
        c = ev.compare_many(fp, q, claim.metric, chance=CHANCE.get(claim.metric))
        base, rel = c.before.value, c.relative_interval
        text = (f"{claim.metric.replace('_', ' ')} {base:.3f} -> {c.after.value:.3f} at {b} bits: {rel[0]:.1f} % lower "
                f"(95 % CI {rel[1]:.1f} to {rel[2]:.1f} %; claimed {claim.value:.0f} %), {len(seeds)} seed(s)"
                + (f", {note}" if note else ""))
        if drop > MAX_UTILITY_DROP:
            return _na(f"not measurable (utility collapse: test accuracy {100 * drop:.1f} points lower): {text}")
        if not rel[1] <= claim.value <= rel[2]:
            return Cell(DISAGREES, text)
        if rel[1] <= 0:  # the claim is inside an interval that also holds no reduction at all
            return _na("not measurable at this size: " + text, noise=True)
        return Cell(AGREES, text)
    return check


def _resnet50_acc(ev: Evidence, reading: str) -> Cell:
    if not ev.has("resnet50", "cifar10"):
        return _na("ResNet-50 is not in this profile")
    n = _n(ev, "resnet50", "cifar10")
    fp = ev.row(ev.config("resnet50", "cifar10"))["target_test_acc"]
    results = []
    for b in _bits(ev, (4, 8)):
        q = ev.row(ev.config("resnet50", "cifar10", reading_spec(reading, b)))["target_test_acc"]
        g = accuracy_gap(q, fp, n, n)
        results.append((_sign(g), f"{b}-bit test acc. {_pct(q)} vs fp {_pct(fp)}: {g}"))
    return _decide(results) if results else _na("no 4- or 8-bit ResNet-50 in this profile")


def _resnet50_attack(ev: Evidence, reading: str) -> Cell:
    if not ev.has("resnet50", "cifar10"):
        return _na("ResNet-50 is not in this profile")
    pairs = _fp_vs(ev, reading, [("resnet50", "cifar10")], _bits(ev, (4, 8)))
    return _drop_rule(ev, pairs, ("attack_acc",)) if pairs else _na("no 4- or 8-bit ResNet-50")


def _shadow_counterpart(ev: Evidence, reading: str) -> Cell:
    """Section 4.2 on Table 3: "the shadow model of the full bitwidth model has higher accuracy than its quantized
    counterpart on Fashion MNIST, whereas that is not the case for Cifar10". Section 4.2 also says that for Tables
    3-5 "the shadow model is trained with full bitwidths"; read that way every row's shadow is one full-precision
    model and the sentence compares it with itself. Table 3 lists a shadow accuracy per row, so the rule reads "its
    quantized counterpart" as the shadow quantized like the target (the adaptive shadow), at the lowest bitwidth,
    and compares it with the full-precision shadow: higher on Fashion-MNIST (resolved), not higher on CIFAR-10
    (no resolved excess)."""
    b = min(ev.p.bits)
    want = {"fashion_mnist": True, "cifar10": False}
    found = [(a, d) for a, d in _models(ev, without_resnet50=True) if d in want]
    if {d for _, d in found} != set(want):
        return _na("needs both Fashion-MNIST and CIFAR-10 models")
    results = []
    for a, d in found:
        n = _n(ev, a, d)
        fp_row, q_row = ev.paired_rows([(ev.config(a, d), "shadow"), (ev.config(a, d, reading_spec(reading, b)), "adaptive")])
        g = accuracy_gap(fp_row["shadow_test_acc"], q_row["shadow_test_acc"], n, n)
        if want[d]:
            state = _sign(g)
        else:  # "not the case": the full-precision shadow is not resolved above the quantized one
            state = "no" if g.lo > 0 else "yes"
        text = f"{_short(a)}: fp shadow {_pct(fp_row['shadow_test_acc'])}, {b}-bit shadow {_pct(q_row['shadow_test_acc'])}: {g}"
        results.append((state, text))
    return _decide(results)


def _cifar_vs_fmnist(ev: Evidence):
    fm = [m for m in _models(ev) if m[1] == "fashion_mnist"]
    cf = [m for m in _models(ev) if m[1] == "cifar10" and m[0] == "resnet20"]
    return (fm[0], cf[0]) if fm and cf else None


def _attack_lower_on_fmnist(ev: Evidence, reading: str) -> Cell:
    """LeNet / Fashion-MNIST against ResNet-20 / CIFAR-10 (only those: ResNet-50 is not compared), at full precision
    and each bitwidth both run: two independent attacks, their accuracies as proportions of their examples."""
    pair = _cifar_vs_fmnist(ev)
    if pair is None:
        return _na("needs LeNet / Fashion-MNIST and ResNet-20 / CIFAR-10")
    (fa, fd), (ca, cd) = pair
    nf, nc = 2 * _n(ev, fa, fd), 2 * _n(ev, ca, cd)  # the attack is scored on members and non-members
    results, collapsed = [], []
    fp_f, fp_c = ev.row(ev.config(fa, fd)), ev.row(ev.config(ca, cd))
    for b in [None, *[b for b in ev.p.bits if b in reading_bits(ev.p, fa) and b in reading_bits(ev.p, ca)]]:
        spec = None if b is None else reading_spec(reading, b)
        f, c = ev.row(ev.config(fa, fd, spec)), ev.row(ev.config(ca, cd, spec))
        label = "fp" if b is None else f"{b}b"
        if b is not None and any(base["target_test_acc"] - r["target_test_acc"] > MAX_UTILITY_DROP
                                 for base, r in ((fp_f, f), (fp_c, c))):
            collapsed.append(label)
            continue
        g = accuracy_gap(c["attack_acc"], f["attack_acc"], nc, nf)
        results.append((_sign(g), f"{label}: {_pct(f['attack_acc'])} vs {_pct(c['attack_acc'])}, CIFAR-10 higher by {g}"))
    return _decide(results, collapsed)


def _shadow_higher_on_cifar(ev: Evidence, reading: str) -> Cell:
    pair = _cifar_vs_fmnist(ev)
    if pair is None:
        return _na("needs LeNet / Fashion-MNIST and ResNet-20 / CIFAR-10")
    (fa, fd), (ca, cd) = pair
    f, c = ev.row(ev.config(fa, fd))["shadow_test_acc"], ev.row(ev.config(ca, cd))["shadow_test_acc"]
    g = accuracy_gap(c, f, _n(ev, ca, cd), _n(ev, fa, fd))
    return _decide([(_sign(g), f"full-precision shadow test acc. CIFAR-10 {_pct(c)}, Fashion-MNIST {_pct(f)}: {g}")])


def _sixteen_like_fp(ev: Evidence, reading: str) -> Cell:
    """A claim of no difference: agrees when the interval of the 16-bit model's accuracy minus full precision lies
    within the tolerance, disagrees when it lies outside, else not measurable at this size."""
    if 16 not in ev.p.bits:
        return _na("no 16-bit models in this profile")
    results = []
    for a, d in [m for m in _models(ev) if 16 in reading_bits(ev.p, m[0])]:
        n = _n(ev, a, d)
        fp = ev.row(ev.config(a, d))["target_test_acc"]
        q = ev.row(ev.config(a, d, reading_spec(reading, 16)))["target_test_acc"]
        g = accuracy_gap(q, fp, n, n)
        state = ("yes" if -SIMILAR_POINTS <= g.lo and g.hi <= SIMILAR_POINTS else
                 "no" if g.lo > SIMILAR_POINTS or g.hi < -SIMILAR_POINTS else "noise")
        results.append((state, f"{_short(a)} 16-bit test acc. {_pct(q)} vs fp {_pct(fp)}: {g}"))
    return _decide(results)


def _sixteen_attack_lower(ev: Evidence, reading: str) -> Cell:
    if 16 not in ev.p.bits:
        return _na("no 16-bit models in this profile")
    return _drop_per_model(ev, reading, [m for m in _models(ev) if 16 in reading_bits(ev.p, m[0])], [16], ("attack_acc",))


def _combine(cells: Sequence[Cell]) -> Cell:
    """Cells of one statement on several models: any disagreement disagrees; else any not measurable is not
    measurable (at this size only when all of those are); else it agrees."""
    text = "; ".join(c.detail for c in cells)
    if any(c.status == DISAGREES for c in cells):
        return Cell(DISAGREES, text)
    open_ = [c for c in cells if c.status == UNMEASURABLE]
    if open_:
        return _na(text, noise=all(c.noise for c in open_))
    return Cell(AGREES, text) if cells else _na("no models")


def _drop_per_model(ev: Evidence, reading: str, models, bits, metrics: Sequence[str]) -> Cell:
    """:func:`_drop_rule` for each model against its own full-precision baseline, combined."""
    cells = []
    for m in models:
        pairs = _fp_vs(ev, reading, [m], bits)
        if pairs:
            cell = _drop_rule(ev, pairs, metrics)
            cells.append(replace(cell, detail=f"{_short(m[0])}: {cell.detail}"))
    return _combine(cells)


def _member_prf(ev: Evidence, reading: str) -> Cell:
    return _drop_per_model(ev, reading, _models(ev), ev.p.bits, ("precision_member", "recall_member", "f1_member"))


def _tp_lower(ev: Evidence, reading: str) -> Cell:
    return _drop_per_model(ev, reading, _models(ev), ev.p.bits, ("tpr",))


def _seven_to_nine(ev: Evidence, reading: str) -> Cell:
    """The Introduction: the preliminary study found "a 7 to 9 point accuracy drop in the precision of MIA attacks on
    quantized models": member precision of the shadow attack, full precision minus each quantized model that keeps
    its utility, on the ResNet-20 / CIFAR-10 of the tables. Agrees when every drop's interval meets 7-9 points,
    disagrees when one lies wholly outside it."""
    pairs = _fp_vs(ev, reading, [ev.p.resnet], ev.p.bits)
    results, collapsed = [], []
    lo_claim, hi_claim = MEMBER_PRECISION_POINTS
    for label, fp, q in pairs:
        b_row, a_row = ev.paired_rows([(fp, "shadow"), (q, "shadow")])
        if b_row["target_test_acc"] - a_row["target_test_acc"] > MAX_UTILITY_DROP:
            collapsed.append(label)
            continue
        g = _gap(ev.compare(fp, q, "precision_member"))
        state = "no" if g.hi < lo_claim or g.lo > hi_claim else "yes" if lo_claim <= g.lo and g.hi <= hi_claim else "noise"
        results.append((state, f"{label} member precision drop {g}"))
    return _decide(results, collapsed)


def _resnet20_8bit(ev: Evidence, reading: str) -> Cell:
    if 8 not in ev.p.bits or ("resnet20", "cifar10") not in _models(ev):
        return _na("needs the 8-bit ResNet-20 on CIFAR-10")
    fp, q = ev.config("resnet20", "cifar10"), ev.config("resnet20", "cifar10", reading_spec(reading, 8))
    fp_row, q_row = ev.paired_rows([(fp, "shadow"), (q, "shadow")])
    if fp_row["target_test_acc"] - q_row["target_test_acc"] > MAX_UTILITY_DROP:
        return _na(f"not measurable (utility collapse: 8-bit test acc. {_pct(q_row['target_test_acc'])} vs "
                   f"{_pct(fp_row['target_test_acc'])})")
    acc, tpr = _gap(ev.compare(fp, q, "attack_acc")), _gap(ev.compare(fp, q, "tpr"))
    small = "yes" if -SMALL_POINTS <= acc.lo and acc.hi <= SMALL_POINTS else (
        "no" if acc.lo > SMALL_POINTS or acc.hi < -SMALL_POINTS else "noise")
    large = "yes" if tpr.lo >= NEARLY_30_POINTS else "no" if tpr.hi < NEARLY_30_POINTS else "noise"
    return _decide([(small, f"attack acc. drop {acc}"), (large, f"TPR drop {tpr}")])


def _fig5(ev: Evidence, reading: str) -> Cell:
    """"successful" on full precision (the attack leaks) and "random" on the quantized model: a claim of no
    difference from chance, so the quantized model's AUC interval must lie within chance's band (0.5 +- the leak
    margin, :data:`qmia.claims.LEAK_MARGIN`) to agree; it disagrees when it excludes 0.5, and an interval that holds
    0.5 but reaches beyond the band is not measurable at this size; a collapsed model is not measurable."""
    b = min(ev.p.bits)
    fp_cfg, q_cfg = ev.config(*ev.p.resnet), ev.config(*ev.p.resnet, reading_spec(reading, b))
    a_fp, a_q = ev.estimate([fp_cfg]), ev.estimate([q_cfg])
    if not leaks(a_fp):
        return _na(f"not measurable (the full-precision attack is at chance: AUC {a_fp})")
    fp_row, q_row = ev.paired_rows([(fp_cfg, "shadow"), (q_cfg, "shadow")])
    text = f"AUC fp {a_fp}, {b}-bit {a_q}"
    if fp_row["target_test_acc"] - q_row["target_test_acc"] > MAX_UTILITY_DROP:
        return _na(f"not measurable (utility collapse: {b}-bit test acc. {_pct(q_row['target_test_acc'])}): {text}")
    if a_q.lo > 0.5 or a_q.hi < 0.5:
        return Cell(DISAGREES, text)
    if 0.5 - LEAK_MARGIN <= a_q.lo and a_q.hi <= 0.5 + LEAK_MARGIN:
        return Cell(AGREES, text)
    return _na("not measurable at this size: " + text, noise=True)


def _table6(ev: Evidence, reading: str, b: int):
    return ev.config(*ev.p.resnet, QuantSpec("dorefa", b)), ev.config(*ev.p.resnet, reading_spec(reading, b))


def _both_reduce(ev: Evidence, reading: str) -> Cell:
    fp = ev.config(*ev.p.resnet)
    pairs = [(f"{b}-bit {name}", fp, cfg) for b in (4, 8) for name, cfg in zip(("DoReFa-Net", "ours"), _table6(ev, reading, b))]
    return _drop_rule(ev, pairs, ("f1_member",))


def _below_dorefa(ev: Evidence, reading: str) -> Cell:
    pairs = [(f"{b}-bit ours vs DoReFa-Net", *_table6(ev, reading, b)) for b in (4, 8)]
    return _drop_rule(ev, pairs, ("precision_member", "recall_member", "f1_member"))


def _f1_28(ev: Evidence, reading: str) -> Cell:
    """Over 28 % (relative) below DoReFa-Net's member F1 at 4 bits, the whole interval; DoReFa-Net's attack must leak
    (a reduction from chance is noise) and ours must keep DoReFa-Net's utility."""
    d, m = _table6(ev, reading, 4)
    d_row, m_row = ev.paired_rows([(d, "shadow"), (m, "shadow")])
    auc = ev.estimate([d])
    if not leaks(auc):
        return _na(f"not measurable (the DoReFa-Net attack is at chance: AUC {auc})")
    c = ev.compare(d, m, "f1_member")
    base, (mid, lo, hi) = c.before.value, c.relative_interval
    text = (f"4-bit member F1 {c.after.value:.3f} vs DoReFa-Net {base:.3f}: {mid:.1f} % lower (95 % CI {lo:.1f} to "
            f"{hi:.1f} %)")
    if d_row["target_test_acc"] - m_row["target_test_acc"] > MAX_UTILITY_DROP:
        return _na("not measurable (utility collapse against DoReFa-Net): " + text)
    return _decide([("yes" if lo > 28 else "no" if hi <= 28 else "noise", text)])


def _partial(ev: Evidence, reading: str, metrics: Sequence[str]) -> Cell:
    fp = ev.config(*ev.p.resnet)
    part = ev.config(*ev.p.resnet, reading_spec(reading, 4, layers="last:5"))
    return _drop_rule(ev, [("last 5 layers at 4 bits", fp, part)], metrics)


def _partial_all(ev: Evidence, reading: str) -> Cell:
    return _partial(ev, reading, ("precision_member", "recall_member", "f1_member", "precision_nonmember",
                                  "recall_nonmember", "f1_nonmember"))


def _partial_nonmember_precision(ev: Evidence, reading: str) -> Cell:
    return _partial(ev, reading, ("precision_nonmember", "tpr"))


STATEMENTS: tuple[Statement, ...] = (
    Statement("no-disruption", "To ensure a smooth training process, we apply quantization to each W_Li in a manner "
              "that does not disrupt the training.", "Section 3.3", "table3_accuracy",
              f"no quantized target (any model, any bitwidth) loses more than {100 * UNDISRUPTED_POINTS:.0f} points of "
              "test accuracy against full precision (the loss's 95 % interval)", _undisrupted, "utility"),
    Statement("abstract-attack-acc", "our algorithm can reduce the attack accuracy of MIA by 14%", "Abstract",
              "table3_accuracy", "ResNet / CIFAR-10, full precision vs the lowest bitwidth over the claim seeds (paired): "
              "the 95 % interval of the relative reduction of attack accuracy holds 14 %; the quantized model keeps its "
              "utility", _abstract("attack_acc")),
    Statement("abstract-tpr", "the true positive rate by 37%", "Abstract", "table5_confusion",
              "as above, the attack's TPR (its decisions): the interval holds 37 %", _abstract("tpr")),
    Statement("abstract-f1", "and F1-score of members by 39%", "Abstract", "table4_prf",
              "as above, member F1: the interval holds 39 %", _abstract("f1_member")),
    Statement("intro-7-9", "our preliminary study [...] found a 7 to 9 point accuracy drop in the precision of MIA "
              "attacks on quantized models", "Introduction", "table4_prf",
              "ResNet-20 / CIFAR-10: the member precision of the shadow attack drops by 7-9 points at every bitwidth "
              "that keeps utility (paired interval within 7-9 points)", _seven_to_nine),
    Statement("resnet50-accuracy", "In the case of ResNet-50, the quantized model has a better target model accuracy "
              "than the full bitwidth model.", "Section 4.2, Table 3", "table3_accuracy",
              "ResNet-50 test accuracy at 4 and 8 bits above full precision (interval above zero)", _resnet50_acc, "utility"),
    Statement("resnet50-attack", "However, the attack accuracy drops when compared to the quantized model.",
              "Section 4.2, Table 3", "table3_accuracy",
              "ResNet-50 attack accuracy at 4 and 8 bits below full precision (paired, interval above zero; utility kept)",
              _resnet50_attack),
    Statement("shadow-counterpart", "the shadow model of the full bitwidth model has higher accuracy than its quantized "
              "counterpart on Fashion MNIST, whereas that is not the case for Cifar10", "Section 4.2, Table 3",
              "table3_accuracy", "test accuracy of the full-precision shadow resolved above that of the shadow quantized "
              "like the target (lowest bitwidth; Table 3 gives each row its own shadow, though Section 4.2 says shadows "
              "train at full bitwidth) on Fashion-MNIST, and not resolved above it on CIFAR-10", _shadow_counterpart),
    Statement("attack-lower-fmnist", "We also find that the attack model accuracy is lower on Fashion MNIST than on "
              "Cifar10.", "Section 4.2, Table 3", "table3_accuracy",
              "attack accuracy of LeNet / Fashion-MNIST below ResNet-20 / CIFAR-10 (interval of the difference) at full "
              "precision and every bitwidth where both keep utility", _attack_lower_on_fmnist),
    Statement("shadow-higher-cifar", "However, the shadow model accuracy is higher for Cifar10.", "Section 4.2, Table 3",
              "table3_accuracy", "the full-precision shadow's test accuracy resolved higher on CIFAR-10 (ResNet-20) than "
              "on Fashion-MNIST (LeNet); the same under every reading", _shadow_higher_on_cifar),
    Statement("16bit-like-fp", "Out of all quantized networks, 16-bit quantization behaves similarly to the full "
              "bitwidth model.", "Section 4.2, Table 3", "table3_accuracy",
              f"16-bit test accuracy within {100 * SIMILAR_POINTS:.0f} points of full precision, every model (the whole "
              "interval of the difference)", _sixteen_like_fp, "utility"),
    Statement("16bit-attack-lower", "However, the attack model accuracy is still lower than for the full bitwidth model.",
              "Section 4.2, Table 3", "table3_accuracy",
              "16-bit attack accuracy below full precision, every model (paired; baseline leaks; utility kept)",
              _sixteen_attack_lower),
    Statement("member-prf-drop", "We can see a significant drop in all three metrics when we compare the member class "
              "[...] to the quantized models. The same trend can also be observed for ResNet-20 and the simpler LeNet model.",
              "Section 4.2, Table 4", "table4_prf",
              "member precision, recall and F1 significantly below full precision (paired interval above zero) for every "
              "model and bitwidth; baseline leaks; utility kept", _member_prf),
    Statement("tp-lower", "the true positive rates are lower after employing our quantization", "Section 4.2, Table 5",
              "table5_confusion", "TPR below full precision for every model and bitwidth (paired; baseline leaks; utility "
              "kept)", _tp_lower),
    Statement("resnet20-8bit-tp", "although we observe only a small difference in attack accuracy for the 8-bit "
              "quantized network on ResNet-20 [...] there is a nearly 30-point reduction in TP value",
              "Section 4.2, Table 5", "table5_confusion",
              f"8-bit ResNet-20: the attack-accuracy difference's interval within {100 * SMALL_POINTS:.0f} points, and the "
              f"TPR drop's interval above {100 * NEARLY_30_POINTS:.0f} points", _resnet20_8bit),
    Statement("fig5-chance", "the MIA on the full bitwidth model is successful while behaving as a random classification "
              "on the quantized model", "Section 4.2, Figure 5", "fig5_roc",
              "full-precision AUC leaks (>= 0.52, interval above 0.5), the lowest bitwidth's AUC interval lies within "
              "0.48-0.52 (holds 0.5 but is wider: within noise), and that model keeps its utility", _fig5),
    Statement("table6-both-reduce", "We can see the impact of MIA is significantly reduced in both quantization methods.",
              "Section 4.2, Table 6", "table6_dorefa", "member F1 significantly below full precision for DoReFa-Net and "
              "ours at 4 and 8 bits (paired; utility kept)", _both_reduce),
    Statement("table6-all-three", "Compared to DoReFa-Net, our method achieves further reductions in all three metrics",
              "Section 4.2, Table 6", "table6_dorefa",
              "our member precision, recall and F1 significantly below DoReFa-Net's at 4 and 8 bits (paired; ties do not "
              "pass)", _below_dorefa),
    Statement("table6-f1-28", "our method achieves over 28% reduction in F1-score compared to DoReFa-Net for the 4-bit "
              "quantization", "Section 4.2, Table 6", "table6_dorefa",
              "4-bit member F1 below DoReFa-Net's by more than 28 % (relative), the whole interval", _f1_28),
    Statement("fig6-all-lower", "in both members and non-members, the partially quantized network has lower F1-score, "
              "precision, and recall", "Section 4.2, Figure 6", "fig6_partial",
              "last 5 layers at 4 bits: all six precision, recall and F1 values below full precision (paired)", _partial_all),
    Statement("fig6-nonmember-precision", "We can see a significant drop in Precision for the non-member class, which "
              "also leads to greatly reduced TP values", "Section 4.2, Figure 6", "fig6_partial",
              "last 5 layers at 4 bits: non-member precision and TPR significantly below full precision (paired)",
              _partial_nonmember_precision),
)


def check_statement(statement: Statement, ev: Evidence, reading: str) -> Cell:
    """One cell of the readings table: a statement whose rows the plan computes but are not stored yet is pending
    (naming the part), never decided from part of its rows; one whose rows no plan computes, or whose rows come
    from two trainings of one key, is not measurable."""
    try:
        return statement.check(ev, reading)
    except MixedInstances as e:
        return _na(f"not measurable (rows of two trainings of one key: {e})")
    except MissingRow as e:
        return Cell(PENDING, f"pending: {e}") if e.pending else _na(str(e))


def readings_table(ev: Evidence, readings: Sequence[str] | None = None) -> pd.DataFrame:
    """Statements x readings: one :class:`Cell` per entry (columns: the readings; index: statement keys)."""
    readings = list(readings or ev.p.readings)
    return pd.DataFrame({r: [check_statement(s, ev, r) for s in STATEMENTS] for r in readings},
                        index=[s.key for s in STATEMENTS])


NOISE = "within noise"
NET = "net (agrees - disagrees)"


def consistency_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per reading: the statements it agrees with, disagrees with, cannot measure (of which ``within noise``: more
    data could decide them), pending, and the net count of decided ones (agrees - disagrees)."""
    out = pd.DataFrame({status: [sum(c.status == status for c in table[r]) for r in table.columns]
                        for status in (AGREES, DISAGREES, UNMEASURABLE, PENDING)}, index=table.columns)
    out.insert(3, NOISE, [sum(c.status == UNMEASURABLE and c.noise for c in table[r]) for r in table.columns])
    out[NET] = out[AGREES] - out[DISAGREES]
    return out


@dataclass(frozen=True)
class ReadingChoice:
    """The reading the statements choose: ``chosen`` (one reading) or ``undecided`` (the readings it cannot separate,
    best net first), the ``margin`` (the chosen reading's worst net minus the others' best; <= 0 when undecided),
    and each reading's net count with its range [net - open, net + open] over its within-noise cells."""

    readings: tuple[str, ...]
    margin: int
    net: dict[str, int]
    bounds: dict[str, tuple[int, int]]

    @property
    def decided(self) -> bool:
        return len(self.readings) == 1

    @property
    def shown(self) -> str:
        """The reading the book's pages show: the chosen one, or the best net of those undecided."""
        return self.readings[0]

    def __str__(self) -> str:
        if self.decided:
            return f"{self.readings[0]} (by a margin of {self.margin} decided statement(s))"
        return f"undecided between {', '.join(self.readings)}"


def choose_reading(table: pd.DataFrame) -> ReadingChoice:
    """The rule: count only decided statements (net = agrees - disagrees); a statement within noise could go either
    way with more data, so a reading's net lies in [net - k, net + k] (k: its within-noise cells). A reading is chosen
    when its worst case beats every other reading's best case; otherwise the readings whose ranges overlap the
    best one's are undecided between. Flipping any within-noise cell only narrows the ranges, so a chosen reading
    stays chosen."""
    counts = consistency_counts(table)
    net = {r: int(counts.loc[r, NET]) for r in table.columns}
    bounds = {r: (net[r] - int(counts.loc[r, NOISE]), net[r] + int(counts.loc[r, NOISE])) for r in table.columns}
    order = sorted(table.columns, key=lambda r: (-net[r], list(table.columns).index(r)))
    top = order[0]
    others = [r for r in order if r != top]
    margin = bounds[top][0] - max((bounds[r][1] for r in others), default=bounds[top][0] - 1)
    if margin > 0:
        return ReadingChoice((top,), margin, net, bounds)
    tied = [top] + [r for r in others if bounds[r][1] >= bounds[top][0]]
    return ReadingChoice(tuple(tied), margin, net, bounds)


def most_consistent(table: pd.DataFrame) -> list[str]:
    """The readings :func:`choose_reading` returns (one when decided)."""
    return list(choose_reading(table).readings)


RECIPE_STATEMENTS = ("abstract-attack-acc", "abstract-tpr", "abstract-f1")


def recipe_table(ev: Evidence) -> pd.DataFrame:
    """Per recipe: the full-precision ResNet's fit and leakage, and the abstract's statements under each reading
    (the subset the recipe comparison trains: full precision and the lowest bitwidth, seed 0)."""
    rows, seen = [], set()
    for recipe in ev.p.recipes:
        e = ev.with_recipe(recipe)
        if e.config(*ev.p.resnet).key in seen:  # the same models as a recipe already listed (e.g. no CIFAR-10 here)
            continue
        seen.add(e.config(*ev.p.resnet).key)
        sub = e.view(replace(e.p, claim_seeds=(0,)))
        try:
            fp = sub.row(sub.config(*ev.p.resnet))
        except MissingRow as err:
            if not err.pending:
                raise
            rows.append({"recipe": recipe, "augment": sub.config(*ev.p.resnet).augment, "status": err.pending})
            continue
        auc = sub.estimate([sub.config(*ev.p.resnet)])
        agree = {r: sum(check_statement(s, sub, r).status == AGREES for s in STATEMENTS if s.key in RECIPE_STATEMENTS)
                 for r in ev.p.readings}
        best = max(agree.values())
        rows.append({"recipe": recipe, "augment": bool(fp["augment"]), "fp train acc": fp["target_train_acc"],
                     "fp test acc": fp["target_test_acc"], "fp attack AUC": auc.value, "AUC lo": auc.lo, "AUC hi": auc.hi,
                     "agreeing statements (best reading)": best,
                     "best reading(s)": ", ".join(r for r, v in agree.items() if v == best), "status": ""})
    out = pd.DataFrame(rows)
    return out.drop(columns="status") if not (out["status"] != "").any() else out


def pick_recipe(table: pd.DataFrame, stated: str = "paper-stated") -> str:
    """The same rule as for readings: most agreeing statements; ties go to the recipe the paper states (also while
    another recipe's rows are pending: it cannot win unmeasured)."""
    if "status" in table.columns:
        table = table[table["status"] == ""]
    if not len(table):
        return stated
    top = table[table["agreeing statements (best reading)"] == table["agreeing statements (best reading)"].max()]
    return stated if stated in set(top["recipe"]) else str(top["recipe"].iloc[0])
