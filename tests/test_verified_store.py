"""Everything read from the cache and the results store is verified: each case below once served wrong numbers.

| fault | what happens now |
| --- | --- |
| a number edited in a stored row's JSON | the row fails its seal: reported, moved aside, recomputed (the true numbers) |
| an accuracy edited in a model's ``meta.json`` | the entry fails its seal: moved aside, retrained; rows carry the true accuracy |
| an entry from before checksums (no ``files``) holding another model's ``outputs.pt`` | trained again, not blessed |
| an entry from before seals (``files`` recorded) | its files and recorded accuracies are checked, then it is sealed; an edited accuracy: retrained |
| the label-only cache truncated, swapped with another model's, or of the older format | moved aside, queried again |
| a writer killed inside an atomic write | its ``.part`` file is removed on the next start; a live writer's stays |
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from qmia import QuantSpec, get_profile
from qmia.experiment import evaluate
from qmia.model_entries import is_cached, model_dir
from qmia.queries import augmented_labels
from qmia.results import load_row, row_path
from qmia.store import SEAL, remove_stale_parts
from qmia.train import TrainedModel, train

ROOT = Path(__file__).resolve().parent.parent


def _config(**kw):
    return get_profile("smoke").config("lenet", quant=QuantSpec("mia", 4), **kw).with_(epochs=3)


def _edit_json(path: Path, edit) -> None:
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record, indent=1, sort_keys=True))


def test_an_edited_row_is_detected_and_recomputed(_isolated, capfd):
    cfg = _config()
    row = evaluate(cfg, "shadow", profile=get_profile("smoke")).iloc[0]
    path = row_path(row["row_key"])
    _edit_json(path, lambda r: r.update(auc=0.999))
    assert load_row(row["row_key"]) is None
    assert "edited since it was written" in capfd.readouterr().err
    again = evaluate(cfg, "shadow", profile=get_profile("smoke")).iloc[0]
    assert again["auc"] == row["auc"] != 0.999


def test_a_row_from_before_seals_is_recomputed_not_trusted(_isolated, capfd):
    cfg = _config()
    row = evaluate(cfg, "shadow", profile=get_profile("smoke")).iloc[0]
    _edit_json(row_path(row["row_key"]), lambda r: (r.pop(SEAL), r.update(auc=0.999)))
    assert load_row(row["row_key"]) is None and "no seal recorded" in capfd.readouterr().err
    assert evaluate(cfg, "shadow", profile=get_profile("smoke")).iloc[0]["auc"] == row["auc"]


def test_an_edited_meta_json_is_detected_and_the_model_retrained(_isolated, capfd):
    cfg = _config()
    first = train(cfg)
    true_acc = first.meta["accuracy"]["target_out"]
    _edit_json(first.path / "meta.json", lambda m: m["accuracy"].update(target_out=0.99))
    with pytest.raises(Exception, match="edited since it was written"):
        TrainedModel(cfg)  # a damaged entry is never read as if whole
    assert not is_cached(cfg) and "meta.json edited since it was written" in capfd.readouterr().err
    row = evaluate(cfg, "shadow", profile=get_profile("smoke")).iloc[0]
    assert row["target_test_acc"] == pytest.approx(true_acc)


def test_an_entry_from_before_checksums_is_trained_again_not_blessed(_isolated, capfd):
    cfg, other = _config(), _config(seed=1)
    truth = evaluate(cfg, "shadow", profile=get_profile("smoke")).iloc[0]
    train(other)
    path = model_dir(cfg)
    (path / "outputs.pt").write_bytes((model_dir(other) / "outputs.pt").read_bytes())  # another model's outputs
    _edit_json(path / "meta.json", lambda m: (m.pop("files"), m.pop(SEAL)))
    assert not is_cached(cfg) and "written before checksums were recorded" in capfd.readouterr().err
    row_path(truth["row_key"]).unlink()
    again = evaluate(cfg, "shadow", profile=get_profile("smoke")).iloc[0]
    assert again["auc"] == truth["auc"] and "files" in json.loads((path / "meta.json").read_text())


def test_an_entry_from_before_seals_is_checked_then_sealed(_isolated, capfd):
    cfg, other = _config(), _config(seed=1)
    for c in (cfg, other):
        train(c)
        _edit_json(model_dir(c) / "meta.json", lambda m: m.pop(SEAL))
    assert is_cached(cfg) and SEAL in json.loads((model_dir(cfg) / "meta.json").read_text())
    _edit_json(model_dir(other) / "meta.json", lambda m: m["accuracy"].update(target_out=0.99))
    assert not is_cached(other) and "accuracies are not those of its outputs" in capfd.readouterr().err
    # outputs restored from carried weights on another machine before seals: their accuracies become the record
    restored = model_dir(cfg) / "meta.json"
    truth = json.loads(restored.read_text())["accuracy"]["target_out"]
    _edit_json(
        restored,
        lambda m: (m.pop(SEAL), m.update(outputs_restored={"device": "cpu"}), m["accuracy"].update(target_out=0.5)),
    )
    assert is_cached(cfg) and json.loads(restored.read_text())["accuracy"]["target_out"] == truth


@pytest.mark.parametrize("fault", ["truncated", "swapped", "older format"])
def test_a_bad_label_only_cache_is_queried_again(_isolated, capfd, fault):
    cfg, other = _config(), _config(seed=1)
    model, foreign = train(cfg), train(other)
    truth = augmented_labels(model, ["target_in"], 3)["target_in"].clone()
    path = model.path / "augmented_labels_q3.pt"
    if fault == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif fault == "swapped":
        augmented_labels(foreign, ["target_in"], 3)
        path.write_bytes((foreign.path / "augmented_labels_q3.pt").read_bytes())
    else:
        torch.save({"target_in": torch.zeros_like(truth)}, path)
    assert torch.equal(augmented_labels(TrainedModel(cfg), ["target_in"], 3)["target_in"], truth)
    assert "qmia: damaged" in capfd.readouterr().err
    assert torch.equal(augmented_labels(TrainedModel(cfg), ["target_in"], 3)["target_in"], truth)  # cached again
    assert "qmia: damaged" not in capfd.readouterr().err


_WRITER = """
import sys, time
from qmia.store import atomic_write
def write(f):
    f.write(b"x" * 1000); f.flush(); print("writing", flush=True); time.sleep(60)
atomic_write(sys.argv[1], write)
"""


def _writer(target: Path) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(target)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert p.stdout.readline().strip() == "writing"
    return p


@pytest.mark.parametrize("name", ["model.pt", "meta.json", "rows/abc.json"])
def test_a_kill_inside_an_atomic_write_leaves_no_part_file_after_the_next_start(_isolated, name):
    root = _isolated / "cache" / "models" / "k"
    killed, live = _writer(root / name), _writer(root / f"live-{Path(name).name}")
    try:
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        parts = sorted(p.name for p in root.rglob("*.part"))
        assert len(parts) == 2
        removed = remove_stale_parts(_isolated / "cache")
        assert [p.name for p in removed] == [n for n in parts if not n.startswith(".live-")]
        assert [p.name for p in root.rglob("*.part")] == [n for n in parts if n.startswith(".live-")]
        assert not (root / name).exists()  # the half-written file never took the name
    finally:
        live.kill()
        live.wait(10)
    time.sleep(0.1)
    assert len(remove_stale_parts(_isolated / "cache")) == 1  # the second writer is gone now too
