"""The plan's parts as jobs: each missing part one job of a submitit job array on Slurm, or one local process.

Every part (:data:`qmia.parts.PARTS`) writes only its own rows and manifest, so parts are independent jobs. A job
runs ``python -m qmia sweep --profile P --part NAME`` into the results and cache folders that every job shares
(``QMIA_RESULTS``, ``QMIA_CACHE``). A model that several parts need (a full-precision shadow, LiRA's reference
models) is trained once: the first job to ask for it takes its lock (:func:`qmia.store.lock`) and trains it, and a
job asking for it meanwhile waits and then reuses it. That costs the waiting job at most that model's training time,
where a first wave of shared models would hold every job until the slowest shared model is done.

Jobs record themselves in ``<cache>/jobs/<profile>/``: ``<part>.json`` (executor, job id, logs; written at
submission) and ``<part>.state.json`` (running / done / stopped / failed, written by the job). :func:`job_status`
reads them; a rerun submits only the parts that are neither done nor queued or running.

    python -m qmia sweep --profile paper --executor slurm --partition gpu --gpus 1 --timeout-min 60
    python -m qmia sweep --profile smoke --executor local --jobs 2
"""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import Profile
from .settings import cache_root
from .store import atomic_write_json, read_json

EXECUTORS = ("serial", "local", "slurm")
MARGIN_MIN = 5  # a Slurm job's part gets a budget this many minutes short of the job's time limit
STOPPED = 3  # ``sweep --part`` exit status when its budget stopped it (resumable)


@dataclass(frozen=True)
class Resources:
    """What each job asks for. ``jobs``: local processes at once; ``array_parallelism``: Slurm array tasks at once;
    ``timeout_min``: each job's time limit in minutes (its part's budget is ``MARGIN_MIN`` shorter)."""

    partition: str | None = None
    gpus: int = 1
    cpus: int = 8
    mem_gb: int = 32
    timeout_min: int = 60
    array_parallelism: int = 32
    jobs: int = 2

    def __post_init__(self) -> None:
        for name in ("gpus", "cpus", "mem_gb", "timeout_min", "array_parallelism", "jobs"):
            low = 0 if name == "gpus" else 1
            if not isinstance(getattr(self, name), int) or getattr(self, name) < low:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer >= {low}; got {getattr(self, name)!r}")
        if self.timeout_min <= MARGIN_MIN:
            raise ValueError(
                f"--timeout-min must exceed {MARGIN_MIN} (the part stops that early); got {self.timeout_min}"
            )


def jobs_folder(p: Profile) -> Path:
    """Where the jobs of profile ``p`` keep their records, logs and submitit's files."""
    return cache_root() / "jobs" / p.name


def slurm_parameters(r: Resources, n_jobs: int) -> dict:
    """submitit's Slurm parameters for an array of ``n_jobs`` parts (:class:`submitit.SlurmExecutor`)."""
    params = {
        "time": r.timeout_min,
        "gpus_per_node": r.gpus,
        "cpus_per_task": r.cpus,
        "mem": f"{r.mem_gb}GB",
        "array_parallelism": min(r.array_parallelism, max(n_jobs, 1)),
        "job_name": "qmia-part",
        "signal_delay_s": 120,
    }
    if r.partition:
        params["partition"] = r.partition
    return params


def sbatch_text(p: Profile, r: Resources, n_jobs: int) -> str:
    """The sbatch script submitit would submit for the array (what ``--dry-run`` prints)."""
    from submitit.slurm.slurm import _make_sbatch_string  # the cluster extra: imported only by the executors

    params = slurm_parameters(r, n_jobs)
    return _make_sbatch_string(
        command=f"{sys.executable} -u -m submitit.core._submit {jobs_folder(p)}",
        folder=jobs_folder(p) / "%j",
        map_count=n_jobs,
        **params,
    )


def slurm_budget(r: Resources) -> float:
    """Seconds a Slurm job's part may run: its time limit less :data:`MARGIN_MIN`, so that it stops between models
    (a stop requeues nothing: the part is resubmitted by the next ``sweep --executor slurm``)."""
    return (r.timeout_min - MARGIN_MIN) * 60.0


def part_command(p: Profile, part: str, budget: float | None, passthrough: Sequence[str] = ()) -> list[str]:
    """The command one job runs."""
    cmd = [sys.executable, "-m", "qmia", "sweep", "--profile", p.name, "--part", part, "--no-progress", *passthrough]
    if budget is not None:
        cmd += ["--budget", f"{budget:.0f}"]
    return cmd


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class PartJob:
    """The callable a job runs: one part as a child process, its state written before and after. Slurm requeues it
    on preemption or time-out (submitit's ``checkpoint``); the rerun resumes the part (stored rows are skipped,
    trained models reused)."""

    def __init__(self, folder: Path, part: str, command: list[str]) -> None:
        self.folder, self.part, self.command = folder, part, command

    def _state(self, state: str, **extra) -> None:
        atomic_write_json(
            {
                "part": self.part,
                "state": state,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "time": _now(),
                **extra,
            },
            self.folder / f"{self.part}.state.json",
        )

    def __call__(self) -> int:
        self._state("running")
        rc = subprocess.run(self.command, check=False).returncode
        if rc == 0:
            self._state("done", returncode=rc)
        elif rc == STOPPED:
            self._state("stopped", returncode=rc)  # its budget stopped it between models: a rerun resumes
        else:
            self._state("failed", returncode=rc)
            raise RuntimeError(f"part {self.part}: {' '.join(self.command)} exited {rc}")
        return rc

    def checkpoint(self):  # submitit: called on preemption or time-out; the same job again
        import submitit  # the cluster extra: imported only by the executors

        self._state("requeued")
        return submitit.helpers.DelayedSubmission(PartJob(self.folder, self.part, self.command))


