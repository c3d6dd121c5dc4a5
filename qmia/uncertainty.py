"""Uncertainty over seeds and examples: a paired two-level bootstrap and a one-sided test.

A claim of the paper compares one attack on two targets, e.g. full precision and 4-bit, trained
with the same seeds. For one seed both targets are evaluated on the same examples (the split
depends on the seed only), so the comparison is *paired*: every resample draws the same examples
for both. Over seeds the bootstrap has two levels (Davison & Hinkley 1997, Section 3.8): draw the
seeds with replacement, then within each drawn seed the members and the non-members with
replacement (class sizes kept), and average the metric over the drawn seeds. With one seed only
the second level remains, and the interval says nothing about training noise (the tables say so).

Every resample is computed from weighted counts over one sort of each attack's scores, so a
thousand resamples of 30,000 examples take seconds.

Metrics (``METRICS``), each "higher = the attack does better": ``attack_acc``, ``advantage``
(TPR - FPR of the hard decisions), ``tpr``, ``auc``, ``precision_member``, ``recall_member``,
``f1_member``, ``precision_nonmember``, ``recall_nonmember``, ``f1_nonmember``, ``max_advantage``
(the advantage of the best threshold: max of TPR - FPR over the points of the scores' ROC curve,
tie groups kept whole and (0, 0) included, so >= 0; Yeom et al. 2018's membership advantage at the
optimal threshold, i.e. the Kolmogorov-Smirnov distance between the member and the non-member
scores; optimistic for the attack, since the threshold is picked knowing membership),
``tpr@<alpha>`` (e.g. ``tpr@0.01``: the highest TPR at FPR <= alpha on the scores' ROC curve), and, in
:func:`compare` only, ``tpr_matched`` and ``f1_matched``: the first attack's TPR (member F1) of
its decisions against the second attack's best TPR (best member F1) over the points of its ROC
curve with no more false positives than the first, so that a moved decision threshold cannot pass
for a defence.
A matched metric is credited only down to what chance gives at that FPR: TPR = FPR, and member
F1 = 2 pi FPR / (pi + FPR) with pi the share of members.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.959964  # the standard normal's 97.5 % quantile: two-sided 95 % normal intervals
HARD = (
    "attack_acc",
    "advantage",
    "tpr",
    "precision_member",
    "recall_member",
    "f1_member",
    "precision_nonmember",
    "recall_nonmember",
    "f1_nonmember",
)
MATCHED = ("tpr_matched", "f1_matched")
# all "higher = the attack does better" (FPR, internal, is not)
METRICS = HARD + ("auc", "max_advantage", "tpr@<alpha>") + MATCHED
MIN_FALSE_POSITIVES = 10  # TPR at FPR alpha is measurable only where alpha * non-members >= this


@dataclass(frozen=True)
class AttackOutcome:
    """One attack on one target: per-example scores (higher = member), 0/1 decisions and
    membership (1 = member), all of length n, and the dataset indices of the examples (to pair)."""

    scores: np.ndarray
    pred: np.ndarray
    member: np.ndarray
    index: np.ndarray
    seed: int

    def __post_init__(self) -> None:
        n = len(self.scores)
        if not (len(self.pred) == len(self.member) == len(self.index) == n) or n == 0:
            raise ValueError("an attack outcome needs scores, decisions, membership and indices of one length > 0")
        if not (self.member.astype(bool).any() and (~self.member.astype(bool)).any()):
            raise ValueError("an attack outcome needs members and non-members")


@dataclass(frozen=True)
class Estimate:
    """A metric's point estimate (mean over seeds) and its bootstrap interval."""

    metric: str
    value: float
    lo: float
    hi: float
    n_seeds: int
    n_boot: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


@dataclass(frozen=True)
class Comparison:
    """``before`` against ``after`` on one metric: both estimates, the reduction before - max(after, chance)
    with its interval, and the one-sided bootstrap p-value of "no reduction"."""

    metric: str
    before: Estimate
    after: Estimate
    reduction: float
    reduction_lo: float
    reduction_hi: float
    p_value: float
    chance: float | None

    @property
    def relative(self) -> float:
        """The reduction in % of ``before`` (NaN when before is 0)."""
        b = self.before.value
        return float("nan") if b == 0 or not math.isfinite(b) else 100.0 * self.reduction / b

    @property
    def relative_interval(self) -> tuple[float, float, float]:
        """The reduction and its 95 % interval in % of ``before``: (value, lo, hi); NaNs when before is 0."""
        b = self.before.value
        if b == 0 or not math.isfinite(b):
            return float("nan"), float("nan"), float("nan")
        return 100.0 * self.reduction / b, 100.0 * self.reduction_lo / b, 100.0 * self.reduction_hi / b

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha

    def decided_drop(self, alpha: float = 0.05) -> bool:
        """Whether the metric fell beyond noise: a positive reduction, p < ``alpha`` and the printed two-sided 95 %
        interval above zero (both, so that a verdict never contradicts the interval shown beside it)."""
        return self.reduction > 0 and self.significant(alpha) and self.reduction_lo > 0


