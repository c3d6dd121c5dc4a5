"""Re-deriving stored rows that do not record their trained instances, from one trained instance per key.

Rows written before rows recorded the sha256 of their models' weights (``target_instance``, ``shadow_instance``:
the paper profile's GPU rows) say which configuration they are of, not which training: where a key was trained
twice, rows of the two trainings cannot be told apart but by the accuracies they give, and
:meth:`qmia.evidence.Evidence.paired_rows` declines to pair them. Re-deriving a part computes each such *stale* row
again, from models trained once per cache (or carried between runs, :mod:`qmia.carry`), so that every row of the
part records its instances and rows of one key pair with each other.

``python -m qmia sweep --part NAME --rederive`` starts it (:func:`start`): the part's manifest moves to
``<results>/superseded/parts/``, and from then on the part counts its stale rows as missing
(:func:`qmia.part_status.missing_rows`), so that a budget may stop it and a later run, here or elsewhere, resumes
it. Each stale row is moved to ``<results>/superseded/`` (its JSON, ROC and scores, unchanged and still sealed)
just before its target is attacked again (:func:`supersede`): nothing stored is deleted, and the book shows a row
either as it was or as re-derived, never one that mixes the two.
"""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

from .estimates import manifest_path
from .results import load_row, roc_path, row_path, scores_path
from .settings import results_root
from .store import atomic_write_json, read_sealed, seal


def superseded_root() -> Path:
    """Where re-derived rows' former versions are kept: ``<results>/superseded/`` (rows/, roc/, scores/, parts/)."""
    return results_root() / "superseded"


def is_stale(row: dict | None) -> bool:
    """Whether a stored row does not record the trained instance of its target (rows from before instances)."""
    return row is not None and not row.get("target_instance")


def _marker(name: str) -> Path:
    return superseded_root() / "parts" / f"{name}.json"


def rederiving(name: str) -> bool:
    """Whether part ``name`` is being re-derived (:func:`start` was called in this results folder)."""
    return _marker(name).exists()


def start(name: str, why: str = "rows stored without their trained instances") -> bool:
    """Begin re-deriving part ``name``: its manifest (if any) moves to ``superseded/parts/``, or a sealed marker
    saying so is written there. False when it was already begun (nothing changes)."""
    marker = _marker(name)
    if marker.exists():
        return False
    marker.parent.mkdir(parents=True, exist_ok=True)
    manifest = manifest_path(name)
    if manifest.exists():
        read_sealed(manifest)  # a damaged manifest is reported, not archived as if it were true
        os.replace(manifest, marker)
    else:
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        atomic_write_json(seal({"part": name, "rederive_started": when, "why": why, "rows": []}), marker)
    return True


def supersede(row_keys: list[str]) -> list[str]:
    """Move each stale row of ``row_keys`` (with its ROC and scores) to ``superseded/``; returns the keys moved.

    The ROC and score files are copied first and the JSON is moved last, so an interruption leaves either the row
    whole in the store (moved again next time) or gone from it (computed again; its leftover files are
    overwritten) with its former version kept."""
    moved = []
    for key in row_keys:
        row = load_row(key)
        if not is_stale(row):
            continue
        files = [roc_path(key), scores_path(key)]
        for f in files:
            if f.exists():
                dest = superseded_root() / f.parent.name / f.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
        dest = superseded_root() / "rows" / row_path(key).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(row_path(key), dest)
        for f in files:
            f.unlink(missing_ok=True)
        moved.append(key)
    return moved


def superseded_keys() -> list[str]:
    """The row keys whose former versions are kept under ``superseded/rows/``."""
    folder = superseded_root() / "rows"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
