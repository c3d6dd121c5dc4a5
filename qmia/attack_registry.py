"""The attack registry: each group of attacks (:data:`ATTACKS`), the models it needs, the rows (variants) it gives
and how a variant is scored from the cached outputs; :class:`AttackParams`, the settings that key a group's rows.
:func:`qmia.experiment.evaluate` runs them.

* ``shadow``: ``shadow`` -- Shokri et al. with a full-precision shadow model (the paper's).
* ``adaptive``: ``adaptive`` -- the same with the shadow trained like the target (its
  quantizer and bitwidth): an attacker who knows the defence.
* ``metric``: ``metric-confidence``, ``metric-loss``, ``metric-entropy``,
  ``metric-mentropy`` -- thresholds chosen on the full-precision shadow's outputs.
* ``lira``: ``lira-online``, ``lira-offline`` (full-precision reference models, qmia's scoring),
  ``lira-online-adaptive``, ``lira-offline-adaptive`` (reference models quantized like the
  target) and ``lira-online-reference``, ``lira-offline-reference`` (full-precision reference
  models, scored as Carlini et al.'s reference code does; see :func:`qmia.reference_attacks.lira`).
* ``rmia``: ``rmia-online``, ``rmia-offline`` (Zarifzadeh et al. 2024, on LiRA's full-precision
  reference models and the attacker's own data as population) and ``rmia-online-adaptive``,
  ``rmia-offline-adaptive`` (reference models quantized like the target).
* ``label``: ``label-gap`` (member iff the predicted label is right) and ``label-augment`` (the share of
  the training augmentations on which the label stays right, threshold from the full-precision shadow;
  Choquette-Choo et al. 2021): attacks on a model that exposes labels only.
* ``whitebox``: ``whitebox`` (Nasr et al. 2019: each example's loss and per-layer gradient norms under the target's
  weights, the classifier trained on the full-precision shadow's) and ``whitebox-adaptive`` (on the shadow
  quantized like the target): an attacker who holds the weights, as on an edge device.

"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .attacks import METRICS, augmentation_attack, gap_attack, metric_attack, shadow_attack, whitebox_attack
from .config import TrainConfig
from .defences import Defence
from .quantizers import QuantSpec
from .queries import augmented_labels, whitebox_features
from .reference_attacks import RMIA_GAMMA, RMIA_OFFLINE_A, lira, rmia, scaled_confidence, true_class_probability
from .train import (
    TrainedModel,
)


@dataclass(frozen=True)
class AttackParams:
    """Parameters of the stronger attacks; each keys the rows of the groups that use it only.

    rmia_gamma: RMIA's gamma (x must beat a population point's likelihood ratio by this factor), > 0.
    rmia_offline_a: RMIA's offline approximation Pr(x) = ((1 + a) Pr_OUT(x) + (1 - a)) / 2, a in [0, 1].
    rmia_population: population points RMIA compares with (None: all of the attacker's
        shadow_in + shadow_out, 2 x n_per_split examples no reference model trained on).
    label_queries: queries per example of the label-only augmentation attack (the image and
        label_queries - 1 training augmentations).
    """

    rmia_gamma: float = RMIA_GAMMA
    rmia_offline_a: float = RMIA_OFFLINE_A
    rmia_population: int | None = None
    label_queries: int = 16

    def __post_init__(self) -> None:
        if not self.rmia_gamma > 0:
            raise ValueError(f"rmia_gamma must be > 0; got {self.rmia_gamma}")
        if not 0 <= self.rmia_offline_a <= 1:
            raise ValueError(f"rmia_offline_a must be in [0, 1]; got {self.rmia_offline_a}")
        if self.rmia_population is not None and (isinstance(self.rmia_population, bool) or self.rmia_population < 1):
            raise ValueError(
                f"rmia_population must be a positive number of examples or None (all); got {self.rmia_population!r}"
            )
        if isinstance(self.label_queries, bool) or not isinstance(self.label_queries, int) or self.label_queries < 1:
            raise ValueError(f"label_queries must be a positive integer; got {self.label_queries!r}")


@dataclass
class Models:
    """The trained models one target's attacks use (see :func:`models_needed`), and where a query beyond
    their stored outputs (the label-only augmentation attack) finds the data and runs."""

    target: TrainedModel
    shadow_fp: TrainedModel
    shadow_adaptive: TrainedModel | None
    refs_fp: list[TrainedModel]
    refs_adaptive: list[TrainedModel]
    data_root: str | os.PathLike | None = None
    device: str | None = None


def _split(m: TrainedModel, split: str, flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    logits = m.outputs["logits_flip" if flip else "logits"][split]
    return logits, m.outputs["labels"][split]


def _shadow_scores(m: Models, variant: str, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    shadow = m.shadow_adaptive if variant == "adaptive" else m.shadow_fp
    s_in, s_out = _split(shadow, "shadow_in"), _split(shadow, "shadow_out")
    t_in, t_out = _split(m.target, "target_in"), _split(m.target, "target_out")
    return shadow_attack(
        s_in[0],
        s_out[0],
        t_in[0],
        t_out[0],
        top_k=settings["top_k"],
        per_class=settings["per_class"],
        shadow_labels=(s_in[1], s_out[1]),
        target_labels=(t_in[1], t_out[1]),
        seed=m.target.config.seed,
    )


def _metric_scores(m: Models, variant: str, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    s = m.shadow_fp
    scores, preds, _ = metric_attack(
        variant.removeprefix("metric-"),
        (*_split(s, "shadow_in"), *_split(s, "shadow_out")),
        (*_split(m.target, "target_in"), *_split(m.target, "target_out")),
    )
    return scores, preds


def _signal(m: TrainedModel, splits: tuple[str, ...], signal: Callable) -> np.ndarray:
    """n x q: ``signal(logits, labels)`` of ``m`` on the examples of ``splits`` in order, one column per query
    (the image, and its mirror image where the dataset's augmentation flips)."""
    labels = torch.cat([_split(m, s)[1] for s in splits])
    return np.stack(
        [
            signal(torch.cat([_split(m, s, flip)[0] for s in splits]), labels)
            for flip in ((False, True) if m.outputs["logits_flip"] else (False,))
        ],
        1,
    )


CANDIDATES = ("target_in", "target_out")


POPULATION = ("shadow_in", "shadow_out")  # the attacker's own data: no reference model trains on it


def _ref_in(target: TrainedModel, refs: list[TrainedModel]) -> np.ndarray:
    """r x n: which reference model trained on which candidate (target_in + target_out)."""
    candidates = torch.cat([target.outputs["indices"][s] for s in CANDIDATES]).numpy()
    return np.stack([np.isin(candidates, r.outputs["train_indices"].numpy()) for r in refs])


def _lira_observations(target: TrainedModel, refs: list[TrainedModel]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """phi of the target and of each reference on target_in + target_out (queries: original, and flipped
    where the dataset's augmentation flips), and which references trained on which example."""
    return (
        _signal(target, CANDIDATES, scaled_confidence),
        np.stack([_signal(r, CANDIDATES, scaled_confidence) for r in refs]),
        _ref_in(target, refs),
    )


def _lira_scores(m: Models, variant: str, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    online = variant.startswith("lira-online")
    refs = m.refs_adaptive if variant.endswith("-adaptive") else m.refs_fp
    scoring = "reference" if variant.endswith("-reference") else "qmia"
    target_obs, ref_obs, ref_in = _lira_observations(m.target, refs)
    scores = lira(target_obs, ref_obs, ref_in, online=online, scoring=scoring)
    if scoring == "reference" and not online:  # two-sided: no natural cut; the median splits the candidates in half
        return scores, (scores >= np.median(scores)).astype(int)
    return scores, (scores >= (0.0 if online else np.log(0.5))).astype(int)


def _rmia_scores(m: Models, variant: str, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """RMIA on the probability of the true label; the population is the attacker's shadow_in + shadow_out
    (``rmia_population`` of them, drawn by the target's seed). Decisions: the upper half of the candidates'
    scores (a score is a share of population points, with no natural cut; half the candidates are members)."""
    refs = m.refs_adaptive if variant.endswith("-adaptive") else m.refs_fp
    pop_t = _signal(m.target, POPULATION, true_class_probability)
    pop_r = np.stack([_signal(r, POPULATION, true_class_probability) for r in refs])
    k = settings["rmia_population"]
    if k is not None and k < len(pop_t):
        keep = np.random.default_rng(m.target.config.seed).permutation(len(pop_t))[:k]
        pop_t, pop_r = pop_t[keep], pop_r[:, keep]
    scores = rmia(
        _signal(m.target, CANDIDATES, true_class_probability),
        np.stack([_signal(r, CANDIDATES, true_class_probability) for r in refs]),
        _ref_in(m.target, refs),
        pop_t,
        pop_r,
        online=variant.startswith("rmia-online"),
        gamma=settings["rmia_gamma"],
        offline_a=settings["rmia_offline_a"],
    )
    return scores, (scores >= np.median(scores)).astype(int)


def _label_scores(m: Models, variant: str, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """Label-only attacks: the target's predicted labels only (and the full-precision shadow's, for the threshold)."""
    t_logits, t_labels = (torch.cat(x) for x in zip(*(_split(m.target, s) for s in CANDIDATES)))
    if variant == "label-gap":
        return gap_attack(t_logits, t_labels)
    q = settings["label_queries"]

    def correct(model: TrainedModel, splits: tuple[str, ...]) -> list[np.ndarray]:
        labels = augmented_labels(model, splits, q, m.data_root, m.device)
        return [(labels[s] == model.outputs["labels"][s][:, None]).numpy() for s in splits]

    s_in, s_out = correct(m.shadow_fp, POPULATION)
    scores, preds, _ = augmentation_attack(s_in, s_out, np.concatenate(correct(m.target, CANDIDATES)))
    return scores, preds


def _whitebox_scores(m: Models, variant: str, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """The white-box attack: the classifier learns from the shadow's features of its own in / out data (the
    adaptive variant's shadow is quantized like the target) and scores the target's candidates."""
    shadow = m.shadow_adaptive if variant == "whitebox-adaptive" else m.shadow_fp
    s = whitebox_features(shadow, POPULATION, m.data_root, m.device)
    t = whitebox_features(m.target, CANDIDATES, m.data_root, m.device)
    return whitebox_attack(
        s["shadow_in"].numpy(), s["shadow_out"].numpy(), torch.cat([t[c] for c in CANDIDATES]).numpy()
    )


@dataclass(frozen=True)
class AttackGroup:
    """One entry of the registry: the models it needs, the rows it gives, how a row is scored, and the
    :class:`AttackParams` fields that key its rows."""

    name: str
    needs: tuple[str, ...]
    variants: tuple[str, ...]
    score: Callable[[Models, str, dict], tuple[np.ndarray, np.ndarray]]
    description: str
    params: tuple[str, ...] = ()


ATTACKS: dict[str, AttackGroup] = {
    g.name: g
    for g in (
        AttackGroup(
            "shadow",
            ("shadow_fp",),
            ("shadow",),
            _shadow_scores,
            "Shokri et al.'s shadow-model attack, shadow in full precision (the paper's)",
        ),
        AttackGroup(
            "adaptive",
            ("shadow_fp", "shadow_adaptive"),
            ("adaptive",),
            _shadow_scores,
            "the shadow attack with the shadow quantized like the target",
        ),
        AttackGroup(
            "metric",
            ("shadow_fp",),
            tuple(f"metric-{m}" for m in METRICS),
            _metric_scores,
            "threshold attacks on confidence, loss, entropy, modified entropy",
        ),
        AttackGroup(
            "lira",
            ("shadow_fp", "refs_fp", "refs_adaptive"),
            (
                "lira-online",
                "lira-offline",
                "lira-online-adaptive",
                "lira-offline-adaptive",
                "lira-online-reference",
                "lira-offline-reference",
            ),
            _lira_scores,
            "LiRA (Carlini et al. 2022), online and offline",
        ),
        AttackGroup(
            "rmia",
            ("shadow_fp", "refs_fp", "refs_adaptive"),
            ("rmia-online", "rmia-offline", "rmia-online-adaptive", "rmia-offline-adaptive"),
            _rmia_scores,
            "RMIA (Zarifzadeh et al. 2024), online and offline, on LiRA's reference models",
            ("rmia_gamma", "rmia_offline_a", "rmia_population"),
        ),
        AttackGroup(
            "label",
            ("shadow_fp",),
            ("label-gap", "label-augment"),
            _label_scores,
            "label-only attacks (Choquette-Choo et al. 2021): gap and augmentation robustness",
            ("label_queries",),
        ),
        AttackGroup(
            "whitebox",
            ("shadow_fp", "shadow_adaptive"),
            ("whitebox", "whitebox-adaptive"),
            _whitebox_scores,
            "white-box attack (Nasr et al. 2019): loss and per-layer gradient norms under the weights",
        ),
    )
}


REFERENCE_GROUPS = ("lira", "rmia")  # the groups that use LiRA's reference models


def attack_variants(attacks: str | Sequence[str]) -> list[str]:
    """Expand attack groups ('all' or any of :data:`ATTACKS`) into row names, validating them."""
    return [v for g in attack_groups(attacks) for v in ATTACKS[g].variants]


def attack_groups(attacks: str | Sequence[str]) -> list[str]:
    """Validated attack group names in the registry's order ('all' gives every group)."""
    groups = [attacks] if isinstance(attacks, str) else list(attacks)
    if "all" in groups:
        groups = list(ATTACKS)
    bad = [g for g in groups if g not in ATTACKS]
    if bad or not groups:
        raise ValueError(f"unknown attack {', '.join(map(repr, bad)) or '(none)'}; valid: {', '.join(ATTACKS)}, all")
    return [g for g in ATTACKS if g in groups]


def models_needed(target: TrainConfig, attacks: str | Sequence[str], lira_refs: int) -> dict[str, list[TrainConfig]]:
    """The models the attack groups ``attacks`` of ``target`` use: {'target', 'shadow_fp', 'shadow_adaptive',
    'refs_fp', 'refs_adaptive'} -> configs (empty lists for what no group needs)."""
    needs = {n for g in attack_groups(attacks) for n in ATTACKS[g].needs}
    plain = {"quant": QuantSpec(), "defence": Defence()}  # the attacker's full-precision, undefended models
    fp_refs = [target.with_(role="ref", ref_index=i, ref_count=lira_refs, **plain) for i in range(lira_refs)]
    undefended = target.quant.method == "none" and target.defence.kind == "none"
    return {
        "target": [target],
        "shadow_fp": [target.with_(role="shadow", **plain)],
        "shadow_adaptive": [target.with_(role="shadow")] if "shadow_adaptive" in needs else [],
        "refs_fp": fp_refs if "refs_fp" in needs else [],
        "refs_adaptive": (
            []
            if "refs_adaptive" not in needs
            else fp_refs
            if undefended
            else [target.with_(role="ref", ref_index=i, ref_count=lira_refs) for i in range(lira_refs)]
        ),
    }