def measurable_fpr(n_nonmembers: int, alpha: float) -> bool:
    """Whether TPR at FPR ``alpha`` is measured, not extrapolated: at least
    :data:`MIN_FALSE_POSITIVES` non-members must fall above the threshold at that rate."""
    return alpha * n_nonmembers >= MIN_FALSE_POSITIVES - 1e-9


def lowest_measurable_fpr(n_nonmembers: int) -> float:
    """The lowest of 0.1 %, 1 %, 2 %, 5 %, 10 % FPR at which TPR is measured (>= 10 false positives)."""
    for alpha in (0.001, 0.01, 0.02, 0.05, 0.1):
        if measurable_fpr(n_nonmembers, alpha):
            return alpha
    return 0.5


class _Prepared:
    """One outcome sorted once by decreasing score, with its tie groups, for weighted-count metrics."""

    def __init__(self, o: AttackOutcome) -> None:
        order = np.argsort(-np.asarray(o.scores, dtype=np.float64), kind="stable")
        s = np.asarray(o.scores, dtype=np.float64)[order]
        self.order = order
        self.member = np.asarray(o.member).astype(bool)[order]
        self.pred = np.asarray(o.pred).astype(bool)[order]
        self.starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first position of each tie group
        self.n = len(s)
        self.P = int(self.member.sum())
        self.N = self.n - self.P

    def weights(self, counts: np.ndarray | None) -> np.ndarray:
        """Per sorted position, how often the example is drawn (counts is per original example)."""
        return np.ones(self.n) if counts is None else counts[self.order].astype(np.float64)

    def metric(self, name: str, w: np.ndarray, ref_fpr: float | None = None) -> float:
        wm, wn = w * self.member, w * ~self.member
        P, N = wm.sum(), wn.sum()
        if name in HARD or name == "fpr":
            tp, fp = (wm * self.pred).sum(), (wn * self.pred).sum()
            fn, tn = P - tp, N - fp
            tpr, fpr = tp / P, fp / N
            prec_m = tp / (tp + fp) if tp + fp else 0.0
            prec_n = tn / (tn + fn) if tn + fn else 0.0
            rec_n = tn / N
            values = {
                "attack_acc": (tp + tn) / (P + N),
                "advantage": tpr - fpr,
                "tpr": tpr,
                "fpr": fpr,
                "precision_member": prec_m,
                "recall_member": tpr,
                "f1_member": 2 * prec_m * tpr / (prec_m + tpr) if prec_m + tpr else 0.0,
                "precision_nonmember": prec_n,
                "recall_nonmember": rec_n,
                "f1_nonmember": 2 * prec_n * rec_n / (prec_n + rec_n) if prec_n + rec_n else 0.0,
            }
            return float(values[name])
        gm = np.add.reduceat(wm, self.starts)  # members and non-members per tie group, by decreasing score
        gn = np.add.reduceat(wn, self.starts)
        if name == "auc":
            below = N - np.cumsum(gn)  # non-members scored strictly lower than the group
            return float((gm * (below + 0.5 * gn)).sum() / (P * N))
        if name == "max_advantage":  # TPR - FPR at every cut between tie groups, (0, 0) included
            return float(max(0.0, (np.cumsum(gm) / P - np.cumsum(gn) / N).max()))
        alpha = ref_fpr if name in MATCHED else _alpha(name)
        tp_c, fp_c = np.r_[0.0, np.cumsum(gm)], np.r_[0.0, np.cumsum(gn)]
        ok = fp_c / N <= alpha + 1e-12
        if name != "f1_matched":
            return float(tp_c[ok].max() / P)
        tp, fp = tp_c[ok], fp_c[ok]  # the best member F1 among the points with no more false positives
        return float((2 * tp / (tp + fp + P)).max())


def _alpha(name: str) -> float:
    if not name.startswith("tpr@"):
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(METRICS)}")
    try:
        return float(name[4:])
    except ValueError:
        raise ValueError(f"metric {name!r}: expected tpr@<alpha> with a number, e.g. tpr@0.01") from None


def _check_metric(name: str) -> None:
    if name not in HARD and name not in ("auc", "max_advantage") + MATCHED:
        _alpha(name)


def chance_f1(fpr: float, member_share: float) -> float:
    """Member F1 of an attack that flags a random share ``fpr`` of all examples (TPR = FPR)."""
    return 2 * member_share * fpr / (member_share + fpr) if fpr > 0 else 0.0


def _draw(rng: np.random.Generator, member: np.ndarray) -> np.ndarray:
    """Bootstrap counts per example: members and non-members drawn separately, sizes kept."""
    counts = np.zeros(len(member), dtype=np.int64)
    for group in (np.flatnonzero(member), np.flatnonzero(~member)):
        counts += np.bincount(group[rng.integers(0, len(group), len(group))], minlength=len(member))
    return counts


def _by_seed(outcomes: Sequence[AttackOutcome]) -> dict[int, AttackOutcome]:
    out = {}
    for o in outcomes:
        if o.seed in out:
            raise ValueError(f"two outcomes for seed {o.seed}")
        out[o.seed] = o
    if not out:
        raise ValueError("no attack outcomes")
    return out


