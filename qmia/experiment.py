"""Evaluate a target configuration: train what is missing, run the attacks, store tidy rows.

``evaluate(config, attacks)`` is the one call notebooks and the CLI make. For a target it
trains (or reuses from the cache) the target, the attacker's shadow models and LiRA
reference models, runs each attack on the cached outputs, and returns one row per attack
variant; rows are stored (see :mod:`qmia.results`) and reused on the next call.

Attack groups and the rows they give:

* ``shadow``: ``shadow`` — Shokri et al. with a full-precision shadow model (the paper's).
* ``adaptive``: ``adaptive`` — the same with the shadow trained like the target (its
  quantizer and bitwidth): an attacker who knows the defence.
* ``metric``: ``metric-confidence``, ``metric-loss``, ``metric-entropy``,
  ``metric-mentropy`` — thresholds chosen on the full-precision shadow's outputs.
* ``lira``: ``lira-online``, ``lira-offline`` (full-precision reference models) and
  ``lira-online-adaptive``, ``lira-offline-adaptive`` (reference models quantized like the
  target; for a full-precision target they are the same models).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .attacks import METRICS, lira, metric_attack, scaled_confidence, shadow_attack
from .config import PROFILES, TrainConfig
from .metrics import attack_metrics, bootstrap_intervals, roc_points
from .quantizers import QuantSpec
from .results import load_row, save_row
from .store import stable_hash
from .multitrain import train_many
from .train import TrainedModel, git_commit

ATTACKS = ("shadow", "adaptive", "metric", "lira")
ATTACK_VERSION = 1  # bump when a change to the attacks or metrics changes stored rows
VARIANTS = {
    "shadow": ("shadow",),
    "adaptive": ("adaptive",),
    "metric": tuple(f"metric-{m}" for m in METRICS),
    "lira": ("lira-online", "lira-offline", "lira-online-adaptive", "lira-offline-adaptive"),
}


def attack_variants(attacks: str | Sequence[str]) -> list[str]:
    """Expand attack groups ('all' or any of ATTACKS) into row names, validating them."""
    groups = [attacks] if isinstance(attacks, str) else list(attacks)
    if "all" in groups:
        groups = list(ATTACKS)
    bad = [g for g in groups if g not in VARIANTS]
    if bad or not groups:
        raise ValueError(f"unknown attack {', '.join(map(repr, bad)) or '(none)'}; valid: {', '.join(ATTACKS)}, all")
    return [v for g in ATTACKS if g in groups for v in VARIANTS[g]]


def _split(m: TrainedModel, split: str, flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    logits = m.outputs["logits_flip" if flip else "logits"][split]
    return logits, m.outputs["labels"][split]


def _accuracy(m: TrainedModel, split: str) -> float:
    return float(m.meta["accuracy"][split])


def _lira_observations(target: TrainedModel, refs: list[TrainedModel]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """phi of the target and of each reference on target_in + target_out (queries: original, and flipped
    where the dataset's augmentation flips), and which references trained on which example."""
    def obs(m: TrainedModel) -> np.ndarray:
        cols = []
        for flip in ((False, True) if m.outputs["logits_flip"] else (False,)):
            logits = torch.cat([_split(m, "target_in", flip)[0], _split(m, "target_out", flip)[0]])
            labels = torch.cat([_split(m, "target_in")[1], _split(m, "target_out")[1]])
            cols.append(scaled_confidence(logits, labels))
        return np.stack(cols, 1)

    candidates = torch.cat([target.outputs["indices"]["target_in"], target.outputs["indices"]["target_out"]]).numpy()
    ref_in = np.stack([np.isin(candidates, r.outputs["train_indices"].numpy()) for r in refs])
    return obs(target), np.stack([obs(r) for r in refs]), ref_in


def _row_key(target: TrainConfig, variant: str, settings: dict) -> str:
    return stable_hash({"target": target.key, "attack": variant, "version": ATTACK_VERSION, **settings})


def evaluate(target: TrainConfig, attacks: str | Sequence[str] = ATTACKS, *, profile: str = "custom",
             lira_refs: int | None = None, top_k: int | None = 3, per_class: bool = False, n_boot: int = 200,
             data_root: str | os.PathLike | None = None, device: str | None = None, progress: bool | None = None) -> pd.DataFrame:
    """Attack ``target`` with each requested attack group; return one tidy row per variant.

    lira_refs: reference models for LiRA (default: the profile's ``lira_refs``, else 8).
    top_k / per_class: the shadow attack's features (see :func:`qmia.attacks.shadow_attack`).
    n_boot: bootstrap resamples for the 95 % intervals.
    """
    variants = attack_variants(attacks)
    if lira_refs is None:
        lira_refs = PROFILES[profile].lira_refs if profile in PROFILES else 8
    if any(v.startswith("lira") for v in variants) and lira_refs < 2:
        raise ValueError(f"LiRA needs at least 2 reference models; got lira_refs={lira_refs}")
    settings = {"n_boot": n_boot, "lira_refs": lira_refs, "top_k": top_k, "per_class": per_class}
    keys = {v: _row_key(target, v, settings) for v in variants}
    rows = {v: load_row(k) for v, k in keys.items()}
    missing = [v for v in variants if rows[v] is None]
    if missing:
        rows.update(_compute(target, missing, keys, settings, profile, data_root, device, progress))
    return pd.DataFrame([rows[v] for v in variants])


def models_needed(target: TrainConfig, variants: Sequence[str], lira_refs: int) -> dict[str, list[TrainConfig]]:
    """The models the attack ``variants`` of ``target`` use: {'target', 'shadow_fp', 'shadow_adaptive',
    'refs_fp', 'refs_adaptive'} -> configs (empty lists for what no variant needs)."""
    need = {"target": [target], "shadow_fp": [target.with_(role="shadow", quant=QuantSpec())],
            "shadow_adaptive": [], "refs_fp": [], "refs_adaptive": []}
    if "adaptive" in variants:
        need["shadow_adaptive"] = [target.with_(role="shadow")]
    if any(v.startswith("lira") for v in variants):
        need["refs_fp"] = [target.with_(role="ref", ref_index=i, ref_count=lira_refs, quant=QuantSpec()) for i in range(lira_refs)]
        if any(v.endswith("-adaptive") for v in variants):
            need["refs_adaptive"] = need["refs_fp"] if target.quant.method == "none" else \
                [target.with_(role="ref", ref_index=i, ref_count=lira_refs) for i in range(lira_refs)]
    return need


def _compute(target: TrainConfig, variants: list[str], keys: dict, settings: dict, profile: str,
             data_root, device, progress) -> dict[str, dict]:
    start = time.perf_counter()
    need = models_needed(target, variants, settings["lira_refs"])
    train_many([c for cs in need.values() for c in cs], data_root, device, progress)  # several at once on a GPU
    t = TrainedModel(target)
    shadows = {"fp": TrainedModel(need["shadow_fp"][0])}
    if need["shadow_adaptive"]:
        shadows["adaptive"] = TrainedModel(need["shadow_adaptive"][0])
    refs = {k.removeprefix("refs_"): [TrainedModel(c) for c in need[k]] for k in ("refs_fp", "refs_adaptive") if need[k]}
    train_seconds = time.perf_counter() - start

    t_in, t_out = _split(t, "target_in"), _split(t, "target_out")
    labels = np.concatenate([np.ones(len(t_in[1])), np.zeros(len(t_out[1]))]).astype(int)
    out = {}
    for v in variants:
        v_start = time.perf_counter()
        shadow = shadows["adaptive" if v == "adaptive" else "fp"]
        if v in ("shadow", "adaptive"):
            s_in, s_out = _split(shadow, "shadow_in"), _split(shadow, "shadow_out")
            scores, preds = shadow_attack(s_in[0], s_out[0], t_in[0], t_out[0], top_k=settings["top_k"],
                                          per_class=settings["per_class"], shadow_labels=(s_in[1], s_out[1]),
                                          target_labels=(t_in[1], t_out[1]), seed=target.seed)
        elif v.startswith("metric-"):
            scores, preds, _ = metric_attack(v[len("metric-"):], (*_split(shadow, "shadow_in"), *_split(shadow, "shadow_out")),
                                             (*t_in, *t_out))
        else:
            online = v.startswith("lira-online")
            target_obs, ref_obs, ref_in = _lira_observations(t, refs["adaptive" if v.endswith("-adaptive") else "fp"])
            scores = lira(target_obs, ref_obs, ref_in, online=online)
            preds = (scores >= (0.0 if online else np.log(0.5))).astype(int)
        fpr, tpr = roc_points(scores, labels)
        q = target.quant
        row = {
            "row_key": keys[v],
            "profile": profile,
            "dataset": target.dataset,
            "arch": target.arch,
            "quant": q.label,
            "method": q.method,
            "bits": q.bits if q.bits is not None else np.nan,
            "act_bits": (q.act_bits or q.bits) if q.method == "dorefa" else np.nan,
            "layers": q.layers,
            "zero_point": q.resolved_zero_point if q.method == "mia" else np.nan,
            "mode": q.mode,
            "seed": target.seed,
            "attack": v,
            "target_train_acc": _accuracy(t, "target_in"),
            "target_test_acc": _accuracy(t, "target_out"),
            "shadow_train_acc": _accuracy(shadow, "shadow_in"),
            "shadow_test_acc": _accuracy(shadow, "shadow_out"),
            **attack_metrics(scores, labels, preds),
            **bootstrap_intervals(scores, labels, preds, n_boot=settings["n_boot"], seed=target.seed),
            "lira_refs": settings["lira_refs"] if v.startswith("lira") else np.nan,
            "n_per_split": target.n_per_split,
            "epochs": target.epochs,
            "target_key": target.key,
            "shadow_key": shadow.config.key,
            "data": f"{target.dataset} ({target.n_per_split}/split)",
            "commit": git_commit(),
            "seconds": time.perf_counter() - v_start + (train_seconds if v == variants[0] else 0.0),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        save_row(row, fpr, tpr)
        out[v] = row
    return out
