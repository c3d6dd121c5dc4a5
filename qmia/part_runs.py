"""Running a part and what is known of runs: :func:`run_part` (train, attack, store, write the manifest; a budget
stops it between models and a rerun resumes), :func:`part_table` (each part's models, rows, estimates, measured
time and status) and :func:`verify_stored` (every stored manifest and its runs checked)."""

from __future__ import annotations

import datetime
import platform
import time

import pandas as pd
import torch

from . import carry, rederive
from .attack_registry import models_needed
from .clipping import weight_stats
from .compute import cpu_native_bf16, default_device
from .config import Profile, TrainConfig
from .estimates import (
    BENCHMARK_CARD,
    CPU_CARD,
    CPU_NIGHT_HOURS,
    _on_cpu,
    manifest_path,
    measured_rates,
    model_seconds,
    part_estimate,
    read_manifest,
)
from .experiment import evaluate
from .extraction import extract, extraction_key
from .multitrain import train_many
from .part_status import (
    available,
    is_current,
    missing_extractions,
    models_of_part,
    needed_models,
    row_counts,
)
from .parts import (
    PART_NAMES,
    assign,
    by_target,
    carried_into,
    entry_keys,
    extraction_models,
    get_part,
    part_extractions,
    part_models,
    trained_for_later,
)
from .results import load_row
from .store import DamagedEntry, atomic_write_json, seal
from .train import TrainedModel, git_commit


def part_table(p: Profile) -> pd.DataFrame:
    """One row per non-empty part: name, what it holds, models by architecture, rows, estimated GPU minutes
    (and where the rate came from; a part after models-only parts counts their models as carried), measured
    minutes and status (a models-only part is done when no part with missing rows needs its models)."""
    rates, cards = measured_rates()
    cpu_rates, cpus = measured_rates(cpu=True)
    assigned = assign(p)
    requests = {name: part_extractions(p, name) for name in assigned}
    row_counts_of = {name: row_counts(p, es, rederive.rederiving(name)) for name, es in assigned.items() if es}
    missing_of = {name: missing for name, (missing, _) in row_counts_of.items()}
    missing_of.update({name: len(missing_extractions(rs)) for name, rs in requests.items() if rs})
    wanted = set(needed_models(p, [name for name, k in missing_of.items() if k]))
    out = []
    for name, entries in assigned.items():
        later = trained_for_later(p, name)
        if not entries and not later and not requests[name]:
            continue
        counts: dict[str, int] = {}
        for m in models_of_part(p, name, entries):
            counts[m.arch] = counts.get(m.arch, 0) + 1
        n_rows = len(entry_keys(p, entries)) or len(requests[name])
        what = "extractions" if requests[name] else "rows"
        missing = missing_of.get(name, 0)
        manifest = read_manifest(name)
        carried = carried_into(p, name)
        status = (
            ("done" if not wanted.intersection(later) else "needed")
            if later
            else "done"
            if missing == 0
            else f"re-deriving: {missing} of {n_rows} {what} to go"
            if rederive.rederiving(name)
            else f"missing {missing} of {n_rows} {what}"
        )
        stale = row_counts_of[name][1] if entries and status == "done" else 0
        if stale:  # stored, but from before rows recorded their instances: `--rederive` computes them again
            status = f"done; {stale} rows without instances"
        out.append(
            {
                "part": name,
                "holds": get_part(name).title,
                "models": ", ".join(f"{v} {k}" for k, v in sorted(counts.items())),
                "rows": n_rows,
                "estimated GPU min": round(part_estimate(p, name, rates, have=carried.__contains__) / 60, 1),
                "measured GPU min": round(manifest["wall_seconds"] / 60, 1)
                if manifest and not _on_cpu(manifest)
                else None,
                "estimated CPU h": round(
                    part_estimate(p, name, cpu_rates, have=carried.__contains__, cpu=True) / 3600, 1
                ),
                "measured CPU h": round(manifest["wall_seconds"] / 3600, 2) if manifest and _on_cpu(manifest) else None,
                "status": status,
            }
        )
    df = pd.DataFrame(out)
    df["CPU can finish"] = [
        ("yes" if h <= CPU_NIGHT_HOURS else "in runs") if "resnet50" not in m else "no (ResNet-50)"
        for h, m in zip(df["estimated CPU h"], df["models"])
    ]
    df.attrs["rates_from"] = f"measured parts ({cards})" if rates else BENCHMARK_CARD
    df.attrs["cpu_rates_from"] = f"measured parts ({cpus})" if cpu_rates else CPU_CARD
    return df


