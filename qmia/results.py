"""The results store: one JSON row, one ROC file and one per-example score file per (target
config, attack, settings).

Rows live in ``<results>/rows/<row_key>.json`` (written atomically, so concurrent or
interrupted runs never corrupt the store), their ROC points in ``<results>/roc/<row_key>.npz``
and the attack's per-example scores, decisions, membership and dataset indices in
``<results>/scores/<row_key>.npz`` (what the uncertainty of a claim is computed from, see
:mod:`qmia.uncertainty`); :func:`load_results` gathers the rows into one tidy DataFrame and
:func:`export_csv` writes ``<results>/results.csv`` for people who prefer one file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .settings import results_root
from .store import DamagedEntry, atomic_write, atomic_write_json, checksums, damage, move_aside, read_json
from .uncertainty import AttackOutcome


def row_path(row_key: str) -> Path:
    return results_root() / "rows" / f"{row_key}.json"


def roc_path(row_key: str) -> Path:
    return results_root() / "roc" / f"{row_key}.npz"


def scores_path(row_key: str) -> Path:
    return results_root() / "scores" / f"{row_key}.npz"


def _files(row_key: str) -> dict[str, Path]:
    return {"roc": roc_path(row_key), "scores": scores_path(row_key)}


def save_row(row: dict, fpr: np.ndarray, tpr: np.ndarray, *, scores: np.ndarray, pred: np.ndarray, member: np.ndarray,
             index: np.ndarray) -> None:
    """Store a row, its ROC points and its per-example outcome (those first, so a stored row always has them),
    with the sha256 of both files in the row's JSON (under ``checksums``; :func:`load_row` checks them).

    scores: float, higher = member; pred: 0/1 decisions; member: 1 for members; index: dataset indices (all length n).
    """
    key = row["row_key"]
    atomic_write(roc_path(key), lambda f: np.savez_compressed(f, fpr=fpr, tpr=tpr))
    atomic_write(scores_path(key), lambda f: np.savez_compressed(
        f, scores=np.asarray(scores, dtype=np.float64), pred=np.asarray(pred, dtype=np.int8),
        member=np.asarray(member, dtype=np.int8), index=np.asarray(index, dtype=np.int64)))
    atomic_write_json({**row, "checksums": checksums(_files(key))}, row_path(key))


def load_outcome(row) -> AttackOutcome:
    """The per-example outcome of a stored row (a dict or a pandas Series), for :mod:`qmia.uncertainty`."""
    with np.load(scores_path(row["row_key"])) as z:
        return AttackOutcome(z["scores"], z["pred"], z["member"], z["index"], int(row["seed"]))


def load_row(row_key: str) -> dict | None:
    """A stored row, or None when there is none or it is damaged (unreadable, a file missing, truncated or
    changed: then it is reported, moved aside with its files, and recomputed by the caller)."""
    p = row_path(row_key)
    if not p.exists():
        return None
    try:
        row = read_json(p)
        reason = damage(_files(row_key), row.get("checksums") if isinstance(row, dict) else None)
        if reason:
            raise DamagedEntry(reason)
    except DamagedEntry as e:
        for f in [p, *_files(row_key).values()]:
            if f.exists():
                move_aside(f, str(e))
        return None
    row.pop("checksums", None)
    return row


def load_results(profile: str | None = None) -> pd.DataFrame:
    """Every intact stored row (optionally of one profile) as a DataFrame (damaged ones are moved aside)."""
    rows = [r for p in sorted((results_root() / "rows").glob("*.json")) if (r := load_row(p.stem)) is not None]
    df = pd.DataFrame(rows)
    if profile is not None and len(df):
        df = df[df["profile"] == profile].reset_index(drop=True)
    return df


def export_csv(path: str | Path | None = None) -> Path:
    """Write all stored rows to one CSV (default ``<results>/results.csv``)."""
    path = Path(path or results_root() / "results.csv")
    df = load_results()
    atomic_write(path, lambda f: f.write(df.to_csv(index=False).encode()))
    return path


def load_roc(row) -> tuple[np.ndarray, np.ndarray]:
    """The stored ROC curve (fpr, tpr) of a result row (a dict or a pandas Series)."""
    with np.load(roc_path(row["row_key"])) as z:
        return z["fpr"], z["tpr"]


def provenance(df: pd.DataFrame) -> str:
    """One line naming the profile(s), seeds, data (with its source and checksum) and commit(s) behind a table or figure."""
    if len(df) == 0:
        return "no results"

    def uniq(col: str) -> str:
        return ", ".join(str(v) for v in sorted(pd.unique(df[col].astype(str)))) if col in df.columns else "not recorded"

    return (f"profile {uniq('profile')} · seeds {uniq('seed')} · data {uniq('data')} · source {uniq('data_source')} · "
            f"device {uniq('device')} · commit {uniq('commit')}")
