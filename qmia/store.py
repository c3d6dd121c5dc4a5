"""Writing cached things so that an interruption never leaves half a file, checking them when read, and stable hashes.

Every write goes to a temporary file in the same folder, then ``os.replace`` renames it into
place (atomic on POSIX), so a run killed at any moment leaves whole files or none. Every cache
entry and stored result records the sha256 of its files (:func:`checksums`); reading checks them
(:func:`damage`, once per file and process while the file is unchanged), and a damaged entry is
reported with its path and moved aside (:func:`move_aside`) so that it is recomputed. Locks
(:func:`lock`) keep two processes from computing the same entry at once. Where the folders are:
:mod:`qmia.settings`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from .settings import cache_root, results_root

PART_SUFFIX = ".part"


def _writer_tag() -> str:
    """``<host>-<pid>``: which process writes a temporary file (so that a later start can tell whether it is gone)."""
    return f"{socket.gethostname().split('.')[0] or 'host'}-{os.getpid()}"


def atomic_write(path: Path, write) -> Path:
    """Write ``path`` through a temporary ``.<name>.<host>-<pid>.<random>.part`` beside it, renamed into place
    when whole; a writer killed mid-write leaves only that file, which :func:`remove_stale_parts` removes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_writer_tag()}.", suffix=PART_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (load back with ``torch.load(weights_only=True)``)."""
    return atomic_write(Path(path), lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    return atomic_write(Path(path), lambda f: f.write(text.encode()))


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    return atomic_write_text(json.dumps(obj, indent=1, sort_keys=True, default=str), path)


def _writer_gone(tag: str, age_seconds: float) -> bool:
    """Whether the writer named by a ``<host>-<pid>`` tag has ended: on this host, its pid no longer runs; on
    another host (a shared folder), or where the name has no tag (written before tags), after a day."""
    host, _, pid = tag.rpartition("-")
    if host == _writer_tag().rpartition("-")[0] and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # a live process of another user
            return False
        return False
    return age_seconds > 24 * 3600


def remove_stale_parts(*roots: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of :func:`atomic_write` under ``roots`` whose writer is gone (killed mid-write);
    those of live writers stay. Returns what was removed."""
    removed, now = [], time.time()
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for p in root.rglob(f".*{PART_SUFFIX}"):
            parts = p.name[1 : -len(PART_SUFFIX)].split(".")
            tag = parts[-2] if len(parts) >= 3 and "-" in parts[-2] else ""
            try:
                if p.is_file() and _writer_gone(tag, now - p.stat().st_mtime):
                    p.unlink()
                    removed.append(p)
            except FileNotFoundError:  # its writer finished or another cleaner came first
                pass
    return removed


_CLEANED: set[tuple[str, str]] = set()


def remove_stale_parts_once() -> None:
    """:func:`remove_stale_parts` of the cache and results folders, once per process and pair of folders (the
    first training, attack or CLI command of a run calls it)."""
    roots = (str(cache_root()), str(results_root()))
    if roots not in _CLEANED:
        _CLEANED.add(roots)
        remove_stale_parts(*roots)


# ----------------------------------------------------------------------------- sealed JSON

SEAL = "sealed_sha256"  # the field of a JSON record that holds the sha256 of the rest of it


def _canonical(obj: dict) -> bytes:
    return json.dumps({k: v for k, v in obj.items() if k != SEAL}, sort_keys=True, default=str).encode()


def seal(record: dict) -> dict:
    """``record`` with :data:`SEAL`: the sha256 of its canonical JSON without that field, so that any later edit of
    the stored record (a number changed by hand, a field dropped) is detected by :func:`seal_damage`."""
    record = json.loads(json.dumps(record, default=str))  # what will be stored, so that reading it back matches
    return {**record, SEAL: hashlib.sha256(_canonical(record)).hexdigest()}


def seal_damage(record: Any) -> str | None:
    """Why a stored record fails its seal ('not a JSON object', 'no seal recorded', 'edited since it was written'),
    or None when intact."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if SEAL not in record:
        return "no seal recorded (written before records were sealed)"
    if record[SEAL] != hashlib.sha256(_canonical(record)).hexdigest():
        return "edited since it was written (its sha256 does not match its seal)"
    return None


def unsealed(record: dict) -> dict:
    """``record`` without its seal."""
    return {k: v for k, v in record.items() if k != SEAL}


def read_sealed(path: str | os.PathLike) -> dict:
    """A sealed JSON record's content without its seal; :class:`DamagedEntry` (saying why) when it does not parse
    or fails its seal (:func:`seal_damage`)."""
    record = read_json(path)
    reason = seal_damage(record)
    if reason:
        raise DamagedEntry(reason)
    return unsealed(record)


def stable_hash(obj: Any, length: int = 16) -> str:
    """Hex digest of a JSON-serialisable object, independent of dict order."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


# ----------------------------------------------------------------------------- integrity and locks

_DIGESTS: dict[
    str, tuple[int, int, str]
] = {}  # path -> (bytes, mtime_ns, sha256): each file hashed once while unchanged


def file_digest(path: str | os.PathLike) -> str:
    """sha256 (hex) of a file's bytes, remembered while the file's size and modification time stay the same."""
    path = Path(path)
    st = path.stat()
    known = _DIGESTS.get(str(path))
    if known is not None and known[:2] == (st.st_size, st.st_mtime_ns):
        return known[2]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    _DIGESTS[str(path)] = (st.st_size, st.st_mtime_ns, h.hexdigest())
    return h.hexdigest()


def checksums(files: dict[str, Path]) -> dict[str, dict]:
    """{name: {"sha256": ..., "bytes": ...}} of the files, to store beside them."""
    return {name: {"sha256": file_digest(p), "bytes": Path(p).stat().st_size} for name, p in files.items()}


def damage(files: dict[str, Path], recorded: dict | None) -> str | None:
    """Why the files differ from their recorded checksums (missing, truncated, changed), or None if intact."""
    if not isinstance(recorded, dict):
        return "no checksums recorded"
    for name, path in files.items():
        want = recorded.get(name)
        if not isinstance(want, dict):
            return f"no checksum recorded for {name}"
        if not Path(path).is_file():
            return f"{name} is missing"
        size = Path(path).stat().st_size
        if size != want.get("bytes"):
            return f"{name} has {size} bytes, {want.get('bytes')} were written"
        if file_digest(path) != want.get("sha256"):
            return f"{name} does not match its sha256"
    return None


class DamagedEntry(RuntimeError):
    """A cache entry or stored result whose files are missing, truncated or changed (it was moved aside)."""


def move_aside(path: str | os.PathLike, reason: str) -> Path | None:
    """Rename a damaged file or folder to ``<name>.damaged-<time>-<pid>`` (with ``-2``, ``-3``... where this process
    moved one of that name aside in the same second) and say so on stderr; returns the new path, or None when
    another process moved it first."""
    path = Path(path)
    stem = f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    target, n = path.with_name(stem), 1
    while target.exists():
        n += 1
        target = path.with_name(f"{stem}-{n}")
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    print(f"qmia: damaged {path} ({reason}); moved to {target.name}, it will be recomputed", file=sys.stderr)
    return target


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file's content; :class:`DamagedEntry` (naming the file) if it does not parse."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DamagedEntry(f"{path} is not valid JSON ({e})") from None


def lock(key: str, timeout: float = 6 * 3600):
    """An inter-process lock on one cache key (``<cache>/locks/<key>.lock``, the ``filelock`` package).

    Re-entrant in the thread that holds it (one ``FileLock`` per path, ``is_singleton``): code that already holds a
    model's lock (e.g. :func:`qmia.multitrain.train_many` around a group) may call code that takes it again
    (:func:`qmia.train.train_defended`) without waiting on itself. Other threads and processes wait.
    """
    path = cache_root() / "locks" / f"{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path), timeout=timeout, is_singleton=True)
