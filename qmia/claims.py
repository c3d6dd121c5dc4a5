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
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .config import Profile, TrainConfig
from .plan import readings_plan, reading_spec
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


class MixedInstances(MissingRow):
    """Rows to be compared name one model key with two trained instances (two trainings of one configuration):
    comparing them would mix training noise into the comparison (:meth:`Evidence.paired_rows`). The comparison is
    not measurable, as for a row no plan computes."""


ROLES = ("target", "shadow")


def row_instance(row: pd.Series | dict, role: str) -> str:
    """Which trained instance of its ``role`` model ('target' or 'shadow') a row was computed from: the instance it
    records (:func:`qmia.train.model_instance`), or, for rows stored before rows recorded it, the model's train and
    test accuracies as the row gives them (two trainings of one key differ there; equal accuracies may still hide
    two instances)."""
    recorded = row.get(f"{role}_instance")
    if isinstance(recorded, str) and recorded:
        return recorded
    acc = [row.get(f"{role}_{split}_acc") for split in ("train", "test")]
    return "accuracy " + "/".join("?" if a is None or pd.isna(a) else f"{float(a):.6f}" for a in acc)


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

    def paired_rows(self, lookups: Sequence[tuple[TrainConfig, str]]) -> list[pd.Series]:
        """The rows of (config, attack) pairs to be compared with each other; :class:`MixedInstances` when two of them
        name one model key (as target or shadow) with different trained instances (:func:`row_instance`)."""
        rows = [self.row(c, a) for c, a in lookups]
        seen: dict[str, tuple[str, str]] = {}
        for row in rows:
            for role in ROLES:
                key = row.get(f"{role}_key")
                if not isinstance(key, str) or not key:  # rows that do not name the model (synthetic ones)
                    continue
                inst = row_instance(row, role)
                if key in seen and seen[key][0] != inst:
                    raise MixedInstances(f"model {key} is {seen[key][0]} in row {seen[key][1]} and {inst} in row "
                                         f"{row['row_key']}")
                seen.setdefault(key, (inst, row["row_key"]))
        return rows

    def compare(self, before: TrainConfig, after: TrainConfig, metric: str, *, chance: float | None = None,
                attack_before: str = "shadow", attack_after: str = "shadow") -> Comparison:
        """:func:`qmia.uncertainty.compare` of one attack on two targets (paired; never across two instances of one
        key: :meth:`paired_rows`), computed once per evidence."""
        return self.compare_many([before], [after], metric, chance=chance, attack_before=attack_before,
                                 attack_after=attack_after)

    def compare_many(self, before: Sequence[TrainConfig], after: Sequence[TrainConfig], metric: str, *,
                     chance: float | None = None, attack_before: str = "shadow", attack_after: str = "shadow") -> Comparison:
        """As :meth:`compare`, over several seeds (``before[i]`` and ``after[i]`` share a seed)."""
        key = ("compare", tuple(c.key for c in before), tuple(c.key for c in after), metric, chance, attack_before,
               attack_after)
        if key not in self._memo:
            for b, a in zip(before, after):
                self.paired_rows([(b, attack_before), (a, attack_after)])
            self._memo[key] = compare(self.outcomes(before, attack_before), self.outcomes(after, attack_after), metric,
                                      chance=chance, n_boot=self.n_boot)
        return self._memo[key]

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
        base = ev.estimate([d_cfg])
        cmp = ev.compare(d_cfg, m_cfg, "auc", chance=0.5)
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
    base = ev.estimate([fp_cfg])
    cmp = ev.compare(fp_cfg, part, "auc", chance=0.5)
    drop = float(ev.row(fp_cfg)["target_test_acc"] - ev.row(part)["target_test_acc"])
    return ClaimResult(reduction_verdict(cmp, base, drop), cmp, cmp, drop, base, bits, reading)


# ----------------------------------------------------------------------------- the statements' vocabulary

# The status of a statement under a reading (:mod:`qmia.statements`) and of a verdict's row lookup.
AGREES, DISAGREES, UNMEASURABLE, PENDING = "agrees", "disagrees", "not measurable", "pending"
