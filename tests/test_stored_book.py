"""The paper book from what is stored: with a part of the stored results removed, its pages still render, its
cells are pending (naming the part and its cost), its statements are pending rather than decided, and nothing is
trained and no data set is read."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from qmia import book, claims, pages, reading_choice, statements
from qmia.config import get_profile
from qmia.plan import reading_spec

ROOT = Path(__file__).resolve().parent.parent
STORED = ROOT / "results" / "paper"


@pytest.fixture
def stored_without_lenet(tmp_path, monkeypatch):
    """A copy of results/paper without the part tables-lenet (its manifest and rows); training and data refused."""
    if not (STORED / "parts" / "tables-lenet.json").is_file():
        pytest.skip("tables-lenet is not stored")
    copy = tmp_path / "paper"
    shutil.copytree(STORED, copy)
    manifest = json.loads((copy / "parts" / "tables-lenet.json").read_text())
    for key in manifest["rows"]:
        (copy / "rows" / f"{key}.json").unlink()
    (copy / "parts" / "tables-lenet.json").unlink()
    monkeypatch.setenv("QMIA_RESULTS", str(copy))
    monkeypatch.setenv("QMIA_DATA", str(tmp_path / "no-data-here"))
    monkeypatch.delenv("QMIA_TRAIN", raising=False)

    def refuse(*args, **kwargs):
        raise AssertionError("the stored book trained a model or read a data set")

    import qmia.cli  # noqa: F401 (with it, every module of qmia is imported)

    for module in [m for name, m in sys.modules.items() if name == "qmia" or name.startswith("qmia.")]:
        for name in ("train_many", "load_dataset"):  # every module's own binding, not only the definer's
            if callable(getattr(module, name, None)):
                monkeypatch.setattr(module, name, refuse)
    return manifest


def test_a_removed_part_leaves_its_cells_pending_and_trains_nothing(stored_without_lenet):
    page = book.setup("table3_accuracy", "paper")
    assert page.stored_only
    table = pages.table3(page).data
    lenet = table[table["model"].str.startswith("LeNet")]
    resnet20 = table[table["model"].str.startswith("ResNet-20")]
    assert len(lenet) and lenet["status"].str.contains("part `tables-lenet`").all()
    assert lenet["status"].str.contains("GPU-min").all() and lenet["attack acc."].isna().all()
    assert len(resnet20) and (resnet20["status"].fillna("") == "").all() and resnet20["attack acc."].notna().all()
    assert "not computed yet" in str(page.header().data)


def test_a_statement_whose_rows_are_missing_is_pending_not_decided(stored_without_lenet):
    page = book.setup("readings", "paper")
    table = statements.readings_table(page.evidence())
    for key in ("attack-lower-fmnist", "shadow-higher-cifar", "no-disruption"):  # each needs LeNet rows
        for cell in table.loc[key]:
            assert cell.status == claims.PENDING and "tables-lenet" in cell.detail, (key, cell)
    counts = reading_choice.consistency_counts(table)
    assert (counts[claims.PENDING] >= 3).all()
    # a statement on ResNet-20 rows alone is not pending: decided, or not measurable with its reason
    assert all(c.status != claims.PENDING and c.detail for c in table.loc["resnet20-8bit-tp"])


def test_a_verdict_over_seeds_says_how_many_seeds_it_has(stored_without_lenet):
    ev = book.setup("report", "paper").evidence()
    p = get_profile("paper")
    res = claims.abstract_verdict(ev, "attack_acc", "literal")
    quantized = reading_spec("literal", min(p.bits))
    stored_seeds = [  # a seed counts when both its targets' rows are stored (a part may have stopped between them)
        s
        for s in p.claim_seeds
        if all(
            (c.key, "shadow") not in ev.pending
            for c in (ev.config(*p.resnet, seed=s), ev.config(*p.resnet, quantized, seed=s))
        )
    ]
    assert res.seeds == tuple(stored_seeds)
    if len(stored_seeds) < len(p.claim_seeds):
        assert f"over {len(stored_seeds)} of {len(p.claim_seeds)} claim seeds" in res.verdict.reason
        assert "claims-resnet20" in res.verdict.reason


def test_glued_numbers_are_formatted_and_pending_ones_say_so():
    """Every formatted glue key of the notebooks is declared in book.GLUE_FORMATS (the prose prints them as text), and
    a number whose rows are not stored reads 'pending' instead of breaking the build."""
    import re

    cited = set()
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        cited |= set(re.findall(r"\{glue:text\}`(?:[\w./-]+\.ipynb::)?(\w+)(:[^`s][^`]*)?`", path.read_text()))
    assert not [k for k, spec in cited if spec], "format specs belong in book.GLUE_FORMATS, not in the prose"
    assert book.glue_text("ranking_lira_online_auc", 0.71234) == "0.712"
    assert book.glue_text("defences_best_tpr", 0.0123) == "1.23%"
    assert book.glue_text("beyond_paper_adaptive_gain", 0.01) == "+0.010"
    assert (
        book.glue_text("ranking_lira_online_auc", float("nan"))
        == book.glue_text("ranking_lira_online_auc", None)
        == "pending"
    )
    assert book.glue_text("table3_accuracy_literal_verdict", "reproduced") == "reproduced"


def test_a_pending_cell_names_its_part_and_cost_or_how_to_compute_it():
    from qmia.estimates import pending_text

    p = get_profile("paper")
    assert pending_text(p, p.config("resnet50", "cifar10"), "shadow").startswith(
        "not computed yet: part `resnet50-fp`, about"
    )
    assert "GPU-min" in pending_text(p, p.config("resnet50", "cifar10"), "shadow")
    assert "CPU-h" in pending_text(p, p.config("resnet20", "cifar10", seed=1), "shadow")  # a CPU can compute it
    off_plan = pending_text(p, p.config("resnet20", "cifar10", seed=7), "shadow")
    assert "not in the plan" in off_plan and "TRAIN=1" in off_plan


def test_the_table3_notebook_builds_from_the_copy_with_its_part_pending(stored_without_lenet, tmp_path):
    """The notebook itself, executed by papermill with the paper profile on the copy without tables-lenet and no data
    root: it runs to the end, and its Table 3 names the part for the LeNet-5 rows."""
    import os
    import subprocess
    import sys

    out = tmp_path / "table3_accuracy.ipynb"
    env = {**os.environ, "QMIA_PROGRESS": "0"}
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "run_notebooks.py"),
            "--profile",
            "paper",
            "--output",
            str(tmp_path),
            "table3_accuracy",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "building the paper profile from the rows stored" in run.stdout
    html = "".join(
        "".join(o.get("data", {}).get("text/html", ""))
        for c in json.loads(out.read_text())["cells"]
        for o in c.get("outputs", [])
    )
    assert "T_table3" in html and "part `tables-lenet`" in html and "15000/split" in html


def test_the_report_says_what_the_abstracts_numbers_would_need(monkeypatch):
    """On the stored paper rows: every reading x bitwidth of ResNet-20 is a row; measured ones give the three
    relative reductions with intervals and say why they do not hold the claims; pairs of two trainings of one key
    say so instead of comparing them."""
    if not (STORED / "rows").is_dir():
        pytest.skip("no paper rows stored")
    monkeypatch.setenv("QMIA_RESULTS", str(STORED))
    page = book.setup("report", "paper")
    df = pages.report_needs(page).data
    p = get_profile("paper")
    assert len(df) == len(p.readings) * len(p.bits)
    literal4 = df[(df["reading"].str.startswith("literal")) & (df["bits"] == 4)].iloc[0]
    assert "%" in literal4["attack acc lower (claimed 14 %)"] and literal4[
        "keeps utility and holds every claim"
    ].startswith("no")
    status = df.get("status", pd.Series([""] * len(df))).fillna("")
    assert status.str.contains("two trainings of one key").any() or status.eq("").all()
