"""Command line: ``python -m qmia train|run|sweep ...``; see ``python -m qmia --help``."""

from __future__ import annotations

import argparse
import json
import sys
import time

import pandas as pd

from . import executor as ex
from .attack_registry import ATTACKS, AttackParams
from .config import PRECISIONS, PROFILES, get_profile
from .data import DATASETS, DatasetUnavailable
from .executor import EXECUTORS, MARGIN_MIN, Resources, job_status, jobs_folder
from .experiment import evaluate
from .models import ARCHS
from .part_runs import part_table, run_part, verify_stored
from .part_status import missing_parts, needed_models_parts
from .parts import PART_NAMES
from .plan import book_plan, count_models, run_plan
from .preflight import (
    MAX_LABEL_QUERIES,
    MAX_LIRA_REFS,
    check_device,
    check_folders,
    check_output_file,
    check_size,
    confirm_cpu_scale,
)
from .quantizers import MODES, PAPER_READINGS, QUANTIZERS, QuantSpec
from .reference_attacks import RMIA_GAMMA, RMIA_OFFLINE_A
from .results import export_csv
from .settings import check as check_environment
from .settings import use_stored_results
from .store import DamagedEntry, remove_stale_parts_once
from .train import train


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"--budget must be a positive number of seconds; got {text!r}")
    return value


def _zero_point(text: str) -> int | str:
    if text == "centred":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"zero point must be an integer or 'centred'; got {text!r}") from None


JOB_OPTIONS = ("jobs", "partition", "gpus", "cpus", "mem_gb", "timeout_min", "array_parallelism")  # sweep's job options
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


def spec_from_args(a: argparse.Namespace) -> QuantSpec:
    if a.quant == "none":
        if a.bits is not None:
            raise ValueError("--bits needs --quant mia or --quant dorefa (--quant none is full precision)")
        return QuantSpec()
    if a.bits is None:
        raise ValueError(f"--quant {a.quant} needs --bits (an integer from 1 to 32)")
    kw = {"layers": a.layers, "act_bits": a.act_bits}
    if a.quant == "mia":
        kw.update(PAPER_READINGS[a.reading], mode=a.mode)
        if a.zero_point is not None:
            kw["zero_point"] = a.zero_point
    return QuantSpec(a.quant, a.bits, **kw)


def config_from_args(a: argparse.Namespace):
    profile = get_profile(a.profile)
    return profile.config(a.arch, a.dataset, spec_from_args(a), seed=a.seed, precision=a.precision or profile.precision)


def cmd_train(a: argparse.Namespace) -> int:
    config = config_from_args(a)
    confirm_cpu_scale(a.profile, a.device, a.on_cpu)
    start = time.perf_counter()
    m = train(config, a.data_root, a.device, progress=not a.no_progress)
    acc = m.meta["accuracy"]
    print(
        f"{config.label}: {'trained' if m.trained_here else 'reused cache'} in {time.perf_counter() - start:.1f} s; "
        f"train acc {acc['target_in']:.3f}, test acc {acc['target_out']:.3f}\n{m.path}"
    )
    return 0


SUMMARY_COLUMNS = [
    "attack",
    "attack_acc",
    "auc",
    "auc_lo",
    "auc_hi",
    "tpr_at_0.1%fpr",
    "tpr_at_1%fpr",
    "f1_member",
    "advantage",
]


def cmd_run(a: argparse.Namespace) -> int:
    config = config_from_args(a)
    check_size(
        a.label_queries, "--label-queries", 1, MAX_LABEL_QUERIES, " (each query holds ~1 MB of draws per 60,000 images)"
    )
    check_size(a.lira_refs, "--lira-refs", 2, MAX_LIRA_REFS, " (each is a model to train)")
    check_size(a.rmia_population, "--rmia-population", 1, 10**7)
    if a.json:
        check_output_file(a.json, "--json")
    confirm_cpu_scale(a.profile, a.device, a.on_cpu)
    params = AttackParams(
        rmia_gamma=a.rmia_gamma,
        rmia_offline_a=a.rmia_offline_a,
        rmia_population=a.rmia_population,
        label_queries=a.label_queries,
    )
    start = time.perf_counter()
    df = evaluate(
        config,
        a.attack,
        profile=get_profile(a.profile),
        lira_refs=a.lira_refs,
        params=params,
        data_root=a.data_root,
        device=a.device,
        progress=not a.no_progress,
    )
    first = df.iloc[0]
    print(
        f"{config.label}: target train acc {first.target_train_acc:.3f}, test acc {first.target_test_acc:.3f}; "
        f"shadow test acc {first.shadow_test_acc:.3f}; {time.perf_counter() - start:.1f} s"
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df[SUMMARY_COLUMNS].round(3).to_string(index=False))
    if a.json:
        rows = json.loads(df.to_json(orient="records"))
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
        print(f"wrote {len(rows)} rows to {a.json}")
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    profile = get_profile(a.profile)
    if a.executor != "serial" and not a.parts:
        return _sweep_jobs(profile, a)
    given = [f"--{name.replace('_', '-')}" for name in JOB_OPTIONS if getattr(a, name) is not None]
    if given:
        raise ValueError(f"{', '.join(given)} need --executor local or --executor slurm")
    if not (a.parts or a.dry_run):
        confirm_cpu_scale(profile.name, a.device, a.on_cpu)
    if a.parts or a.part:
        return _sweep_parts(profile, a)
    plan = book_plan(profile)
    n_models = len({c for c, _ in plan})
    counts = count_models(profile)
    print(
        f"profile {profile.name}: {n_models} target configurations, {sum(counts.values())} models to train "
        f"({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}); {profile.description}"
    )
    if a.dry_run:
        for c, attacks in plan:
            print(f"  {c.label}: {', '.join(attacks)}")
        return 0
    df = run_plan(profile, a.data_root, a.device, progress=not a.no_progress)
    path = export_csv()
    print(f"{len(df)} result rows in {df.attrs['seconds']:.0f} s; all rows in {path}")
    return 0