MANIFEST_FIELDS = ("part", "profile", "gpu", "torch", "commit", "date", "wall_seconds", "models", "rows")


def _clean(commit: str) -> bool:
    return commit not in ("", "unknown") and not commit.endswith("-dirty")


def verify_stored(p: Profile) -> list[str]:
    """Problems with the stored parts of profile ``p`` (empty when every manifest is complete and true): each
    manifest has its fields, names a clean commit, and lists only rows that are stored, intact, of this profile
    and computed at that commit."""
    problems = []
    for name in PART_NAMES:
        try:
            m = read_manifest(name)
        except DamagedEntry as e:
            problems.append(f"{name}: {e}")
            continue
        if m is None:
            continue
        lacking = [f for f in MANIFEST_FIELDS if f not in m]
        if lacking:
            problems.append(f"{name}: manifest lacks {', '.join(lacking)}")
            continue
        if m["profile"] != p.name or m["part"] != name:
            problems.append(f"{name}: manifest is of part {m['part']!r}, profile {m['profile']!r}")
        if not _clean(m["commit"]):
            problems.append(f"{name}: manifest commit {m['commit']!r} is not a clean commit")
        commits = {m["commit"], *(r.get("commit") for r in m.get("runs", []))}
        for run in m.get("runs", []):
            if not _clean(run.get("commit", "")):
                problems.append(f"{name}: a run's commit {run.get('commit')!r} is not a clean commit")
        for key in m["rows"]:
            row = load_row(key)
            if row is None:
                problems.append(f"{name}: row {key} is missing or damaged")
            elif row.get("profile") != p.name or row.get("commit") not in commits:
                problems.append(f"{name}: row {key} is of profile {row.get('profile')!r}, commit {row.get('commit')!r}")
    return problems


def _gpu_name(device) -> str:
    dev = torch.device(device) if device is not None else None
    if torch.cuda.is_available() and (dev is None or dev.type == "cuda"):
        return torch.cuda.get_device_name(dev if dev is not None and dev.index is not None else 0)
    return f"CPU ({platform.processor() or platform.machine()})"


def _machine(device) -> dict:
    """Where a part runs, as its manifest records it: the GPU or CPU, torch's threads, and on a CPU whether bf16 is
    native."""

    out = {"gpu": _gpu_name(device), "threads": torch.get_num_threads()}
    if out["gpu"].startswith("CPU"):
        out["cpu_native_bf16"] = cpu_native_bf16()
    return out