def mean_metric(prepared: Sequence[_Prepared], metric: str) -> float:
    """A metric on all examples of each seed's outcome, averaged over the seeds (:func:`estimate`'s value)."""
    return float(np.mean([p.metric(metric, p.weights(None)) for p in prepared]))


def point_value(outcomes: Sequence[AttackOutcome], metric: str) -> float:
    """:func:`estimate`'s value without its bootstrap: the metric on all examples, averaged over the seeds."""
    _check_metric(metric)
    if metric in MATCHED:
        raise ValueError(f"{metric} compares two attacks; use compare()")
    by = _by_seed(outcomes)
    return mean_metric([_Prepared(by[s]) for s in sorted(by)], metric)


def estimate(
    outcomes: Sequence[AttackOutcome], metric: str, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> Estimate:
    """A metric over seeds (mean) with its two-level percentile bootstrap interval."""
    _check_metric(metric)
    if metric in MATCHED:
        raise ValueError(f"{metric} compares two attacks; use compare()")
    by = _by_seed(outcomes)
    seeds = sorted(by)
    prep = {s: _Prepared(by[s]) for s in seeds}
    members = {s: np.asarray(by[s].member).astype(bool) for s in seeds}
    value = mean_metric([prep[s] for s in seeds], metric)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for b in range(n_boot):
        chosen = rng.choice(seeds, len(seeds)) if len(seeds) > 1 else seeds
        draws[b] = np.mean([prep[s].metric(metric, prep[s].weights(_draw(rng, members[s]))) for s in chosen])
    a = (1 - level) / 2
    lo, hi = np.quantile(draws, [a, 1 - a])
    return Estimate(metric, value, float(lo), float(hi), len(seeds), n_boot)


def compare(
    before: Sequence[AttackOutcome],
    after: Sequence[AttackOutcome],
    metric: str,
    *,
    chance: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> Comparison:
    """Does ``after`` lower ``metric`` against ``before``? Paired by seed and example.

    The reduction is credited only down to ``chance`` (never below): before - max(after, chance);
    for the matched metrics the floor is chance at before's FPR, resample by resample.
    ``tpr_matched`` / ``f1_matched``: before's TPR / member F1 of its decisions against after's at
    before's FPR, both on the same resample. Returns both estimates, the reduction with its interval
    and the one-sided p-value (1 + #{resampled reduction <= 0}) / (1 + n_boot).
    """
    _check_metric(metric)
    b_by, a_by = _by_seed(before), _by_seed(after)
    seeds = sorted(set(b_by) & set(a_by))
    if not seeds:
        raise ValueError(f"no common seeds: before has {sorted(b_by)}, after has {sorted(a_by)}")
    for s in seeds:
        if not (np.array_equal(b_by[s].index, a_by[s].index) and np.array_equal(b_by[s].member, a_by[s].member)):
            raise ValueError(f"seed {s}: the two attacks were not evaluated on the same examples; cannot pair them")
    pb = {s: _Prepared(b_by[s]) for s in seeds}
    pa = {s: _Prepared(a_by[s]) for s in seeds}
    members = {s: np.asarray(b_by[s].member).astype(bool) for s in seeds}
    floor = -np.inf if chance is None else chance

    def pair(s: int, counts: np.ndarray | None) -> tuple[float, float, float]:
        """(before, after, the chance floor for after) on one resample of seed s."""
        wb, wa = pb[s].weights(counts), pa[s].weights(counts)
        if metric in MATCHED:
            ref = pb[s].metric("fpr", wb)
            share = pb[s].P / pb[s].n
            base = "tpr" if metric == "tpr_matched" else "f1_member"
            chance_here = ref if metric == "tpr_matched" else chance_f1(ref, share)
            return pb[s].metric(base, wb), pa[s].metric(metric, wa, ref_fpr=ref), max(floor, chance_here)
        return pb[s].metric(metric, wb), pa[s].metric(metric, wa), floor

    full = np.array([pair(s, None) for s in seeds])
    b_val, a_val, f_val = full.mean(0)
    rng = np.random.default_rng(seed)
    draws = np.empty((n_boot, 3))
    for i in range(n_boot):
        chosen = rng.choice(seeds, len(seeds)) if len(seeds) > 1 else seeds
        draws[i] = np.mean([pair(s, _draw(rng, members[s])) for s in chosen], axis=0)
    red = draws[:, 0] - np.maximum(draws[:, 1], draws[:, 2])
    a = (1 - level) / 2
    q = lambda x: [float(v) for v in np.quantile(x, [a, 1 - a])]  # noqa: E731
    return Comparison(
        metric=metric,
        before=Estimate(
            {"tpr_matched": "tpr", "f1_matched": "f1_member"}.get(metric, metric),
            float(b_val),
            *q(draws[:, 0]),
            len(seeds),
            n_boot,
        ),
        after=Estimate(metric, float(a_val), *q(draws[:, 1]), len(seeds), n_boot),
        reduction=float(b_val - max(a_val, f_val)),
        reduction_lo=q(red)[0],
        reduction_hi=q(red)[1],
        p_value=float((1 + (red <= 0).sum()) / (1 + n_boot)),
        chance=chance,
    )
