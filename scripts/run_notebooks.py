"""Execute the book's notebooks with papermill into book/generated/.

    python scripts/run_notebooks.py --profile smoke [--data-root DIR] [--bits 2,3,6] [--seeds 0,1] [NAME ...]
    python scripts/run_notebooks.py --missing     # which notebooks have not been executed yet

Without names, every notebook of notebooks/ runs, in the book's order. Parameters not given
keep each notebook's defaults. A notebook that fails stops the run with its error (papermill
keeps the partly executed copy in book/generated/ for inspection).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
GENERATED = ROOT / "book" / "generated"

# The execution order: the readings page first (it trains most of the models the result pages reuse
# and picks the reading they show), the report last (it reads the clipping, beyond, defences and ranking pages' glue).
ORDER = (
    "readings",
    "table3_accuracy",
    "table4_prf",
    "table5_confusion",
    "fig5_roc",
    "table6_dorefa",
    "fig6_partial",
    "quantizer_clipping",
    "beyond_paper",
    "defences",
    "ranking",
    "exposure",
    "report",
)


def int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 2,3,6; got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return values


def notebook_names(requested: list[str]) -> list[str]:
    available = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    if not requested:
        return [n for n in ORDER if n in available] + sorted(available - set(ORDER))
    unknown = [n for n in requested if n.removesuffix(".ipynb") not in available]
    if unknown:
        raise SystemExit(f"unknown notebook(s) {', '.join(unknown)}; available: {', '.join(sorted(available))}")
    return [n.removesuffix(".ipynb") for n in requested]


def fold_injected_parameters(path: Path) -> None:
    """Keep papermill's injected-parameters cell off the page like the parameters cell (the page's header says the
    parameters; the executed notebook keeps the cell)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "remove-input" not in tags:
            tags.append("remove-input")
    nbformat.write(nb, path)


def describe_stored(profile: str) -> None:
    """For a profile whose results the repository stores (paper): say what the book is built from. Without
    ``QMIA_TRAIN=1`` (``make book TRAIN=1``) its pages read the stored rows only, on any machine, with no data set
    and no GPU, and a missing row is shown as pending with the part that computes it; with it, what is missing is
    computed (on a CPU, that is hours: ``python -m qmia sweep --part NAME --budget SECONDS --on-cpu`` runs it
    in steps)."""
    from qmia.settings import STORED_PROFILES, train_requested, use_stored_results

    if profile not in STORED_PROFILES:
        return
    use_stored_results(profile)
    from qmia.config import get_profile
    from qmia.part_status import missing_parts
    from qmia.parts import PART_NAMES, assign, part_extractions

    p = get_profile(profile)
    missing = missing_parts(p)
    holding = [n for n, entries in assign(p).items() if entries or part_extractions(p, n)]
    where = os.environ["QMIA_RESULTS"]
    if not missing:
        print(f"[notebooks] {profile}: every row is stored under {where}; no training", flush=True)
    elif train_requested():
        print(
            f"[notebooks] {profile}: TRAIN=1: computing the {len(missing)} missing part(s) ({', '.join(missing)}); "
            "on a CPU this takes hours",
            flush=True,
        )
    else:
        print(
            f"[notebooks] {profile}: building the {profile} profile from the rows stored under {where} "
            f"({len(holding) - len(missing)} of {len(holding)} parts stored; nothing is trained). Pending, with their "
            f"cells marked: {', '.join(n for n in PART_NAMES if n in missing)}. Compute one with "
            f"python -m qmia sweep --profile {profile} --part NAME (see --parts), or build with TRAIN=1.",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="notebooks to run (default: all)")
    ap.add_argument("--profile", default=os.environ.get("PROFILE", "smoke"), help="smoke | quick | paper")
    ap.add_argument("--data-root", default=os.environ.get("QMIA_DATA") or None, help="data root (default: $QMIA_DATA)")
    ap.add_argument("--bits", type=int_list, help="bitwidths, e.g. 2,3,6 (default: each notebook's)")
    ap.add_argument("--seeds", type=int_list, help="seeds, e.g. 0,1,2 (default: [0])")
    ap.add_argument("--output", type=Path, default=GENERATED, help="where executed notebooks go")
    ap.add_argument(
        "--missing", action="store_true", help="run nothing; list notebooks not yet executed, exit 1 if any"
    )
    a = ap.parse_args(argv)

    if a.missing:
        missing = [n for n in notebook_names([]) if not (a.output / f"{n}.ipynb").is_file()]
        print("\n".join(missing))
        return 1 if missing else 0

    import papermill as pm

    from qmia.config import PROFILES
    from qmia.preflight import check_folders, check_seeds
    from qmia.quantizers import MAX_BITS, MIN_BITS
    from qmia.settings import quiet_progress

    if a.profile not in PROFILES:
        ap.error(f"unknown profile {a.profile!r}; valid: {', '.join(PROFILES)}")
    bad_bits = [b for b in a.bits or [] if not MIN_BITS <= b <= MAX_BITS]
    if bad_bits:
        ap.error(f"--bits must be integers from {MIN_BITS} to {MAX_BITS}; got {', '.join(map(str, bad_bits))}")
    try:
        check_seeds(a.seeds or [], "--seeds")
        check_folders(a.data_root)
        a.output.mkdir(parents=True, exist_ok=True)
    except (ValueError, OSError) as e:
        ap.error(str(e))
    profile = a.profile
    describe_stored(profile)
    params: dict[str, object] = {"profile": profile}
    if a.data_root:
        params["data_root"] = str(a.data_root)
    if a.bits:
        params["bits"] = a.bits
    if a.seeds:
        params["seeds"] = a.seeds
    quiet_progress()
    a.output.mkdir(parents=True, exist_ok=True)
    total = time.perf_counter()
    for name in notebook_names(a.names):
        start = time.perf_counter()
        print(f"[notebooks] {name} ({', '.join(f'{k}={v}' for k, v in params.items())})", flush=True)
        out = a.output / f"{name}.ipynb"
        pm.execute_notebook(
            str(NOTEBOOKS / f"{name}.ipynb"),
            str(out),
            parameters=params,
            cwd=str(ROOT),
            progress_bar=False,
            kernel_name="python3",
        )
        fold_injected_parameters(out)
        print(f"[notebooks] {name}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"[notebooks] all done in {time.perf_counter() - total:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