def run_part(
    p: Profile, name: str, data_root=None, device=None, progress: bool | None = None, budget: float | None = None
) -> dict:
    """Train and attack everything part ``name`` holds (stored rows are skipped), then write its manifest.

    ``budget``: seconds from now after which no model starts whose estimated training time does not fit in what is
    left (:func:`model_seconds`); the targets whose models are all trained are attacked and their rows stored, the
    finished models' weights are kept in the results folder for the next run (:func:`qmia.carry.keep`), and the
    manifest says ``complete: false``. A rerun (here or on another machine with the results folder) seeds the cache
    with those weights (:func:`qmia.carry.seed`) and goes on. Returns the manifest: {part, profile, gpu, threads,
    torch, commit, date, wall_seconds, estimate_seconds, models, rows, complete, runs}."""

    entries = assign(p)[get_part(name).name]
    later = trained_for_later(p, name)
    requests = part_extractions(p, name)
    if not entries and not later and not requests:
        raise ValueError(f"part {name!r} holds nothing of profile {p.name!r}")
    start = time.perf_counter()
    deadline = None if budget is None else time.monotonic() + budget
    on_cpu = (torch.device(device) if device is not None else default_device()).type == "cpu"
    keys = entry_keys(p, entries)
    again = rederive.rederiving(name)  # rows stored without their instances are computed again (qmia.rederive)
    missing = {c for c, k in keys if not is_current(k, again)}
    todo = {c: gs for c, gs in by_target(entries).items() if c in missing}
    to_extract = missing_extractions(requests)
    models = later or part_models(p, [(c, g) for c, gs in todo.items() for g in gs]) or extraction_models(to_extract)
    carry.seed(models)
    trained_before = {m for m in models if available(m)}  # carried weights count as trained elsewhere
    to_train = [m for m in models if m not in trained_before]
    rates = measured_rates(cpu=on_cpu)[0]
    done = [0]

    def may_start(chunk: list[TrainConfig]) -> bool:
        if on_cpu and done[0]:  # what is trained so far reaches the next run even if this one is killed
            carry.keep(p)
        need = sum(model_seconds(m, on_cpu) * rates.get(m.arch, 1.0) for m in chunk)
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and need > left:
            print(
                f"part {name}: budget: {chunk[0].label} needs about {need / 60:.0f} min, {max(left, 0) / 60:.0f} min "
                f"left; stopping after {done[0]} of {len(to_train)} models",
                flush=True,
            )
            return False
        done[0] += len(chunk)
        print(
            f"part {name}: model {done[0]} of {len(to_train)}: {chunk[0].label}"
            + (f" (+{len(chunk) - 1})" if len(chunk) > 1 else "")
            + f"; about {need / 60:.1f} min; {(time.perf_counter() - start) / 60:.0f} min elapsed"
            + (f", {left / 60:.0f} min of the budget left" if left is not None else ""),
            flush=True,
        )
        return True

    train_many(models, data_root, device, progress, may_start=may_start if (budget is not None or on_cpu) else None)
    clip_model = p.config(*p.resnet, seed=0)
    if clip_model in models and available(clip_model):  # the clipping pages read these weights' statistics
        weight_stats(clip_model, data_root)
    attacked = 0
    for c, gs in todo.items():
        if all(available(m) for ms in models_needed(c, gs, p.lira_refs).values() for m in ms):
            if again:  # the target's former rows are kept under superseded/, then computed from these models
                rederive.supersede([k for t, k in keys if t == c])
            evaluate(c, gs, profile=p, data_root=data_root, device=device, progress=progress)
            attacked += 1
    for c, access, b in to_extract:  # each extraction whose target is trained (a budget may have stopped the others)
        if available(c):
            extract(TrainedModel(c), access, b, None, data_root, device, progress=bool(progress))
            attacked += 1
    wall = time.perf_counter() - start
    stored = sorted(k for _, k in keys if is_current(k, again))
    not_extracted = set(missing_extractions(requests))
    extracted = sorted(extraction_key(*r) for r in requests if r not in not_extracted)
    complete = len(stored) == len(keys) and all(available(m) for m in later) and len(extracted) == len(requests)
    trained = []
    for m in models:
        if m in trained_before or not available(m):
            continue
        meta = TrainedModel(m).meta
        trained.append(
            {
                "label": m.label,
                "key": m.key,
                "arch": m.arch,
                "defence": m.defence.kind,
                "epochs": m.epochs,
                "n_train": m.n_per_split,
                "trained_with": meta.get("trained_with", 1),
                "seconds": round(meta["train_seconds"] / meta.get("trained_with", 1), 3),
                "test_acc": meta["accuracy"].get("target_out"),
                "device": meta.get("device", ""),
                "precision": meta.get("precision", ""),
            }
        )
    machine = _machine(device)
    run = {
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **machine,
        "wall_seconds": round(wall, 1),
        "estimate_seconds": 0.0,
        "models_trained": len(trained),
        "targets_attacked": attacked,
        "budget_seconds": budget,
    }
    old = read_manifest(name)
    if old and not trained and not attacked:  # a rerun that found everything stored keeps the first run's record
        return old
    if old is not None and old.get("complete", True) is False:  # resuming: add this run to the record
        runs = old.get("runs", []) + [run]
        old_models = [x for x in old["models"] if x["key"] not in {t["key"] for t in trained}]
        trained, wall = old_models + trained, old["wall_seconds"] + wall
    else:
        runs = [run]
    estimate = part_estimate(p, name, rates, have=trained_before.__contains__, cpu=on_cpu)
    run["estimate_seconds"] = round(estimate, 1)
    manifest = {
        "part": name,
        "profile": p.name,
        **machine,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "commit": runs[0]["commit"],
        "date": run["date"],
        "wall_seconds": round(wall, 1),
        "estimate_seconds": runs[0]["estimate_seconds"] or round(estimate, 1),
        "train_seconds": round(sum(t["seconds"] for t in trained), 1),
        "models": trained,
        "rows": stored,
        **({"extractions": extracted} if requests else {}),
        "complete": complete,
        "runs": runs,
    }
    if not trained and not attacked and not complete:  # a run that did nothing (no budget left) leaves no record
        return manifest
    atomic_write_json(seal(manifest), manifest_path(name))
    if on_cpu:  # what a CPU run trained reaches the next run, on any machine (a GPU lease carries its own)
        carried, size = carry.keep(p)
        print(f"part {name}: {len(carried)} models' weights carried in {carry.carried_root()} ({size / 2**20:.1f} MB)")
    return manifest
