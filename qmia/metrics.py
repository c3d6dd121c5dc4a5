"""Membership-inference metrics, computed with scikit-learn, and bootstrap intervals.

Conventions: ``labels`` are 1 for members (target_in) and 0 for non-members (target_out);
``scores`` are higher for "more likely a member"; ``predictions`` are the attack's hard
0/1 decisions. All functions take 1-D arrays of equal length.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from .uncertainty import AttackOutcome, estimate, measurable_fpr

LOW_FPRS = (0.001, 0.01)


def check_scores(scores, labels, predictions=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate and convert to numpy; raise ValueError on mismatched length, non-finite or non-binary input."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if len(s) != len(y):
        raise ValueError(f"scores and labels differ in length: {len(s)} vs {len(y)}")
    if len(s) == 0:
        raise ValueError("no scores: an attack needs at least one member and one non-member")
    if not np.isfinite(s).all():
        raise ValueError(f"scores hold {int((~np.isfinite(s)).sum())} non-finite values (NaN or inf)")
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise ValueError("labels must be 0 (non-member) or 1 (member)")
    if len(np.unique(y)) < 2:
        raise ValueError("labels need both members (1) and non-members (0)")
    p = None
    if predictions is not None:
        p = np.asarray(predictions).ravel().astype(int)
        if len(p) != len(y):
            raise ValueError(f"predictions and labels differ in length: {len(p)} vs {len(y)}")
    return s, y.astype(int), p


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    """Highest TPR on the ROC curve at FPR <= max_fpr (0 if no threshold gets that low)."""
    ok = fpr <= max_fpr
    return float(tpr[ok].max()) if ok.any() else 0.0


def auc_score(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC; constant scores give 0.5."""
    return float(roc_auc_score(labels, scores))


def attack_metrics(scores, labels, predictions) -> dict[str, float]:
    """Every per-attack figure of the paper's Tables 3-5 and the low-FPR ones.

    Returns attack_acc; precision/recall/f1 of members and non-members; tn, fp, fn, tp as
    counts and tnr, fpr, fnr, tpr as rates; auc; tpr_at_0.1%fpr and tpr_at_1%fpr (NaN where
    fewer than 10 non-members would be false positives at that rate: not measurable at this
    size); advantage (TPR - FPR of the hard decisions, Yeom et al.); n_members, n_nonmembers.
    """
    s, y, p = check_scores(scores, labels, predictions)
    prec, rec, f1, _ = precision_recall_fscore_support(y, p, labels=[1, 0], zero_division=0)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, p, labels=[0, 1]).ravel())
    fpr_c, tpr_c, _ = roc_curve(y, s)
    out = {
        "attack_acc": float(accuracy_score(y, p)),
        "precision_member": float(prec[0]),
        "recall_member": float(rec[0]),
        "f1_member": float(f1[0]),
        "precision_nonmember": float(prec[1]),
        "recall_nonmember": float(rec[1]),
        "f1_nonmember": float(f1[1]),
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "tp": tp,
        "tnr": tn / (tn + fp),
        "fpr": fp / (tn + fp),
        "fnr": fn / (fn + tp),
        "tpr": tp / (fn + tp),
        "auc": auc_score(s, y),
        "n_members": int(y.sum()),
        "n_nonmembers": int((1 - y).sum()),
    }
    for f in LOW_FPRS:  # NaN where too few non-members to measure that rate (see measurable_fpr)
        out[f"tpr_at_{f * 100:g}%fpr"] = (
            tpr_at_fpr(fpr_c, tpr_c, f) if measurable_fpr(out["n_nonmembers"], f) else float("nan")
        )
    out["advantage"] = out["tpr"] - out["fpr"]
    return out


def bootstrap_intervals(
    scores, labels, predictions, n_boot: int = 200, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Percentile bootstrap intervals over examples (members and non-members resampled separately), one row's
    share of :func:`qmia.uncertainty.estimate` (the same resamples for every metric).

    Returns ``<name>_lo`` and ``<name>_hi`` for attack_acc, auc, advantage, tpr_at_0.1%fpr,
    tpr_at_1%fpr (NaN for a rate not measurable at this size).
    """
    s, y, p = check_scores(scores, labels, predictions)
    outcome = AttackOutcome(s, p, y, np.arange(len(s)), seed=0)
    metrics = {
        "attack_acc": "attack_acc",
        "auc": "auc",
        "advantage": "advantage",
        **{f"tpr_at_{f * 100:g}%fpr": f"tpr@{f}" for f in LOW_FPRS},
    }
    out = {}
    for name, metric in metrics.items():
        if name.startswith("tpr_at_") and not measurable_fpr(int((y == 0).sum()), float(metric[4:])):
            out[f"{name}_lo"] = out[f"{name}_hi"] = float("nan")
            continue
        e = estimate([outcome], metric, n_boot=n_boot, seed=seed, level=level)
        out[f"{name}_lo"], out[f"{name}_hi"] = e.lo, e.hi
    return out


def roc_points(scores, labels, max_points: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve (fpr, tpr) thinned to at most ~max_points, keeping low-FPR detail (log-spaced)."""
    s, y, _ = check_scores(scores, labels)
    fpr, tpr, _ = roc_curve(y, s)
    if len(fpr) <= max_points:
        return fpr, tpr
    grid = np.unique(np.concatenate([[0.0], np.logspace(-5, 0, max_points - 1)]))
    # for each grid FPR, the best TPR at or below it: a step curve that never overstates
    idx = np.searchsorted(fpr, grid, side="right") - 1
    return grid, tpr[np.clip(idx, 0, len(tpr) - 1)]


def best_threshold(scores, labels) -> float:
    """Threshold maximising balanced accuracy of ``score >= threshold`` on (scores, labels)."""
    s, y, _ = check_scores(scores, labels)
    fpr, tpr, thr = roc_curve(y, s)
    i = int(np.argmax(tpr - fpr))
    return float(thr[i]) if np.isfinite(thr[i]) else float(np.max(s)) + 1.0
