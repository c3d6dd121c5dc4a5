"""Seal the stored results written before records were sealed (a one-off upgrade; see :func:`qmia.store.seal`).

A row's JSON, a model's weight statistics, a part's manifest and a carried model's ``meta.json`` are sealed with
their own sha256 when written since this change; older files are not trusted blindly: this script seals a file
only when git holds it (committed, or added to the index) and it is unchanged since (what the history vouches
for), and, for a row, its ROC, score and index files match the checksums it records; carried weights must match
theirs. Anything else is
left unsealed and named, so that reading it recomputes it.

    git add results/paper && python scripts/seal_stored.py results/paper   # seal, print what was done
    python scripts/seal_stored.py results/paper --check    # only say what would be sealed
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from qmia.store import SEAL, atomic_write_json, damage, seal


def _committed_unchanged(path: Path) -> bool:
    cwd = path.parent
    tracked = (
        subprocess.run(
            ["git", "ls-files", "--error-unmatch", path.name], cwd=cwd, capture_output=True, check=False
        ).returncode
        == 0
    )
    return tracked and subprocess.run(["git", "diff", "--quiet", "--", path.name], cwd=cwd, check=False).returncode == 0


def _row_files(root: Path, row: dict) -> dict[str, Path]:
    key = row["row_key"]
    files = {"roc": root / "roc" / f"{key}.npz", "scores": root / "scores" / f"{key}.npz"}
    if row.get("index_file"):
        files["index"] = root / "index" / f"{row['index_file']}.npz"
    return files


def candidates(root: Path) -> list[tuple[Path, str | None]]:
    """(file, why it cannot be sealed or None) for every unsealed stored record under ``root``."""
    out = []
    records = [
        *sorted((root / "rows").glob("*.json")),
        *sorted((root / "weights").glob("*.json")),
        *sorted((root / "parts").glob("*.json")),
        *sorted((root / "carried").glob("*/meta.json")),
    ]
    for path in records:
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            out.append((path, "not valid JSON"))
            continue
        if not isinstance(record, dict) or SEAL in record:
            continue
        why = None if _committed_unchanged(path) else "not committed, or changed since its commit"
        if why is None and path.parent.name == "rows":
            why = damage(_row_files(root, record), record.get("checksums"))
        if why is None and path.name == "meta.json":
            why = damage({"model.pt": path.parent / "model.pt"}, {"model.pt": record.get("files", {}).get("model.pt")})
        out.append((path, why))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, help="a results folder, e.g. results/paper")
    ap.add_argument("--check", action="store_true", help="say what would be sealed; change nothing")
    a = ap.parse_args(argv)
    found = candidates(a.root.resolve())
    sealed = 0
    for path, why in found:
        if why:
            print(f"not sealed: {os.path.relpath(path)} ({why})", file=sys.stderr)
        elif not a.check:
            atomic_write_json(seal(json.loads(path.read_text())), path)
            sealed += 1
    left = sum(1 for _, why in found if why)
    print(f"{a.root}: {len(found)} unsealed records; {sealed} sealed{' (check only)' if a.check else ''}; {left} left")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
