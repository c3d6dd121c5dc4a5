"""Trained weights carried between machines in the results folder, so that a part stopped by its budget resumes
elsewhere without training its finished models again.

A part run on a CPU takes hours; a session or a laptop's night may end first. When a part run stops,
:func:`keep` copies into ``<results>/carried/<key>/`` the weights (``model.pt``) and ``meta.json`` of every trained
model that a part with missing rows still needs, in plan order, up to :data:`MAX_BYTES` in all, and removes the
carried models that no missing part needs any more (their rows are stored). The folder is committed with the rows.
On the next run, :func:`seed` copies them into the cache as weights-only entries: :func:`qmia.train.has_weights`
checks ``model.pt`` against the sha256 that ``meta.json`` recorded when it was trained, and
:func:`qmia.train.restore_outputs` computes the model's outputs from them instead of training it again; a carried
file that does not match is reported and not used.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .config import Profile, TrainConfig
from .model_entries import has_weights, is_cached, model_dir
from .part_status import needed_models
from .settings import results_root
from .store import (
    atomic_write_json,
    damage,
    lock,
    read_json,
    seal,
    seal_damage,
    unsealed,
)

# Most bytes of carried weights in the results folder (git keeps every version: the repository grows by what is
# carried and later removed; a ResNet-20's weights are 1.1 MB, a LeNet-5's 0.25 MB).
MAX_BYTES = 24 * 2**20


def carried_root() -> Path:
    return results_root() / "carried"


def carried_keys() -> list[str]:
    root = carried_root()
    return sorted(p.name for p in root.iterdir() if (p / "meta.json").is_file()) if root.is_dir() else []


def _intact(folder: Path) -> dict | None:
    """The carried entry's meta.json when its model.pt matches the recorded sha256, else None (reported)."""
    try:
        meta = read_json(folder / "meta.json")
        recorded = meta["files"]["model.pt"]
    except Exception as e:  # unreadable or without a record
        print(f"carried weights {folder}: meta.json unusable ({type(e).__name__}); not used", file=sys.stderr)
        return None
    sealed = seal_damage(meta)
    if sealed and not sealed.startswith("no seal"):  # carried before seals: its weights' checksum is what is checked
        print(f"carried weights {folder}: meta.json {sealed}; not used", file=sys.stderr)
        return None
    meta = unsealed(meta)
    reason = damage({"model.pt": folder / "model.pt"}, {"model.pt": recorded})
    if reason or meta.get("key") != folder.name:
        print(f"carried weights {folder}: {reason or 'meta.json is of another model'}; not used", file=sys.stderr)
        return None
    return meta


def seed(configs: list[TrainConfig]) -> list[TrainConfig]:
    """Put the carried weights of ``configs`` that the cache lacks into it (weights only, checked by checksum);
    returns the configs seeded."""
    seeded = []
    for c in configs:
        folder = carried_root() / c.key
        if not (folder / "meta.json").is_file() or is_cached(c) or (model_dir(c) / "model.pt").exists():
            continue
        meta = _intact(folder)
        if meta is None:
            continue
        dest = model_dir(c)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / "model.pt", dest / "model.pt")
        atomic_write_json(seal({**meta, "carried": "weights"}), dest / "meta.json")
        seeded.append(c)
    return seeded


def keep(p: Profile, max_bytes: int = MAX_BYTES) -> tuple[list[str], int]:
    """Carry the weights of the trained models that parts with missing rows need (in plan order, up to
    ``max_bytes``) and drop the carried ones they do not. Returns (the carried keys, their bytes). One process at a
    time (parts run as parallel jobs share the folder)."""
    with lock(f"carried-{p.name}"):
        return _keep(p, max_bytes)


def _keep(p: Profile, max_bytes: int) -> tuple[list[str], int]:
    needed = needed_models(p)
    wanted = {c.key for c in needed}
    root = carried_root()
    for key in carried_keys():
        if key not in wanted:
            shutil.rmtree(root / key)
    total = sum((root / k / "model.pt").stat().st_size for k in carried_keys())
    for c in needed:
        folder = root / c.key
        if (folder / "meta.json").is_file():
            continue
        src = model_dir(c)
        if not (src / "model.pt").is_file() or not (is_cached(c) or has_weights(c)):
            continue
        size = (src / "model.pt").stat().st_size
        if total + size > max_bytes:
            print(
                f"carry: {c.label} not carried ({(total + size) / 2**20:.1f} MB would pass the "
                f"{max_bytes / 2**20:.0f} MB limit)",
                file=sys.stderr,
            )
            continue
        meta = unsealed(read_json(src / "meta.json"))
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / "model.pt", folder / "model.pt")
        atomic_write_json(
            seal({k: v for k, v in meta.items() if k not in ("carried", "outputs_restored")}), folder / "meta.json"
        )
        total += size
    return carried_keys(), total
