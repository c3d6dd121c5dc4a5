"""Model extraction (issue 29): the answers at each access level, the surrogate's training and the stored result."""

import json

import pytest
import torch

from qmia.cli import main
from qmia.config import get_profile
from qmia.extraction import ACCESS, answers, check_request, extract, fit_surrogate, wilson
from qmia.train import train


def test_answers_at_each_access_level():
    logits = torch.randn(50, 10, generator=torch.Generator().manual_seed(0)) * 3
    p = answers(logits, "probs")
    assert torch.allclose(p, torch.softmax(logits, 1)) and torch.allclose(p.sum(1), torch.ones(50))
    label = answers(logits, "label")
    assert torch.equal(label.argmax(1), logits.argmax(1)) and torch.equal(label.sum(1), torch.ones(50))
    assert set(label.unique().tolist()) == {0.0, 1.0}
    top = answers(logits, "top3")
    assert ((top > 0).sum(1) <= 3).all() and torch.allclose(top.sum(1), torch.ones(50))
    best = top.gather(1, logits.argmax(1, keepdim=True)).squeeze(1)
    assert torch.equal(best, top.max(1).values)  # the top-1 keeps the largest share (rounding may tie it)
    flat = answers(torch.zeros(1, 1000), "top3")  # every kept share (0.001) rounds to 0: the label is returned
    assert flat.sum() == 1 and flat.max() == 1
    with pytest.raises(ValueError, match="valid: probs, top3, label"):
        answers(logits, "logits")


def test_requests_outside_the_pool_or_the_levels_are_refused_naming_what_is_valid():
    check_request("label", 800, 800)
    for budget in (0, 801, 2.5, True, "1000"):
        with pytest.raises(ValueError, match="from 1 to 800"):
            check_request("probs", budget, 800)
    with pytest.raises(ValueError, match="valid: " + ", ".join(ACCESS)):
        check_request("top-5", 10, 800)
    with pytest.raises(ValueError, match="valid: lenet"):
        check_request("probs", 10, 800, arch="vgg")


def test_a_surrogate_of_a_fixed_linear_model_recovers_it():
    g = torch.Generator().manual_seed(1)
    target = torch.nn.Linear(20, 5)
    with torch.no_grad():
        target.weight.copy_(torch.randn(5, 20, generator=g))
        target.bias.zero_()
    x, fresh = torch.randn(3000, 20, generator=g), torch.randn(2000, 20, generator=g)
    for access, least in (("probs", 0.97), ("label", 0.9)):
        torch.manual_seed(0)
        surrogate = torch.nn.Linear(20, 5)
        with torch.no_grad():
            asked = answers(target(x), access)
        fit_surrogate(surrogate, x, asked, epochs=30, batch_size=100, lr=0.5, weight_decay=0.0)
        with torch.no_grad():
            fidelity = float((surrogate(fresh).argmax(1) == target(fresh).argmax(1)).float().mean())
        assert fidelity >= least, (access, fidelity)
    assert wilson(0, 0)[0] != wilson(0, 0)[0]  # nan: no examples
    share, lo, hi = wilson(90, 100)
    assert share == 0.9 and 0.82 < lo < 0.9 < hi < 0.95


def test_extraction_of_a_trained_target_is_stored_and_read_back(_isolated):
    cfg = get_profile("smoke").config("lenet", "digits")
    target = train(cfg)
    pool = 2 * cfg.n_per_split
    row = extract(target, "probs", pool, device="cpu")
    assert row["budget"] == pool and row["access"] == "probs" and row["surrogate_arch"] == "lenet"
    assert 0.5 < row["fidelity"] <= 1 and row["fidelity_lo"] <= row["fidelity"] <= row["fidelity_hi"]
    assert row["test_acc_lo"] <= row["test_acc"] <= row["test_acc_hi"] and row["n_test"] == cfg.n_per_split
    assert extract(target, "probs", pool, device="cpu") == row  # read back, not trained again
    few = extract(target, "label", 50, device="cpu")
    assert few["key"] != row["key"] and few["fidelity"] < row["fidelity"]
    with pytest.raises(ValueError, match=f"from 1 to {pool}"):
        extract(target, "probs", pool + 1)


def test_extraction_from_the_command_line_and_its_refusals(_isolated, capsys):
    out = _isolated / "rows.json"
    base = ["run", "--profile", "smoke", "--arch", "lenet", "--no-progress"]
    assert main([*base, "--attack", "extraction", "--queries", "100,800", "--access", "label", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["access"], r["budget"]) for r in rows] == [("label", 100), ("label", 800)]
    assert "fidelity" in capsys.readouterr().out
    for args, message in (
        (["--attack", "extraction", "--queries", "801"], "from 1 to 800"),
        (["--attack", "extraction", "--queries", "0,100"], "from 1 to 800"),
        (["--attack", "extraction", "--queries", "many"], "comma-separated integers"),
        (["--attack", "extraction", "--access", "logits"], "valid: probs, top3, label"),
        (["--attack", "shadow", "--queries", "100"], "options of --attack extraction"),
    ):
        with pytest.raises(SystemExit) as e:
            main([*base, *args])
        assert e.value.code == 2 and message in capsys.readouterr().err, args
