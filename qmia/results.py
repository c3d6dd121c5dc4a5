"""The results store: one JSON row, one ROC file and one per-example score file per (target
config, attack, settings).

Rows live in ``<results>/rows/<row_key>.json`` (written atomically, so concurrent or
interrupted runs never corrupt the store), their ROC points in ``<results>/roc/<row_key>.npz``
and the attack's per-example scores, decisions, membership and dataset indices in
``<results>/scores/<row_key>.npz`` with the indices in ``<results>/index/`` (what the uncertainty of a
claim is computed from, see :mod:`qmia.uncertainty`); :func:`load_results` gathers the rows into one tidy DataFrame and
:func:`export_csv` writes ``<results>/results.csv`` for people who prefer one file.
"""

from __future__ import annotations

import hashlib
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from .settings import results_root
from .store import (
    DamagedEntry,
    atomic_write,
    atomic_write_json,
    checksums,
    damage,
    move_aside,
    read_json,
    read_sealed,
    seal,
)
from .uncertainty import AttackOutcome


def row_path(row_key: str) -> Path:
    return results_root() / "rows" / f"{row_key}.json"


def roc_path(row_key: str) -> Path:
    return results_root() / "roc" / f"{row_key}.npz"


def scores_path(row_key: str) -> Path:
    return results_root() / "scores" / f"{row_key}.npz"


def index_path(name: str) -> Path:
    return results_root() / "index" / f"{name}.npz"


def _files(row_key: str, row: dict | None = None) -> dict[str, Path]:
    files = {"roc": roc_path(row_key), "scores": scores_path(row_key)}
    if isinstance(row, dict) and row.get("index_file"):
        files["index"] = index_path(row["index_file"])
    return files


def save_row(
    row: dict,
    fpr: np.ndarray,
    tpr: np.ndarray,
    *,
    scores: np.ndarray,
    pred: np.ndarray,
    member: np.ndarray,
    index: np.ndarray,
) -> None:
    """Store a row, its ROC points and its per-example outcome (those first, so a stored row always has them),
    with the sha256 of those files in the row's JSON (under ``checksums``) and the JSON sealed with its own sha256
    (:func:`qmia.store.seal`; :func:`load_row` checks both).

    scores: float, higher = member; pred: 0/1 decisions; member: 1 for members; index: dataset indices (all length n).
    The outcome is kept compact (what the paper profile's stored results can afford): the scores as dense ranks
    (0 = lowest; their order and ties, all :mod:`qmia.uncertainty` reads, are exact), the decisions as bits, and
    the dataset indices once per distinct split under ``<results>/index/`` (shared by every row of a target).
    """
    key = row["row_key"]
    scores, pred = np.asarray(scores, dtype=np.float64), np.asarray(pred, dtype=np.int8)
    index = np.asarray(index, dtype=np.int64)
    if not (len(scores) == len(pred) == len(member) == len(index)):
        raise ValueError("scores, pred, member and index must have one length")
    rank = np.unique(scores, return_inverse=True)[1].reshape(-1)
    rank = rank.astype(np.uint16 if rank.max(initial=0) < 2**16 else np.uint32)
    name = hashlib.sha256(index.astype("<i8").tobytes()).hexdigest()[:16]
    _write_index(name, index)
    atomic_write(roc_path(key), lambda f: np.savez_compressed(f, fpr=fpr, tpr=tpr))
    atomic_write(
        scores_path(key),
        lambda f: np.savez_compressed(
            f,
            rank=rank,
            pred_bits=np.packbits(pred.astype(bool)),
            n=np.int64(len(pred)),
            member=np.asarray(member, dtype=np.int8),
        ),
    )
    row = {**row, "index_file": name}
    _note_instances(row)
    atomic_write_json(seal({**row, "checksums": checksums(_files(key, row))}), row_path(key))


INSTANCE_FIELDS = (("target_key", "target_instance"), ("shadow_key", "shadow_instance"))
_INSTANCES: dict[str, dict[str, set[str]]] = {}  # results folder -> {model key: instances its rows were computed from}


def stored_instances() -> dict[str, set[str]]:
    """{model key: the trained instances (:func:`qmia.train.model_instance`) that this store's rows were computed
    from}, of targets and shadows; read once per process, kept up to date by :func:`save_row`."""
    root = str(results_root())
    if root not in _INSTANCES:
        index: dict[str, set[str]] = defaultdict(set)
        for p in sorted((results_root() / "rows").glob("*.json")):
            try:
                r = read_json(p)
            except DamagedEntry:
                continue
            for key, inst in INSTANCE_FIELDS:
                if isinstance(r, dict) and r.get(key) and r.get(inst):
                    index[r[key]].add(r[inst])
        _INSTANCES[root] = index
    return _INSTANCES[root]


def _note_instances(row: dict) -> None:
    """Say so when a row is computed from another trained instance of a model than this store's rows of that key
    were (the key was trained again: in another cache, on another machine); :func:`instance_conflicts` lists them."""
    known = stored_instances()
    for key, inst in INSTANCE_FIELDS:
        k, i = row.get(key), row.get(inst)
        if not (k and i):
            continue
        if known[k] and i not in known[k]:
            print(
                f"qmia: {results_root()} now holds rows of {len(known[k]) + 1} trained instances of model {k} "
                f"({', '.join(sorted(known[k]))}, and {i} in row {row['row_key']}); a key is trained once per cache, "
                "so this one was trained again elsewhere",
                file=sys.stderr,
            )
        known[k].add(i)


