"""Re-deriving rows stored without their trained instances (qmia.rederive): the paper profile's GPU rows were written
before rows recorded the sha256 of their models, so rows of two trainings of one key cannot be told apart. A part
being re-derived computes each such row again from one trained instance per key, keeps the former row under
superseded/, survives a budget stop and resumes on another machine from the results folder alone."""

import json

import pytest

from qmia import part_runs, rederive
from qmia.cli import main
from qmia.config import get_profile
from qmia.estimates import read_manifest
from qmia.part_runs import part_table, run_part, verify_stored
from qmia.part_status import missing_parts
from qmia.results import load_row, roc_path, row_path, scores_path
from qmia.settings import results_root
from qmia.store import seal, seal_damage, unsealed
from qmia.train import git_commit

PART = "table6-fig6"
INSTANCE_FIELDS = ("target_instance", "shadow_instance", "refs_instance")


def _rows_of(keys):
    volatile = {"seconds", "created"}
    return {k: {f: v for f, v in load_row(k).items() if f not in volatile} for k in keys}


def _as_before_instances(keys):
    """Rewrite stored rows as rows from before instances were recorded (sealed, files intact), marked 'former'."""
    for k in keys:
        row = unsealed(json.loads(row_path(k).read_text()))
        row = {f: v for f, v in row.items() if f not in INSTANCE_FIELDS}
        row_path(k).write_text(json.dumps(seal({**row, "created": "former"})))
        assert rederive.is_stale(load_row(k))


def _status(p):
    return part_table(p).set_index("part").loc[PART, "status"]


def test_rows_without_instances_are_rederived_kept_and_resumed_elsewhere(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("QMIA_COMMIT", "abc1234")  # a clean commit, as in a clone
    git_commit.cache_clear()
    p, store = get_profile("smoke"), results_root()
    straight = run_part(p, PART, device="cpu", progress=False)
    keys = straight["rows"]
    expected = _rows_of(keys)
    _as_before_instances(keys)
    # stored without instances: still what the book shows, and the part is done until it is re-derived
    assert _status(p) == f"done; {len(keys)} rows without instances" and PART not in missing_parts(p)
    assert run_part(p, PART, device="cpu", progress=False) == straight  # a plain run recomputes nothing

    monkeypatch.setenv("QMIA_CACHE", str(tmp_path / "machine-a"))  # the models of the former rows are gone
    assert rederive.start(PART) and not rederive.start(PART)  # begun once; its manifest is kept under superseded/
    assert read_manifest(PART) is None and rederive.rederiving(PART)
    assert PART in missing_parts(p) and _status(p) == f"re-deriving: {len(keys)} of {len(keys)} rows to go"

    started = []

    def seconds(m, cpu):  # the third model does not fit: the budget stops the run there
        started.append(m)
        return 1e9 if len(started) >= 3 else 0.0

    monkeypatch.setattr(part_runs, "model_seconds", seconds)
    first = run_part(p, PART, device="cpu", progress=False, budget=3600)
    assert not first["complete"] and len(first["models"]) == 2 and 0 < len(first["rows"]) < len(keys)
    moved = rederive.superseded_keys()
    assert set(first["rows"]) == set(moved)  # each re-derived row's former version is kept, no other
    assert all(load_row(k) is not None for k in keys)  # every row is in the store, former or re-derived
    assert all(not rederive.is_stale(load_row(k)) for k in first["rows"])
    assert PART in missing_parts(p) and _status(p).startswith("re-deriving")

    monkeypatch.undo()
    monkeypatch.setenv("QMIA_COMMIT", "abc1234")
    monkeypatch.setenv("QMIA_PROGRESS", "0")
    monkeypatch.setenv("QMIA_RESULTS", str(store))
    monkeypatch.setenv("QMIA_CACHE", str(tmp_path / "machine-b"))  # nothing of machine a but the results folder
    resumed = run_part(p, PART, device="cpu", progress=False)
    assert resumed["complete"] and sorted(resumed["rows"]) == sorted(keys) and len(resumed["runs"]) == 2
    # one CPU, one model at a time: the same instances as the first training, so the same rows, now with instances
    assert _rows_of(keys) == expected and all(load_row(k)["target_instance"] for k in keys)
    assert sorted(rederive.superseded_keys()) == sorted(keys)
    root = rederive.superseded_root()
    for k in keys:
        former = json.loads((root / "rows" / f"{k}.json").read_text())
        assert former["created"] == "former" and seal_damage(former) is None
        assert (root / "roc" / roc_path(k).name).is_file() and (root / "scores" / scores_path(k).name).is_file()
    assert _status(p) == "done" and PART not in missing_parts(p) and verify_stored(p) == []
    git_commit.cache_clear()


def test_rederive_needs_a_part_and_says_when_there_is_nothing_to_do(capsys):
    from qmia.commands import _start_rederiving

    with pytest.raises(SystemExit) as e:  # refused before anything runs
        main(["sweep", "--profile", "smoke", "--rederive"])
    assert e.value.code == 2
    assert "--rederive needs --part" in capsys.readouterr().err
    _start_rederiving(get_profile("smoke"), ["tables-lenet"])  # no stored rows at all: nothing begun
    assert "nothing to re-derive" in capsys.readouterr().out and not rederive.rederiving("tables-lenet")


def test_a_tables_provenance_counts_its_rows_from_before_instances():
    import pandas as pd

    from qmia.results import provenance

    base = {"profile": "paper", "seed": 0, "commit": "abc1234", "target_key": "k1", "pending": ""}
    rows = pd.DataFrame([{**base, "target_instance": "sha-a"}, {**base, "target_key": "k2", "target_instance": None}])
    assert "1 of 2 stored rows from before instances were recorded" in provenance(rows)
    assert "before instances" not in provenance(rows.iloc[:1])  # every row records its instances: nothing to say
    gpu_only = rows.drop(columns="target_instance")  # rows that all predate instances have no such column at all
    assert "2 of 2 stored rows from before instances were recorded" in provenance(gpu_only)
    assert "before instances" not in provenance(gpu_only.drop(columns="target_key"))  # not result rows: no claim
    pending = pd.concat([rows, pd.DataFrame([{**base, "target_key": "k3", "pending": "tables-lenet"}])])
    assert "1 of 2 stored rows" in provenance(pending) and "1 of 3 rows not computed yet" in provenance(pending)