def _sweep_jobs(profile, a: argparse.Namespace) -> int:
    """``sweep --executor local|slurm``: every missing part (or ``--part``) as a job; see :mod:`qmia.executor`."""
    if a.executor == "local" and not a.dry_run:
        confirm_cpu_scale(profile.name, a.device, a.on_cpu)  # local jobs train here
    given = {name: getattr(a, name) for name in JOB_OPTIONS if getattr(a, name) is not None}
    r = ex.Resources(**{"timeout_min": 60 if a.executor == "slurm" else 7 * 24 * 60, **given})
    missing = needed_models_parts(profile) + missing_parts(profile)
    wanted = a.part or missing
    table = part_table(profile).set_index("part")
    submit = ex.to_submit(profile, wanted, missing)
    for n in wanted:
        if n not in submit:
            print(f"part {n}: {'done' if n not in missing else ex.job_status(profile, n)}; not submitted")
    passthrough = [
        *(["--data-root", a.data_root] if a.data_root else []),
        *(["--device", a.device] if a.device else []),
        *(["--on-cpu"] if a.on_cpu else []),
    ]
    print(
        f"{len(submit)} part(s) to submit as {a.executor} jobs ({ex.describe(r, a.executor)}); "
        f"records in {ex.jobs_folder(profile)}"
    )
    budget = ex.slurm_budget(r) if a.executor == "slurm" else None
    for n in submit:
        est = (
            f"about {table.loc[n, 'estimated GPU min']} GPU min, {table.loc[n, 'estimated CPU h']} CPU h; "
            if n in table.index
            else ""
        )
        print(f"  {n}: {est}" + " ".join(ex.part_command(profile, n, budget, passthrough)[2:]))
    if a.dry_run or not submit:
        if a.dry_run and a.executor == "slurm" and submit:
            print(ex.sbatch_text(profile, r, len(submit)))
        return 0
    ids = ex.submit(profile, submit, a.executor, r, passthrough)
    if a.executor == "slurm":
        print(
            f"submitted job array {next(iter(ids.values())).split('_')[0]}: {len(ids)} parts; see where they stand "
            f"with python -m qmia sweep --profile {profile.name} --parts"
        )
        return 0
    states = {n: ex.job_status(profile, n) for n in submit}
    bad = {n: s for n, s in states.items() if s != "done"}
    for n, s in bad.items():
        print(f"part {n}: {s}", file=sys.stderr)
    return 0 if not bad else ex.STOPPED if all(s == "stopped" for s in bad.values()) else 1


def _sweep_parts(profile, a: argparse.Namespace) -> int:
    if a.part:
        start = time.perf_counter()
        for name in a.part:
            left = None if a.budget is None else a.budget - (time.perf_counter() - start)
            t0 = time.perf_counter()
            m = run_part(profile, name, a.data_root, a.device, progress=not a.no_progress, budget=left)
            state = "complete" if m.get("complete", True) else "stopped by the budget; rerun to resume"
            print(
                f"part {name}: {len(m['rows'])} rows stored; {len(m['models'])} models trained on {m['gpu']}; "
                f"{time.perf_counter() - t0:.0f} s this run (estimated {m['estimate_seconds']:.0f} s); {state}"
            )
            if not m.get("complete", True):
                return 3
        return 0
    df = part_table(profile)
    if jobs_folder(profile).is_dir():  # parts submitted as jobs: where each stands
        df["job"] = [job_status(profile, n) if s != "done" else "" for n, s in zip(df["part"], df["status"])]
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 60):
        print(df.drop(columns="holds").to_string(index=False))
    missing = df[df["status"] != "done"]
    print(
        f"estimates at rates from {df.attrs['rates_from']}; {len(df) - len(missing)} of {len(df)} parts done"
        + (f"; next: {missing.iloc[0]['part']}" if len(missing) else "")
    )
    problems = verify_stored(profile)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 1 if problems else 0


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
        choices=(*ATTACKS, "all"),
        default="all",
        help="; ".join(f"{g.name}: {g.description}" for g in ATTACKS.values()),
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
