"""Black-box membership-inference attacks on model outputs (logits), as pure functions.

Each attack sees only output vectors (and, where its paper says so, the true labels of the
queried examples) and returns ``(scores, predictions)`` for the target's members followed
by its non-members: scores are higher for "member", predictions are 0/1 decisions. Nothing
here sees the target's membership: thresholds and attack models come from the attacker's
own shadow or reference models.

* :func:`shadow_attack`: Shokri et al. 2017, the paper's attack.
* :func:`metric_attack`: Yeom et al. 2018 and Song & Mittal 2021 (confidence, loss,
  entropy, modified entropy), threshold chosen on the shadow model's outputs.
* LiRA (Carlini et al. 2022) and RMIA (Zarifzadeh et al. 2024), which compare the target with reference
  models: :mod:`qmia.reference_attacks`.
* :func:`whitebox_attack`: Nasr et al. 2019's white-box attack, on features that need the weights.
* :func:`gap_attack` and :func:`augmentation_attack`: label-only, Choquette-Choo et al. 2021
  (the gap attack is Yeom et al. 2018's baseline; the augmentation attack thresholds, on the
  shadow, the share of augmented queries whose predicted label is correct).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .metrics import best_threshold

METRICS = ("confidence", "loss", "entropy", "mentropy")


def _probs(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double(), dim=1).numpy()


def attack_features(logits: torch.Tensor, top_k: int | None = 3) -> np.ndarray:
    """Confidence vectors sorted in decreasing order, the top ``top_k`` (None: all classes)."""
    p = np.sort(_probs(logits), axis=1)[:, ::-1]
    return p[:, :top_k] if top_k else p


def shadow_attack(
    shadow_in: torch.Tensor,
    shadow_out: torch.Tensor,
    target_in: torch.Tensor,
    target_out: torch.Tensor,
    top_k: int | None = 3,
    per_class: bool = False,
    shadow_labels: tuple[torch.Tensor, torch.Tensor] | None = None,
    target_labels: tuple[torch.Tensor, torch.Tensor] | None = None,
    hidden: int = 64,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Shokri et al.'s attack: an MLP with one hidden layer learns member/non-member from the
    shadow model's confidence vectors on its own training (in) and held-out (out) data, then
    labels the target's confidence vectors.

    Default: one attack model on sorted top-3 vectors (Salem et al. 2019 show it matches the
    per-class models and it sees every shadow example). ``per_class=True`` trains one model per
    true class on the full (unsorted) vectors, as Shokri et al.; it needs the labels.
    Inputs are logits, n x classes. Returns scores and predictions for target_in + target_out.
    """
    x_train = (
        np.concatenate([_probs(shadow_in), _probs(shadow_out)])
        if per_class
        else np.concatenate([attack_features(shadow_in, top_k), attack_features(shadow_out, top_k)])
    )
    y_train = np.concatenate([np.ones(len(shadow_in)), np.zeros(len(shadow_out))]).astype(int)
    x_test = (
        np.concatenate([_probs(target_in), _probs(target_out)])
        if per_class
        else np.concatenate([attack_features(target_in, top_k), attack_features(target_out, top_k)])
    )

    def mlp() -> MLPClassifier:
        return MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=500, random_state=seed)

    if not per_class:
        model = mlp().fit(x_train, y_train)
        scores = model.predict_proba(x_test)[:, 1]
    else:
        if shadow_labels is None or target_labels is None:
            raise ValueError("per_class=True needs shadow_labels and target_labels")
        c_train = torch.cat(shadow_labels).numpy()
        c_test = torch.cat(target_labels).numpy()
        scores = np.full(len(x_test), 0.5)
        for c in np.unique(c_test):
            tr, te = c_train == c, c_test == c
            if len(np.unique(y_train[tr])) < 2:
                continue
            scores[te] = mlp().fit(x_train[tr], y_train[tr]).predict_proba(x_test[te])[:, 1]
    return scores, (scores >= 0.5).astype(int)


