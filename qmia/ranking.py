"""A ranking of quantizers by membership-inference security (MIS).

"Membership Inference Risks in Quantized Models: A Theoretical and Empirical Study" (only its
summary is available to us; ``../shared/papers/``) analyses the MIS of quantized training procedures
against the most powerful attacks and proposes to rank quantization procedures by an empirical
estimate of it. Its summary does not give the definition; the reading taken here is the usual one
(the MIS of a procedure is 1 minus the best membership advantage any attack reaches against it),
estimated as:

    empirical MIS = 1 - max over the attacks run of that attack's advantage,

with an attack's advantage its ``max_advantage`` (:mod:`qmia.uncertainty`: TPR - FPR at the best
threshold of its scores, averaged over seeds). This is a *lower* bound on the true supremum over
all attacks (only the attacks run are tried), while each attack's own value is optimistic (its
threshold is picked knowing membership), so the MIS is an estimate, not a guarantee. Any other
metric of :mod:`qmia.uncertainty` (e.g. ``tpr@0.001``, ``auc``) can rank instead; the ``mis``
column is then NaN, since 1 minus it is no security in the paper's sense.

A quantizer's value is that of its strongest attack; rank 1 = most secure = the lowest value, tied
values share the lower rank (``scipy.stats.rankdata(..., method="min")``). The uncertainty is the
two-level bootstrap of :func:`qmia.uncertainty.estimate` (seeds, then members and non-members within
each seed), *paired*: every resample draws the same seeds and, within a seed, the same examples for
every quantizer and attack, so ranks move only where the scores disagree, not where the draws do.

:func:`attack_agreement` asks whether the attacks agree on the order at all: the quantizers' ranks
by each attack alone and Kendall's coefficient of concordance W over the attacks (Kendall & Babington
Smith 1939), with the usual correction for tied ranks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from .uncertainty import (
    MATCHED,
    AttackOutcome,
    _by_seed,
    _check_metric,
    _draw,
    _Prepared,
    mean_metric,
)

MIS_METRICS = ("max_advantage", "advantage")  # the metrics whose 1 - value is a membership-inference security

Outcomes = Mapping[str, Mapping[str, Sequence[AttackOutcome]]]


def _check(metric: str) -> None:
    _check_metric(metric)
    if metric in MATCHED:
        raise ValueError(
            f"{metric} compares two attacks and cannot rank quantizers; use e.g. max_advantage, "
            "advantage, auc or tpr@<alpha>"
        )


def _gather(outcomes: Outcomes) -> tuple[list[str], list[tuple[str, str]], list[int], dict[tuple[str, str], dict]]:
    """Quantizer names, (quantizer, attack) pairs, the common seeds and the outcomes by pair and seed;
    checks that every pair has the same seeds and, per seed, the same examples (to pair them)."""
    quantizers = list(outcomes)
    if len(quantizers) < 2:
        raise ValueError(f"ranking needs at least 2 quantizers, got {len(quantizers)}: {quantizers}")
    pairs, by = [], {}
    for q in quantizers:
        if not outcomes[q]:
            raise ValueError(f"quantizer {q!r} has no attacks")
        for a, os in outcomes[q].items():
            try:
                by[q, a] = _by_seed(os)
            except ValueError as e:
                raise ValueError(f"quantizer {q!r}, attack {a!r}: {e}") from None
            pairs.append((q, a))
    ref = pairs[0]
    seeds = sorted(by[ref])
    for q, a in pairs[1:]:
        if sorted(by[q, a]) != seeds:
            raise ValueError(
                f"quantizer {q!r}, attack {a!r} has seeds {sorted(by[q, a])}, but quantizer {ref[0]!r}, "
                f"attack {ref[1]!r} has {seeds}; all quantizers and attacks need the same seeds"
            )
        for s in seeds:
            o, r = by[q, a][s], by[ref][s]
            if not (np.array_equal(o.index, r.index) and np.array_equal(o.member, r.member)):
                raise ValueError(
                    f"quantizer {q!r}, attack {a!r}, seed {s}: not evaluated on the same examples (index "
                    f"and membership) as quantizer {ref[0]!r}, attack {ref[1]!r}; cannot pair them"
                )
    return quantizers, pairs, seeds, by


class _Seed:
    """All (quantizer, attack) outcomes of one seed, each sorted once (:class:`_Prepared`), for the
    metric of every pair on one resample of the seed's examples at once (vectorised for
    ``max_advantage``; any other metric goes pair by pair through :meth:`_Prepared.metric`)."""

    def __init__(self, prepared: list[_Prepared], member: np.ndarray) -> None:
        self.prep = prepared
        n = len(member)
        P, N = int(member.sum()), int((~member).sum())  # kept by every resample (_draw keeps class sizes)
        self.orders = np.stack([p.order for p in prepared])  # (K, n): the example at each sorted position
        self.step = np.where(np.stack([p.member for p in prepared]), 1.0 / P, -1.0 / N)  # (K, n) TPR - FPR per draw
        ends = [np.r_[p.starts[1:] - 1, n - 1] for p in prepared]  # last sorted position of each tie group
        self.ends = np.concatenate([k * n + e for k, e in enumerate(ends)])  # in the flattened (K, n)
        self.rows = np.r_[0, np.cumsum([len(e) for e in ends])[:-1]]  # where each pair's ends begin

    def values(self, metric: str, counts: np.ndarray) -> np.ndarray:
        """(K,) the metric of every pair on the resample with bootstrap ``counts`` (per example)."""
        if metric != "max_advantage":
            return np.array([p.metric(metric, p.weights(counts)) for p in self.prep])
        w = np.take(counts.astype(np.float64), self.orders)  # (K, n), as _Prepared.weights for all pairs at once
        cum = np.cumsum(w * self.step, axis=1)  # TPR - FPR after each sorted position
        best = np.maximum.reduceat(cum.ravel()[self.ends], self.rows)  # over the cuts between tie groups
        return np.maximum(0.0, best)  # and the (0, 0) point


def _point_values(
    pairs: list[tuple[str, str]], seeds: list[int], by: dict, metric: str, prep: dict | None = None
) -> dict[tuple[str, str], float]:
    """Each pair's metric on all examples, averaged over seeds (as :func:`qmia.uncertainty.estimate`'s value)."""
    return {
        pair: mean_metric([prep[pair, s] if prep else _Prepared(by[pair][s]) for s in seeds], metric) for pair in pairs
    }


def rank_quantizers(
    outcomes: Outcomes, metric: str = "max_advantage", *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Rank quantizers by their strongest attack, with a paired two-level bootstrap of the ranks.

    ``outcomes[quantizer][attack]`` is a list of :class:`~qmia.uncertainty.AttackOutcome`, one per
    seed; every quantizer and attack needs the same seeds, and all outcomes of one seed the same
    ``index`` and ``member`` arrays. An attack's value is ``metric`` averaged over the seeds; a
    quantizer's value is the max over its attacks (attacks may differ between quantizers). Rank 1 =
    the most secure = the lowest value; ties share the lower rank. Each of the ``n_boot`` resamples
    draws seeds with replacement and, within each drawn seed, members and non-members with
    replacement, the same for every quantizer and attack, and recomputes every value, max and rank.

    Returns one row per quantizer, sorted by rank then name: ``quantizer``, ``rank``, ``value``,
    ``value_lo`` / ``value_hi`` (percentile interval at ``level``), ``mis`` (1 - value for
    ``max_advantage`` / ``advantage``, else NaN), ``strongest_attack`` (the first attack, in the
    mapping's order, reaching the value), ``rank_share`` (share of resamples giving exactly ``rank``),
    ``best_share`` (share ranking it 1st, ties counted, so the shares can sum over 1), ``mean_rank``
    (over resamples), ``n_attacks``, ``n_seeds``, ``n_boot``; ``df.attrs`` holds ``metric`` and ``level``.
    """
    _check(metric)
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    quantizers, pairs, seeds, by = _gather(outcomes)
    prep = {(pair, s): _Prepared(by[pair][s]) for pair in pairs for s in seeds}
    members = {s: np.asarray(by[pairs[0]][s].member).astype(bool) for s in seeds}
    batch = {s: _Seed([prep[pair, s] for pair in pairs], members[s]) for s in seeds}
    owner = np.array([quantizers.index(q) for q, _ in pairs])  # the quantizer of each pair

    def strongest(v: np.ndarray) -> np.ndarray:
        """(..., Q) the max over each quantizer's attacks of (..., K) pair values."""
        out = np.full(v.shape[:-1] + (len(quantizers),), -np.inf)
        for i in range(len(quantizers)):
            out[..., i] = v[..., owner == i].max(axis=-1)
        return out

    point = _point_values(pairs, seeds, by, metric, prep)
    pv = np.array([point[pair] for pair in pairs])
    value = strongest(pv)
    rank = rankdata(value, method="min").astype(int)
    best_attack = []
    for i, q in enumerate(quantizers):
        best_attack.append(next(a for (qq, a), v in zip(pairs, pv) if qq == q and v == value[i]))

    rng = np.random.default_rng(seed)
    draws = np.empty((n_boot, len(pairs)))
    for b in range(n_boot):  # the same order of draws as qmia.uncertainty.estimate
        chosen = rng.choice(seeds, len(seeds)) if len(seeds) > 1 else seeds
        draws[b] = np.mean([batch[s].values(metric, _draw(rng, members[s])) for s in chosen], axis=0)
    boot = strongest(draws)  # (n_boot, Q)
    ranks = rankdata(boot, method="min", axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(boot, [a, 1 - a], axis=0)
    df = pd.DataFrame(
        {
            "quantizer": quantizers,
            "rank": rank,
            "value": value,
            "value_lo": lo,
            "value_hi": hi,
            "mis": 1 - value if metric in MIS_METRICS else np.nan,
            "strongest_attack": best_attack,
            "rank_share": (ranks == rank).mean(axis=0),
            "best_share": (ranks == 1).mean(axis=0),
            "mean_rank": ranks.mean(axis=0),
            "n_attacks": [int((owner == i).sum()) for i in range(len(quantizers))],
            "n_seeds": len(seeds),
            "n_boot": n_boot,
        }
    )
    df = df.sort_values(["rank", "quantizer"], kind="stable").reset_index(drop=True)
    df.attrs.update(metric=metric, level=level)
    return df


def attack_agreement(outcomes: Outcomes, metric: str = "max_advantage") -> tuple[pd.DataFrame, float]:
    """Do the attacks order the quantizers alike? Ranks by each attack alone, and Kendall's W.

    ``outcomes`` is checked as in :func:`rank_quantizers`. Only the attacks present for every
    quantizer count (at least 2 needed). Returns the ranks
    (quantizers x attacks; rank 1 = the lowest ``metric`` averaged over seeds = the most secure
    against that attack, ties sharing the lower rank as in :func:`rank_quantizers`) and Kendall's
    coefficient of concordance W in [0, 1] (1 = every attack gives the same order, 0 = no agreement):
    with m attacks, n quantizers, R_i the sum of quantizer i's *average* ranks (ties get the mean of
    the ranks they span) and T_j = sum over attack j's tie groups of t^3 - t,
    W = 12 sum_i (R_i - m (n + 1) / 2)^2 / (m^2 (n^3 - n) - m sum_j T_j), the tie-corrected form
    (without ties it is the plain one). W is NaN when every attack ties all quantizers.
    """
    _check(metric)
    quantizers, pairs, seeds, by = _gather(outcomes)
    common = [a for a in outcomes[quantizers[0]] if all(a in outcomes[q] for q in quantizers)]
    if len(common) < 2:
        raise ValueError(f"attack agreement needs at least 2 attacks run on every quantizer; common: {common}")
    point = _point_values([(q, a) for q in quantizers for a in common], seeds, by, metric)
    v = np.array([[point[q, a] for a in common] for q in quantizers])  # (n quantizers, m attacks)
    ranks = pd.DataFrame(
        rankdata(v, method="min", axis=0).astype(int),
        index=pd.Index(quantizers, name="quantizer"),
        columns=pd.Index(common, name="attack"),
    )
    n, m = v.shape
    avg = rankdata(v, method="average", axis=0)
    S = ((avg.sum(axis=1) - m * (n + 1) / 2) ** 2).sum()
    T = 0.0
    for j in range(m):
        t = np.unique(v[:, j], return_counts=True)[1].astype(np.float64)  # tie group sizes of attack j
        T += float((t**3 - t).sum())
    denom = m**2 * (n**3 - n) - m * T
    w = float(12 * S / denom) if denom > 0 else float("nan")
    return ranks, w


def dominated_by(acc: np.ndarray, tpr: np.ndarray) -> list[list[int]]:
    """For each setting i, the settings j that dominate it: test accuracy at least as high and TPR at most as high,
    one of the two strictly (point estimates)."""
    return [
        [
            j
            for j in range(len(acc))
            if j != i and acc[j] >= acc[i] and tpr[j] <= tpr[i] and (acc[j] > acc[i] or tpr[j] < tpr[i])
        ]
        for i in range(len(acc))
    ]
