"""Evaluate a target configuration: train what is missing, run the attacks, store tidy rows.

``evaluate(config, attacks)`` is the one call notebooks and the CLI make. For a target it
trains (or reuses from the cache) the target, the attacker's shadow models and LiRA
reference models, runs each attack on the cached outputs, and returns one row per attack
variant; rows, ROC curves and per-example scores are stored (see :mod:`qmia.results`) and
reused on the next call.

The attacks live in one registry, :data:`ATTACKS`: group name -> the models it needs, the
rows (variants) it gives and the function that scores a variant. The CLI's choices, the book
plan and :func:`evaluate` all read it.

* ``shadow``: ``shadow`` -- Shokri et al. with a full-precision shadow model (the paper's).
* ``adaptive``: ``adaptive`` -- the same with the shadow trained like the target (its
  quantizer and bitwidth): an attacker who knows the defence.
* ``metric``: ``metric-confidence``, ``metric-loss``, ``metric-entropy``,
  ``metric-mentropy`` -- thresholds chosen on the full-precision shadow's outputs.
* ``lira``: ``lira-online``, ``lira-offline`` (full-precision reference models, qmia's scoring),
  ``lira-online-adaptive``, ``lira-offline-adaptive`` (reference models quantized like the
  target) and ``lira-online-reference``, ``lira-offline-reference`` (full-precision reference
  models, scored as Carlini et al.'s reference code does; see :func:`qmia.attacks.lira`).
* ``rmia``: ``rmia-online``, ``rmia-offline`` (Zarifzadeh et al. 2024, on LiRA's full-precision
  reference models and the attacker's own data as population) and ``rmia-online-adaptive``,
  ``rmia-offline-adaptive`` (reference models quantized like the target).
* ``label``: ``label-gap`` (member iff the predicted label is right) and ``label-augment`` (the share of
  the training augmentations on which the label stays right, threshold from the full-precision shadow;
  Choquette-Choo et al. 2021): attacks on a model that exposes labels only.

A group's parameters (:class:`AttackParams`) key its rows only where the group uses them, so adding a
group or a parameter leaves every other row's key unchanged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from .attacks import (
    METRICS,
    RMIA_GAMMA,
    RMIA_OFFLINE_A,
    augmentation_attack,
    gap_attack,
    lira,
    metric_attack,
    rmia,
    scaled_confidence,
    shadow_attack,
    true_class_probability,
)
from .config import Profile, TrainConfig
from .defences import Defence
from .metrics import attack_metrics, bootstrap_intervals, roc_points
from .multitrain import train_many
from .quantizers import QuantSpec
from .results import legacy_precision, load_row, save_row
from .store import remove_stale_parts_once, stable_hash
from .train import (
    TrainedModel,
    device_label,
    git_commit,
    instances_digest,
    model_instance,
)

# Rows change when this does: bump it when a change to qmia.attacks, qmia.metrics or the row
# fields below changes stored rows (cheap to recompute: models are cached separately).
#   2: TPR at a low FPR is NaN where fewer than 10 non-members give false positives; per-example
#      scores stored; the profile in the row key; LiRA reference scoring rows; data provenance.
#   3: each row's bootstrap intervals come from qmia.uncertainty (one bootstrap for the whole package).
ATTACK_VERSION = 3


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
            raise ValueError(f"rmia_population must be a positive number of examples or None (all); got {self.rmia_population!r}")
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
    return shadow_attack(s_in[0], s_out[0], t_in[0], t_out[0], top_k=settings["top_k"], per_class=settings["per_class"],
                         shadow_labels=(s_in[1], s_out[1]), target_labels=(t_in[1], t_out[1]), seed=m.target.config.seed)


def _metric_scores(m: Models, variant: str, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    s = m.shadow_fp
    scores, preds, _ = metric_attack(variant.removeprefix("metric-"), (*_split(s, "shadow_in"), *_split(s, "shadow_out")),
                                     (*_split(m.target, "target_in"), *_split(m.target, "target_out")))
    return scores, preds


def _signal(m: TrainedModel, splits: tuple[str, ...], signal: Callable) -> np.ndarray:
    """n x q: ``signal(logits, labels)`` of ``m`` on the examples of ``splits`` in order, one column per query
    (the image, and its mirror image where the dataset's augmentation flips)."""
    labels = torch.cat([_split(m, s)[1] for s in splits])
    return np.stack([signal(torch.cat([_split(m, s, flip)[0] for s in splits]), labels)
                     for flip in ((False, True) if m.outputs["logits_flip"] else (False,))], 1)


CANDIDATES = ("target_in", "target_out")
POPULATION = ("shadow_in", "shadow_out")  # the attacker's own data: no reference model trains on it


def _ref_in(target: TrainedModel, refs: list[TrainedModel]) -> np.ndarray:
    """r x n: which reference model trained on which candidate (target_in + target_out)."""
    candidates = torch.cat([target.outputs["indices"][s] for s in CANDIDATES]).numpy()
    return np.stack([np.isin(candidates, r.outputs["train_indices"].numpy()) for r in refs])


def _lira_observations(target: TrainedModel, refs: list[TrainedModel]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """phi of the target and of each reference on target_in + target_out (queries: original, and flipped
    where the dataset's augmentation flips), and which references trained on which example."""
    return (_signal(target, CANDIDATES, scaled_confidence), np.stack([_signal(r, CANDIDATES, scaled_confidence) for r in refs]),
            _ref_in(target, refs))


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
    scores = rmia(_signal(m.target, CANDIDATES, true_class_probability),
                  np.stack([_signal(r, CANDIDATES, true_class_probability) for r in refs]), _ref_in(m.target, refs),
                  pop_t, pop_r, online=variant.startswith("rmia-online"), gamma=settings["rmia_gamma"],
                  offline_a=settings["rmia_offline_a"])
    return scores, (scores >= np.median(scores)).astype(int)


def _label_scores(m: Models, variant: str, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """Label-only attacks: the target's predicted labels only (and the full-precision shadow's, for the threshold)."""
    t_logits, t_labels = (torch.cat(x) for x in zip(*(_split(m.target, s) for s in CANDIDATES)))
    if variant == "label-gap":
        return gap_attack(t_logits, t_labels)
    from .queries import augmented_labels

    q = settings["label_queries"]

    def correct(model: TrainedModel, splits: tuple[str, ...]) -> list[np.ndarray]:
        labels = augmented_labels(model, splits, q, m.data_root, m.device)
        return [(labels[s] == model.outputs["labels"][s][:, None]).numpy() for s in splits]

    s_in, s_out = correct(m.shadow_fp, POPULATION)
    scores, preds, _ = augmentation_attack(s_in, s_out, np.concatenate(correct(m.target, CANDIDATES)))
    return scores, preds


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


ATTACKS: dict[str, AttackGroup] = {g.name: g for g in (
    AttackGroup("shadow", ("shadow_fp",), ("shadow",), _shadow_scores,
                "Shokri et al.'s shadow-model attack, shadow in full precision (the paper's)"),
    AttackGroup("adaptive", ("shadow_fp", "shadow_adaptive"), ("adaptive",), _shadow_scores,
                "the shadow attack with the shadow quantized like the target"),
    AttackGroup("metric", ("shadow_fp",), tuple(f"metric-{m}" for m in METRICS), _metric_scores,
                "threshold attacks on confidence, loss, entropy, modified entropy"),
    AttackGroup("lira", ("shadow_fp", "refs_fp", "refs_adaptive"),
                ("lira-online", "lira-offline", "lira-online-adaptive", "lira-offline-adaptive",
                 "lira-online-reference", "lira-offline-reference"), _lira_scores,
                "LiRA (Carlini et al. 2022), online and offline"),
    AttackGroup("rmia", ("shadow_fp", "refs_fp", "refs_adaptive"),
                ("rmia-online", "rmia-offline", "rmia-online-adaptive", "rmia-offline-adaptive"), _rmia_scores,
                "RMIA (Zarifzadeh et al. 2024), online and offline, on LiRA's reference models",
                ("rmia_gamma", "rmia_offline_a", "rmia_population")),
    AttackGroup("label", ("shadow_fp",), ("label-gap", "label-augment"), _label_scores,
                "label-only attacks (Choquette-Choo et al. 2021): gap and augmentation robustness", ("label_queries",)),
)}
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
        "refs_adaptive": ([] if "refs_adaptive" not in needs else fp_refs if undefended else
                          [target.with_(role="ref", ref_index=i, ref_count=lira_refs) for i in range(lira_refs)]),
    }


def _row_key(target: TrainConfig, variant: str, settings: dict, params: dict | None = None) -> str:
    extra = {"params": params} if params else {}  # only the groups with parameters: other keys stay as they were
    return stable_hash({"target": target.key, "attack": variant, "version": ATTACK_VERSION, **settings, **extra})


def _settings(groups: list[str], profile: Profile | None, lira_refs: int | None, top_k: int | None, per_class: bool,
              n_boot: int) -> dict:
    """The attack settings that key a row (with the target, the variant and :data:`ATTACK_VERSION`)."""
    if profile is not None and not isinstance(profile, Profile):
        raise TypeError(f"profile must be a qmia Profile (qmia.get_profile(name)); got {type(profile).__name__}")
    if lira_refs is None:
        lira_refs = profile.lira_refs if profile is not None else 8
    uses_refs = [g for g in groups if g in REFERENCE_GROUPS]
    if uses_refs and lira_refs < 2:
        raise ValueError(f"{', '.join(uses_refs)} need at least 2 reference models; got lira_refs={lira_refs}")
    return {"n_boot": n_boot, "lira_refs": lira_refs, "top_k": top_k, "per_class": per_class,
            "profile": profile.name if profile is not None else "custom"}


def row_keys(target: TrainConfig, attacks: str | Sequence[str], profile: Profile | None = None, *,
             lira_refs: int | None = None, top_k: int | None = 3, per_class: bool = False, n_boot: int = 200,
             params: AttackParams | None = None) -> dict[str, str]:
    """{variant: row key} of the rows :func:`evaluate` stores for ``target`` with these arguments (nothing is computed)."""
    groups = attack_groups(attacks)
    return _keys(target, groups, _settings(groups, profile, lira_refs, top_k, per_class, n_boot), _params(params))


def _params(params: AttackParams | None) -> AttackParams:
    if params is None:
        return AttackParams()
    if not isinstance(params, AttackParams):
        raise TypeError(f"params must be a qmia AttackParams; got {type(params).__name__}")
    return params


def _keys(target: TrainConfig, groups: list[str], settings: dict, params: AttackParams) -> dict[str, str]:
    return {v: _row_key(target, v, settings, {f: getattr(params, f) for f in ATTACKS[g].params})
            for g in groups for v in ATTACKS[g].variants}


def evaluate(target: TrainConfig, attacks: str | Sequence[str] = tuple(ATTACKS), *, profile: Profile | None = None,
             lira_refs: int | None = None, top_k: int | None = 3, per_class: bool = False, n_boot: int = 200,
             params: AttackParams | None = None, data_root: str | os.PathLike | None = None, device: str | None = None,
             progress: bool | None = None, stored_only: bool = False) -> pd.DataFrame:
    """Attack ``target`` with each requested attack group; return one tidy row per variant.

    profile: the profile the target belongs to (named in the rows; its ``lira_refs`` is the default).
    lira_refs: reference models for LiRA (default: the profile's, else 8).
    top_k / per_class: the shadow attack's features (see :func:`qmia.attacks.shadow_attack`).
    n_boot: bootstrap resamples for each row's 95 % intervals (over its examples).
    params: the RMIA and label-only attacks' parameters (:class:`AttackParams`; default: the papers').
    stored_only: compute nothing: a row not stored is returned as a pending row (its identity, no numbers, and
        ``pending``: which part of the plan computes it, :func:`qmia.estimates.pending_text`); stored rows have
        ``pending`` empty.
    """
    remove_stale_parts_once()
    groups = attack_groups(attacks)
    settings = _settings(groups, profile, lira_refs, top_k, per_class, n_boot)
    params = _params(params)
    keys = _keys(target, groups, settings, params)
    rows = {v: load_row(k) for v, k in keys.items()}
    missing = [g for g in groups if any(rows[v] is None for v in ATTACKS[g].variants)]
    if missing and stored_only:
        from .estimates import pending_text

        for g in missing:
            for v in ATTACKS[g].variants:
                rows[v] = {**row_identity(target, v, g, keys[v], settings), PENDING: pending_text(profile, target, g)}
    elif missing:
        rows.update(_compute(target, missing, keys, {**settings, **asdict(params)}, data_root, device, progress))
    df = pd.DataFrame([rows[v] for v in keys])
    df[PENDING] = df[PENDING].fillna("") if PENDING in df.columns else ""
    return df


PENDING = "pending"  # the column that says why a row has no numbers yet ('' for a stored row)


def row_identity(target: TrainConfig, variant: str, group: str, row_key: str, settings: dict) -> dict:
    """The fields of a row that say what it is of (target, attack, settings): a stored row's, and a pending one's."""
    q = target.quant
    return {
        "row_key": row_key,
        "profile": settings["profile"],
        "dataset": target.dataset,
        "arch": target.arch,
        "quant": q.label,
        "method": q.method,
        "bits": q.bits if q.bits is not None else np.nan,
        "act_bits": (q.act_bits or q.bits) if q.method == "dorefa" else np.nan,
        "layers": q.layers,
        "zero_point": q.resolved_zero_point if q.method == "mia" else np.nan,
        "mode": q.mode,
        "reading": q.curve if q.method == "mia" else "",
        "defence": target.defence.label,
        "augment": target.augment,
        "seed": target.seed,
        "attack": variant,
        "attack_group": group,
        "lira_refs": settings["lira_refs"] if group in REFERENCE_GROUPS else np.nan,
        "n_per_split": target.n_per_split,
        "epochs": target.epochs,
        "target_key": target.key,
        "data": f"{target.dataset} ({target.n_per_split}/split)",
    }


def _compute(target: TrainConfig, groups: list[str], keys: dict, settings: dict, data_root, device, progress) -> dict[str, dict]:
    from .data import data_source

    start = time.perf_counter()
    need = models_needed(target, groups, settings["lira_refs"])
    train_many([c for cs in need.values() for c in cs], data_root, device, progress)  # several at once on a GPU
    models = Models(TrainedModel(target), TrainedModel(need["shadow_fp"][0]),
                    TrainedModel(need["shadow_adaptive"][0]) if need["shadow_adaptive"] else None,
                    [TrainedModel(c) for c in need["refs_fp"]], [TrainedModel(c) for c in need["refs_adaptive"]],
                    data_root, device)
    train_seconds = time.perf_counter() - start
    t = models.target
    idx = torch.cat([t.outputs["indices"]["target_in"], t.outputs["indices"]["target_out"]]).numpy()
    member = np.r_[np.ones(len(t.outputs["indices"]["target_in"])), np.zeros(len(t.outputs["indices"]["target_out"]))].astype(int)
    source = data_source(target.dataset, data_root)
    out = {}
    first = True
    for g in groups:
        for v in ATTACKS[g].variants:
            v_start = time.perf_counter()
            shadow = models.shadow_adaptive if v == "adaptive" else models.shadow_fp
            scores, preds = ATTACKS[g].score(models, v, settings)
            fpr, tpr = roc_points(scores, member)
            row = {
                **row_identity(target, v, g, keys[v], settings),
                "target_train_acc": float(t.meta["accuracy"]["target_in"]),
                "target_test_acc": float(t.meta["accuracy"]["target_out"]),
                "shadow_train_acc": float(shadow.meta["accuracy"]["shadow_in"]),
                "shadow_test_acc": float(shadow.meta["accuracy"]["shadow_out"]),
                **attack_metrics(scores, member, preds),
                **bootstrap_intervals(scores, member, preds, n_boot=settings["n_boot"], seed=target.seed),
                "shadow_key": shadow.config.key,
                "data_source": source,
                "device": device_label(t.meta.get("device", "")),
                "precision": t.meta.get("precision") or legacy_precision(t.meta),
                "target_instance": model_instance(t),
                "shadow_instance": model_instance(shadow),
                "refs_instance": instances_digest(models.refs_adaptive if v.endswith("-adaptive") else models.refs_fp)
                if g in REFERENCE_GROUPS else "",
                "commit": git_commit(),
                "seconds": time.perf_counter() - v_start + (train_seconds if first else 0.0),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            first = False
            save_row(row, fpr, tpr, scores=scores, pred=preds, member=member, index=idx)
            out[v] = row
    return out
