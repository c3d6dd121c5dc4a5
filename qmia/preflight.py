"""Checks made before any work starts, so that a mistake in a command costs one line of output, not an hour.

Every entry point (the CLI, :func:`qmia.book.setup` for notebooks, ``scripts/run_notebooks.py``) calls these
first; each raises ``ValueError`` with one message naming the option or variable and what is valid:

* :func:`check_folders`: the cache and results folders (``QMIA_CACHE``, ``QMIA_RESULTS``) and a data root are
  folders, or can be made, and are writable (the data root: readable);
* :func:`check_output_file`: a file to write (``--json``) is not a folder and its folder exists and is writable;
* :func:`check_device`: ``cpu``, ``cuda`` or ``cuda:N`` of a GPU that is present;
* :func:`check_seeds`, :func:`check_size`: integers within what every component accepts (seeds 0 to 2^32 - 1)
  and sizes within bounds derived from memory (:data:`MAX_LABEL_QUERIES`);
* :func:`confirm_cpu_scale`: a paper-scale model is trained on a CPU only when asked for explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import torch

from .config import SEED_MAX
from .settings import STORED_PROFILES, cache_root, results_root

# The label-only attack holds, per query, the augmentation draws of every image of the data set (about 17 bytes
# per image: a crop offset pair and a flip or angle, 60,000 images -> ~1 MB) and the labels of the attacked
# examples (8 bytes each); 1,024 queries of CIFAR-10 hold about 1 GB. The paper-scale attack uses 16.
MAX_LABEL_QUERIES = 1024
MAX_LIRA_REFS = 256  # reference models to train per target: each is a full training


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_folder(path: str | os.PathLike, what: str, *, write: bool = True) -> Path:
    """``path`` as a folder that exists or can be made there, writable (or readable, ``write=False``); ``what``
    names it in the message (e.g. 'QMIA_CACHE', '--data-root')."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} must be a folder; {path} is a file")
    base = _first_existing(path.absolute())
    if not base.is_dir():
        raise ValueError(f"{what}: {path} cannot be made, {base} is a file")
    if write and not os.access(base, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: {base} is not writable (needed for {path})")
    if not write and path.exists() and not os.access(path, os.R_OK | os.X_OK):
        raise ValueError(f"{what}: {path} is not readable")
    return path


def check_folders(data_root: str | os.PathLike | None = None) -> None:
    """The cache and results folders (writable) and, when given, a data root (readable; it may be missing: the data
    loader then downloads or names what is missing)."""
    for variable, path in (("QMIA_CACHE", cache_root()), ("QMIA_RESULTS", results_root())):
        check_folder(path, f"{variable} (the {variable[5:].lower()} folder)")
    if data_root is not None:
        check_folder(data_root, "--data-root", write=False)


def check_output_file(path: str | os.PathLike, what: str) -> Path:
    """A file about to be written: not a folder; its folder exists and is writable."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"{what} must name a file; {path} is a folder")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise ValueError(f"{what}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{what}: {path} is not writable")
    return path


def check_device(device: str | None) -> str | None:
    """A device name torch can use here: None (the default), 'cpu', 'cuda' or 'cuda:N' of a present GPU."""
    if device is None:
        return None
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    valid = ["cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(n)] if n else [])
    if device not in valid:
        why = " (this machine has no GPU torch can use)" if device.startswith("cuda") and not n else ""
        raise ValueError(f"--device must be one of {', '.join(valid)}{why}; got {device!r}")
    return device


def check_seeds(seeds: Iterable[int], what: str = "seed") -> list[int]:
    """Seeds as integers from 0 to 2^32 - 1 (what scikit-learn, NumPy and torch all accept)."""
    seeds = list(seeds)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= SEED_MAX]
    if bad:
        raise ValueError(f"{what} must be integers from 0 to {SEED_MAX} (2^32 - 1); got {', '.join(map(repr, bad))}")
    return seeds


def check_size(value: int | None, what: str, lo: int, hi: int, why: str = "") -> int | None:
    """An integer option within [lo, hi] (None passes: the default)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{what} must be an integer from {lo} to {hi}{why}; got {value!r}")
    return value


def is_cpu(device: str | None) -> bool:
    if device is not None:
        return torch.device(device).type == "cpu"
    return not torch.cuda.is_available()


def confirm_cpu_scale(profile: str, device: str | None, allowed: bool, option: str = "--on-cpu") -> None:
    """Refuse to start a paper-scale computation on a CPU unless ``allowed`` (the option was given): it takes hours
    there (``python -m qmia sweep --parts`` lists the CPU hours per part)."""
    if profile in STORED_PROFILES and is_cpu(device) and not allowed:
        raise ValueError(
            f"the {profile} profile trains paper-scale models, which take hours on a CPU (about 15 min a "
            f"ResNet-20); pass {option} to start, or see python -m qmia sweep --profile {profile} --parts "
            "for the CPU hours of each part"
        )
