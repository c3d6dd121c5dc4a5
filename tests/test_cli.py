import json
import subprocess
import sys

import pytest

from qmia.config import get_profile
from qmia.plan import book_plan

ROW_FIELDS = [
    "profile",
    "dataset",
    "arch",
    "quant",
    "method",
    "bits",
    "seed",
    "attack",
    "target_train_acc",
    "target_test_acc",
    "shadow_train_acc",
    "shadow_test_acc",
    "attack_acc",
    "attack_acc_lo",
    "attack_acc_hi",
    "precision_member",
    "recall_member",
    "f1_member",
    "precision_nonmember",
    "recall_nonmember",
    "f1_nonmember",
    "tn",
    "fp",
    "fn",
    "tp",
    "tnr",
    "fpr",
    "fnr",
    "tpr",
    "auc",
    "auc_lo",
    "auc_hi",
    "tpr_at_0.1%fpr",
    "tpr_at_1%fpr",
    "tpr_at_0.1%fpr_lo",
    "tpr_at_1%fpr_hi",
    "advantage",
    "data",
    "commit",
    "seconds",
]


def _qmia(*args):
    return subprocess.run([sys.executable, "-m", "qmia", *args], capture_output=True, text=True)


def test_run_writes_json_rows_with_every_field(tmp_path):
    out = tmp_path / "rows.json"
    r = _qmia(
        "run",
        "--dataset",
        "digits",
        "--arch",
        "lenet",
        "--quant",
        "mia",
        "--bits",
        "4",
        "--zero-point",
        "centred",
        "--profile",
        "smoke",
        "--attack",
        "metric",
        "--json",
        str(out),
        "--no-progress",
    )
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())
    assert [row["attack"] for row in rows] == ["metric-confidence", "metric-loss", "metric-entropy", "metric-mentropy"]
    for row in rows:
        missing = [f for f in ROW_FIELDS if f not in row]
        assert not missing
        assert row["tn"] + row["fp"] == row["n_nonmembers"] == 400 and row["tp"] + row["fn"] == row["n_members"] == 400
        assert row["quant"] == "mia-4b-zc" and row["profile"] == "smoke"
    assert "metric-loss" in r.stdout  # the one-screen summary


def test_run_carries_rmia_with_its_parameters_into_the_json_rows(tmp_path):
    rows = {}
    for population in ("50", "400"):
        out = tmp_path / f"rmia-{population}.json"
        r = _qmia(
            "run",
            "--dataset",
            "digits",
            "--arch",
            "lenet",
            "--profile",
            "smoke",
            "--attack",
            "rmia",
            "--lira-refs",
            "2",
            "--rmia-population",
            population,
            "--json",
            str(out),
            "--no-progress",
        )
        assert r.returncode == 0, r.stderr
        rows[population] = {row["attack"]: row for row in json.loads(out.read_text())}
    assert list(rows["50"]) == ["rmia-online", "rmia-offline", "rmia-online-adaptive", "rmia-offline-adaptive"]
    assert all(row["lira_refs"] == 2 for row in rows["50"].values())
    # a smaller population is another attack: its own row key and (on 800 candidates) other scores
    assert rows["50"]["rmia-online"]["row_key"] != rows["400"]["rmia-online"]["row_key"]
    assert rows["50"]["rmia-online"]["auc"] != rows["400"]["rmia-online"]["auc"]


def test_run_rejects_an_unknown_attack():
    r = _qmia("run", "--profile", "smoke", "--attack", "label-only")
    assert r.returncode == 2 and "shadow" in r.stderr and "all" in r.stderr


def test_sweep_dry_run_lists_the_book_plan():
    r = _qmia("sweep", "--profile", "quick", "--dry-run")
    assert r.returncode == 0
    plan = book_plan(get_profile("quick"))
    assert f"{len(plan)} target configurations" in r.stdout
    assert "cifar10/resnet20/dorefa-w4a4/target/seed0: shadow\n" in r.stdout
    assert "fashion_mnist/lenet/fp32/target/seed0: shadow, adaptive, metric, lira" in r.stdout
    assert "cifar10/resnet20/mia-4b-min/target/seed2: shadow\n" in r.stdout  # a claim row of another reading
    from qmia.plan import count_models

    assert f"{sum(count_models(get_profile('quick')).values())} models to train" in r.stdout


@pytest.mark.parametrize("name", ["smoke", "quick", "paper"])
def test_book_plan_covers_every_result(name):
    p = get_profile(name)
    plan = dict(book_plan(p))
    labels = {c.quant.label for c in plan if (c.arch, c.dataset) == p.resnet}
    assert {"fp32", "mia-4b", "mia-8b", "mia-16b", "dorefa-w4a4", "dorefa-w8a8", "mia-4b-last5", "mia-8b-zc"} <= labels
    for reading in ("zc", "min", "eq"):  # every reading of the quantizer at every bitwidth, and partially
        assert {f"mia-{b}b-{reading}" for b in p.bits} | {f"mia-4b-{reading}-last5"} <= labels
    claim_seeds = {c.seed for c in plan if (c.arch, c.dataset) == p.resnet and c.quant.label == "mia-4b-min"}
    assert claim_seeds == set(p.claim_seeds) and len(claim_seeds) == 3
    assert any("lira" in a for a in plan.values())
    assert len({c.key for c in plan}) == len(plan)


@pytest.mark.parametrize("name", ["smoke", "quick", "paper"])
def test_every_configuration_a_page_evaluates_is_in_the_plan(name):
    """The pages never train what `qmia sweep` did not (a GPU run of the plan leaves nothing for a CPU)."""
    from qmia.plan import (
        claim_configs,
        dorefa_configs,
        paper_configs,
        partial_configs,
        recipe_configs,
        runs_reading,
    )

    p = get_profile(name)
    plan = {c for c, _ in book_plan(p)}
    for r in p.readings:
        pages = [
            c for c in paper_configs(p, reading=r) if c.quant.method == "none" or runs_reading(c.arch, c.quant.bits, r)
        ]
        pages += dorefa_configs(p, reading=r) + partial_configs(p, reading=r)
        assert [c.label for c in pages if c not in plan] == [], r
    assert set(claim_configs(p) + recipe_configs(p)) <= plan