def metric_scores(logits: torch.Tensor, labels: torch.Tensor, metric: str) -> np.ndarray:
    """Membership score of each example, higher = more member-like (Song & Mittal 2021).

    confidence: p_y; loss: log p_y (minus the cross-entropy); entropy: minus the prediction
    entropy; mentropy: minus the modified entropy
    Mentr = -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i).
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    logp = torch.log_softmax(logits.double(), dim=1)
    p = logp.exp()
    y = labels.long()
    logp_y = logp.gather(1, y[:, None]).squeeze(1)
    p_y = logp_y.exp()
    if metric == "confidence":
        s = p_y
    elif metric == "loss":
        s = logp_y
    elif metric == "entropy":
        s = (p * logp).sum(1)
    else:
        log1m = torch.log1p(-p.clamp(max=1 - 1e-12))
        other = (p * log1m).sum(1) - (p_y * log1m.gather(1, y[:, None]).squeeze(1))
        s = (1 - p_y) * logp_y + other
    return s.numpy()


def metric_attack(
    metric: str,
    shadow: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    target: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    class_wise: bool = False,
) -> tuple[np.ndarray, np.ndarray, float | np.ndarray]:
    """Threshold attack on one metric. ``shadow`` and ``target`` are (logits_in, labels_in,
    logits_out, labels_out). The threshold maximises balanced accuracy on the shadow's in/out;
    the target's membership is never used. Returns scores, predictions, threshold.

    ``class_wise=True`` (Song & Mittal 2021): one threshold per true class, chosen on the
    shadow's examples of that class and applied to the target's examples of that class; a
    class without shadow members or without shadow non-members uses the global threshold.
    The third value is then a float array of length num_classes (max label seen + 1) holding
    each class's threshold. Scores are the metric values either way (same AUC); only the
    predictions change.
    """
    s_in, s_out = metric_scores(shadow[0], shadow[1], metric), metric_scores(shadow[2], shadow[3], metric)
    s_all = np.concatenate([s_in, s_out])
    m_all = np.concatenate([np.ones(len(s_in)), np.zeros(len(s_out))])
    thr = best_threshold(s_all, m_all)
    t = np.concatenate([metric_scores(target[0], target[1], metric), metric_scores(target[2], target[3], metric)])
    if not class_wise:
        return t, (t >= thr).astype(int), thr
    c_shadow = torch.cat([shadow[1], shadow[3]]).long().numpy()
    c_target = torch.cat([target[1], target[3]]).long().numpy()
    num_classes = int(max(c_shadow.max(initial=-1), c_target.max(initial=-1))) + 1
    thresholds = np.full(num_classes, thr, dtype=np.float64)
    for c in range(num_classes):
        m = m_all[c_shadow == c]
        if m.any() and not m.all():  # both shadow members and non-members of class c
            thresholds[c] = best_threshold(s_all[c_shadow == c], m)
    return t, (t >= thresholds[c_target]).astype(int), thresholds


def gap_attack(logits: torch.Tensor, labels: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The gap attack (Yeom et al. 2018, named so by Choquette-Choo et al., "Label-Only
    Membership Inference Attacks", ICML 2021): member iff the predicted label is correct.

    logits: n x classes; labels: n. Returns scores (1.0 / 0.0, float64) and predictions (0/1 int).
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"gap attack needs logits n x classes and n labels; got logits {tuple(logits.shape)}, "
            f"labels {tuple(labels.shape)}"
        )
    correct = (logits.argmax(1) == labels.long()).numpy()
    return correct.astype(np.float64), correct.astype(int)


def augmentation_attack(
    shadow_in_correct: np.ndarray, shadow_out_correct: np.ndarray, target_correct: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Data-augmentation label-only attack (Choquette-Choo et al., ICML 2021).

    Each argument is n x q booleans: whether the model's predicted label is correct on each of
    q queries of an example (query 0 the original, the others training augmentations), for
    the shadow's members (in), the shadow's non-members (out) and the target's candidates.
    Score = share of the q queries answered correctly; the threshold maximises balanced
    accuracy on the shadow's in/out scores (the target's membership is never used);
    predictions = score >= threshold. Returns scores, predictions, threshold.
    """
    args = {
        "shadow_in_correct": shadow_in_correct,
        "shadow_out_correct": shadow_out_correct,
        "target_correct": target_correct,
    }
    arrays = {k: np.asarray(v) for k, v in args.items()}
    for k, a in arrays.items():
        if a.ndim != 2 or a.size == 0:
            raise ValueError(f"{k} must be a non-empty n x q array, got shape {a.shape}")
    qs = {k: a.shape[1] for k, a in arrays.items()}
    if len(set(qs.values())) != 1:
        raise ValueError(f"every argument needs the same number of queries q: {qs}")
    s_in, s_out, t = (a.astype(bool).mean(1) for a in arrays.values())
    thr = best_threshold(np.concatenate([s_in, s_out]), np.r_[np.ones(len(s_in)), np.zeros(len(s_out))])
    return t, (t >= thr).astype(int), thr


def whitebox_attack(
    shadow_in: np.ndarray, shadow_out: np.ndarray, target: np.ndarray, hidden: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Nasr et al. 2019's white-box attack on per-example features that need the weights (each example's loss and
    the norm of its gradient per weight layer, n x features: :func:`qmia.queries.gradient_features`): an MLP with
    one hidden layer learns member / non-member from the shadow model's features on its own training (in) and
    held-out (out) data, on log10 features standardised on the shadow's, then scores the target's examples
    (``target``: members then non-members, whose membership is never an input). Returns scores and predictions."""

    def logs(a: np.ndarray) -> np.ndarray:
        return np.log10(np.asarray(a, dtype=np.float64) + 1e-12)  # losses and gradient norms span decades

    x_train = logs(np.concatenate([shadow_in, shadow_out]))
    y_train = np.r_[np.ones(len(shadow_in)), np.zeros(len(shadow_out))].astype(int)
    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=500, random_state=seed))
    scores = clf.fit(x_train, y_train).predict_proba(logs(target))[:, 1]
    return scores, (scores >= 0.5).astype(int)
