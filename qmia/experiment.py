"""Evaluate a target configuration: train what is missing, run the attacks, store tidy rows.

``evaluate(config, attacks)`` is the one call notebooks and the CLI make. For a target it
trains (or reuses from the cache) the target, the attacker's shadow models and LiRA
reference models, runs each attack on the cached outputs, and returns one row per attack
variant; rows, ROC curves and per-example scores are stored (see :mod:`qmia.results`) and
reused on the next call.

The attacks live in one registry, :data:`qmia.attack_registry.ATTACKS`: group name -> the models it needs, the
rows (variants) it gives and the function that scores a variant. The CLI's choices, the book plan and
:func:`evaluate` all read it.

A group's parameters (:class:`qmia.attack_registry.AttackParams`) key its rows only where the group uses them, so
adding a group or a parameter leaves every other row's key unchanged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch

from .attack_registry import ATTACKS, REFERENCE_GROUPS, AttackParams, Models, attack_groups, models_needed
from .compute import device_label
from .config import Profile, TrainConfig
from .data import data_source
from .metrics import attack_metrics, bootstrap_intervals, roc_points
from .model_entries import instances_digest, model_instance
from .multitrain import train_many
from .results import legacy_precision, load_row, save_row
from .store import remove_stale_parts_once, stable_hash
from .train import TrainedModel, git_commit

# Rows change when this does: bump it when a change to qmia.attacks, qmia.metrics or the row
# fields below changes stored rows (cheap to recompute: models are cached separately).
#   2: TPR at a low FPR is NaN where fewer than 10 non-members give false positives; per-example
#      scores stored; the profile in the row key; LiRA reference scoring rows; data provenance.
#   3: each row's bootstrap intervals come from qmia.uncertainty (one bootstrap for the whole package).
ATTACK_VERSION = 3


def _row_key(target: TrainConfig, variant: str, settings: dict, params: dict | None = None) -> str:
    extra = {"params": params} if params else {}  # only the groups with parameters: other keys stay as they were
    return stable_hash({"target": target.key, "attack": variant, "version": ATTACK_VERSION, **settings, **extra})


def _settings(
    groups: list[str], profile: Profile | None, lira_refs: int | None, top_k: int | None, per_class: bool, n_boot: int
) -> dict:
    """The attack settings that key a row (with the target, the variant and :data:`ATTACK_VERSION`)."""
    if profile is not None and not isinstance(profile, Profile):
        raise TypeError(f"profile must be a qmia Profile (qmia.get_profile(name)); got {type(profile).__name__}")
    if lira_refs is None:
        lira_refs = profile.lira_refs if profile is not None else 8
    uses_refs = [g for g in groups if g in REFERENCE_GROUPS]
    if uses_refs and lira_refs < 2:
        raise ValueError(f"{', '.join(uses_refs)} need at least 2 reference models; got lira_refs={lira_refs}")
    return {
        "n_boot": n_boot,
        "lira_refs": lira_refs,
        "top_k": top_k,
        "per_class": per_class,
        "profile": profile.name if profile is not None else "custom",
    }


def row_keys(
    target: TrainConfig,
    attacks: str | Sequence[str],
    profile: Profile | None = None,
    *,
    lira_refs: int | None = None,
    top_k: int | None = 3,
    per_class: bool = False,
    n_boot: int = 200,
    params: AttackParams | None = None,
) -> dict[str, str]:
    """{variant: row key} of the rows :func:`evaluate` stores for ``target`` with these arguments
    (nothing is computed)."""
    groups = attack_groups(attacks)
    return _keys(target, groups, _settings(groups, profile, lira_refs, top_k, per_class, n_boot), _params(params))


def _params(params: AttackParams | None) -> AttackParams:
    if params is None:
        return AttackParams()
    if not isinstance(params, AttackParams):
        raise TypeError(f"params must be a qmia AttackParams; got {type(params).__name__}")
    return params


def _keys(target: TrainConfig, groups: list[str], settings: dict, params: AttackParams) -> dict[str, str]:
    return {
        v: _row_key(target, v, settings, {f: getattr(params, f) for f in ATTACKS[g].params})
        for g in groups
        for v in ATTACKS[g].variants
    }


def evaluate(
    target: TrainConfig,
    attacks: str | Sequence[str] = tuple(ATTACKS),
    *,
    profile: Profile | None = None,
    lira_refs: int | None = None,
    top_k: int | None = 3,
    per_class: bool = False,
    n_boot: int = 200,
    params: AttackParams | None = None,
    data_root: str | os.PathLike | None = None,
    device: str | None = None,
    progress: bool | None = None,
    stored_only: bool = False,
) -> pd.DataFrame:
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
        # not at the top: estimates (the part a row is pending on) builds on this module's row keys
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


def _compute(
    target: TrainConfig, groups: list[str], keys: dict, settings: dict, data_root, device, progress
) -> dict[str, dict]:
    start = time.perf_counter()
    need = models_needed(target, groups, settings["lira_refs"])
    train_many([c for cs in need.values() for c in cs], data_root, device, progress)  # several at once on a GPU
    models = Models(
        TrainedModel(target),
        TrainedModel(need["shadow_fp"][0]),
        TrainedModel(need["shadow_adaptive"][0]) if need["shadow_adaptive"] else None,
        [TrainedModel(c) for c in need["refs_fp"]],
        [TrainedModel(c) for c in need["refs_adaptive"]],
        data_root,
        device,
    )
    train_seconds = time.perf_counter() - start
    t = models.target
    idx = torch.cat([t.outputs["indices"]["target_in"], t.outputs["indices"]["target_out"]]).numpy()
    member = np.r_[
        np.ones(len(t.outputs["indices"]["target_in"])), np.zeros(len(t.outputs["indices"]["target_out"]))
    ].astype(int)
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
                if g in REFERENCE_GROUPS
                else "",
                "commit": git_commit(),
                "seconds": time.perf_counter() - v_start + (train_seconds if first else 0.0),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            first = False
            save_row(row, fpr, tpr, scores=scores, pred=preds, member=member, index=idx)
            out[v] = row
    return out
