"""Command line: ``python -m qmia train|run|sweep ...``; see ``python -m qmia --help``."""

from __future__ import annotations

import argparse
import sys

from .attack_registry import ATTACKS
from .commands import cmd_run, cmd_sweep, cmd_train
from .config import PRECISIONS, PROFILES
from .data import DATASETS, DatasetUnavailable
from .executor import EXECUTORS, MARGIN_MIN, Resources
from .extraction import ACCESS
from .models import ARCHS
from .parts import PART_NAMES
from .preflight import MAX_LABEL_QUERIES, MAX_LIRA_REFS, check_device, check_folders
from .quantizers import MODES, PAPER_READINGS, QUANTIZERS
from .reference_attacks import RMIA_GAMMA, RMIA_OFFLINE_A
from .settings import check as check_environment
from .settings import use_stored_results
from .store import DamagedEntry, remove_stale_parts_once


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"--budget must be a positive number of seconds; got {text!r}")
    return value


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1000,5000; got {text!r}")
    return values


def _access(text: str) -> list[str]:
    values = [x for x in text.replace(" ", "").split(",") if x]
    bad = [x for x in values if x not in ACCESS]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"unknown access level {', '.join(bad) or text!r}; valid: {', '.join(ACCESS)}")
    return values


def _zero_point(text: str) -> int | str:
    if text == "centred":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"zero point must be an integer or 'centred'; got {text!r}") from None


ON_CPU_HELP = "train the paper profile's paper-scale models on a CPU (hours; refused without this option)"


