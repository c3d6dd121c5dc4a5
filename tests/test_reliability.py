"""Faults and bad input: each ends in the right numbers or in one clear message, never in silently wrong ones.

| fault or input | what happens |
| --- | --- |
| a cached ``model.pt`` truncated | reported with its path, the entry moved aside, the model retrained |
| a cache entry's ``meta.json`` not JSON | the same |
| ``outputs.pt`` changed, same size | the same (its sha256 differs) |
| ``outputs.pt`` missing, ``model.pt`` intact (weights carried from another lease) | the outputs computed from the weights, not retrained; carried weights damaged, or their ``meta.json`` not an object: moved aside, retrained |
| only ``outputs.pt`` carried (a ResNet-50's weights are too large; ``tests/test_parts.py``) | used by the attacks; loading the weights says they were not carried; damaged outputs: moved aside |
| an entry written before checksums, an edited row or ``meta.json``, a bad label-only cache, a stale ``.part`` | ``tests/test_verified_store.py`` |
| a stored row's score file truncated, or its JSON damaged | reported, moved aside, the row recomputed (identical) |
| the cached data tensors truncated | moved aside, the data set decoded again |
| a run killed (SIGKILL) at random moments | the rerun finishes with rows equal to an uninterrupted run's |
| two processes training one model at once | one trains, the other waits and reuses it |
| code holding a model's lock takes it again (a lone DP-SGD model of a group; ``tests/test_multitrain.py``) | it goes on; another thread or process still waits |
| the same configuration and seed twice on a CPU | bit-identical rows |
| CLI: bits 0 or 40, unknown quantizer / reading / profile, a data set the profile lacks, ``--bits`` with ``--quant none`` | exit 2, one line naming the value and the valid choices |
| ``QMIA_GROUP=four``, ``QMIA_PROGRESS=maybe`` | exit 2 naming the variable and its valid values |
| notebook parameters ``bits "[0]"``, ``profile nonsense``, an unknown model | ``tests/test_book.py``: ValueError naming the valid values |
| a data root that is missing or empty; a truncated ``.gz`` or tarball; images of the wrong size | one message naming the file and what is expected; nothing cached |

Checkpoints, results and data are read without executing code (``torch.load(weights_only=True)``, JSON,
``np.load`` without pickles).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from qmia import QuantSpec, get_profile
from qmia.attack_registry import attack_variants
from qmia.cli import main
from qmia.data import DatasetUnavailable, load_dataset
from qmia.experiment import evaluate
from qmia.model_entries import has_weights, is_cached, model_dir
from qmia.results import load_row, row_path, scores_path
from qmia.train import train

ROOT = Path(__file__).resolve().parent.parent
METRICS = (
    "attack_acc",
    "auc",
    "tp",
    "fp",
    "f1_member",
    "advantage",
    "auc_lo",
    "auc_hi",
    "target_test_acc",
    "shadow_test_acc",
)


def _config(**kw):
    return get_profile("smoke").config("lenet", quant=QuantSpec("mia", 4), **kw).with_(epochs=3)


def _damaged(base: Path) -> list[Path]:
    return [p for p in base.rglob("*") if ".damaged-" in p.name]


# ----------------------------------------------------------------------------- integrity


@pytest.mark.parametrize("fault", ["truncate model", "meta not json", "outputs changed"])
def test_a_damaged_cache_entry_is_reported_moved_aside_and_retrained(_isolated, capfd, fault):
    cfg = _config()
    first = train(cfg).outputs["logits"]["target_out"].clone()
    path = model_dir(cfg)
    if fault == "truncate model":
        (path / "model.pt").write_bytes((path / "model.pt").read_bytes()[:100])
    elif fault == "meta not json":
        (path / "meta.json").write_text("{ not json")
    elif fault == "outputs changed":
        blob = bytearray((path / "outputs.pt").read_bytes())
        blob[-200] ^= 0xFF
        (path / "outputs.pt").write_bytes(bytes(blob))
    assert not is_cached(cfg)
    err = capfd.readouterr().err
    assert f"qmia: damaged {path}" in err and "it will be recomputed" in err
    assert len(_damaged(path.parent)) == 1
    again = train(cfg)
    assert again.trained_here and torch.equal(again.outputs["logits"]["target_out"], first)  # deterministic retraining
    assert is_cached(cfg) and again.load() is not None


def test_intact_weights_without_outputs_are_completed_not_retrained(_isolated, capfd):
    # what a lease carries from another (scripts/carry_models.py): model.pt and meta.json only
    cfg = _config()
    first = train(cfg)
    logits, meta = first.outputs["logits"]["target_out"].clone(), json.loads((first.path / "meta.json").read_text())
    (first.path / "outputs.pt").unlink()
    assert not is_cached(cfg) and has_weights(cfg) and not _damaged(first.path.parent)
    again = train(cfg)
    assert not again.trained_here and torch.equal(again.outputs["logits"]["target_out"], logits)
    restored = json.loads((again.path / "meta.json").read_text())
    assert restored["train_seconds"] == meta["train_seconds"] and restored["outputs_restored"]["device"] == "cpu"
    assert is_cached(cfg) and not has_weights(cfg) and "damaged" not in capfd.readouterr().err
    # carried weights that are damaged are not completed: the entry is moved aside and the model retrained
    (again.path / "outputs.pt").unlink()
    (again.path / "model.pt").write_bytes((again.path / "model.pt").read_bytes()[:-10])
    assert not has_weights(cfg) and not is_cached(cfg) and len(_damaged(again.path.parent)) == 1
    assert train(cfg).trained_here
    # carried weights whose meta.json is JSON but not an object: the same, not a crash
    (again.path / "outputs.pt").unlink()
    (again.path / "meta.json").write_text("[]")
    assert not has_weights(cfg) and not is_cached(cfg) and len(_damaged(again.path.parent)) == 2
    assert train(cfg).trained_here


@pytest.mark.parametrize("fault", ["truncate scores", "row not json", "roc missing"])
def test_a_damaged_result_row_is_recomputed_identically(_isolated, capfd, fault):
    cfg = _config()
    row = evaluate(cfg, "shadow", profile=get_profile("smoke")).iloc[0]
    key = row["row_key"]
    if fault == "truncate scores":
        scores_path(key).write_bytes(scores_path(key).read_bytes()[:50])
    elif fault == "row not json":
        row_path(key).write_text(row_path(key).read_text()[:-20])
    else:
        (scores_path(key).parent.parent / "roc" / f"{key}.npz").unlink()
    assert load_row(key) is None and "qmia: damaged" in capfd.readouterr().err
    again = evaluate(cfg, "shadow", profile=get_profile("smoke")).iloc[0]
    assert all(again[m] == row[m] for m in METRICS) and load_row(key) is not None


def test_damaged_data_tensors_are_decoded_again(_isolated, capfd):
    x, y = load_dataset("digits")
    cached = _isolated / "cache" / "data" / "digits-v1.pt"
    cached.write_bytes(cached.read_bytes()[:1000])
    x2, y2 = load_dataset("digits")
    assert torch.equal(x, x2) and torch.equal(y, y2) and "qmia: damaged" in capfd.readouterr().err


# ----------------------------------------------------------------------------- interruption and concurrency


def _cli(*args: str, env: dict, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "qmia", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _env(base: Path, name: str) -> dict:
    return {
        **os.environ,
        "QMIA_CACHE": str(base / name / "cache"),
        "QMIA_RESULTS": str(base / name / "results"),
        "QMIA_PROGRESS": "0",
    }


RUN = (
    "run",
    "--profile",
    "smoke",
    "--arch",
    "lenet",
    "--quant",
    "mia",
    "--bits",
    "4",
    "--attack",
    "all",
    "--lira-refs",
    "2",
    "--no-progress",
    "--json",
)


def test_runs_killed_at_random_moments_resume_to_the_same_rows(_isolated):
    clean = _cli(*RUN, str(_isolated / "clean.json"), env=_env(_isolated, "clean"))
    assert clean.wait(timeout=600) == 0, clean.stderr.read()
    expected = {r["attack"]: r for r in json.loads((_isolated / "clean.json").read_text())}
    env = _env(_isolated, "killed")
    rng = np.random.default_rng(12)
    for delay in rng.uniform(1.0, 9.0, size=3):  # into data loading, training, attacks
        p = _cli(*RUN, str(_isolated / "killed.json"), env=env)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
    finish = _cli(*RUN, str(_isolated / "killed.json"), env=env)
    assert finish.wait(timeout=600) == 0, finish.stderr.read()
    got = {r["attack"]: r for r in json.loads((_isolated / "killed.json").read_text())}
    assert set(got) == set(expected) and len(got) == len(attack_variants("all"))
    for attack, row in expected.items():
        assert all(got[attack][m] == row[m] for m in METRICS), attack
    assert not list((_isolated / "killed").rglob("*.part"))  # no half-written file stays behind as data


def test_two_processes_asked_for_one_model_train_it_once(_isolated):
    env = _env(_isolated, "shared")
    args = ("train", "--profile", "smoke", "--arch", "lenet", "--quant", "mia", "--bits", "4", "--no-progress")
    a, b = _cli(*args, env=env), _cli(*args, env=env)
    outs = [p.communicate(timeout=600)[0] for p in (a, b)]
    assert a.returncode == b.returncode == 0
    assert sorted(o.split(":")[1].split(" in ")[0].strip() for o in outs) == ["reused cache", "trained"]
    assert len({o.strip().splitlines()[-1] for o in outs}) == 1  # the same entry


def test_a_models_lock_is_reentrant_where_it_is_held_and_exclusive_elsewhere(_isolated):
    import threading

    from filelock import Timeout

    from qmia.store import lock

    key, seen = _config().key, []

    def other_thread() -> None:
        try:
            with lock(key, timeout=0.5):
                seen.append("acquired")
        except Timeout:
            seen.append("waited")

    with lock(key, timeout=0.5):
        with lock(key, timeout=0.5):  # the holder takes it again: no wait on itself
            seen.append("nested")
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert lock(key, timeout=0.5).is_locked  # the inner release left the outer hold in place
    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen == ["nested", "waited", "acquired"]


def test_the_same_configuration_and_seed_give_bit_identical_rows(_isolated, monkeypatch):
    cfg = _config()
    first = evaluate(cfg, ("shadow", "metric"), profile=get_profile("smoke"))
    monkeypatch.setenv("QMIA_CACHE", str(_isolated / "other-cache"))
    monkeypatch.setenv("QMIA_RESULTS", str(_isolated / "other-results"))
    second = evaluate(cfg, ("shadow", "metric"), profile=get_profile("smoke"))
    for m in METRICS + ("tpr_at_1%fpr",):
        assert first[m].equals(second[m]), m


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--quant", "mia", "--bits", "0"], "bits must be an integer from 1 to 32"),
        (["train", "--quant", "mia", "--bits", "40"], "bits must be an integer from 1 to 32"),
        (["train", "--quant", "ternary", "--bits", "2"], "invalid choice: 'ternary' (choose from"),
        (["train", "--quant", "mia", "--bits", "4", "--reading", "odd"], "invalid choice: 'odd'"),
        (["train", "--profile", "nonsense"], "invalid choice: 'nonsense' (choose from"),
        (["train", "--dataset", "cifar10"], "profile 'smoke' does not use dataset 'cifar10'; it uses digits"),
        (["train", "--bits", "4"], "--bits needs --quant mia or --quant dorefa"),
        (["train", "--quant", "mia", "--bits", "4", "--zero-point", "x"], "zero point must be an integer or 'centred'"),
        (["run", "--attack", "label-only"], "invalid choice: 'label-only'"),
        (["run", "--attack", "rmia", "--rmia-gamma", "0"], "rmia_gamma must be > 0"),
        (["run", "--attack", "label", "--label-queries", "0"], "--label-queries must be an integer from 1 to 1024"),
    ],
)
def test_cli_bad_input_is_one_clear_message(args, message, capsys, _isolated):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (_isolated / "cache" / "models").exists()  # nothing half-done


@pytest.mark.parametrize("variable, value", [("QMIA_GROUP", "four"), ("QMIA_PROGRESS", "maybe"), ("QMIA_TRAIN", "2")])
def test_bad_environment_variables_name_themselves(variable, value, monkeypatch, capsys):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as e:
        main(["train", "--profile", "smoke", "--quant", "mia", "--bits", "4"])
    assert e.value.code == 2 and f"{variable} must be" in capsys.readouterr().err


def _fake_cifar_tar(path: Path, size: int = 32, truncate: bool = False) -> None:
    from PIL import Image

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for split in ("train", "test"):
            for c in ("airplane", "cat"):
                img = io.BytesIO()
                Image.new("RGB", (size, size), (10, 20, 30)).save(img, format="PNG")
                info = tarfile.TarInfo(f"{split}/{c}/0001.png")
                info.size = len(img.getvalue())
                tar.addfile(info, io.BytesIO(img.getvalue()))
    data = buf.getvalue()
    path.write_bytes(data[: len(data) // 2] if truncate else data)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing root", "is not on disk"),
        ("empty folder", "is not on disk"),
        ("truncated gz", "is damaged"),
        ("truncated tarball", "is damaged"),
        ("wrong image size", "CIFAR-10 images are 32x32 RGB"),
    ],
)
def test_bad_data_folders_give_one_clear_message_and_cache_nothing(case, message, tmp_path, _isolated):
    root = tmp_path / "data"
    name = "fashion_mnist" if case in ("empty folder", "truncated gz") else "cifar10"
    if case == "empty folder":
        (root / "FashionMNIST" / "raw").mkdir(parents=True)
    elif case == "truncated gz":
        raw = root / "FashionMNIST" / "raw"
        raw.mkdir(parents=True)
        for n in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ):
            blob = gzip.compress(b"\x00" * 5000)
            (raw / f"{n}.gz").write_bytes(blob[:30])
    elif case == "truncated tarball":
        root.mkdir()
        _fake_cifar_tar(root / "cifar10-test.tar.gz", truncate=True)
    elif case == "wrong image size":
        root.mkdir()
        _fake_cifar_tar(root / "cifar10-test.tar.gz", size=28)
    with pytest.raises(DatasetUnavailable, match=message):
        load_dataset(name, root, download=False)
    assert not list((_isolated / "cache" / "data").glob(f"{name}*.pt"))
