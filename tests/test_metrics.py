import numpy as np
import pytest

from qmia.metrics import (
    attack_metrics,
    best_threshold,
    bootstrap_intervals,
    roc_points,
    tpr_at_fpr,
)


def test_attack_metrics_on_a_hand_checked_case():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    preds = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.1, 0.05])
    m = attack_metrics(scores, labels, preds)
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (3, 1, 1, 3)
    assert m["attack_acc"] == pytest.approx(6 / 8)
    assert m["precision_member"] == pytest.approx(3 / 4) and m["recall_member"] == pytest.approx(3 / 4)
    assert m["precision_nonmember"] == pytest.approx(3 / 4) and m["f1_nonmember"] == pytest.approx(3 / 4)
    assert m["tpr"] == pytest.approx(0.75) and m["fpr"] == pytest.approx(0.25) and m["tnr"] == 0.75 and m["fnr"] == 0.25
    assert m["advantage"] == pytest.approx(0.5)
    # 16 (member, non-member) pairs; the member scored 0.3 loses to 0.6 only: AUC = 15/16
    assert m["auc"] == pytest.approx(15 / 16)
    # 4 non-members cannot measure TPR at 1 % or 0.1 % FPR (fewer than 10 false positives there)
    assert np.isnan(m["tpr_at_0.1%fpr"]) and np.isnan(m["tpr_at_1%fpr"])
    assert m["n_members"] == 4 and m["n_nonmembers"] == 4


def test_low_fpr_tpr_is_reported_only_where_measurable():
    rng = np.random.default_rng(3)
    for n_non, measured in (
        (999, {"tpr_at_0.1%fpr": False, "tpr_at_1%fpr": False}),
        (1000, {"tpr_at_0.1%fpr": False, "tpr_at_1%fpr": True}),
        (10000, {"tpr_at_0.1%fpr": True, "tpr_at_1%fpr": True}),
    ):
        labels = np.r_[np.ones(500), np.zeros(n_non)].astype(int)
        scores = rng.normal(labels, 1)
        m = attack_metrics(scores, labels, (scores > 0.5).astype(int))
        ci = bootstrap_intervals(scores, labels, (scores > 0.5).astype(int), n_boot=20)
        for k, ok in measured.items():
            assert np.isfinite(m[k]) == ok and np.isfinite(ci[f"{k}_lo"]) == ok, (n_non, k)
            if ok:
                fpr, tpr = roc_points(scores, labels, max_points=10**6)
                assert m[k] == tpr_at_fpr(fpr, tpr, 0.001 if "0.1" in k else 0.01)


def test_constant_scores_give_auc_one_half():
    m = attack_metrics(np.zeros(2000), np.r_[np.ones(1000), np.zeros(1000)], np.zeros(2000))
    assert m["auc"] == 0.5 and m["tpr_at_1%fpr"] == 0.0 and m["f1_member"] == 0.0 and m["advantage"] == 0.0


@pytest.mark.parametrize(
    "scores, labels, match",
    [
        (np.zeros(3), np.array([0, 1]), "differ in length"),
        (np.array([0.1, np.nan]), np.array([0, 1]), "non-finite"),
        (np.array([0.1, np.inf]), np.array([0, 1]), "non-finite"),
        (np.array([0.1, 0.2]), np.array([1, 1]), "both members"),
        (np.array([0.1, 0.2]), np.array([0, 2]), "0 .non-member. or 1"),
    ],
)
def test_bad_scores_raise(scores, labels, match):
    with pytest.raises(ValueError, match=match):
        attack_metrics(scores, labels, np.zeros(len(labels)))


def test_tpr_at_fpr_reads_the_curve():
    fpr, tpr = np.array([0, 0, 0.005, 0.02, 1]), np.array([0, 0.1, 0.3, 0.5, 1])
    assert tpr_at_fpr(fpr, tpr, 0.001) == 0.1 and tpr_at_fpr(fpr, tpr, 0.01) == 0.3
    assert tpr_at_fpr(np.array([0.5, 1]), np.array([0.5, 1]), 0.01) == 0.0


def test_bootstrap_intervals_bracket_the_estimate():
    rng = np.random.default_rng(0)
    labels = np.r_[np.ones(300), np.zeros(1000)].astype(int)
    scores = rng.normal(labels * 0.5, 1)
    preds = (scores > 0.25).astype(int)
    m, ci = attack_metrics(scores, labels, preds), bootstrap_intervals(scores, labels, preds, n_boot=100)
    for k in ("attack_acc", "auc", "advantage", "tpr_at_1%fpr"):
        assert ci[f"{k}_lo"] <= m[k] <= ci[f"{k}_hi"]
    assert 0.02 < ci["auc_hi"] - ci["auc_lo"] < 0.2


def test_roc_points_thin_without_overstating():
    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(5000), np.zeros(5000)].astype(int)
    scores = rng.normal(labels, 1)
    fpr, tpr = roc_points(scores, labels, max_points=200)
    assert len(fpr) <= 200 and fpr[0] == 0 and fpr[-1] == 1 and np.all(np.diff(tpr) >= 0)
    from sklearn.metrics import roc_curve

    f, t, _ = roc_curve(labels, scores)
    assert all(tp <= t[f <= fp].max() + 1e-12 for fp, tp in zip(fpr, tpr))


def test_best_threshold_maximises_balanced_accuracy():
    assert best_threshold(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == pytest.approx(0.8)
