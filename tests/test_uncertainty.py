import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from qmia.metrics import attack_metrics, roc_points, tpr_at_fpr
from qmia.uncertainty import (
    AttackOutcome,
    compare,
    estimate,
    measurable_fpr,
    point_value,
)


def _outcome(
    shift: float,
    n: int = 400,
    seed: int = 0,
    threshold: float | None = None,
    rng_seed: int | None = None,
    ties: bool = False,
) -> AttackOutcome:
    rng = np.random.default_rng(seed if rng_seed is None else rng_seed)
    member = np.r_[np.ones(n), np.zeros(n)].astype(int)
    scores = rng.normal(size=2 * n) + shift * member
    if ties:
        scores = np.round(scores, 1)
    thr = shift / 2 if threshold is None else threshold
    return AttackOutcome(scores, (scores >= thr).astype(int), member, np.arange(2 * n) + 1000 * seed, seed)


@pytest.mark.parametrize("ties", [False, True])
def test_full_data_metrics_equal_sklearns(ties):
    o = _outcome(0.8, ties=ties)
    ref = attack_metrics(o.scores, o.member, o.pred)
    for m in (
        "attack_acc",
        "advantage",
        "tpr",
        "precision_member",
        "recall_member",
        "f1_member",
        "precision_nonmember",
        "recall_nonmember",
        "f1_nonmember",
        "auc",
    ):
        assert estimate([o], m, n_boot=2).value == pytest.approx(ref[m], abs=1e-12), m
    assert estimate([o], "auc", n_boot=2).value == pytest.approx(roc_auc_score(o.member, o.scores))
    fpr, tpr = roc_points(o.scores, o.member, max_points=10**6)
    assert estimate([o], "tpr@0.01", n_boot=2).value == pytest.approx(tpr_at_fpr(fpr, tpr, 0.01))


def test_interval_covers_the_value_and_narrows_with_more_examples():
    small, large = (
        estimate([_outcome(0.5, n=100)], "auc", n_boot=300),
        estimate([_outcome(0.5, n=3000)], "auc", n_boot=300),
    )
    for e in (small, large):
        assert e.lo < e.value < e.hi
    assert (large.hi - large.lo) < 0.5 * (small.hi - small.lo)


def test_seeds_widen_the_interval_when_they_disagree():
    agree = [_outcome(0.6, seed=s, rng_seed=s) for s in range(3)]
    disagree = [_outcome(shift, seed=s, rng_seed=s) for s, shift in enumerate((0.1, 0.6, 1.2))]
    a, d = estimate(agree, "auc", n_boot=400), estimate(disagree, "auc", n_boot=400)
    assert a.n_seeds == d.n_seeds == 3
    assert (d.hi - d.lo) > 2 * (a.hi - a.lo)


def test_a_real_reduction_is_significant_and_no_change_is_not():
    before = [_outcome(1.0, seed=s) for s in range(3)]
    lower = [_outcome(0.2, seed=s, rng_seed=100 + s) for s in range(3)]
    same = [_outcome(1.0, seed=s, rng_seed=200 + s) for s in range(3)]
    c = compare(before, lower, "auc", chance=0.5, n_boot=400)
    assert c.reduction > 0.1 and c.significant() and c.reduction_lo > 0
    n = compare(before, same, "auc", chance=0.5, n_boot=400)
    assert not n.significant() and n.reduction_lo < 0 < n.reduction_hi
    assert c.decided_drop() and not n.decided_drop()
    borderline = type(c)("auc", c.before, c.after, 0.005, -0.001, 0.010, 0.046, 0.5)  # p < 0.05, interval holds 0
    assert borderline.significant() and not borderline.decided_drop()


def test_reduction_is_credited_only_down_to_chance():
    before = [_outcome(0.3, n=2000)]  # attack accuracy about 0.56
    other = _outcome(0.3, n=2000, rng_seed=9)
    below = [
        AttackOutcome(-other.scores, 1 - other.pred, other.member, other.index, 0)
    ]  # about 0.44: worse than chance
    c = compare(before, below, "attack_acc", chance=0.5, n_boot=300)
    assert c.before.value > 0.53 and c.after.value < 0.47
    assert c.reduction == pytest.approx(c.before.value - 0.5)  # not before - after: below chance earns nothing more
    assert c.reduction_hi <= c.before.hi - 0.5 + 1e-12
    at_chance = [_outcome(0.0, n=2000, rng_seed=3)]
    assert not compare(
        at_chance, below, "attack_acc", chance=0.5, n_boot=300
    ).significant()  # nothing above chance to take


def test_a_moved_threshold_is_not_a_defence_at_matched_fpr():
    before = [_outcome(0.8, seed=s, threshold=0.0) for s in range(2)]  # many members flagged, many false positives
    stricter = [AttackOutcome(o.scores, (o.scores >= 2.0).astype(int), o.member, o.index, o.seed) for o in before]
    raw = compare(before, stricter, "tpr", n_boot=300)
    assert raw.reduction > 0.4 and raw.significant()  # the paper's quantity: TPR "fell"
    matched = compare(before, stricter, "tpr_matched", n_boot=300)
    assert matched.reduction == pytest.approx(0.0, abs=0.02) and not matched.significant()
    adv = compare(before, stricter, "advantage", chance=0.0, n_boot=300)
    assert adv.after.value < adv.before.value  # the advantage falls only because the cut moved ...
    weaker = [_outcome(0.1, seed=s, threshold=0.0, rng_seed=50 + s) for s in range(2)]
    assert compare(before, weaker, "tpr_matched", n_boot=300).significant()  # ... a weaker attack does fall


