"""Beyond the black box (issue 29): the page's plan and parts, the paired fidelity comparison, the two rules, and an
extraction part run and resumed."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from qmia.claims import NOT_MEASURABLE, NOT_REPRODUCED, REPRODUCED, WITH_LOSS
from qmia.config import PROFILES, get_profile
from qmia.exposure import MIN_DROP, extraction_verdict, whitebox_verdict
from qmia.extraction import ACCESS, _pack, agreement, compare_fidelity, scaled_budgets, stored_extraction
from qmia.part_runs import part_table, run_part
from qmia.parts import PART_NAMES, assign, extraction_part_of, part_extractions
from qmia.plan import EXPOSURE_ATTACKS, book_plan, exposure_configs, extraction_budgets, extraction_plan
from qmia.uncertainty import AttackOutcome


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_plans_the_page_and_its_parts_hold_it(name):
    p = get_profile(name)
    configs = exposure_configs(p)
    kinds = {(c.quant.curve, c.quant.bits, c.defence.kind, c.defence.bits) for c in configs}
    assert len(configs) == len(kinds) == 1 + 4 * len(p.bits)  # full precision; 3 quantizers and PTQ per bitwidth
    assert all((c.arch, c.dataset) == p.sweep for c in configs)
    plan = dict(book_plan(p))
    assert all(set(EXPOSURE_ATTACKS) <= set(plan[c]) for c in configs)
    requests = extraction_plan(p)
    assert len(requests) == len(configs) * len(ACCESS) * len(extraction_budgets(p))
    held = [r for n in PART_NAMES for r in part_extractions(p, n)]
    assert sorted(held, key=repr) == sorted(requests, key=repr) and len(set(held)) == len(held)  # each in one part
    assert all(extraction_part_of(p, r).startswith("extraction-") for r in requests)
    # every white-box entry has a part, and none falls to the catch-all
    parts = assign(p)
    placed = {(c, g): n for n, es in parts.items() for c, g in es}
    assert not any(g == "whitebox" for c, g in parts["rest"])
    assert all((c, "whitebox") in placed for c in configs)


def test_budgets_are_the_paper_shares_of_the_pool():
    assert scaled_budgets(30_000) == (1_000, 5_000, 15_000)
    assert scaled_budgets(800) == (27, 133, 400)
    assert scaled_budgets(30) == (10, 15) and scaled_budgets(8) == (8,)  # at least 10 (or the pool), each once
    assert extraction_budgets(get_profile("paper")) == (1_000, 5_000, 15_000)


def _record(agree, fidelity_lo=None, sha="s"):
    a = torch.tensor(agree, dtype=torch.bool)
    f = float(a.float().mean())
    return {
        "agree": _pack(a),
        "n_test": len(a),
        "test_index_sha": sha,
        "fidelity": f,
        "fidelity_lo": f - 0.02 if fidelity_lo is None else fidelity_lo,
        "fidelity_hi": f + 0.02,
    }


def test_fidelity_is_compared_example_by_example():
    rng = np.random.default_rng(0)
    fp = rng.random(1000) < 0.9
    assert np.array_equal(agreement(_record(fp)), fp.astype(np.int8))  # packed and read back, odd lengths too
    assert len(agreement(_record(fp[:999]))) == 999
    worse = fp & (rng.random(1000) < 0.7)
    d = compare_fidelity(_record(fp), _record(worse))
    assert d.before == pytest.approx(fp.mean()) and d.after == pytest.approx(worse.mean())
    assert 0 < d.lo < d.drop < d.hi and d.p_value < 0.01
    same = compare_fidelity(_record(fp), _record(fp))
    assert same.drop == 0 and same.lo == same.hi == 0 and same.p_value == 1
    with pytest.raises(ValueError, match="same test examples"):
        compare_fidelity(_record(fp), _record(fp, sha="other"))


def test_the_extraction_rule_says_each_verdict_where_it_must():
    rng = np.random.default_rng(1)
    fp = rng.random(2000) < 0.9
    lower = fp & (rng.random(2000) < 0.8)  # about 18 points less agreement
    assert extraction_verdict(_record(fp), _record(lower), 10, 0.01).verdict.word == REPRODUCED
    assert extraction_verdict(_record(fp), _record(lower), 10, 0.20).verdict.word == WITH_LOSS
    assert extraction_verdict(_record(fp), _record(fp), 10, 0.0).verdict.word == NOT_REPRODUCED
    higher = fp | (rng.random(2000) < 0.5)
    assert extraction_verdict(_record(fp), _record(higher), 10, 0.0).verdict.word == NOT_REPRODUCED
    guess = rng.random(2000) < 0.1  # the full-precision surrogate agrees by chance only: nothing to lower
    v = extraction_verdict(_record(guess, fidelity_lo=0.09), _record(guess & lower), 10, 0.0).verdict
    assert v.word == NOT_MEASURABLE and "chance" in v.reason
    tiny = fp.copy()
    tiny[np.flatnonzero(fp)[:6]] = False  # 0.3 points less: significant, but below the smallest drop that counts
    v = extraction_verdict(_record(fp), _record(tiny), 10, 0.0).verdict
    assert v.word == NOT_REPRODUCED and str(MIN_DROP) in v.reason


def _outcome(separation: float, n: int = 600, seed: int = 0) -> AttackOutcome:
    rng = np.random.default_rng(seed)
    member = np.r_[np.ones(n // 2), np.zeros(n // 2)].astype(int)
    scores = rng.normal(size=n) + separation * member
    return AttackOutcome(scores, (scores > separation / 2).astype(int), member, np.arange(n), 0)


def test_the_whitebox_rule_says_each_verdict_where_it_must():
    leaky, blind = _outcome(1.5), _outcome(0.0, seed=1)
    assert whitebox_verdict(leaky, blind, 0.01, n_boot=200).verdict.word == REPRODUCED
    assert whitebox_verdict(leaky, blind, 0.30, n_boot=200).verdict.word == WITH_LOSS
    assert whitebox_verdict(leaky, leaky, 0.0, n_boot=200).verdict.word == NOT_REPRODUCED
    assert whitebox_verdict(blind, _outcome(0.0, seed=2), 0.0, n_boot=200).verdict.word == NOT_MEASURABLE
    r = whitebox_verdict(leaky, blind, 0.01, n_boot=200)
    assert r.before > 0.8 and 0.4 < r.after < 0.6 and r.drop_lo > 0


def test_an_extraction_part_runs_stops_and_resumes(_isolated):
    # a profile small enough to run the whole part: 4-bit targets only, 60 images per split, 2 epochs
    small = {"n_per_split": {"digits": 60}, "epochs": {"lenet": 2, "resnet20": 1, "resnet50": 1}, "bits": (4,)}
    p = replace(get_profile("smoke"), name="tiny-exposure", **small)
    name = "extraction-literal"
    requests = part_extractions(p, name)
    assert len(requests) == len(ACCESS) * len(scaled_budgets(120))  # the literal 4-bit target
    row = part_table(p).set_index("part").loc[name]
    assert row["status"] == f"missing {len(requests)} of {len(requests)} extractions"
    stopped = run_part(p, name, budget=1e-9)  # no time for a single model: nothing trained, nothing stored
    assert stopped["complete"] is False and all(stored_extraction(*r) is None for r in requests)
    m = run_part(p, name)
    assert m["complete"] is True and len(m["extractions"]) == len(requests)
    assert all(stored_extraction(*r) is not None for r in requests)
    assert part_table(p).set_index("part").loc[name, "status"] == "done"
    again = run_part(p, name)  # everything stored: the first run's record stands
    assert again["extractions"] == m["extractions"] and again["date"] == m["date"]