def add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--dataset", choices=DATASETS, help="default: the profile's dataset for --arch")
    g.add_argument("--arch", choices=tuple(ARCHS), default="lenet")
    g.add_argument(
        "--quant", choices=QUANTIZERS, default="none", help="none = full precision; mia = the paper's quantizer"
    )
    g.add_argument("--bits", type=int, help="weight bitwidth, 1..32 (the paper: 4, 8, 16)")
    g.add_argument("--act-bits", type=int, help="DoReFa activation bitwidth (default: --bits)")
    g.add_argument("--layers", default="all", help="'all' or 'last:K' (e.g. last:5)")
    g.add_argument(
        "--reading",
        choices=tuple(PAPER_READINGS),
        default="literal",
        help="which reading of the paper's quantizer (see the book's 'Which quantizer?' page)",
    )
    g.add_argument(
        "--zero-point",
        type=_zero_point,
        default=None,
        help="MIA zero point z: an integer or 'centred' (2^(b-1)); default: the reading's (literal: 2)",
    )
    g.add_argument("--mode", choices=MODES, default="ste", help="MIA training: ste (latent weights), project, ptq")
    g.add_argument("--profile", choices=tuple(PROFILES), default="smoke")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="compute precision of training and outputs: bf16 (autocast) or fp32 (default: the profile's; "
        "paper: bf16, as its stored rows)",
    )
    g.add_argument("--data-root", help="where datasets are (default: $QMIA_DATA or data/)")
    g.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    g.add_argument("--on-cpu", action="store_true", help=ON_CPU_HELP)
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m qmia", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train and cache one model; prints where it is")
    add_model_options(t)
    t.set_defaults(func=cmd_train)
    r = sub.add_parser("run", help="train what is missing, attack, print a summary (rows kept under results/)")
    add_model_options(r)
    r.add_argument(
        "--attack",
        choices=(*ATTACKS, "all", "extraction"),
        default="all",
        help="; ".join(f"{g.name}: {g.description}" for g in ATTACKS.values())
        + "; all: every membership attack above; extraction: model extraction (a surrogate trained on the target's "
        "answers; --queries, --access, --surrogate-arch)",
    )
    r.add_argument(
        "--queries",
        type=_ints,
        help="extraction: query budgets, e.g. 1000,5000,15000, each 1 to the attacker's pool (2 x n_per_split) "
        "(default: 1000, 5000, 15000 scaled to the pool: 1/30, 1/6 and 1/2 of it, as at paper scale)",
    )
    r.add_argument(
        "--access",
        type=_access,
        default=list(ACCESS),
        help=f"extraction: what the target returns, any of {', '.join(ACCESS)} (default: all three)",
    )
    r.add_argument(
        "--surrogate-arch", choices=ARCHS, help="extraction: the surrogate's architecture (default: the target's)"
    )
    r.add_argument(
        "--lira-refs",
        type=int,
        help=f"LiRA's (and RMIA's) reference models, 2 to {MAX_LIRA_REFS} (default: the profile's)",
    )
    r.add_argument("--rmia-gamma", type=float, default=RMIA_GAMMA, help="RMIA's gamma, > 0 (default %(default)s)")
    r.add_argument(
        "--rmia-offline-a", type=float, default=RMIA_OFFLINE_A, help="RMIA's offline a, in [0, 1] (default %(default)s)"
    )
    r.add_argument("--rmia-population", type=int, help="RMIA's population points (default: all of the attacker's data)")
    r.add_argument(
        "--label-queries",
        type=int,
        default=16,
        help=f"queries per example of the label-only augmentation attack, 1 to {MAX_LABEL_QUERIES} (each holds "
        "~1 MB of augmentation draws per 60,000 images; default %(default)s)",
    )
    r.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    r.set_defaults(func=cmd_run)
    w = sub.add_parser("sweep", help="compute every model and attack the book needs (no Jupyter needed)")
    w.add_argument("--profile", choices=tuple(PROFILES), default="smoke")
    w.add_argument("--data-root", help="where datasets are (default: $QMIA_DATA or data/)")
    w.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    w.add_argument("--on-cpu", action="store_true", help=ON_CPU_HELP)
    w.add_argument("--dry-run", action="store_true", help="list the plan, train nothing")
    w.add_argument("--parts", action="store_true", help="list the plan's parts: estimated GPU minutes, which are done")
    w.add_argument(
        "--part",
        choices=PART_NAMES,
        action="append",
        metavar="NAME",
        help="run a part of the plan (stored rows are skipped); repeat for several, run in order; "
        f"valid: {', '.join(PART_NAMES)}",
    )
    w.add_argument(
        "--budget",
        type=_seconds,
        metavar="SECONDS",
        help="with --part: start no model that would not finish within this many seconds; what was trained "
        "is kept (results/<profile>/carried/) and a rerun resumes, here or on another machine",
    )
    w.add_argument(
        "--rederive",
        action="store_true",
        help="with --part: compute again the part's rows stored without their trained instances (from before rows "
        "recorded them), keeping the former rows under results/<profile>/superseded/; later runs of the part go on",
    )
    w.add_argument("--no-progress", action="store_true", help="hide progress bars")
    j = w.add_argument_group("jobs", "run the parts as jobs (submitit; pip install -e '.[cluster]')")
    j.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="serial",
        help="serial: one process, here (default); local: each part a local process, --jobs at a time; "
        "slurm: each missing part one task of a Slurm job array",
    )
    d = Resources()  # the defaults live there; an option left out is None here, so that a given one can be told
    j.add_argument("--jobs", type=int, help=f"local: parts running at once (default {d.jobs})")
    j.add_argument("--partition", help="slurm: the partition")
    j.add_argument("--gpus", type=int, help=f"slurm: GPUs per job (default {d.gpus})")
    j.add_argument("--cpus", type=int, help=f"slurm: CPUs per job (default {d.cpus})")
    j.add_argument("--mem-gb", type=int, help=f"slurm: memory per job in GB (default {d.mem_gb})")
    j.add_argument(
        "--timeout-min",
        type=int,
        help="each job's time limit in minutes; its part stops cleanly "
        f"{MARGIN_MIN} min before and is requeued (default: slurm 60, local 7 days)",
    )
    j.add_argument("--array-parallelism", type=int, help=f"slurm: array tasks at once (default {d.array_parallelism})")
    w.set_defaults(func=cmd_sweep)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_environment()
        if getattr(args, "profile", None):
            use_stored_results(args.profile)
        check_folders(getattr(args, "data_root", None))
        check_device(getattr(args, "device", None))
        remove_stale_parts_once()
        return args.func(args)
    except (DatasetUnavailable, DamagedEntry) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        parser.error(str(e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
