"""Carry the weights of shared models from one remote GPU run to the next, so that no run trains them again.

A remote run starts on a bare machine, so a part retrains every shadow and reference model it shares with
parts run before (the 16 full-precision ResNet-20 reference models of LiRA serve seven parts).
``scripts/run_parts.py`` sends back, beside the results, the weights of the models that missing parts
still need; this script unpacks them into a folder that the next run carries:

    python scripts/carry_models.py /work/.device/N [...]     # the folders a run returned
    # next run: upload [".device-data", ".device-cache"], and run_parts.py --seed-cache .device-cache

It keeps only carried models (``models/<key>/model.pt`` with its ``meta.json``; ``outputs.pt`` instead of the
weights of a model too large to carry, a ResNet-50) that the profile's missing parts need, in the order of
those parts, up to ``--max-mb`` (what the upload holds beside the data), removes the rest, and prints the
missing parts' estimated GPU minutes on a bare machine and with the carried models.
Run it with no folders to prune the carried set after parts were stored.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from qmia.store import SEAL, seal, seal_damage, unsealed  # noqa: E402


def unpack(returned: Path, dest: Path) -> int:
    """Extract the carried models of ``returned/models-*.tgz.part`` into ``dest/models``: meta.json with model.pt,
    or with outputs.pt for a model whose weights were too large to carry (its meta.json then says
    ``"carried": "outputs"``, which :func:`qmia.train.is_cached` accepts without weights)."""
    parts = sorted(returned.glob("models-*.tgz.part"))
    if not parts:
        return 0
    count = 0
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts)), mode="r:gz") as tar:
        names = set(tar.getnames())
        for meta in [
            m for m in tar.getmembers() if m.isfile() and m.name.startswith("models/") and m.name.endswith("/meta.json")
        ]:
            folder = meta.name.removesuffix("meta.json")
            carried = [n for n in (folder + "model.pt", folder + "outputs.pt") if n in names]
            if not carried:
                continue
            target = dest / folder
            target.mkdir(parents=True, exist_ok=True)
            for name in carried:
                (dest / name).write_bytes(tar.extractfile(name).read())
            info = json.loads(tar.extractfile(meta).read())
            if carried == [folder + "outputs.pt"]:
                intact = SEAL in info and seal_damage(info) is None
                info = {**unsealed(info), "carried": "outputs"}
                info = seal(info) if intact else info  # a damaged seal stays damaged: is_cached reports it
            (target / "meta.json").write_text(json.dumps(info, indent=1))
            count += 1
    return count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("returned", nargs="*", type=Path, help="folders a run returned (with models-NN.tgz.part)")
    ap.add_argument("--dest", type=Path, default=Path(".device-cache"), help="the carried folder")
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--max-mb", type=float, default=40)
    a = ap.parse_args()
    from qmia.config import get_profile
    from qmia.estimates import measured_rates, part_estimate
    from qmia.part_status import missing_parts, needed_models, needed_models_parts
    from qmia.parts import PART_NAMES, carried_into
    from qmia.settings import use_stored_results

    use_stored_results(a.profile)
    for folder in a.returned:
        print(f"{folder}: {unpack(folder, a.dest)} models with weights")
    p = get_profile(a.profile)
    missing = missing_parts(p)
    needed = [m.key for m in needed_models(p, missing)]
    keep, total = set(), 0
    for key in needed:
        files = list((a.dest / "models" / key).glob("*.pt"))
        size = sum(f.stat().st_size for f in files)
        if files and total + size <= a.max_mb * 2**20:
            keep.add(key)
            total += size
    for entry in sorted((a.dest / "models").glob("*")) if (a.dest / "models").exists() else []:
        if entry.name not in keep:
            shutil.rmtree(entry)
    rates = measured_rates()[0]
    todo = [n for n in PART_NAMES if n in set(missing) | set(needed_models_parts(p))]
    # every estimate counts the models that models-only parts before a part carry to it
    into = {n: carried_into(p, n) for n in todo}
    bare = sum(part_estimate(p, n, rates, have=into[n].__contains__) for n in todo) / 60
    carried = sum(part_estimate(p, n, rates, have=lambda m, n=n: m in into[n] or m.key in keep) for n in todo) / 60
    print(
        f"{a.dest}: {len(keep)} models, {total / 2**20:.1f} MB; the {len(todo)} missing parts: "
        f"{bare:.1f} GPU-min estimated on a bare machine, {carried:.1f} with these weights"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