def test_pairing_is_checked():
    a, b = _outcome(0.5, seed=0), _outcome(0.5, seed=1)
    with pytest.raises(ValueError, match="no common seeds"):
        compare([a], [b], "auc")
    shifted = AttackOutcome(a.scores, a.pred, a.member, a.index + 1, 0)
    with pytest.raises(ValueError, match="same examples"):
        compare([a], [shifted], "auc")
    with pytest.raises(ValueError, match="tpr@<alpha>"):
        estimate([a], "precision")


def test_low_fpr_measurability():
    assert measurable_fpr(1000, 0.01) and not measurable_fpr(999, 0.01)
    assert not measurable_fpr(1000, 0.001) and measurable_fpr(15000, 0.001)


def test_f1_at_matched_fpr_is_not_fooled_by_a_moved_threshold_and_floors_at_chance():
    before = [_outcome(0.8, seed=s, threshold=0.0) for s in range(2)]
    stricter = [AttackOutcome(o.scores, (o.scores >= 2.0).astype(int), o.member, o.index, o.seed) for o in before]
    assert compare(before, stricter, "f1_member", n_boot=200).reduction > 0.3  # the paper's quantity "falls"
    m = compare(before, stricter, "f1_matched", n_boot=200)
    assert m.reduction == pytest.approx(0.0, abs=0.02) and not m.significant()
    noise = [_outcome(0.0, seed=s, threshold=0.0, rng_seed=70 + s) for s in range(2)]  # a chance-level attack
    c = compare(before, noise, "f1_matched", n_boot=200)
    from qmia.uncertainty import chance_f1

    fpr = np.mean([o.pred[o.member == 0].mean() for o in before])
    assert c.after.value == pytest.approx(chance_f1(fpr, 0.5), abs=0.05)  # noise sits at chance ...
    assert c.reduction == pytest.approx(c.before.value - max(c.after.value, chance_f1(fpr, 0.5)), abs=0.02)


def _brute_max_advantage(scores: np.ndarray, member: np.ndarray, w: np.ndarray) -> float:
    """max over every threshold t (flag score >= t, ties flagged together; t = +inf is the (0, 0) point)
    of TPR - FPR."""
    m = member.astype(bool)
    best = 0.0
    for t in np.r_[np.unique(scores), np.inf]:
        flag = scores >= t
        best = max(best, (w * (flag & m)).sum() / (w * m).sum() - (w * (flag & ~m)).sum() / (w * ~m).sum())
    return best


@pytest.mark.parametrize("ties", [False, True])
def test_max_advantage_is_the_best_threshold_over_all_cuts_with_and_without_weights(ties):
    from scipy.stats import ks_2samp

    from qmia.uncertainty import _draw, _Prepared

    o = _outcome(0.8, n=300, ties=ties)
    m = o.member.astype(bool)
    value = estimate([o], "max_advantage", n_boot=2).value
    assert value == pytest.approx(_brute_max_advantage(o.scores, o.member, np.ones(len(m))), abs=1e-12)
    assert value == pytest.approx(ks_2samp(o.scores[~m], o.scores[m], alternative="greater").statistic, abs=1e-12)
    assert value >= attack_metrics(o.scores, o.member, o.pred)["advantage"] - 1e-12  # no fixed cut does better
    p, rng = _Prepared(o), np.random.default_rng(5)
    for _ in range(5):
        counts = _draw(rng, m)
        got = p.metric("max_advantage", p.weights(counts))
        assert got == pytest.approx(_brute_max_advantage(o.scores, o.member, counts.astype(float)), abs=1e-12)
        rep = np.repeat(np.arange(len(m)), counts)  # the same resample written out example by example
        assert got == pytest.approx(_brute_max_advantage(o.scores[rep], o.member[rep], np.ones(len(rep))), abs=1e-12)


def test_max_advantage_is_zero_when_members_score_lower_and_one_when_they_separate():
    member = np.r_[np.ones(50), np.zeros(50)].astype(int)
    for scores, want in (
        (np.r_[np.zeros(50), np.ones(50)], 0.0),
        (np.r_[np.ones(50), np.zeros(50)], 1.0),
        (np.zeros(100), 0.0),
    ):
        o = AttackOutcome(scores, (scores >= 0.5).astype(int), member, np.arange(100), 0)
        e = estimate([o], "max_advantage", n_boot=50)
        assert e.value == want and e.lo == e.hi == want


@pytest.mark.parametrize("metric", ["auc", "tpr@0.01", "max_advantage", "attack_acc"])
def test_point_value_is_the_estimates_value_without_its_bootstrap(metric):
    outs = [_outcome(0.6, seed=0), _outcome(0.3, seed=1)]
    value = point_value(outs, metric)
    assert value == estimate(outs, metric, n_boot=20).value
    assert value == pytest.approx(np.mean([point_value([o], metric) for o in outs]))
    with pytest.raises(ValueError, match="compares two attacks"):
        point_value(outs, "tpr_matched")