def _record(folder: Path, part: str, executor: str, job) -> dict:
    rec = {
        "part": part,
        "executor": executor,
        "job_id": str(job.job_id),
        "submitted": _now(),
        "host": socket.gethostname(),
        "pid": getattr(getattr(job, "_process", None), "pid", None),
        "stdout": str(job.paths.stdout),
        "stderr": str(job.paths.stderr),
    }
    atomic_write_json(rec, folder / f"{part}.json")
    (folder / f"{part}.state.json").unlink(missing_ok=True)
    return rec


def _alive(pid: int | None) -> bool:
    """Whether process ``pid`` still runs. A zombie (killed, not yet reaped: in a container whose first process does
    not reap orphans it may stay one) counts as gone."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the state letter follows the parenthesised command name in /proc/<pid>/stat
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def job_status(p: Profile, part: str) -> str:
    """'' (never submitted), 'submitted' (queued), 'running', 'done', 'stopped' (by its budget), 'failed: <log>', or
    'lost: <log>' (a local job whose process is gone without a word, e.g. killed)."""
    folder = jobs_folder(p)
    rec_path, state_path = folder / f"{part}.json", folder / f"{part}.state.json"
    if not rec_path.exists():
        return ""
    rec = read_json(rec_path)
    state = read_json(state_path) if state_path.exists() else {"state": "submitted"}
    word = state["state"]
    if (
        word in ("running", "submitted", "requeued")
        and rec["executor"] == "local"
        and rec["host"] == socket.gethostname()
    ):
        pid = state.get("pid") if word == "running" else rec.get("pid")
        if not _alive(pid):
            return f"lost: {rec['stderr']}"
    if word == "failed":
        return f"failed: {rec['stderr']}"
    return "running" if word == "requeued" else word


def to_submit(p: Profile, parts: Sequence[str], missing: Sequence[str]) -> list[str]:
    """Of ``parts``, those still ``missing`` from the store whose job is neither queued nor running."""
    return [n for n in parts if n in missing and job_status(p, n) not in ("submitted", "running")]


def submit(
    p: Profile,
    parts: Sequence[str],
    executor: str,
    r: Resources,
    passthrough: Sequence[str] = (),
    poll_seconds: float = 2.0,
) -> dict[str, str]:
    """Submit ``parts`` as jobs and return {part: job id}. ``slurm``: one job array, returning at once. ``local``:
    ``r.jobs`` processes at a time; returns when all have ended."""
    import submitit  # the cluster extra: imported only by the executors

    folder = jobs_folder(p)
    folder.mkdir(parents=True, exist_ok=True)
    if executor == "slurm":
        ex = submitit.SlurmExecutor(folder=folder / "%j")
        ex.update_parameters(**slurm_parameters(r, len(parts)))
        jobs = ex.submit_array([PartJob(folder, n, part_command(p, n, slurm_budget(r), passthrough)) for n in parts])
        return {n: _record(folder, n, executor, j)["job_id"] for n, j in zip(parts, jobs)}
    if executor != "local":
        raise ValueError(f"--executor must be one of {', '.join(EXECUTORS)}; got {executor!r}")
    ex = submitit.LocalExecutor(folder=folder / "%j")
    ex.update_parameters(timeout_min=r.timeout_min)
    queue, running, ids = list(parts), {}, {}
    while queue or running:
        while queue and len(running) < r.jobs:
            n = queue.pop(0)
            running[n] = ex.submit(PartJob(folder, n, part_command(p, n, None, passthrough)))
            ids[n] = _record(folder, n, executor, running[n])["job_id"]
            print(f"part {n}: local job {ids[n]} started; log {running[n].paths.stdout}", flush=True)
        for n, job in list(running.items()):
            if job.done():
                del running[n]
                print(f"part {n}: {job_status(p, n) or job.state}", flush=True)
        time.sleep(poll_seconds)
    return ids


def describe(r: Resources, executor: str) -> str:
    """The resources that ``executor`` uses, in words."""
    used = (
        ("jobs", "timeout_min")
        if executor == "local"
        else ("partition", "gpus", "cpus", "mem_gb", "timeout_min", "array_parallelism")
    )
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in asdict(r).items() if k in used and v is not None)
