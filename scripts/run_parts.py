"""Run the next missing parts of a profile's plan on this machine (a remote GPU machine) within a time budget,
then pack what a later build needs into OUT as files of at most --chunk-mb each (default 15: what comes back).

    QMIA_DATA=.device-data QMIA_COMMIT=<commit> python scripts/run_parts.py --profile paper --budget 480 \
        --seed-cache .device-cache --out $OUT

``scripts/remote_run.sh`` runs it, after installing Opacus (the DP-SGD parts) from carried wheels.

Each part runs as its own process (``python -m qmia sweep --part NAME``) and starts only when its
estimate fits the time left; a part cut off by the budget keeps every row it stored, and a rerun
skips them. ``--seed-cache DIR`` first copies the carried weights of ``DIR/models/<key>/`` (model.pt
and meta.json, from ``scripts/carry_models.py``) into the cache: those models are not trained again,
only their outputs computed, and the estimates count them as done. OUT receives ``parts.log``,
``results-NN.tgz.part`` (the results folder: rows, ROC curves, scores, part manifests; join with
``cat results-*.tgz.part | tar xz``) and ``models-NN.tgz.part``: meta.json of every model, the weights of
the seed-0 targets (for the weight statistics the book computes), then, up to ``--carry-mb``, the weights
of the models that parts still missing need (shared shadows and reference models; of a model whose weights
exceed 8 MB, a ResNet-50, its outputs), in the order of those parts, for ``scripts/carry_models.py`` to
carry to the next run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

CHUNK = 15 * 2**20
# Weights larger than this (a ResNet-50's 94 MB) are not carried: the outputs of such a model are, where a later
# part needs the model (a shadow's outputs are all its attacks read).
MAX_WEIGHTS = 8 * 2**20


def write_chunks(data: bytes, out: Path, stem: str, max_chunks: int, chunk: int = CHUNK) -> list[Path]:
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
    if len(chunks) > max_chunks:
        raise SystemExit(
            f"{stem}: {len(data) / 2**20:.0f} MB is more than {max_chunks} chunks of {chunk / 2**20:.0f} MB"
        )
    paths = []
    for i, c in enumerate(chunks):
        p = out / f"{stem}-{i:02d}.tgz.part"
        p.write_bytes(c)
        paths.append(p)
    return paths


def tar_bytes(files: list[tuple[Path, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, name in files:
            tar.add(path, arcname=name)
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--budget", type=float, default=480, help="seconds for all parts together")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "out")))
    ap.add_argument("--seed-cache", type=Path, default=None, help="carried weights to put in the cache first")
    ap.add_argument("--carry-mb", type=float, default=40, help="MB of weights of shared models to send back")
    ap.add_argument("--chunk-mb", type=float, default=CHUNK / 2**20, help="the largest file sent back, in MB")
    ap.add_argument("parts", nargs="*", help="parts to run, in order (default: every missing part, in plan order)")
    a = ap.parse_args()
    from qmia.config import get_profile
    from qmia.estimates import measured_rates, part_estimate
    from qmia.model_entries import model_dir
    from qmia.part_status import available, missing_parts, needed_models, needed_models_parts
    from qmia.parts import PART_NAMES, assign, trained_for_later
    from qmia.settings import cache_root, results_root

    start = time.monotonic()
    a.out.mkdir(parents=True, exist_ok=True)
    log = open(a.out / "parts.log", "a")

    def say(msg: str) -> None:
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    p = get_profile(a.profile)
    parts = assign(p)
    if a.seed_cache is not None:
        say(f"carried weights: {seed_cache(a.seed_cache, cache_root() / 'models')} models from {a.seed_cache}")
    if a.parts:
        todo = a.parts
    else:  # the parts with missing rows and the models-only parts they need, in plan order
        wanted = set(missing_parts(p)) | set(needed_models_parts(p))
        todo = [n for n in PART_NAMES if n in wanted]
    for name in todo:
        if name not in parts:
            raise SystemExit(f"unknown part {name!r}")
    say(f"results in {results_root()}; models in {cache_root()}; parts to run: {', '.join(todo)}")
    for name in todo:
        left = a.budget - (time.monotonic() - start)
        est = part_estimate(p, name, measured_rates()[0], have=available)
        if est > left:
            say(f"{name}: skipped, estimated {est:.0f} s > {left:.0f} s left")
            continue
        t0 = time.monotonic()
        cmd = [sys.executable, "-m", "qmia", "sweep", "--profile", a.profile, "--part", name, "--no-progress"]
        try:
            r = subprocess.run(cmd, timeout=max(left, 1), capture_output=True, text=True)
            tail = (r.stdout + r.stderr).strip().splitlines()[-3:]
            took = time.monotonic() - t0
            say(f"{name}: exit {r.returncode} after {took:.0f} s (estimated {est:.0f} s): {' | '.join(tail)}")
        except subprocess.TimeoutExpired:
            say(f"{name}: stopped at the budget after {time.monotonic() - t0:.0f} s (estimated {est:.0f} s)")
    say(f"all parts: {time.monotonic() - start:.0f} s")

    res = results_root()
    files = [(f, str(f.relative_to(res.parent))) for f in sorted(res.rglob("*")) if f.is_file()]
    chunk = int(a.chunk_mb * 2**20)
    chunks = write_chunks(tar_bytes(files), a.out, "results", 4, chunk)
    say(f"results: {len(files)} files in {len(chunks)} chunk(s)")
    models = cache_root() / "models"
    metas = [(meta, str(meta.relative_to(models.parent))) for meta in sorted(models.glob("*/meta.json"))]
    targets = [meta.parent / "model.pt" for meta, _ in metas if is_seed0_target(meta)]
    shared = [model_dir(m) / "model.pt" for m in needed_models(p)]
    for_later = [model_dir(m) / "model.pt" for n in PART_NAMES for m in trained_for_later(p, n)]  # useless otherwise
    wanted = set(shared)
    weights, total = [], 0
    for f in dict.fromkeys([f for f in for_later if f in wanted] + targets + shared):
        if f.is_file() and f.stat().st_size > MAX_WEIGHTS and f in wanted:  # too large to carry: its outputs instead
            f = f.with_name("outputs.pt")
        if f.is_file() and total + f.stat().st_size <= a.carry_mb * 2**20:
            weights.append((f, str(f.relative_to(models.parent))))
            total += f.stat().st_size
    data = tar_bytes(metas + weights)
    if len(data) > 3 * chunk:  # weights only where they fit: the metas always come back
        data, weights = tar_bytes(metas), []
    chunks = write_chunks(data, a.out, "models", 3, chunk)
    say(
        f"models: {len(metas)} metas and {len(weights)} weight or output files in {len(chunks)} chunk(s), "
        f"{len(data) / 2**20:.1f} MB"
    )
    return 0


def is_seed0_target(meta: Path) -> bool:
    config = json.loads(meta.read_text())["config"]
    return config["role"] == "target" and config["seed"] == 0


def seed_cache(source: Path, models: Path) -> int:
    """Copy ``source/models/<key>/`` (meta.json with model.pt, or with outputs.pt for a model whose weights were too
    large to carry) into the cache's ``models`` folder where the cache has no entry of that key; returns how many
    were copied."""
    import shutil

    copied = 0
    for meta in sorted((source / "models").glob("*/meta.json")):
        files = [f for f in (meta.parent / "model.pt", meta.parent / "outputs.pt") if f.is_file()]
        dest = models / meta.parent.name
        if files and not (dest / "meta.json").exists():
            dest.mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copyfile(f, dest / f.name)
            shutil.copyfile(meta, dest / "meta.json")
            copied += 1
    return copied


if __name__ == "__main__":
    sys.exit(main())
