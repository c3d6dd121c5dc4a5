"""A trained model's cache entry, ``<cache>/models/<key>/``: where it lives, which trained instance it holds, and
whether it is complete and intact (every file against the checksum its sealed ``meta.json`` recorded). A damaged
entry is reported with its path and moved aside, so that it is trained again (:mod:`qmia.train`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .config import TrainConfig
from .settings import cache_root
from .splits import SPLITS
from .store import SEAL as SEAL_FIELD
from .store import DamagedEntry, atomic_write_json, damage, move_aside, read_json, seal, seal_damage, stable_hash

if TYPE_CHECKING:
    from .train import TrainedModel


def model_dir(config: TrainConfig) -> Path:
    return cache_root() / "models" / config.key


ENTRY_FILES = ("model.pt", "outputs.pt")


def model_instance(model: TrainedModel) -> str:
    """Which trained instance of its configuration a model is: the first 16 hex digits of its weights' sha256, or,
    where meta.json recorded no weights, ``outputs:`` and those of its outputs' (two trainings of one key
    differ here: on other machines, or in other training groups, :mod:`qmia.multitrain`); '' where meta.json
    recorded neither."""
    files = model.meta.get("files")
    files = files if isinstance(files, dict) else {}
    for name, prefix in (("model.pt", ""), ("outputs.pt", "outputs:")):
        entry = files.get(name)
        if isinstance(entry, dict) and entry.get("sha256"):
            return prefix + str(entry["sha256"])[:16]
    return ""


def instances_digest(models: list[TrainedModel]) -> str:
    """One 16-hex-digit name for the instances of several models (LiRA's reference models), '' for none."""
    if not models:
        return ""
    return stable_hash(sorted(model_instance(m) for m in models))


def split_accuracy(outputs: dict) -> dict[str, float]:
    """{split: top-1 accuracy} of a model's stored outputs (what meta.json records as ``accuracy``)."""
    return {s: float((outputs["logits"][s].argmax(1) == outputs["labels"][s]).float().mean()) for s in SPLITS}


def edited(meta) -> bool:
    """Whether a meta.json is not an object, or sealed and changed since (one written before seals is not edited:
    :func:`is_cached` checks it against its files and seals it)."""
    reason = seal_damage(meta)
    return reason is not None and not reason.startswith("no seal")


def is_cached(config: TrainConfig) -> bool:
    """Whether ``config`` has a complete, intact cache entry. A damaged one (meta.json unreadable or edited since it
    was written, a file missing, truncated or changed) is reported on stderr with its path and moved aside, and this
    returns False so that it is trained again. An entry written before checksums were recorded is trained again,
    not blessed; one written before meta.json was sealed is checked (its files against their checksums, its recorded
    accuracies against its outputs, or, where its outputs were restored from carried weights, its accuracies taken
    from them) and sealed then. An entry carried with its outputs only (meta.json says
    ``"carried": "outputs"``: a model too large to carry between GPU leases) is complete without weights; one
    carried with its weights only is not yet (:func:`has_weights`)."""
    path = model_dir(config)
    if not (path / "meta.json").exists() or has_weights(config):  # weights only: restore_outputs completes it
        return False
    files = {name: path / name for name in ENTRY_FILES}
    try:
        meta = read_json(path / "meta.json")
        if not isinstance(meta, dict) or meta.get("key") != config.key:
            raise DamagedEntry("meta.json does not describe this configuration")
        if edited(meta):
            raise DamagedEntry(f"meta.json {seal_damage(meta)}")
        if meta.get("carried") == "outputs":  # only the outputs were carried here (a model too large to carry)
            files = {"outputs.pt": path / "outputs.pt"}
        if "files" not in meta:
            raise DamagedEntry("written before checksums were recorded, so its files cannot be checked; trained again")
        reason = damage(files, meta["files"])
        if reason:
            raise DamagedEntry(reason)
        if SEAL_FIELD not in meta:  # written before meta.json was sealed: check what rows read from it, then seal it
            outputs = torch.load(path / "outputs.pt", map_location="cpu", weights_only=True)
            if "outputs_restored" in meta:  # outputs recomputed from carried weights: their accuracies are the record
                meta = {**meta, "accuracy": split_accuracy(outputs)}
            elif meta.get("accuracy") != split_accuracy(outputs):
                raise DamagedEntry("meta.json's accuracies are not those of its outputs")
            atomic_write_json(seal(meta), path / "meta.json")
    except DamagedEntry as e:
        move_aside(path, str(e))
        return False
    return True


def has_weights(config: TrainConfig) -> bool:
    """Whether ``config``'s cache entry holds intact weights but no outputs: a model trained on another machine
    whose ``model.pt`` and ``meta.json`` were carried here (``scripts/carry_models.py``) to save its training.
    :func:`restore_outputs` completes it."""
    path = model_dir(config)
    if (path / "outputs.pt").exists() or not (path / "model.pt").is_file() or not (path / "meta.json").is_file():
        return False
    try:
        meta = read_json(path / "meta.json")
    except Exception:
        return False
    if not isinstance(meta, dict) or edited(meta):  # is_cached reports it as damaged
        return False
    recorded = meta.get("files")
    return (
        meta.get("key") == config.key
        and isinstance(recorded, dict)
        and damage({"model.pt": path / "model.pt"}, {"model.pt": recorded.get("model.pt")}) is None
    )
