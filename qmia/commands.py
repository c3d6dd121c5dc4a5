"""What each command of ``python -m qmia`` does (:mod:`qmia.cli` parses the arguments): train one model, run
the attacks on one target, or sweep the book's plan (its parts, as jobs or here).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import pandas as pd

from . import executor as ex
from . import rederive
from .attack_registry import AttackParams
from .config import get_profile
from .executor import job_status, jobs_folder
from .experiment import evaluate
from .extraction import check_request, extract, scaled_budgets
from .part_runs import part_table, run_part, verify_stored
from .part_status import missing_parts, needed_models_parts, stale_rows
from .parts import assign
from .plan import book_plan, count_models, run_plan
from .preflight import (
    MAX_LABEL_QUERIES,
    MAX_LIRA_REFS,
    check_output_file,
    check_size,
    confirm_cpu_scale,
)
from .quantizers import PAPER_READINGS, QuantSpec
from .results import export_csv
from .train import train

JOB_OPTIONS = ("jobs", "partition", "gpus", "cpus", "mem_gb", "timeout_min", "array_parallelism")  # sweep's job options


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


EXTRACTION_COLUMNS = ["access", "budget", "surrogate_arch", "test_acc", "fidelity", "fidelity_lo", "fidelity_hi"]


def _extraction(a: argparse.Namespace, config) -> int:
    """``run --attack extraction``: a surrogate per access level and query budget (:mod:`qmia.extraction`)."""
    pool = 2 * config.n_per_split
    budgets = a.queries or list(scaled_budgets(pool))
    for access in a.access:
        for b in budgets:
            check_request(access, b, pool, a.surrogate_arch)
    if a.json:
        check_output_file(a.json, "--json")
    confirm_cpu_scale(a.profile, a.device, a.on_cpu)
    start = time.perf_counter()
    target = train(config, a.data_root, a.device, progress=not a.no_progress)
    rows = [
        extract(target, access, b, a.surrogate_arch, a.data_root, a.device, progress=not a.no_progress)
        for access in a.access
        for b in budgets
    ]
    df = pd.DataFrame(rows)
    print(
        f"{config.label}: target test acc {rows[0]['target_test_acc']:.3f}; {len(rows)} surrogates "
        f"({time.perf_counter() - start:.1f} s); fidelity on {rows[0]['n_test']} held-out examples"
    )
    _summary(df[EXTRACTION_COLUMNS], rows, a.json)
    return 0


def _summary(table: pd.DataFrame, rows: list[dict], json_path: str | None) -> None:
    """Print the summary table (3 decimals) and, with ``--json``, write every row."""
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(rows, f, indent=1)
        print(f"wrote {len(rows)} rows to {json_path}")


def cmd_run(a: argparse.Namespace) -> int:
    config = config_from_args(a)
    if a.attack == "extraction":
        return _extraction(a, config)
    if a.queries is not None or a.surrogate_arch is not None:
        raise ValueError("--queries and --surrogate-arch are options of --attack extraction")
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
    _summary(df[SUMMARY_COLUMNS], json.loads(df.to_json(orient="records")), a.json)
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    profile = get_profile(a.profile)
    if a.rederive and not a.part:
        raise ValueError("--rederive needs --part NAME (the parts whose rows to compute again; see --parts)")
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


def _start_rederiving(profile, names: list[str]) -> None:
    """``sweep --part NAME --rederive``: begin re-deriving each named part that has rows without instances."""
    assigned = assign(profile)
    for name in names:
        stale = stale_rows(profile, assigned[name]) if assigned[name] else 0
        if rederive.rederiving(name):
            print(f"part {name}: re-deriving, begun earlier; {stale} rows without instances to go")
        elif not stale:
            print(f"part {name}: every stored row records its trained instances; nothing to re-derive")
        else:
            rederive.start(name)
            print(
                f"part {name}: re-deriving its {stale} rows stored without their trained instances; the former rows "
                f"are kept in {rederive.superseded_root()}"
            )


def _sweep_parts(profile, a: argparse.Namespace) -> int:
    if a.part:
        if a.rederive:
            _start_rederiving(profile, a.part)
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
        done = df["status"].str.startswith("done")
        df["job"] = [job_status(profile, n) if not d else "" for n, d in zip(df["part"], done)]
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 60):
        print(df.drop(columns="holds").to_string(index=False))
    missing = df[~df["status"].str.startswith("done")]
    stale = df["status"].str.contains("without instances").sum()
    print(
        f"estimates at rates from {df.attrs['rates_from']}; {len(df) - len(missing)} of {len(df)} parts done"
        + (f" ({stale} with rows stored without their trained instances: --part NAME --rederive)" if stale else "")
        + (f"; next: {missing.iloc[0]['part']}" if len(missing) else "")
    )
    problems = verify_stored(profile)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    return 1 if problems else 0
