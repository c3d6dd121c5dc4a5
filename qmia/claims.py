"""The paper's claims and statements as data, and the rules that decide them from our rows.

Famili & Lao, *Deep Neural Network Quantization Framework for Effective Defense against
Membership Inference Attacks*, Sensors 23(18):7722, 2023 (doi:10.3390/s23187722).

Two kinds of judgement, never written by hand:

* **Verdicts** (:func:`abstract_verdict`, :func:`chance_verdict`, :func:`dorefa_verdict`,
  :func:`partial_verdict`): did we reproduce a claim as a *defence*? One of :data:`VERDICTS`,
  decided by a stated rule from a paired bootstrap over seeds and examples
  (:mod:`qmia.uncertainty`): a reduction is credited only from a full-precision attack that
  leaks, only down to chance, only when a one-sided test says it is not noise, and only as
  "reproduced" when the quantized model stays useful.
* **Consistency** (:data:`STATEMENTS`, :func:`readings_table`): does a reading of the quantizer
  give what the paper *reports*? Each checkable statement of Section 4.2 and of the abstract is
  decided on the paper's own quantities (point estimates, as the paper prints them), cell by cell
  agrees / disagrees / not measurable, and :func:`most_consistent` picks the reading(s) by a count.

The stored copy of the article (:data:`SOURCE`) holds its text but not the cells of Tables 3-6
nor the data of Figures 5-6 (:data:`NOT_RECOVERED`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .config import Profile, TrainConfig
from .plan import reading_bits, readings_plan, reading_spec
from .quantizers import QuantSpec
from .uncertainty import AttackOutcome, Comparison, Estimate, compare, estimate

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
    "attack_acc": Claim("attack_acc", "attack_acc", 14.0, "Abstract", "ResNet on Cifar10",
                        "reduce the attack accuracy of MIA by 14%"),
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
    return (f"The paper's {item} ({NOT_RECOVERED[item]}) could not be read from the stored copy of the article "
            f"({SOURCE}): its cells are missing there, so they are not shown here; the paper's statements about it "
            f"are checked on the readings page and its claims in the reproduction report.")


# ----------------------------------------------------------------------------- evidence: rows by configuration


class MissingRow(LookupError):
    """A configuration's row is not among the evidence. ``pending``: the plan computes it and this says where
    (:func:`qmia.parts.pending_text`); '' when no plan holds it."""

    def __init__(self, message: str, pending: str = "") -> None:
        super().__init__(message)
        self.pending = pending


class Evidence:
    """A profile's stored rows, looked up by target configuration and attack, with per-example outcomes.

    ``recipe``: the training recipe the lookups build configurations with (default: the profile's).
    """

    def __init__(self, p: Profile, rows: pd.DataFrame, recipe: str | None = None, n_boot: int = 1000,
                 _memo: dict | None = None) -> None:
        from .experiment import PENDING

        if PENDING not in rows.columns:
            rows = rows.assign(**{PENDING: ""})
        pending = rows[PENDING].fillna("") != ""
        self.p, self.recipe, self.n_boot = p, recipe or p.recipe, n_boot
        self.rows = rows[~pending].reset_index(drop=True)  # stored rows only; pending ones say which part computes them
        self.pending = {(k, a): t for k, a, t in zip(rows.loc[pending, "target_key"], rows.loc[pending, "attack"],
                                                     rows.loc[pending, PENDING])}
        self._all = rows
        self._at = {(k, a): i for i, (k, a) in enumerate(zip(self.rows["target_key"], self.rows["attack"]))}
        self._memo = {} if _memo is None else _memo  # outcomes and estimates, shared by the views of one evidence

    def with_recipe(self, recipe: str) -> "Evidence":
        return Evidence(self.p, self._all, recipe, self.n_boot, self._memo)

    def view(self, p: Profile) -> "Evidence":
        """The same rows seen through another profile (e.g. fewer claim seeds)."""
        return Evidence(p, self._all, self.recipe, self.n_boot, self._memo)

    def has(self, arch: str, dataset: str) -> bool:
        return (arch, dataset) in self.p.models or (arch, dataset) == self.p.resnet

    def config(self, arch: str, dataset: str, quant: QuantSpec | None = None, seed: int = 0) -> TrainConfig:
        return self.p.config(arch, dataset, quant or QuantSpec(), recipe=self.recipe, seed=seed)

    def row(self, config: TrainConfig, attack: str = "shadow") -> pd.Series:
        i = self._at.get((config.key, attack))
        if i is None:
            pending = self.pending.get((config.key, attack), "")
            raise MissingRow(f"{config.label} / {attack}: {pending or 'no stored row; the plan does not compute it'}",
                             pending)
        return self.rows.iloc[i]

    def frame(self, configs: Sequence[TrainConfig], attack: str = "shadow") -> pd.DataFrame:
        """The rows of ``configs`` for ``attack``: stored ones, and pending ones (no numbers; ``pending`` names the
        part) where the plan computes them; raises :class:`MissingRow` for a row no plan computes."""
        index = {(k, a): i for i, (k, a) in enumerate(zip(self._all["target_key"], self._all["attack"]))}
        picked = []
        for c in configs:
            if (c.key, attack) not in index:
                self.row(c, attack)  # raises, saying why
            picked.append(index[(c.key, attack)])
        return self._all.iloc[picked].reset_index(drop=True)

    def outcomes(self, configs: Sequence[TrainConfig], attack: str = "shadow") -> list[AttackOutcome]:
        from .results import load_outcome

        out = []
        for c in configs:
            if ("outcome", c.key, attack) not in self._memo:
                self._memo[("outcome", c.key, attack)] = load_outcome(self.row(c, attack))
            out.append(self._memo[("outcome", c.key, attack)])
        return out

    def estimate(self, configs: Sequence[TrainConfig], metric: str = "auc", attack: str = "shadow") -> Estimate:
        """:func:`qmia.uncertainty.estimate` of the configurations' outcomes, computed once per evidence."""
        key = ("estimate", tuple(c.key for c in configs), metric, attack)
        if key not in self._memo:
            self._memo[key] = estimate(self.outcomes(configs, attack), metric, n_boot=self.n_boot)
        return self._memo[key]


def collect(p: Profile, data_root: str | os.PathLike | None = None, n_boot: int = 1000,
            stored_only: bool = False) -> Evidence:
    """Evaluate (or read from the store) everything the statements and verdicts need under ``p``; ``stored_only``:
    read only, the rows not stored kept as pending (:func:`qmia.experiment.evaluate`)."""
    from .experiment import evaluate

    frames = [evaluate(c, attacks, profile=p, data_root=data_root, stored_only=stored_only)
              for c, attacks in readings_plan(p)]
    return Evidence(p, pd.concat(frames, ignore_index=True), n_boot=n_boot)  # readings_plan lists each target once


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
    return (f"the full-precision attack does not leak beyond chance (AUC {auc}; a baseline needs AUC >= "
            f"{0.5 + LEAK_MARGIN:.2f} with its interval above 0.5)")


def reduction_verdict(cmp: Comparison, baseline_auc: Estimate, utility_drop: float, claimed: float | None = None,
                      *, alpha: float = ALPHA, max_utility_drop: float = MAX_UTILITY_DROP) -> Verdict:
    """Verdict on "quantization lowers this metric" (by ``claimed`` % of the full-precision value, if given).

    1. not measurable: the full-precision attack does not leak (:func:`leaks` on ``baseline_auc``);
    2. not reproduced: the reduction (credited only down to chance) is not > 0 at level ``alpha``;
    3. reproduced only with a utility loss: the quantized target lost more than ``max_utility_drop``
       of test accuracy (then quantization broke the model; that is not a defence);
    4. reproduced: at least half the claimed relative reduction (or any, when none is claimed);
       partly reproduced: significant and useful, but less than half the claim.
    """
    if not leaks(baseline_auc):
        return Verdict(NOT_MEASURABLE, _leak_reason(baseline_auc))
    what = (f"{cmp.before.value:.3f} -> {cmp.after.value:.3f}, reduction {cmp.relative:.1f} % "
            f"(95 % CI of the drop {cmp.reduction_lo:+.3f} to {cmp.reduction_hi:+.3f}, p = {cmp.p_value:.3f})")
    if claimed is not None:
        what += f" vs claimed {claimed:.0f} %"
    if not (cmp.reduction > 0 and cmp.significant(alpha)):
        return Verdict(NOT_REPRODUCED, what + ": not a significant reduction")
    if utility_drop > max_utility_drop:
        return Verdict(WITH_LOSS, what + f"; but test accuracy fell by {100 * utility_drop:.1f} points: not a defence")
    if claimed is None or cmp.relative >= claimed / 2:
        return Verdict(REPRODUCED, what)
    return Verdict(PARTLY, what + ": significant, but less than half the claimed size")


@dataclass(frozen=True)
class ClaimResult:
    """A verdict with what it was decided from (``ours``) and the paper's own quantity beside it (``paper_quantity``)."""

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
    note = (f"over {len(have)} of {len(ev.p.claim_seeds)} claim seeds (seed {', '.join(map(str, waiting))} "
            f"{first.pending})" if waiting else "")
    return have, note


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
    fp, q = ev.outcomes(fp_cfgs), ev.outcomes(q_cfgs)
    base_auc = ev.estimate(fp_cfgs)
    ours = compare(fp, q, ABSTRACT_MEASURE[key], chance=CHANCE.get(key), n_boot=ev.n_boot)
    paper = compare(fp, q, claim.metric, n_boot=ev.n_boot) if ABSTRACT_MEASURE[key] != claim.metric else ours
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
    fp, q = ev.outcomes(fp_cfgs), ev.outcomes(q_cfgs)
    base_auc = ev.estimate(fp_cfgs)
    cmp = compare(fp, q, "auc", chance=0.5, n_boot=ev.n_boot)
    drop = _mean_test_acc(ev, fp_cfgs) - _mean_test_acc(ev, q_cfgs)
    after = cmp.after
    what = f"AUC {cmp.before} at full precision, {after} at {b} bits (p = {cmp.p_value:.3f} for the fall)"
    if not leaks(base_auc):
        v = Verdict(NOT_MEASURABLE, _leak_reason(base_auc))
    elif not (after.lo <= 0.5 <= after.hi):
        v = Verdict(NOT_REPRODUCED, what + ": the quantized model's attack is not at chance")
    elif not cmp.significant():
        v = Verdict(NOT_REPRODUCED, what + ": the fall is not significant")
    elif drop > MAX_UTILITY_DROP:
        v = Verdict(WITH_LOSS, what + f"; but test accuracy fell by {100 * drop:.1f} points: not a defence")
    else:
        v = Verdict(REPRODUCED, what)
    return ClaimResult(_with_note(v, note), cmp, cmp, drop, base_auc, b, reading, tuple(seeds))


def dorefa_verdict(ev: Evidence, reading: str, bits: Sequence[int] = (4, 8)) -> tuple[Verdict, list[ClaimResult]]:
    """Table 6: the proposed quantizer lowers the attack more than DoReFa-Net. At each bitwidth, the attack's
    AUC on the MIA-quantized target against DoReFa-Net's (seed 0, paired), by :func:`reduction_verdict` with
    DoReFa-Net as the baseline (which must leak) and the MIA target's test accuracy against DoReFa-Net's as
    the utility; then all bitwidths reproduced: reproduced; some: partly; none: the most common verdict."""
    results = []
    for b in bits:
        d_cfg, m_cfg = ev.config(*ev.p.resnet, QuantSpec("dorefa", b)), ev.config(*ev.p.resnet, reading_spec(reading, b))
        d, m = ev.outcomes([d_cfg]), ev.outcomes([m_cfg])
        base = ev.estimate([d_cfg])
        cmp = compare(d, m, "auc", chance=0.5, n_boot=ev.n_boot)
        drop = float(ev.row(d_cfg)["target_test_acc"] - ev.row(m_cfg)["target_test_acc"])
        results.append(ClaimResult(reduction_verdict(cmp, base, drop), cmp, cmp, drop, base, b, reading))
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
    (seed 0, paired), by :func:`reduction_verdict` with no claimed size."""
    fp_cfg = ev.config(*ev.p.resnet)
    part = ev.config(*ev.p.resnet, reading_spec(reading, bits, layers=f"last:{last}"))
    fp, q = ev.outcomes([fp_cfg]), ev.outcomes([part])
    base = ev.estimate([fp_cfg])
    cmp = compare(fp, q, "auc", chance=0.5, n_boot=ev.n_boot)
    drop = float(ev.row(fp_cfg)["target_test_acc"] - ev.row(part)["target_test_acc"])
    return ClaimResult(reduction_verdict(cmp, base, drop), cmp, cmp, drop, base, bits, reading)


# ----------------------------------------------------------------------------- the paper's statements

AGREES, DISAGREES, UNMEASURABLE, PENDING = "agrees", "disagrees", "not measurable", "pending"
MARK = {AGREES: "✓", DISAGREES: "✗", UNMEASURABLE: "–", PENDING: "…"}
SIMILAR_POINTS = 0.05  # "behaves similarly": test accuracy within 5 points (the utility tolerance; seed noise is ~2)
UNDISRUPTED_POINTS = 0.10  # "does not disrupt the training": no quantized target loses more than 10 points
SMALL_POINTS = 0.03  # "only a small difference in attack accuracy": within 3 points
NEARLY_30_POINTS = 0.20  # "a nearly 30-point reduction in TP": at least 20 points of TPR


@dataclass(frozen=True)
class Cell:
    """A statement checked under one reading: agrees / disagrees / not measurable, and the numbers why."""

    status: str
    detail: str

    @property
    def mark(self) -> str:
        return MARK[self.status]


@dataclass(frozen=True)
class Statement:
    """A checkable statement of the paper: its words, where it is, the result page, its rule, and its kind:
    'utility' (about the target's accuracy, which a model that learned nothing contradicts) or 'attack'
    (about the attack's numbers, which such a model can satisfy)."""

    key: str
    quote: str
    where: str
    page: str
    rule: str
    check: Callable[[Evidence, str], Cell]
    kind: str = "attack"


def _na(why: str) -> Cell:
    return Cell(UNMEASURABLE, why)


def _cell(ok: bool, detail: str) -> Cell:
    return Cell(AGREES if ok else DISAGREES, detail)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _bits(ev: Evidence, wanted: Sequence[int]) -> list[int]:
    return [b for b in ev.p.bits if b in wanted]


def _models(ev: Evidence) -> list[tuple[str, str]]:
    return list(ev.p.models)


def _lower(ev: Evidence, metric: str, reading: str, models, bits, layers: str = "all") -> tuple[bool, list[str]]:
    """Whether ``metric`` of the shadow attack is lower than at full precision for every model and bitwidth
    (each model at the bitwidths the readings page runs it, :func:`qmia.plan.reading_bits`)."""
    ok, parts = True, []
    for a, d in models:
        fp = ev.row(ev.config(a, d))[metric]
        for b in [b for b in bits if b in reading_bits(ev.p, a)]:
            q = ev.row(ev.config(a, d, reading_spec(reading, b, layers=layers)))[metric]
            ok &= bool(q < fp)
            parts.append(f"{_short(a)} {b}b {q:.3f} vs {fp:.3f}")
    return ok, parts


def _short(arch: str) -> str:
    return {"lenet": "LeNet", "resnet20": "ResNet-20", "resnet50": "ResNet-50"}.get(arch, arch)


def _resnet50_acc(ev: Evidence, reading: str) -> Cell:
    if not ev.has("resnet50", "cifar10"):
        return _na("ResNet-50 is not in this profile")
    fp = ev.row(ev.config("resnet50", "cifar10"))["target_test_acc"]
    qs = {b: ev.row(ev.config("resnet50", "cifar10", reading_spec(reading, b)))["target_test_acc"] for b in _bits(ev, (4, 8))}
    if not qs:
        return _na("no 4- or 8-bit ResNet-50 in this profile")
    return _cell(all(v > fp for v in qs.values()),
                 f"test acc. fp {_pct(fp)}; " + ", ".join(f"{b}-bit {_pct(v)}" for b, v in qs.items()))


def _resnet50_attack(ev: Evidence, reading: str) -> Cell:
    if not ev.has("resnet50", "cifar10"):
        return _na("ResNet-50 is not in this profile")
    ok, parts = _lower(ev, "attack_acc", reading, [("resnet50", "cifar10")], _bits(ev, (4, 8)))
    return _cell(ok, "attack acc. " + "; ".join(parts)) if parts else _na("no 4- or 8-bit ResNet-50")


def _shadow_counterpart(ev: Evidence, reading: str) -> Cell:
    b = min(ev.p.bits)
    parts, ok = [], True
    want = {"fashion_mnist": True, "cifar10": False}  # fp shadow more accurate on Fashion-MNIST, not on CIFAR-10
    found = [(a, d) for a, d in _models(ev) if d in want]
    if {d for _, d in found} != set(want):
        return _na("needs both Fashion-MNIST and CIFAR-10 models")
    for a, d in found:
        if a == "resnet50":
            continue
        fp = ev.row(ev.config(a, d))["shadow_test_acc"]
        q = ev.row(ev.config(a, d, reading_spec(reading, b)), "adaptive")["shadow_test_acc"]
        ok &= bool((fp > q) == want[d])
        parts.append(f"{_short(a)}: fp shadow {_pct(fp)}, {b}-bit shadow {_pct(q)}")
    return _cell(ok, "; ".join(parts))


def _per_precision(ev: Evidence, reading: str, column: str) -> dict[tuple[str, str], dict[str, float]]:
    out = {}
    for a, d in _models(ev):
        vals = {"fp": ev.row(ev.config(a, d))[column]}
        vals.update({f"{b}b": ev.row(ev.config(a, d, reading_spec(reading, b)))[column] for b in reading_bits(ev.p, a)})
        out[(a, d)] = vals
    return out


def _attack_lower_on_fmnist(ev: Evidence, reading: str) -> Cell:
    fm = [m for m in _models(ev) if m[1] == "fashion_mnist"]
    cf = [m for m in _models(ev) if m[1] == "cifar10" and m[0] == "resnet20"]
    if not fm or not cf:
        return _na("needs LeNet / Fashion-MNIST and ResNet-20 / CIFAR-10")
    vals = _per_precision(ev, reading, "attack_acc")
    f, c = vals[fm[0]], vals[cf[0]]
    return _cell(all(f[k] < c[k] for k in f), "; ".join(f"{k}: {_pct(f[k])} vs {_pct(c[k])}" for k in f))


def _shadow_higher_on_cifar(ev: Evidence, reading: str) -> Cell:
    fm = [m for m in _models(ev) if m[1] == "fashion_mnist"]
    cf = [m for m in _models(ev) if m[1] == "cifar10" and m[0] == "resnet20"]
    if not fm or not cf:
        return _na("needs LeNet / Fashion-MNIST and ResNet-20 / CIFAR-10")
    f, c = ev.row(ev.config(*fm[0]))["shadow_test_acc"], ev.row(ev.config(*cf[0]))["shadow_test_acc"]
    return _cell(c > f, f"shadow test acc. CIFAR-10 {_pct(c)}, Fashion-MNIST {_pct(f)} (full-precision shadows)")


def _sixteen_like_fp(ev: Evidence, reading: str) -> Cell:
    if 16 not in ev.p.bits:
        return _na("no 16-bit models in this profile")
    parts, ok = [], True
    for a, d in [m for m in _models(ev) if 16 in reading_bits(ev.p, m[0])]:
        fp = ev.row(ev.config(a, d))["target_test_acc"]
        q = ev.row(ev.config(a, d, reading_spec(reading, 16)))["target_test_acc"]
        ok &= bool(abs(q - fp) <= SIMILAR_POINTS)
        parts.append(f"{_short(a)} test acc. 16-bit {_pct(q)} vs fp {_pct(fp)}")
    return _cell(ok, "; ".join(parts))


def _undisrupted(ev: Evidence, reading: str) -> Cell:
    worst, where = -1.0, ""
    for a, d in _models(ev):
        fp = ev.row(ev.config(a, d))["target_test_acc"]
        for b in reading_bits(ev.p, a):
            q = ev.row(ev.config(a, d, reading_spec(reading, b)))["target_test_acc"]
            if fp - q > worst:
                worst, where = fp - q, f"{_short(a)} at {b} bits: {_pct(q)} vs fp {_pct(fp)}"
    return _cell(worst <= UNDISRUPTED_POINTS, f"largest loss of test accuracy {100 * worst:.1f} points ({where})")


def _sixteen_attack_lower(ev: Evidence, reading: str) -> Cell:
    if 16 not in ev.p.bits:
        return _na("no 16-bit models in this profile")
    ok, parts = _lower(ev, "attack_acc", reading, [m for m in _models(ev) if 16 in reading_bits(ev.p, m[0])], [16])
    return _cell(ok, "attack acc. " + "; ".join(parts))


def _member_prf(ev: Evidence, reading: str) -> Cell:
    ok, parts = True, []
    for m in ("precision_member", "recall_member", "f1_member"):
        o, _ = _lower(ev, m, reading, _models(ev), ev.p.bits)
        ok &= o
        parts.append(f"{m.split('_')[0]} lower in every case: {'yes' if o else 'no'}")
    return _cell(ok, "; ".join(parts))


def _tp_lower(ev: Evidence, reading: str) -> Cell:
    ok, parts = _lower(ev, "tpr", reading, _models(ev), ev.p.bits)
    return _cell(ok, "TPR " + "; ".join(parts))


def _resnet20_8bit(ev: Evidence, reading: str) -> Cell:
    if 8 not in ev.p.bits or ("resnet20", "cifar10") not in _models(ev):
        return _na("needs the 8-bit ResNet-20 on CIFAR-10")
    fp, q = ev.row(ev.config("resnet20", "cifar10")), ev.row(ev.config("resnet20", "cifar10", reading_spec(reading, 8)))
    d_acc, d_tpr = q["attack_acc"] - fp["attack_acc"], fp["tpr"] - q["tpr"]
    return _cell(abs(d_acc) <= SMALL_POINTS and d_tpr >= NEARLY_30_POINTS,
                 f"attack acc. {_pct(fp['attack_acc'])} -> {_pct(q['attack_acc'])}; TPR {fp['tpr']:.3f} -> {q['tpr']:.3f} "
                 f"({100 * d_tpr:.1f} points lower)")


def _fig5(ev: Evidence, reading: str) -> Cell:
    b = min(ev.p.bits)
    a_fp, a_q = ev.estimate([ev.config(*ev.p.resnet)]), ev.estimate([ev.config(*ev.p.resnet, reading_spec(reading, b))])
    return _cell(leaks(a_fp) and a_q.lo <= 0.5 <= a_q.hi, f"AUC fp {a_fp}, {b}-bit {a_q}")


def _table6_rows(ev: Evidence, reading: str, b: int) -> tuple[pd.Series, pd.Series]:
    return (ev.row(ev.config(*ev.p.resnet, QuantSpec("dorefa", b))), ev.row(ev.config(*ev.p.resnet, reading_spec(reading, b))))


def _both_reduce(ev: Evidence, reading: str) -> Cell:
    fp = ev.row(ev.config(*ev.p.resnet))["f1_member"]
    ok, parts = True, []
    for b in (4, 8):
        d, m = _table6_rows(ev, reading, b)
        ok &= bool(d["f1_member"] < fp and m["f1_member"] < fp)
        parts.append(f"{b}-bit member F1: DoReFa {d['f1_member']:.3f}, ours {m['f1_member']:.3f} (fp {fp:.3f})")
    return _cell(ok, "; ".join(parts))


def _below_dorefa(ev: Evidence, reading: str) -> Cell:
    ok, parts = True, []
    for b in (4, 8):
        d, m = _table6_rows(ev, reading, b)
        lower = [k for k in ("precision_member", "recall_member", "f1_member") if m[k] <= d[k]]
        ok &= len(lower) == 3
        parts.append(f"{b}-bit: {len(lower)} of 3 member metrics at or below DoReFa-Net's")
    return _cell(ok, "; ".join(parts))


def _f1_28(ev: Evidence, reading: str) -> Cell:
    d, m = _table6_rows(ev, reading, 4)
    red = 100 * (d["f1_member"] - m["f1_member"]) / d["f1_member"] if d["f1_member"] else float("nan")
    return _cell(bool(red > 28), f"4-bit member F1 {m['f1_member']:.3f} vs DoReFa-Net {d['f1_member']:.3f}: {red:.1f} % lower")


def _partial(ev: Evidence, reading: str, metrics: Sequence[str]) -> tuple[bool, list[str]]:
    fp = ev.row(ev.config(*ev.p.resnet))
    part = ev.row(ev.config(*ev.p.resnet, reading_spec(reading, 4, layers="last:5")))
    ok = all(part[m] < fp[m] for m in metrics)
    return ok, [f"{m.replace('_', ' ')} {part[m]:.3f} vs {fp[m]:.3f}" for m in metrics]


def _partial_all(ev: Evidence, reading: str) -> Cell:
    ok, parts = _partial(ev, reading, ("precision_member", "recall_member", "f1_member", "precision_nonmember",
                                       "recall_nonmember", "f1_nonmember"))
    return _cell(ok, "; ".join(parts))


def _partial_nonmember_precision(ev: Evidence, reading: str) -> Cell:
    ok, parts = _partial(ev, reading, ("precision_nonmember", "tpr"))
    return _cell(ok, "; ".join(parts))


def _abstract(key: str) -> Callable[[Evidence, str], Cell]:
    claim = ABSTRACT_CLAIMS[key]

    def check(ev: Evidence, reading: str) -> Cell:
        b = min(ev.p.bits)
        seeds, note = claim_seeds(ev, reading, b)
        fp = np.mean([ev.row(ev.config(*ev.p.resnet, seed=s))[claim.metric] for s in seeds])
        q = np.mean([ev.row(ev.config(*ev.p.resnet, reading_spec(reading, b), seed=s))[claim.metric] for s in seeds])
        red = 100 * (fp - q) / fp if fp else float("nan")
        return _cell(bool(red >= claim.value / 2),
                     f"{claim.metric.replace('_', ' ')} {fp:.3f} -> {q:.3f} at {b} bits: {red:.1f} % lower "
                     f"(claimed {claim.value:.0f} %; agreement needs half); mean of {len(seeds)} seed(s)"
                     + (f", {note}" if note else ""))
    return check


STATEMENTS: tuple[Statement, ...] = (
    Statement("no-disruption", "To ensure a smooth training process, we apply quantization to each W_Li in a manner "
              "that does not disrupt the training.", "Section 3.3", "table3_accuracy",
              f"no quantized target (any model, any bitwidth) loses more than {100 * UNDISRUPTED_POINTS:.0f} points of "
              "test accuracy against full precision", _undisrupted, "utility"),
    Statement("abstract-attack-acc", "our algorithm can reduce the attack accuracy of MIA by 14%", "Abstract",
              "table3_accuracy", "ResNet / CIFAR-10, full precision vs the lowest bitwidth (mean over the claim seeds): "
              "attack accuracy lower by at least half of 14 %", _abstract("attack_acc")),
    Statement("abstract-tpr", "the true positive rate by 37%", "Abstract", "table5_confusion",
              "as above, the attack's TPR (its decisions) lower by at least half of 37 %", _abstract("tpr")),
    Statement("abstract-f1", "and F1-score of members by 39%", "Abstract", "table4_prf",
              "as above, member F1 lower by at least half of 39 %", _abstract("f1_member")),
    Statement("resnet50-accuracy", "In the case of ResNet-50, the quantized model has a better target model accuracy "
              "than the full bitwidth model.", "Section 4.2, Table 3", "table3_accuracy",
              "ResNet-50 test accuracy at 4 and 8 bits above full precision", _resnet50_acc, "utility"),
    Statement("resnet50-attack", "However, the attack accuracy drops when compared to the quantized model.",
              "Section 4.2, Table 3", "table3_accuracy", "ResNet-50 attack accuracy at 4 and 8 bits below full precision",
              _resnet50_attack),
    Statement("shadow-counterpart", "the shadow model of the full bitwidth model has higher accuracy than its quantized "
              "counterpart on Fashion MNIST, whereas that is not the case for Cifar10", "Section 4.2, Table 3",
              "table3_accuracy", "test accuracy of the full-precision shadow above that of the shadow quantized like the "
              "target (lowest bitwidth) on Fashion-MNIST, not above it on CIFAR-10", _shadow_counterpart),
    Statement("attack-lower-fmnist", "We also find that the attack model accuracy is lower on Fashion MNIST than on "
              "Cifar10.", "Section 4.2, Table 3", "table3_accuracy",
              "attack accuracy of LeNet / Fashion-MNIST below ResNet-20 / CIFAR-10 at full precision and every bitwidth",
              _attack_lower_on_fmnist),
    Statement("shadow-higher-cifar", "However, the shadow model accuracy is higher for Cifar10.", "Section 4.2, Table 3",
              "table3_accuracy", "the full-precision shadow's test accuracy higher on CIFAR-10 (ResNet-20) than on "
              "Fashion-MNIST (LeNet); the same under every reading", _shadow_higher_on_cifar),
    Statement("16bit-like-fp", "Out of all quantized networks, 16-bit quantization behaves similarly to the full "
              "bitwidth model.", "Section 4.2, Table 3", "table3_accuracy",
              f"16-bit test accuracy within {100 * SIMILAR_POINTS:.0f} points of full precision, every model",
              _sixteen_like_fp, "utility"),
    Statement("16bit-attack-lower", "However, the attack model accuracy is still lower than for the full bitwidth model.",
              "Section 4.2, Table 3", "table3_accuracy", "16-bit attack accuracy below full precision, every model",
              _sixteen_attack_lower),
    Statement("member-prf-drop", "We can see a significant drop in all three metrics when we compare the member class "
              "[...] to the quantized models. The same trend can also be observed for ResNet-20 and the simpler LeNet model.",
              "Section 4.2, Table 4", "table4_prf",
              "member precision, recall and F1 below full precision for every model and bitwidth", _member_prf),
    Statement("tp-lower", "the true positive rates are lower after employing our quantization", "Section 4.2, Table 5",
              "table5_confusion", "TPR below full precision for every model and bitwidth", _tp_lower),
    Statement("resnet20-8bit-tp", "although we observe only a small difference in attack accuracy for the 8-bit "
              "quantized network on ResNet-20 [...] there is a nearly 30-point reduction in TP value",
              "Section 4.2, Table 5", "table5_confusion",
              f"8-bit ResNet-20: attack accuracy within {100 * SMALL_POINTS:.0f} points of full precision and TPR lower "
              f"by at least {100 * NEARLY_30_POINTS:.0f} points", _resnet20_8bit),
    Statement("fig5-chance", "the MIA on the full bitwidth model is successful while behaving as a random classification "
              "on the quantized model", "Section 4.2, Figure 5", "fig5_roc",
              "full-precision AUC leaks (>= 0.52, interval above 0.5) and the lowest bitwidth's AUC interval holds 0.5",
              _fig5),
    Statement("table6-both-reduce", "We can see the impact of MIA is significantly reduced in both quantization methods.",
              "Section 4.2, Table 6", "table6_dorefa", "member F1 below full precision for DoReFa-Net and ours at 4 and 8 bits",
              _both_reduce),
    Statement("table6-all-three", "Compared to DoReFa-Net, our method achieves further reductions in all three metrics",
              "Section 4.2, Table 6", "table6_dorefa",
              "our member precision, recall and F1 at or below DoReFa-Net's at 4 and 8 bits", _below_dorefa),
    Statement("table6-f1-28", "our method achieves over 28% reduction in F1-score compared to DoReFa-Net for the 4-bit "
              "quantization", "Section 4.2, Table 6", "table6_dorefa",
              "4-bit member F1 more than 28 % (relative) below DoReFa-Net's", _f1_28),
    Statement("fig6-all-lower", "in both members and non-members, the partially quantized network has lower F1-score, "
              "precision, and recall", "Section 4.2, Figure 6", "fig6_partial",
              "last 5 layers at 4 bits: all six precision, recall and F1 values below full precision", _partial_all),
    Statement("fig6-nonmember-precision", "We can see a significant drop in Precision for the non-member class, which "
              "also leads to greatly reduced TP values", "Section 4.2, Figure 6", "fig6_partial",
              "last 5 layers at 4 bits: non-member precision and TPR below full precision", _partial_nonmember_precision),
)


def check_statement(statement: Statement, ev: Evidence, reading: str) -> Cell:
    """One cell of the readings table: a statement whose rows the plan computes but are not stored yet is pending
    (naming the part), never decided from part of its rows; one whose rows no plan computes is not measurable."""
    try:
        return statement.check(ev, reading)
    except MissingRow as e:
        return Cell(PENDING, f"pending: {e}") if e.pending else _na(str(e))


def readings_table(ev: Evidence, readings: Sequence[str] | None = None) -> pd.DataFrame:
    """Statements x readings: one :class:`Cell` per entry (columns: the readings; index: statement keys)."""
    readings = list(readings or ev.p.readings)
    return pd.DataFrame({r: [check_statement(s, ev, r) for s in STATEMENTS] for r in readings},
                        index=[s.key for s in STATEMENTS])


UTILITY = "utility statements agreed"


def consistency_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per reading: utility statements it agrees with, and all statements it agrees with, disagrees with,
    cannot measure, and that are pending (their rows not stored yet)."""
    kinds = {s.key: s.kind for s in STATEMENTS}
    utility = [k for k in table.index if kinds.get(k) == "utility"]
    out = pd.DataFrame({status: [sum(c.status == status for c in table[r]) for r in table.columns]
                        for status in (AGREES, DISAGREES, UNMEASURABLE, PENDING)}, index=table.columns)
    out.insert(0, UTILITY, [sum(table.loc[k, r].status == AGREES for k in utility) for r in table.columns])
    return out


def most_consistent(table: pd.DataFrame) -> list[str]:
    """The rule: first the reading(s) that agree with the most *utility* statements (the paper's targets are
    models that learned: a reading whose models collapse contradicts its Table 3, while a collapsed model
    satisfies every "the attack drops"); among those, the most statements agreed with in all; then the fewest
    disagreements. Readings still tied are all returned, in the table's order."""
    best = consistency_counts(table)
    for column, pick in ((UTILITY, max), (AGREES, max), (DISAGREES, min)):
        best = best[best[column] == pick(best[column])]
    return list(best.index)


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
