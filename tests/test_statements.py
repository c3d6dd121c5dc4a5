"""Statement rules decide only beyond noise; the reading is chosen by a rule that a within-noise cell cannot flip.

Each rule kind on hand-built rows where it must agree, disagree, or be not measurable (a collapsed quantized model,
a baseline at chance, an interval across zero, a tie); two trainings of one key are never paired; and on the stored
paper rows the chosen reading (or "undecided") survives flipping any single within-noise statement.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qmia import beyond_noise, claims, evidence, reading_choice, statements
from qmia.config import Profile
from qmia.metrics import attack_metrics, roc_points
from qmia.plan import reading_spec
from qmia.results import save_row
from qmia.uncertainty import AttackOutcome

ROOT = Path(__file__).resolve().parent.parent
N = 500
P = Profile(
    name="synthetic",
    n_per_split={"cifar10": 5000},
    epochs={"resnet20": 1},
    models=(("resnet20", "cifar10"),),
    resnet=("resnet20", "cifar10"),
    sweep=("resnet20", "cifar10"),
    bits=(4,),
    lira_refs=2,
)


def _outcome(shift: float, salt: int) -> AttackOutcome:
    rng = np.random.default_rng(salt)
    member = np.r_[np.ones(N), np.zeros(N)].astype(int)
    scores = rng.normal(size=2 * N) + shift * member
    return AttackOutcome(scores, (scores >= shift / 2).astype(int), member, np.arange(2 * N), 0)


def _evidence(
    q_shift: float, q_acc: float, fp_shift: float = 1.0, same_scores: bool = False, shadow_instances=("s1", "s1")
) -> tuple[evidence.Evidence, object, object]:
    fp_cfg = P.config("resnet20", "cifar10")
    q_cfg = P.config("resnet20", "cifar10", reading_spec("min-anchored", 4))
    rows = []
    for i, (cfg, shift, acc) in enumerate(((fp_cfg, fp_shift, 0.80), (q_cfg, q_shift, q_acc))):
        o = _outcome(shift, 0 if same_scores else 17 + i)
        row = {
            "row_key": f"row{i}",
            "target_key": cfg.key,
            "attack": "shadow",
            "seed": 0,
            "target_train_acc": acc + 0.1,
            "target_test_acc": acc,
            "shadow_key": "shadow-fp",
            "shadow_instance": shadow_instances[i],
            "target_instance": f"t{i}",
            "shadow_test_acc": 0.8,
            "shadow_train_acc": 0.9,
            **attack_metrics(o.scores, o.member, o.pred),
        }
        save_row(row, *roc_points(o.scores, o.member), scores=o.scores, pred=o.pred, member=o.member, index=o.index)
        rows.append(row)
    return evidence.Evidence(P, pd.DataFrame(rows), n_boot=300), fp_cfg, q_cfg


def _drop(ev, fp, q, metric="attack_acc"):
    return beyond_noise.drop_rule(ev, [("4-bit", fp, q)], (metric,))


@pytest.mark.parametrize(
    "case, q_shift, q_acc, fp_shift, status, noise, words",
    [
        ("a real drop", 0.2, 0.79, 1.0, claims.AGREES, False, "drop"),
        ("a rise", 1.8, 0.79, 1.0, claims.DISAGREES, False, "drop"),
        ("within noise", 1.0, 0.79, 1.0, claims.UNMEASURABLE, True, "at this size"),
        ("a collapsed model", 0.0, 0.10, 1.0, claims.UNMEASURABLE, False, "utility collapse"),
        ("a baseline at chance", 0.0, 0.79, 0.0, claims.UNMEASURABLE, False, "at chance"),
    ],
)
def test_the_attack_drop_rule(case, q_shift, q_acc, fp_shift, status, noise, words):
    ev, fp, q = _evidence(q_shift, q_acc, fp_shift)
    cell = _drop(ev, fp, q)
    assert (cell.status, cell.noise) == (status, noise) and words in cell.detail, (case, cell)


def test_a_tie_never_agrees():
    ev, fp, q = _evidence(1.0, 0.80, same_scores=True)  # the very same scores on both targets
    cell = _drop(ev, fp, q)
    assert cell.status == claims.UNMEASURABLE and cell.noise and "+0.0 points" in cell.detail


def test_two_instances_of_one_key_are_never_paired():
    ev, fp, q = _evidence(0.2, 0.79, shadow_instances=("s1", "s2"))  # the shadow trained twice
    with pytest.raises(evidence.MixedInstances, match="shadow-fp"):
        ev.paired_rows([(fp, "shadow"), (q, "shadow")])
    with pytest.raises(evidence.MixedInstances):
        ev.compare(fp, q, "attack_acc")
    stmt = statements.Statement("x", "", "", "", "", lambda e, r: _drop(e, fp, q))
    cell = statements.check_statement(stmt, ev, "min-anchored")
    assert cell.status == claims.UNMEASURABLE and "two trainings of one key" in cell.detail
    # rows that record no instance are told apart by the accuracies they give
    assert evidence.row_instance(
        {"shadow_train_acc": 0.9, "shadow_test_acc": 0.7266}, "shadow"
    ) != evidence.row_instance({"shadow_train_acc": 0.9, "shadow_test_acc": 0.7290}, "shadow")


def test_accuracy_gaps_and_claims_of_no_difference():
    g = beyond_noise.accuracy_gap(0.80, 0.79, 5000, 5000)
    assert g.lo < 0.01 < g.hi and g.hi - g.lo == pytest.approx(
        2 * 1.959964 * (0.8 * 0.2 / 5000 + 0.79 * 0.21 / 5000) ** 0.5
    )
    assert beyond_noise.sign(g) == "noise"  # 1 point on 5,000 examples is within noise
    assert beyond_noise.sign(beyond_noise.accuracy_gap(0.80, 0.70, 5000, 5000)) == "yes"
    assert beyond_noise.sign(beyond_noise.accuracy_gap(0.70, 0.80, 5000, 5000)) == "no"


def _table(nets: dict[str, list[str]]) -> pd.DataFrame:
    cells = {
        "a": statements.Cell(claims.AGREES, ""),
        "d": statements.Cell(claims.DISAGREES, ""),
        "n": statements.Cell(claims.UNMEASURABLE, "", noise=True),
        "u": statements.Cell(claims.UNMEASURABLE, ""),
        "p": statements.Cell(claims.PENDING, ""),
    }
    return pd.DataFrame({r: [cells[c] for c in marks] for r, marks in nets.items()})


def test_only_decided_statements_count_and_overlapping_ranges_stay_undecided():
    clear = reading_choice.choose_reading(_table({"x": list("aaaau"), "y": list("adnup"), "z": list("ddddd")}))
    assert clear.readings == ("x",) and clear.margin == 4 - 1 and clear.bounds["y"] == (-1, 1)
    close = reading_choice.choose_reading(_table({"x": list("aadnn"), "y": list("adnnu"), "z": list("ddddd")}))
    assert not close.decided and set(close.readings) == {"x", "y"} and "undecided between" in str(close)


def _flips(table: pd.DataFrame):
    for key, r in itertools.product(table.index, table.columns):
        if table.loc[key, r].status == claims.UNMEASURABLE and table.loc[key, r].noise:
            for status in (claims.AGREES, claims.DISAGREES):
                t = table.copy()
                t.loc[key, r] = statements.Cell(status, "flipped")
                yield t


def test_a_chosen_reading_survives_any_within_noise_flip():
    rng = random.Random(3)
    for _ in range(200):
        table = _table({r: [rng.choice("aadnnup") for _ in range(8)] for r in "wxyz"})
        choice = reading_choice.choose_reading(table)
        if choice.decided:
            assert all(reading_choice.choose_reading(t).readings == choice.readings for t in _flips(table))


def test_on_the_stored_paper_rows_no_single_within_noise_flip_changes_the_choice(monkeypatch):
    stored = ROOT / "results" / "paper"
    if not (stored / "rows").is_dir():
        pytest.skip("no paper rows stored")
    monkeypatch.setenv("QMIA_RESULTS", str(stored))
    from qmia.config import get_profile

    table = statements.readings_table(evidence.collect(get_profile("paper"), stored_only=True, n_boot=300))
    choice = reading_choice.choose_reading(table)
    flipped = [reading_choice.choose_reading(t) for t in _flips(table)]
    assert flipped, "no within-noise cell on the stored rows"
    if choice.decided:  # a chosen reading stays chosen, by the same reading
        assert all(c.readings == choice.readings for c in flipped), str(choice)
    else:
        # A flip settles one cell: it may separate two undecided readings whose ranges touched (then the flip names
        # one of them), but never brings back a reading the stored rows rule out, and the undecided set stays whole
        # for a flip of the other direction.
        assert all(set(c.readings) <= set(choice.readings) for c in flipped), str(choice)
        assert any(c.readings == choice.readings for c in flipped), str(choice)
