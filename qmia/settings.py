"""Where things live and the environment variables qmia reads: the one module that reads ``os.environ``.

Folders are absolute paths. A folder given by its variable is resolved against the working
directory; the defaults are rooted at the repository (``<repo>/cache``, ``<repo>/results``,
``<repo>/data``), or at the working directory when qmia runs from an installed copy.

| variable | meaning | default |
| --- | --- | --- |
| ``QMIA_CACHE`` | trained models and decoded data sets | ``<repo>/cache`` |
| ``QMIA_RESULTS`` | result rows, ROC curves, per-example scores | ``<repo>/results``; ``<repo>/results/paper`` for the paper profile |
| ``QMIA_DATA`` | the data root (Fashion-MNIST, CIFAR-10) | ``<repo>/data`` |
| ``QMIA_PROGRESS`` | ``0`` hides progress bars | ``1`` |
| ``QMIA_CUDA_GRAPHS`` | ``0`` trains without CUDA graphs | ``1`` |
| ``QMIA_GROUP`` | models trained together in one vmapped step | 16 on CUDA, 1 on a CPU |
| ``QMIA_COMMIT`` | the commit recorded in models and results, where the checkout's ``.git`` is absent or stale (a GPU lease's copy) | ``git rev-parse`` |
"""

from __future__ import annotations

import os
from pathlib import Path

VARIABLES = (
    "QMIA_CACHE",
    "QMIA_RESULTS",
    "QMIA_DATA",
    "QMIA_PROGRESS",
    "QMIA_CUDA_GRAPHS",
    "QMIA_GROUP",
    "QMIA_COMMIT",
    "QMIA_TRAIN",
)


def repo_root() -> Path:
    """The repository holding this package, or the working directory for an installed copy."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").is_file() else Path.cwd().resolve()


def _folder(variable: str, default: str) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser().resolve() if value else repo_root() / default


def cache_root() -> Path:
    return _folder("QMIA_CACHE", "cache")


def results_root() -> Path:
    return _folder("QMIA_RESULTS", "results")


# Profiles whose results are kept in the repository, each in its own folder (``<repo>/results/<profile>``).
STORED_PROFILES = ("paper",)


def use_stored_results(profile: str) -> None:
    """Point this process (and its children) at ``<repo>/results/<profile>`` for a profile whose results the
    repository keeps (:data:`STORED_PROFILES`), unless ``QMIA_RESULTS`` is set."""
    if profile in STORED_PROFILES and not os.environ.get("QMIA_RESULTS"):
        os.environ["QMIA_RESULTS"] = str(repo_root() / "results" / profile)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else ``$QMIA_DATA``, else ``<repo>/data``."""
    return Path(root).expanduser().resolve() if root else _folder("QMIA_DATA", "data")


def _flag(variable: str) -> bool:
    value = os.environ.get(variable, "1")
    if value not in ("0", "1"):
        raise ValueError(f"{variable} must be 0 or 1; got {value!r}")
    return value == "1"


def progress_default() -> bool:
    """Whether long work shows progress bars (``QMIA_PROGRESS``, default on)."""
    return _flag("QMIA_PROGRESS")


def quiet_progress() -> None:
    """Turn progress bars off for this process and its children unless the user set ``QMIA_PROGRESS``
    (the book does)."""
    os.environ.setdefault("QMIA_PROGRESS", "0")


def cuda_graphs_default() -> bool:
    """Whether the CUDA training step is captured as a graph (``QMIA_CUDA_GRAPHS``, default on)."""
    return _flag("QMIA_CUDA_GRAPHS")


def check() -> None:
    """Validate every variable now (ValueError naming the first bad one), before any work is done."""
    progress_default(), cuda_graphs_default(), group_size_override(), train_requested()


def train_requested() -> bool:
    """``QMIA_TRAIN=1`` (``make book PROFILE=paper TRAIN=1``): a book of a profile whose results the repository stores
    (paper) computes what is missing; unset or 0, its pages read the stored rows only and name what is missing."""
    value = os.environ.get("QMIA_TRAIN", "0")
    if value not in ("0", "1"):
        raise ValueError(f"QMIA_TRAIN must be 0 or 1; got {value!r}")
    return value == "1"


def group_size_override() -> int | None:
    """``QMIA_GROUP``: models per vmapped training group, or None when unset."""
    value = os.environ.get("QMIA_GROUP")
    if not value:
        return None
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise ValueError(f"QMIA_GROUP must be a positive integer; got {value!r}")
    return int(value)


def commit_override() -> str | None:
    """``QMIA_COMMIT``: the commit to record instead of asking git, or None."""
    return os.environ.get("QMIA_COMMIT") or None
