"""Parts as jobs (:mod:`qmia.executor`): local processes in parallel store the rows of a serial run, a killed job
leaves the store consistent and its rerun completes it, and a Slurm job array is submitted as submitit would submit
it (up to ``sbatch``, which a stand-in answers here: no scheduler)."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("submitit")

from qmia import executor
from qmia.config import get_profile

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("sweep-low-literal-centred", "sweep-low-min-anchored-dorefa", "ranking-high-literal-centred")
VOLATILE = {"created", "seconds", "sealed_sha256", "checksums"}  # when and how fast, not what


def _env(base: Path) -> dict[str, str]:
    return {
        **os.environ,
        "QMIA_CACHE": str(base / "cache"),
        "QMIA_RESULTS": str(base / "results"),
        "QMIA_PROGRESS": "0",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
        "QMIA_COMMIT": "0123456",
    }  # a clean commit for the manifests, whatever the checkout's state


def _sweep(base: Path, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-m", "qmia", "sweep", "--profile", "smoke", *args],
        env=_env(base),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        **kw,
    )
    if check:
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _rows(base: Path) -> dict[str, dict]:
    out = {}
    for f in sorted((base / "results" / "rows").glob("*.json")):
        row = json.loads(f.read_text())
        out[f.stem] = {k: v for k, v in row.items() if k not in VOLATILE}
    return out


def _part_args(parts=PARTS) -> list[str]:
    return [a for n in parts for a in ("--part", n)]


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("serial")
    _sweep(base, *_part_args(), "--no-progress")
    return _rows(base)


def test_local_jobs_in_parallel_store_the_rows_of_a_serial_run(serial, tmp_path):
    out = _sweep(tmp_path, "--executor", "local", "--jobs", "2", *_part_args())
    assert len(re.findall(r"local job \d+ started", out.stdout)) == 3, out.stdout
    rows = _rows(tmp_path)
    assert len(rows) == len(serial) == 20
    assert rows == serial  # every field but when and how fast, the trained instances of every model included
    for n in PARTS:
        assert executor.job_status(get_profile("smoke"), n) in ("", "done")  # another cache: none here
    listing = _sweep(tmp_path, "--parts").stdout
    assert listing.splitlines()[0].split()[-1] == "job"  # where each part's job stands
    again = _sweep(tmp_path, "--executor", "local", "--jobs", "2", *_part_args())
    assert "0 part(s) to submit" in again.stdout and again.stdout.count("done; not submitted") == 3


def _first(paths, timeout: float = 300.0):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        found = list(paths())
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("nothing appeared")


def test_a_killed_job_leaves_the_store_consistent_and_its_rerun_completes_it(serial, tmp_path):
    part = "ranking-high-literal-centred"
    proc = subprocess.Popen(
        [sys.executable, "-m", "qmia", "sweep", "--profile", "smoke", "--executor", "local", "--part", part],
        env=_env(tmp_path),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    rows = tmp_path / "results" / "rows"
    _first(lambda: rows.glob("*.json") if rows.is_dir() else [])  # the part is attacking its first targets
    os.killpg(proc.pid, signal.SIGKILL)  # the submitting command, the job and its part, at once
    proc.wait()
    time.sleep(0.5)
    stored = _rows(tmp_path)
    assert 0 < len(stored) < 8, "the kill came after the part had finished"
    assert all(serial[k] == v for k, v in stored.items())  # what was stored before the kill is whole and right
    env = _env(tmp_path)
    code = f"from qmia import executor, config; print(executor.job_status(config.get_profile('smoke'), {part!r}))"
    deadline = time.monotonic() + 20  # SIGKILL is delivered asynchronously: give the processes time to die
    while True:
        status = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        if status.startswith("lost: ") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status.startswith("lost: ") and status.strip().endswith(".err"), status  # named, with its log
    listing = _sweep(tmp_path, "--parts").stdout
    assert "lost: " in listing
    out = _sweep(tmp_path, "--executor", "local", "--part", part)
    assert "1 part(s) to submit" in out.stdout
    want = {k: v for k, v in serial.items() if v["target_key"] in {r["target_key"] for r in _rows(tmp_path).values()}}
    assert _rows(tmp_path) == want and len(want) == 8


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_killed_but_unreaped_job_counts_as_gone():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert executor._alive(proc.pid)
    proc.kill()
    deadline = time.monotonic() + 10
    while "Z" not in Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]:
        assert time.monotonic() < deadline, "the child never became a zombie"
        time.sleep(0.01)
    assert not executor._alive(proc.pid)  # a zombie: os.kill(pid, 0) still succeeds, yet the job is gone
    proc.wait()
    assert not executor._alive(proc.pid)


def _fake_slurm(bin_dir: Path, capture: Path) -> None:
    bin_dir.mkdir()
    for name, body in {"srun": "exit 0", "sbatch": f'cp "$1" {capture}\necho "Submitted batch job 4242"'}.items():
        f = bin_dir / name
        f.write_text(f"#!/bin/sh\n{body}\n")
        f.chmod(f.stat().st_mode | stat.S_IEXEC)


def test_a_slurm_job_array_is_submitted_with_its_resources(monkeypatch, tmp_path):
    capture = tmp_path / "sbatch.sh"
    _fake_slurm(tmp_path / "bin", capture)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    p = get_profile("smoke")
    r = executor.Resources(partition="gpu", gpus=1, cpus=4, mem_gb=16, timeout_min=30, array_parallelism=2)
    ids = executor.submit(p, list(PARTS), "slurm", r, ["--on-cpu"])
    assert ids == {n: f"4242_{i}" for i, n in enumerate(PARTS)}
    script = capture.read_text()
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=16GB",
        "#SBATCH --time=30",
        "#SBATCH --array=0-2%2",
        "#SBATCH --job-name=qmia-part",
    ):
        assert line in script, script
    assert [executor.job_status(p, n) for n in PARTS] == ["submitted"] * 3
    assert executor.to_submit(p, list(PARTS), list(PARTS)) == []  # queued: a rerun does not submit them again
    folder = executor.jobs_folder(p)
    record = json.loads((folder / f"{PARTS[0]}.json").read_text())
    with open(Path(record["stdout"]).parent / "4242_0_submitted.pkl", "rb") as f:
        job = pickle.load(f).function
    assert job.part == PARTS[0] and job.command[-4:] == ["--no-progress", "--on-cpu", "--budget", "1500"]  # 5 min early
    failing = executor.PartJob(folder, PARTS[1], [sys.executable, "-c", "raise SystemExit(7)"])
    with pytest.raises(RuntimeError, match="exited 7"):
        failing()
    assert executor.job_status(p, PARTS[1]).startswith("failed: ")
    assert executor.to_submit(p, list(PARTS), list(PARTS)) == [PARTS[1]]  # a failed part is submitted again


def test_a_dry_run_prints_the_job_array_without_a_scheduler(tmp_path):
    out = _sweep(tmp_path, "--executor", "slurm", "--dry-run", "--partition", "gpu", "--timeout-min", "45")
    assert "26 part(s) to submit as slurm jobs" in out.stdout and "#SBATCH --array=0-25%26" in out.stdout
    assert "#SBATCH --time=45" in out.stdout and "GPU min" in out.stdout
    assert not (tmp_path / "results" / "rows").exists()  # nothing ran


def test_bad_executor_options_are_refused(tmp_path):
    bad = _sweep(tmp_path, "--jobs", "2", check=False)
    assert bad.returncode == 2 and "--jobs need --executor local or --executor slurm" in bad.stderr
    bad = _sweep(tmp_path, "--executor", "slurm", "--dry-run", "--timeout-min", "3", check=False)
    assert bad.returncode == 2 and "--timeout-min must exceed 5" in bad.stderr
