"""Membership-inference attacks that compare a target with reference models, as pure functions of their outputs.

* :func:`lira`: Carlini et al. 2022, online and offline, on :func:`scaled_confidence`; ``scoring="reference"``
  reproduces their released code, and :func:`reference_tpr_at_fpr` their TPR at low FPR.
* :func:`rmia`: Zarifzadeh et al. 2024 (RMIA, as ML Privacy Meter), online and offline, on
  :func:`true_class_probability`.

The reference models are the attacker's: ``ref_in`` says which examples each trained on, never the target's
membership. Scores are higher for "member", members first, as in :mod:`qmia.attacks`.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import norm
from sklearn.metrics import roc_curve

LIRA_SCORINGS = ("qmia", "reference")


def scaled_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """LiRA's logit-scaled confidence phi = log(p_y / (1 - p_y)), computed stably from logits.

    logits: n x classes or n x queries x classes; returns n or n x queries.
    """
    z = logits.double()
    y = labels.long().view(-1, *([1] * (z.dim() - 1)))
    y = y.expand(*z.shape[:-1], 1)
    z_y = z.gather(-1, y).squeeze(-1)
    others = z.scatter(-1, y, float("-inf"))
    return (z_y - torch.logsumexp(others, dim=-1)).numpy()


def lira(
    target_obs: np.ndarray,
    ref_obs: np.ndarray,
    ref_in: np.ndarray,
    online: bool = True,
    fix_variance: bool = True,
    scoring: str = "qmia",
) -> np.ndarray:
    """Likelihood-ratio attack (Carlini et al. 2022) on logit-scaled confidences.

    target_obs: n x q (the target's phi for n examples and q queries, e.g. original and flipped).
    ref_obs: r x n x q (each reference model's phi on the same queries).
    ref_in: r x n booleans, True where reference model r trained on example i.
    Online: mean over queries of log N(phi; mu_in, sd_in) - log N(phi; mu_out, sd_out).
    Returns scores, higher = member.

    ``scoring="qmia"`` (default): mu = per-example mean of the IN (OUT) references;
    ``fix_variance`` uses one standard deviation per query pooled from the residuals around
    those means over all examples (advised for few references), else each example's own
    (ddof 1). Offline is one-sided: mean over queries of log P[N(mu_out, sd_out) <= phi].
    Examples with no IN (or OUT) reference borrow the mean IN-OUT shift of the others.

    ``scoring="reference"``: the released code (tensorflow/privacy
    research/mi_lira_2021/plot.py, generate_ours and generate_ours_offline). Each example's
    IN and OUT lists are cut to the smallest count over examples (the first refs in model
    order); mu = per-example median; ``fix_variance`` uses ONE std (ddof 0) of all the kept IN
    observations, every example and query pooled, so it includes the spread between
    examples, for IN and OUT alike online (of all OUT observations offline); else each
    example's own (ddof 0). Offline is two-sided: minus the mean log N(phi; mu_out, sd_out),
    so far from OUT in either direction counts as member. Their TPR at low FPR is
    :func:`reference_tpr_at_fpr` (FPR < alpha; ours, :func:`qmia.metrics.tpr_at_fpr`, FPR <= alpha).

    Ours is the default: with the few reference models we can afford, means and residual
    variances pooled per query are steadier than medians and per-example spreads, and the
    pooled residuals do not mix the spread between examples into the width; offline, a
    training example only moves the confidence up, so only that direction should count.
    """
    if scoring not in LIRA_SCORINGS:
        raise ValueError(f"unknown LiRA scoring {scoring!r}; valid: {', '.join(LIRA_SCORINGS)}")
    target_obs = np.asarray(target_obs, dtype=np.float64)
    ref_obs = np.asarray(ref_obs, dtype=np.float64)
    if target_obs.ndim == 1:
        target_obs, ref_obs = target_obs[:, None], ref_obs[..., None]
    if ref_obs.shape[1:] != target_obs.shape or ref_in.shape != ref_obs.shape[:2]:
        raise ValueError(f"shapes disagree: target {target_obs.shape}, refs {ref_obs.shape}, in-mask {ref_in.shape}")
    if scoring == "reference":
        return _lira_reference(target_obs, ref_obs, np.asarray(ref_in, dtype=bool), online, fix_variance)
    w_in = ref_in[..., None].astype(np.float64)
    w_out = 1.0 - w_in
    n_in, n_out = w_in.sum(0), w_out.sum(0)  # n x 1

    def stats(w: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = (w * ref_obs).sum(0) / np.maximum(count, 1)
        resid = (ref_obs - mean) ** 2 * w
        if fix_variance:
            sd = np.broadcast_to(np.sqrt(resid.sum((0, 1)) / np.maximum(w.sum((0, 1)) - 1, 1)), mean.shape)
        else:
            sd = np.sqrt(resid.sum(0) / np.maximum(count - 1, 1))
        return mean, np.maximum(sd, 1e-6)

    mu_out, sd_out = stats(w_out, n_out)
    if not online:
        no_out = (n_out == 0)[:, 0]
        if no_out.any():
            raise ValueError(f"{int(no_out.sum())} examples have no OUT reference model; offline LiRA needs one")
        return norm.logcdf(target_obs, mu_out, sd_out).mean(1)
    mu_in, sd_in = stats(w_in, n_in)
    both = ((n_in > 0) & (n_out > 0))[:, 0]
    if not both.any():
        raise ValueError("online LiRA needs examples with both IN and OUT reference models")
    shift = (mu_in - mu_out)[both].mean(0)
    mu_in = np.where(n_in > 0, mu_in, mu_out + shift)
    mu_out = np.where(n_out > 0, mu_out, mu_in - shift)
    return (norm.logpdf(target_obs, mu_in, sd_in) - norm.logpdf(target_obs, mu_out, sd_out)).mean(1)


def _lira_reference(
    target_obs: np.ndarray, ref_obs: np.ndarray, ref_in: np.ndarray, online: bool, fix_variance: bool
) -> np.ndarray:
    """LiRA scored as Carlini et al.'s released code (see :func:`lira`); n x q obs, r x n x q refs."""

    def first_k(mask: np.ndarray, side: str) -> np.ndarray:
        """k x n x q: each example's first k refs (in model order) with ``mask``, k the smallest count."""
        k = int(mask.sum(0).min())
        if k == 0:
            raise ValueError(f"reference LiRA needs every example to have an {side} reference model")
        order = np.argsort(~mask, axis=0, kind="stable")[:k]  # the True rows first, in model order
        return np.take_along_axis(ref_obs, order[..., None], axis=0)

    obs_out = first_k(~ref_in, "OUT")
    mu_out = np.median(obs_out, 0)
    if not online:
        sd_out = np.std(obs_out) if fix_variance else np.std(obs_out, 0)
        return -norm.logpdf(target_obs, mu_out, sd_out + 1e-30).mean(1)
    obs_in = first_k(ref_in, "IN")
    mu_in = np.median(obs_in, 0)
    if fix_variance:
        sd_in = sd_out = np.std(obs_in)  # the released code uses the IN spread for OUT as well
    else:
        sd_in, sd_out = np.std(obs_in, 0), np.std(obs_out, 0)
    return (norm.logpdf(target_obs, mu_in, sd_in + 1e-30) - norm.logpdf(target_obs, mu_out, sd_out + 1e-30)).mean(1)


def reference_tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, alpha: float) -> float:
    """TPR at low FPR as Carlini et al.'s code reports it: on sklearn's ROC curve of ``scores``
    (higher = member; labels 1 = member), the TPR of the last point with FPR strictly below
    ``alpha`` (a rate in (0, 1]). :func:`qmia.metrics.tpr_at_fpr` takes FPR <= alpha instead.
    """
    if not alpha > 0:
        raise ValueError(f"alpha must be a rate above 0, got {alpha}")
    fpr, tpr, _ = roc_curve(np.asarray(labels).astype(int), np.asarray(scores, dtype=np.float64))
    return float(tpr[np.where(fpr < alpha)[0][-1]])


def true_class_probability(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Softmax probability of the true label, float64, computed stably (log_softmax, then exp).

    logits: n x classes or n x queries x classes; labels: n. Returns n or n x queries
    (the shapes of :func:`scaled_confidence`); RMIA's p(x | theta).
    """
    z = logits.double()
    if z.dim() not in (2, 3) or labels.shape != z.shape[:1]:
        raise ValueError(
            f"logits must be n x classes or n x queries x classes with n labels; got logits "
            f"{tuple(z.shape)}, labels {tuple(labels.shape)}"
        )
    y = labels.long().view(-1, *([1] * (z.dim() - 1))).expand(*z.shape[:-1], 1)
    return torch.log_softmax(z, dim=-1).gather(-1, y).squeeze(-1).exp().numpy()


RMIA_GAMMA = 1.0


RMIA_OFFLINE_A = 0.3


_FLOOR = 1e-30


def _marginal(mean_ref: np.ndarray, online: bool, offline_a: float) -> np.ndarray:
    """RMIA's Pr(x) from the mean reference probability: itself online, the paper's offline
    approximation 1/2 ((1 + a) mean_out + (1 - a)) offline; floored above 0."""
    pr = mean_ref if online else 0.5 * ((1.0 + offline_a) * mean_ref + (1.0 - offline_a))
    return np.maximum(pr, _FLOOR)


def rmia(
    target_p: np.ndarray,
    ref_p: np.ndarray,
    ref_in: np.ndarray,
    pop_target_p: np.ndarray,
    pop_ref_p: np.ndarray,
    online: bool = True,
    gamma: float = RMIA_GAMMA,
    offline_a: float = RMIA_OFFLINE_A,
) -> np.ndarray:
    """RMIA (Zarifzadeh et al., "Low-Cost High-Power Membership Inference Attacks", ICML 2024),
    the attack ML Privacy Meter ships, on probabilities of the true label
    (:func:`true_class_probability`).

    target_p: n or n x q, the target's p(x | theta) on n candidates and q queries (e.g.
    original and flipped); ref_p: r x n (x q), the same for r reference models; ref_in: r x n
    booleans, True where reference r trained on candidate i; pop_target_p: m (x q) and
    pop_ref_p: r x m (x q), the target's and the references' probabilities on m population
    points z that neither the target nor any reference trained on. Every probability is
    first averaged over the q queries.

    Pr(x): online, the mean over ALL references of p(x | theta_ref); offline, the paper's
    approximation 1/2 ((1 + a) mean over the OUT references + (1 - a)), a = ``offline_a`` in
    [0, 1]. Pr(z) likewise from all references (z is OUT of every one), as ML Privacy Meter.
    ratio_x = p(x | theta) / Pr(x), ratio_z likewise; the score of x is the share of
    population points with ratio_x / ratio_z > gamma, strictly greater (the paper writes
    >= gamma; ties have measure zero on continuous probabilities). With gamma = 1 it is the
    share of population points that x dominates. Counted by a binary search over the
    sorted ratio_z (ratio_z < ratio_x / gamma), O((n + m) log m), no n x m matrix.
    Returns n scores in [0, 1], higher = member.
    """
    target_p, ref_p, pop_target_p, pop_ref_p = (
        np.asarray(a, dtype=np.float64) for a in (target_p, ref_p, pop_target_p, pop_ref_p)
    )
    ref_in = np.asarray(ref_in)
    shapes = (
        f"target {target_p.shape}, refs {ref_p.shape}, in-mask {ref_in.shape}, "
        f"population target {pop_target_p.shape}, population refs {pop_ref_p.shape}"
    )
    if target_p.ndim not in (1, 2) or pop_target_p.ndim != target_p.ndim:
        raise ValueError(f"target and population probabilities must both be n (m) or n x q (m x q); got {shapes}")
    if (
        ref_p.shape[1:] != target_p.shape
        or pop_ref_p.shape[1:] != pop_target_p.shape
        or ref_in.shape != ref_p.shape[:2]
        or pop_ref_p.shape[0] != ref_p.shape[0]
        or target_p.shape[1:] != pop_target_p.shape[1:]
    ):
        raise ValueError(
            f"shapes disagree (want target n (x q), refs r x n (x q), in-mask r x n, population target "
            f"m (x q), population refs r x m (x q)): {shapes}"
        )
    if ref_in.dtype != bool:
        raise ValueError(f"ref_in must be booleans, got dtype {ref_in.dtype}")
    if ref_p.shape[0] < 1:
        raise ValueError("RMIA needs at least 1 reference model, got 0")
    if pop_target_p.shape[0] < 1:
        raise ValueError("RMIA needs at least 1 population point z, got an empty population")
    if not gamma > 0:
        raise ValueError(f"gamma must be above 0, got {gamma}")
    if not 0.0 <= offline_a <= 1.0:
        raise ValueError(f"offline_a must be in [0, 1], got {offline_a}")
    for name, a in (("target_p", target_p), ("ref_p", ref_p), ("pop_target_p", pop_target_p), ("pop_ref_p", pop_ref_p)):
        if not (np.isfinite(a).all() and (a >= 0).all()):
            raise ValueError(f"{name} must hold finite probabilities >= 0")
    if target_p.ndim == 2:  # average the queries first
        target_p, ref_p, pop_target_p, pop_ref_p = (
            target_p.mean(-1),
            ref_p.mean(-1),
            pop_target_p.mean(-1),
            pop_ref_p.mean(-1),
        )
    if online:
        mean_x = ref_p.mean(0)
    else:
        n_out = (~ref_in).sum(0)
        if (n_out == 0).any():
            raise ValueError(
                f"{int((n_out == 0).sum())} of {len(n_out)} candidates have no OUT reference model; "
                "offline RMIA needs one for each"
            )
        mean_x = (ref_p * ~ref_in).sum(0) / n_out
    ratio_x = target_p / _marginal(mean_x, online, offline_a)
    ratio_z = np.sort(pop_target_p / _marginal(pop_ref_p.mean(0), online, offline_a))
    return np.searchsorted(ratio_z, ratio_x / gamma, side="left") / len(ratio_z)
