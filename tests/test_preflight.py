"""Bad paths and values are stopped before the work: one message naming the option, nothing trained.

| input | what happens |
| --- | --- |
| ``QMIA_CACHE`` or ``QMIA_RESULTS`` naming a file, or under a file | exit 2 naming the variable; nothing trained |
| a read-only cache or results folder (not as root, whom permissions do not stop) | exit 2 naming it |
| ``--json`` to a missing folder or to a folder | exit 2 naming ``--json``, before training |
| ``--device gpu``; ``--device cuda`` without a GPU | exit 2 naming the valid devices |
| ``--seed -1`` or ``--seed 2^40`` (train and run); notebook seeds ``[5000000000]`` | exit 2 / ValueError: 0 to 2^32 - 1 |
| ``--label-queries 100000000``, ``--lira-refs 100000`` | exit 2 with the bound and why |
| ``QMIA_GROUP=²`` | exit 2 naming ``QMIA_GROUP`` |
| ``scripts/run_notebooks.py --bits 0``, ``--profile nonsense``, ``--seeds 5000000000`` | exit 2, one line |
| the paper profile on a CPU (``train``, ``run``, ``sweep --part``) without ``--on-cpu`` | exit 2 saying so |
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qmia.book import setup
from qmia.cli import main

ROOT = Path(__file__).resolve().parent.parent
RUN = ["run", "--profile", "smoke", "--quant", "mia", "--bits", "4", "--attack", "shadow"]


def _refused(args, message, capsys, base: Path) -> None:
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err, err
    assert len([line for line in err.splitlines() if line.strip()]) <= 3  # usage line, message: no traceback
    assert not (base / "cache" / "models").exists()  # stopped before any model trained


@pytest.mark.parametrize("variable", ["QMIA_CACHE", "QMIA_RESULTS"])
@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_a_store_folder_that_is_a_file_is_named(variable, where, monkeypatch, capsys, _isolated, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    monkeypatch.setenv(variable, str(blocker if where == "a file" else blocker / "sub"))
    _refused(RUN, variable, capsys, _isolated)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
@pytest.mark.parametrize("variable", ["QMIA_CACHE", "QMIA_RESULTS"])
def test_a_read_only_store_folder_is_named(variable, monkeypatch, capsys, _isolated, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    monkeypatch.setenv(variable, str(folder))
    try:
        _refused(RUN, "not writable", capsys, _isolated)
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("target, message", [("missing/out.json", "does not exist"), (".", "is a folder")])
def test_json_output_is_checked_before_the_work(target, message, capsys, _isolated, tmp_path):
    _refused([*RUN, "--json", str(tmp_path / target)], "--json", capsys, _isolated)
    _refused([*RUN, "--json", str(tmp_path / target)], message, capsys, _isolated)


@pytest.mark.parametrize(
    "device, message",
    [
        ("gpu", "--device must be one of cpu"),
        ("cuda:7", "--device must be one of cpu"),
    ],
)
def test_a_device_that_is_not_here_is_named(device, message, capsys, _isolated):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has eight GPUs")
    _refused([*RUN, "--device", device], message, capsys, _isolated)


@pytest.mark.parametrize("command", ["train", "run"])
@pytest.mark.parametrize("seed", ["-1", str(2**40)])
def test_seeds_outside_what_every_component_accepts_are_refused(command, seed, capsys, _isolated):
    args = ["train", "--profile", "smoke"] if command == "train" else RUN
    _refused([*args, "--seed", seed], "seed must be an integer from 0 to 4294967295", capsys, _isolated)


def test_notebook_seeds_are_bounded():
    with pytest.raises(ValueError, match="seeds must be integers from 0 to 4294967295"):
        setup("table3_accuracy", profile="smoke", seeds=[5_000_000_000])


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--label-queries", "100000000", "--label-queries must be an integer from 1 to 1024"),
        ("--lira-refs", "100000", "--lira-refs must be an integer from 2 to 256"),
    ],
)
def test_sizes_have_bounds(option, value, message, capsys, _isolated):
    _refused([*RUN, option, value], message, capsys, _isolated)


def test_a_non_ascii_digit_group_size_names_the_variable(monkeypatch, capsys, _isolated):
    monkeypatch.setenv("QMIA_GROUP", "²")
    _refused(RUN, "QMIA_GROUP must be a positive integer", capsys, _isolated)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bits", "0"], "--bits must be integers from 1 to 32"),
        (["--profile", "nonsense"], "unknown profile 'nonsense'"),
        (["--seeds", "5000000000"], "--seeds must be integers from 0 to 4294967295"),
    ],
)
def test_run_notebooks_refuses_bad_values_in_one_line(args, message, tmp_path):
    r = subprocess.run(
        [sys.executable, "scripts/run_notebooks.py", "table3_accuracy", *args, "--output", str(tmp_path / "out")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out" / "table3_accuracy.ipynb").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
@pytest.mark.parametrize(
    "args",
    [
        ["train", "--profile", "paper", "--arch", "lenet"],
        ["run", "--profile", "paper", "--arch", "lenet", "--attack", "shadow"],
        ["sweep", "--profile", "paper", "--part", "stronger-lenet", "--budget", "60"],
    ],
)
def test_paper_scale_training_on_a_cpu_needs_the_option(args, monkeypatch, capsys, _isolated):
    monkeypatch.setenv("QMIA_RESULTS", str(_isolated / "paper-results"))  # never the stored rows
    _refused(args, "pass --on-cpu to start", capsys, _isolated)