def instance_conflicts(df: pd.DataFrame) -> pd.DataFrame:
    """The model keys that rows of ``df`` name with more than one trained instance: key, role (target/shadow),
    instances (sorted), rows (how many rows name the key). Empty when every key is one model."""
    out = []
    for key, inst in INSTANCE_FIELDS:
        if key not in df or inst not in df:
            continue
        sub = df[df[inst].fillna("").astype(str) != ""]
        for k, g in sub.groupby(key):
            if g[inst].nunique() > 1:
                out.append({"key": k, "role": key.split("_")[0], "instances": sorted(g[inst].unique()), "rows": len(g)})
    return pd.DataFrame(out, columns=["key", "role", "instances", "rows"])


def _write_index(name: str, index: np.ndarray) -> None:
    """Write a split's indices once; rewrite them only where the stored file is missing or damaged (its bytes
    are what every row sharing it recorded a checksum of)."""
    path = index_path(name)
    try:
        with np.load(path) as z:
            if np.array_equal(z["index"], index):
                return
    except Exception:  # missing, truncated or not an npz: write it
        pass
    atomic_write(
        path,
        lambda f: np.savez_compressed(f, index=index.astype(np.int32 if index.max(initial=0) < 2**31 else np.int64)),
    )


def load_outcome(row) -> AttackOutcome:
    """The per-example outcome of a stored row (a dict or a pandas Series), for :mod:`qmia.uncertainty`
    (scores as stored: dense ranks, or the raw scores of rows stored before ranks)."""
    with np.load(scores_path(row["row_key"])) as z:
        if "rank" not in z:
            return AttackOutcome(z["scores"], z["pred"], z["member"], z["index"], int(row["seed"]))
        n = int(z["n"])
        scores, pred, member = (
            z["rank"].astype(np.float64),
            np.unpackbits(z["pred_bits"])[:n].astype(np.int8),
            z["member"],
        )
    name = row.get("index_file")
    if not isinstance(name, str):  # a row given without its stored fields: read them
        name = read_json(row_path(row["row_key"]))["index_file"]
    with np.load(index_path(name)) as z:
        index = z["index"].astype(np.int64)
    return AttackOutcome(scores, pred, member, index, int(row["seed"]))


def load_row(row_key: str) -> dict | None:
    """A stored row, or None when there is none or it is damaged (unreadable, edited since it was written, written
    before rows were sealed, a file missing, truncated or changed: then it is reported, moved aside with its files,
    and recomputed by the caller)."""
    p = row_path(row_key)
    if not p.exists():
        return None
    try:
        try:
            row = read_sealed(p)
        except DamagedEntry as e:
            raise DamagedEntry(f"the row's JSON: {e}") from None
        reason = damage(_files(row_key, row), row.get("checksums"))
        if reason:
            raise DamagedEntry(reason)
    except DamagedEntry as e:
        for f in [p, *_files(row_key).values()]:  # a shared index file stays: other rows may be intact
            if f.exists():
                move_aside(f, str(e))
        return None
    row.pop("checksums", None)
    row.setdefault("precision", legacy_precision(row))
    return row


def legacy_precision(row: dict) -> str:
    """The compute precision of a row stored before rows recorded it: every CUDA run computed with bf16 autocast
    (all the stored paper rows), every CPU run in float32."""
    return "bf16 autocast" if str(row.get("device", "")).startswith("cuda") else "fp32"


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


def stored_part(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``df`` that are stored results, without the pending ones (:func:`qmia.experiment.evaluate`)."""
    if "pending" not in df.columns:
        return df
    return df[df["pending"].fillna("") == ""]


def provenance(df: pd.DataFrame) -> str:
    """One line naming the profile(s), seeds, data (with its source and checksum), compute precision and commit(s)
    behind a table or figure, how many of its rows were stored before rows recorded their trained instances (their
    comparisons with other rows of a key trained twice are not measurable until re-derived, :mod:`qmia.rederive`)
    and how many are not computed yet."""
    if len(df) == 0:
        return "no results"
    stored = stored_part(df)
    waiting = len(df) - len(stored)
    later = f" · {waiting} of {len(df)} rows not computed yet (marked)" if waiting else ""
    if len(stored) == 0:
        return f"profile {', '.join(sorted(pd.unique(df['profile'].astype(str))))} · no row stored yet{later}"

    def uniq(col: str) -> str:
        if col not in stored.columns:
            return "not recorded"
        return ", ".join(sorted({str(v) for v in stored[col] if not (isinstance(v, float) and np.isnan(v))}))

    instances = stored.get("target_instance", pd.Series("", index=stored.index)) if "target_key" in stored else None
    former = 0 if instances is None else int((instances.fillna("").astype(str) == "").sum())
    before = f" · {former} of {len(stored)} stored rows from before instances were recorded" if former else ""
    return (
        f"profile {uniq('profile')} · seeds {uniq('seed')} · data {uniq('data')} · source {uniq('data_source')} · "
        f"device {uniq('device')} · precision {uniq('precision')} · commit {uniq('commit')}{before}{later}"
    )


# ----------------------------------------------------------------------------- statistics of trained weights

WEIGHT_STATS_BITS = tuple(range(1, 33))


def weight_stats_path(model_key: str) -> Path:
    return results_root() / "weights" / f"{model_key}.json"
