"""The paper's claims and statements as data, and the rules that decide them from our rows.

Famili & Lao, *Deep Neural Network Quantization Framework for Effective Defense against
Membership Inference Attacks*, Sensors 23(18):7722, 2023 (doi:10.3390/s23187722).

Two kinds of judgement, never written by hand:

* **Verdicts** (:func:`abstract_verdict`, :func:`chance_verdict`, :func:`dorefa_verdict`,
  :func:`partial_verdict`): did we reproduce a claim as a *defence*? One of :data:`VERDICTS`,
  decided by a stated rule from a paired bootstrap over seeds and examples
  (:mod:`qmia.uncertainty`): a reduction is credited only from a full-precision attack that
  leaks, only down to chance, only when a one-sided test and its 95 % interval both say it is not noise, and only as
  "reproduced" when the quantized model stays useful.
* **Consistency** (:mod:`qmia.statements`): does a reading of the quantizer give what the paper
  *reports*? Each checkable statement is decided beyond noise on the paper's own quantities; this
  module holds the vocabulary of its cells (:data:`AGREES` ...).

Both read the stored rows through :class:`qmia.evidence.Evidence`.

The stored copy of the article (:data:`SOURCE`) holds its text but not the cells of Tables 3-6
nor the data of Figures 5-6 (:data:`NOT_RECOVERED`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from .config import TrainConfig
from .evidence import Evidence, MissingRow
from .plan import reading_spec
from .quantizers import QuantSpec
from .uncertainty import Z95, Comparison, Estimate
from .vocabulary import AGREES, DISAGREES, PENDING, UNMEASURABLE  # noqa: F401 (the statuses, read as claims.AGREES ...)

SOURCE = "https://www.mdpi.com/1424-8220/23/18/7722"
DOI = "10.3390/s23187722"
CITATION = (
    "Famili, A.; Lao, Y. Deep Neural Network Quantization Framework for Effective Defense against "
    "Membership Inference Attacks. Sensors 2023, 23(18), 7722."
)


@dataclass(frozen=True)
class Claim:
    """One quantitative claim of the paper, as printed: a reduction of ``metric`` by ``value`` %."""

    key: str
    metric: str
    value: float
    where: str
    setting: str
    quote: str


# The abstract: "for ResNet on Cifar10, our experimental results show that our algorithm can reduce the
# attack accuracy of MIA by 14%, the true positive rate by 37%, and F1-score of members by 39% compared
# to the full bitwidth network."  (read at SOURCE)
ABSTRACT_CLAIMS: dict[str, Claim] = {
    "attack_acc": Claim(
        "attack_acc", "attack_acc", 14.0, "Abstract", "ResNet on Cifar10", "reduce the attack accuracy of MIA by 14%"
    ),
    "tpr": Claim("tpr", "tpr", 37.0, "Abstract", "ResNet on Cifar10", "the true positive rate by 37%"),
    "f1_member": Claim("f1_member", "f1_member", 39.0, "Abstract", "ResNet on Cifar10", "F1-score of members by 39%"),
}

NOT_RECOVERED: dict[str, str] = {
    "Table 3": "target/shadow train and test accuracy and attack accuracy by dataset, model and bitwidth",
    "Table 4": "precision, recall and F1 of members and non-members",
    "Table 5": "attack accuracy, TN, FP, FN, TP",
    "Table 6": "DoReFa-Net vs the proposed quantizer on ResNet-20",
    "Figure 5": "ROC curves of the attack on ResNet-20",
    "Figure 6": "partial quantization of ResNet-20",
}


def not_recovered_note(item: str) -> str:
    """One sentence for the book where ``item`` (e.g. 'Table 3') would stand beside ours."""
    return (
        f"The paper's {item} ({NOT_RECOVERED[item]}) could not be read from the stored copy of the article "
        f"({SOURCE}): its cells are missing there, so they are not shown here; the paper's statements about it "
        f"are checked on the readings page and its claims in the reproduction report."
    )


# ----------------------------------------------------------------------------- verdicts

REPRODUCED = "reproduced"
PARTLY = "partly reproduced"
WITH_LOSS = "reproduced only with a utility loss"
NOT_REPRODUCED = "not reproduced"
NOT_MEASURABLE = "not measurable"
VERDICTS = (REPRODUCED, PARTLY, WITH_LOSS, NOT_REPRODUCED, NOT_MEASURABLE)

ALPHA = 0.05  # one-sided test level
LEAK_MARGIN = 0.02  # the full-precision attack leaks when its AUC is >= 0.5 + margin with its interval above 0.5
MAX_UTILITY_DROP = 0.05  # a defence that costs more test accuracy than this is not the paper's claim
CHANCE = {"attack_acc": 0.5, "auc": 0.5, "advantage": 0.0}


@dataclass(frozen=True)
class Verdict:
    word: str
    reason: str

    def __post_init__(self) -> None:
        if self.word not in VERDICTS:
            raise ValueError(f"unknown verdict {self.word!r}; valid: {', '.join(VERDICTS)}")

    def __str__(self) -> str:
        return f"{self.word} ({self.reason})"


def leaks(auc: Estimate, margin: float = LEAK_MARGIN) -> bool:
    """Whether an attack leaks beyond chance: AUC >= 0.5 + margin and its interval above 0.5."""
    return auc.value >= 0.5 + margin and auc.lo > 0.5


def _leak_reason(auc: Estimate) -> str:
    return (
        f"the full-precision attack does not leak beyond chance (AUC {auc}; a baseline needs AUC >= "
        f"{0.5 + LEAK_MARGIN:.2f} with its interval above 0.5)"
    )


def reduction_verdict(
    cmp: Comparison,
    baseline_auc: Estimate,
    utility_drop: float,
    claimed: float | None = None,
    *,
    alpha: float = ALPHA,
    max_utility_drop: float = MAX_UTILITY_DROP,
) -> Verdict:
    """Verdict on "quantization lowers this metric" (by ``claimed`` % of the full-precision value, if given).

    1. not measurable: the full-precision attack does not leak (:func:`leaks` on ``baseline_auc``);
    2. not reproduced: the reduction (credited only down to chance) is not > 0 at level ``alpha`` (one-sided
       bootstrap p), or its printed two-sided 95 % interval reaches zero (both must hold, as in the statement
       rules: a verdict never contradicts the interval shown beside it);
    3. reproduced only with a utility loss: the quantized target lost more than ``max_utility_drop``
       of test accuracy (then quantization broke the model; that is not a defence);
    4. reproduced: at least half the claimed relative reduction (or any, when none is claimed);
       partly reproduced: significant and useful, but less than half the claim.
    """
    if not leaks(baseline_auc):
        return Verdict(NOT_MEASURABLE, _leak_reason(baseline_auc))
    what = (
        f"{cmp.before.value:.3f} -> {cmp.after.value:.3f}, reduction {cmp.relative:.1f} % "
        f"(95 % CI of the drop {cmp.reduction_lo:+.3f} to {cmp.reduction_hi:+.3f}, p = {cmp.p_value:.3f})"
    )
    if claimed is not None:
        what += f" vs claimed {claimed:.0f} %"
    if not cmp.decided_drop(alpha):
        why = ": not a significant reduction"
        if cmp.reduction > 0 and cmp.significant(alpha):
            why = ": its 95 % interval holds zero (p alone is not enough)"
        return Verdict(NOT_REPRODUCED, what + why)
    if utility_drop > max_utility_drop:
        return Verdict(WITH_LOSS, what + f"; but test accuracy fell by {100 * utility_drop:.1f} points: not a defence")
    if claimed is None or cmp.relative >= claimed / 2:
        return Verdict(REPRODUCED, what)
    return Verdict(PARTLY, what + ": significant, but less than half the claimed size")


@dataclass(frozen=True)
class ClaimResult:
    """A verdict with what it was decided from (``ours``) and the paper's own quantity beside it
    (``paper_quantity``)."""

    verdict: Verdict
    ours: Comparison | None
    paper_quantity: Comparison | None
    utility_drop: float
    baseline_auc: Estimate
    bits: int
    reading: str
    seeds: tuple[int, ...] = (0,)


# Our measure of each abstract claim: TPR and member F1 at the full-precision attack's FPR, so that a
# moved decision threshold is not counted as a defence; attack accuracy credited down to 0.5.
ABSTRACT_MEASURE = {"attack_acc": "attack_acc", "tpr": "tpr_matched", "f1_member": "f1_matched"}


def claim_seeds(ev: Evidence, reading: str, bits: int) -> tuple[list[int], str]:
    """The claim seeds whose full-precision and ``bits``-bit rows are both stored (a pair is compared only whole),
    and a note naming the seeds still pending and their part ('' when every seed is there). Raises
    :class:`MissingRow` (pending) when no seed is stored, so that nothing is decided from no evidence."""
    have, waiting, first = [], [], None
    for s in ev.p.claim_seeds:
        try:
            ev.row(ev.config(*ev.p.resnet, seed=s))
            ev.row(ev.config(*ev.p.resnet, reading_spec(reading, bits), seed=s))
            have.append(s)
        except MissingRow as e:
            if not e.pending:
                raise
            waiting.append(s)
            first = first or e
    if not have:
        raise first
    note = (
        f"over {len(have)} of {len(ev.p.claim_seeds)} claim seeds (seed {', '.join(map(str, waiting))} {first.pending})"
        if waiting
        else ""
    )
    return have, note


def single_trainings(ev: Evidence, cmp: Comparison, arch: str) -> tuple[Comparison, str]:
    """``cmp`` (one seed: one training of each model) with the interval of its drop at least as wide as two single
    trainings' variation of its metric, +- 1.96 sqrt(2) times the pooled seed-to-seed SD measured on the stored rows
    (:meth:`qmia.evidence.Evidence.training_noise`; it also holds a new split's examples, so it errs wide); and that
    SD as text ('training variation not measured' where no configuration was trained twice). The p-value stays the
    examples' own; a verdict needs the interval too (:func:`reduction_verdict`)."""
    noise = ev.training_noise(arch, cmp.metric)
    if noise is None:
        return cmp, "training variation not measured"
    half = Z95 * np.sqrt(2.0) * noise.sd
    lo, hi = min(cmp.reduction_lo, cmp.reduction - half), max(cmp.reduction_hi, cmp.reduction + half)
    return replace(cmp, reduction_lo=float(lo), reduction_hi=float(hi)), str(noise)


def _with_note(v: Verdict, note: str) -> Verdict:
    return Verdict(v.word, f"{v.reason}; {note}") if note else v


def _mean_test_acc(ev: Evidence, configs: Sequence[TrainConfig]) -> float:
    return float(np.mean([ev.row(c)["target_test_acc"] for c in configs]))


def abstract_verdict(ev: Evidence, key: str, reading: str, bits: int | None = None) -> ClaimResult:
    """One of the abstract's claims (:data:`ABSTRACT_CLAIMS`) on the profile's ResNet, full precision
    against ``bits`` (default: the lowest) under ``reading``, over the profile's claim seeds."""
    claim = ABSTRACT_CLAIMS[key]
    b = bits or min(ev.p.bits)
    seeds, note = claim_seeds(ev, reading, b)
    fp_cfgs = [ev.config(*ev.p.resnet, seed=s) for s in seeds]
    q_cfgs = [ev.config(*ev.p.resnet, reading_spec(reading, b), seed=s) for s in seeds]
    base_auc = ev.estimate(fp_cfgs)
    ours = ev.compare_many(fp_cfgs, q_cfgs, ABSTRACT_MEASURE[key], chance=CHANCE.get(key))
    paper = ev.compare_many(fp_cfgs, q_cfgs, claim.metric) if ABSTRACT_MEASURE[key] != claim.metric else ours
    drop = _mean_test_acc(ev, fp_cfgs) - _mean_test_acc(ev, q_cfgs)
    verdict = _with_note(reduction_verdict(ours, base_auc, drop, claim.value), note)
    return ClaimResult(verdict, ours, paper, drop, base_auc, b, reading, tuple(seeds))


def chance_verdict(ev: Evidence, reading: str, bits: int | None = None) -> ClaimResult:
    """Figure 5: "the MIA on the full bitwidth model is successful while behaving as a random classification
    on the quantized model". Reproduced when the full-precision attack leaks, the quantized model's AUC
    interval holds 0.5, the AUC falls significantly and the quantized model stays useful."""
    b = bits or min(ev.p.bits)
    seeds, note = claim_seeds(ev, reading, b)
    fp_cfgs = [ev.config(*ev.p.resnet, seed=s) for s in seeds]
    q_cfgs = [ev.config(*ev.p.resnet, reading_spec(reading, b), seed=s) for s in seeds]
    base_auc = ev.estimate(fp_cfgs)
    cmp = ev.compare_many(fp_cfgs, q_cfgs, "auc", chance=0.5)
    drop = _mean_test_acc(ev, fp_cfgs) - _mean_test_acc(ev, q_cfgs)
    after = cmp.after
    what = f"AUC {cmp.before} at full precision, {after} at {b} bits (p = {cmp.p_value:.3f} for the fall)"
    if not leaks(base_auc):
        v = Verdict(NOT_MEASURABLE, _leak_reason(base_auc))
    elif not (after.lo <= 0.5 <= after.hi):
        v = Verdict(NOT_REPRODUCED, what + ": the quantized model's attack is not at chance")
    elif not cmp.decided_drop():
        v = Verdict(NOT_REPRODUCED, what + ": the fall is not significant (p, or its 95 % interval reaches zero)")
    elif drop > MAX_UTILITY_DROP:
        v = Verdict(WITH_LOSS, what + f"; but test accuracy fell by {100 * drop:.1f} points: not a defence")
    else:
        v = Verdict(REPRODUCED, what)
    return ClaimResult(_with_note(v, note), cmp, cmp, drop, base_auc, b, reading, tuple(seeds))


def dorefa_verdict(ev: Evidence, reading: str, bits: Sequence[int] = (4, 8)) -> tuple[Verdict, list[ClaimResult]]:
    """Table 6: the proposed quantizer lowers the attack more than DoReFa-Net. At each bitwidth, the attack's
    AUC on the MIA-quantized target against DoReFa-Net's (seed 0, paired), by :func:`reduction_verdict` with
    DoReFa-Net as the baseline (which must leak) and the MIA target's test accuracy against DoReFa-Net's as
    the utility, the drop's interval holding two single trainings' variation (:func:`single_trainings`); then all
    bitwidths reproduced: reproduced; some: partly; none: the most common verdict."""
    results = []
    for b in bits:
        d_cfg, m_cfg = (
            ev.config(*ev.p.resnet, QuantSpec("dorefa", b)),
            ev.config(*ev.p.resnet, reading_spec(reading, b)),
        )
        base = ev.estimate([d_cfg])
        cmp, noise = single_trainings(ev, ev.compare(d_cfg, m_cfg, "auc", chance=0.5), ev.p.resnet[0])
        drop = float(ev.row(d_cfg)["target_test_acc"] - ev.row(m_cfg)["target_test_acc"])
        verdict = _with_note(reduction_verdict(cmp, base, drop), noise)
        results.append(ClaimResult(verdict, cmp, cmp, drop, base, b, reading))
    words = [r.verdict.word for r in results]
    wins = words.count(REPRODUCED)
    reasons = "; ".join(f"{r.bits}-bit: {r.verdict.word}" for r in results)
    if wins == len(words):
        return Verdict(REPRODUCED, reasons), results
    if wins:
        return Verdict(PARTLY, reasons), results
    most = sorted(set(words), key=lambda w: (-words.count(w), VERDICTS.index(w)))[0]  # ties: the vocabulary's order
    return Verdict(most, reasons), results


def partial_verdict(ev: Evidence, reading: str, bits: int = 4, last: int = 5) -> ClaimResult:
    """Figure 6: quantizing only the last ``last`` layers lowers the attack (AUC) against full precision
    (seed 0, paired), by :func:`reduction_verdict` with no claimed size, the drop's interval holding two single
    trainings' variation (:func:`single_trainings`)."""
    fp_cfg = ev.config(*ev.p.resnet)
    part = ev.config(*ev.p.resnet, reading_spec(reading, bits, layers=f"last:{last}"))
    base = ev.estimate([fp_cfg])
    cmp, noise = single_trainings(ev, ev.compare(fp_cfg, part, "auc", chance=0.5), ev.p.resnet[0])
    drop = float(ev.row(fp_cfg)["target_test_acc"] - ev.row(part)["target_test_acc"])
    return ClaimResult(_with_note(reduction_verdict(cmp, base, drop), noise), cmp, cmp, drop, base, bits, reading)
