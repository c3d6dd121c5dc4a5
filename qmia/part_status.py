"""What of the book's parts is done here: which rows are stored, which models are available without training,
and so which parts and models are still missing (:mod:`qmia.parts` holds the partition itself).
"""

from __future__ import annotations

from .config import Profile, TrainConfig
from .extraction import stored_extraction
from .model_entries import has_weights, is_cached
from .parts import (
    PARTS,
    Entry,
    assign,
    entry_keys,
    extraction_models,
    part_extractions,
    part_models,
    trained_for_later,
)
from .plan import ExtractionRequest
from .rederive import is_stale, rederiving
from .results import load_row


def missing_parts(p: Profile) -> list[str]:
    """The parts of profile ``p`` with rows (or extraction records) not stored under the results folder, in plan
    order."""
    return [
        name
        for name, entries in assign(p).items()
        if (entries and missing_rows(p, entries, rederiving(name))) or missing_extractions(part_extractions(p, name))
    ]


def missing_extractions(requests: list[ExtractionRequest]) -> list[ExtractionRequest]:
    """The extractions whose records are not stored (intact) under the results folder."""
    return [r for r in requests if stored_extraction(*r) is None]


def models_of_part(p: Profile, name: str, entries: list[Entry] | None = None) -> list[TrainConfig]:
    """The models part ``name`` trains: a models-only part's, the entries' (default: all of the part's), or the
    targets of its extractions."""
    return (
        trained_for_later(p, name)
        or part_models(p, assign(p)[name] if entries is None else entries)
        or extraction_models(part_extractions(p, name))
    )


def needed_models(p: Profile, names: list[str] | None = None) -> list[TrainConfig]:
    """The distinct models that parts ``names`` (default: those with missing rows, :func:`missing_parts`) train,
    in plan order: what a lease still needs trained or carried."""
    assigned = assign(p)
    return list(
        dict.fromkeys(
            m for n in (missing_parts(p) if names is None else names) for m in models_of_part(p, n, assigned[n])
        )
    )


def needed_models_parts(p: Profile) -> list[str]:
    """The models-only parts whose models a part with missing rows still needs and that are not all available here."""
    wanted = set(needed_models(p))
    return [
        part.name
        for part in PARTS
        if part.trains is not None and any(m in wanted and not available(m) for m in trained_for_later(p, part.name))
    ]


def available(config: TrainConfig) -> bool:
    """Whether a model needs no training here: cached, or carried weights whose outputs are computed at once."""
    return is_cached(config) or has_weights(config)


def is_current(row_key: str, rederive: bool = False) -> bool:
    """Whether a row is stored and intact and, when its part is being re-derived (``rederive``,
    :func:`qmia.rederive.rederiving`), records its trained instances (:func:`qmia.rederive.is_stale`)."""
    row = load_row(row_key)
    return row is not None and not (rederive and is_stale(row))


def row_counts(p: Profile, entries: list[Entry], rederive: bool = False) -> tuple[int, int]:
    """``(missing, stale)`` for the part's result rows, reading each stored row once: how many are not stored
    (intact) under the results folder, and how many stored ones do not record their trained instances
    (:func:`qmia.rederive.is_stale`). With ``rederive`` (the part is being re-derived) the stale ones count as
    missing too (:func:`is_current`)."""
    rows = [load_row(k) for _, k in entry_keys(p, entries)]
    stale = sum(is_stale(r) for r in rows)
    return sum(r is None for r in rows) + (stale if rederive else 0), stale


def missing_rows(p: Profile, entries: list[Entry], rederive: bool = False) -> int:
    """How many of the part's result rows are not stored (intact) under the results folder; with ``rederive``, rows
    stored without their instances count as missing too (:func:`row_counts`)."""
    return row_counts(p, entries, rederive)[0]


def stale_rows(p: Profile, entries: list[Entry]) -> int:
    """How many of the part's stored rows do not record their trained instances (:func:`row_counts`)."""
    return row_counts(p, entries)[1]
