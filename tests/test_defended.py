"""Defences as options of a target configuration: keys, training from the cache, the attacker's models, the plan."""

import pytest
import torch

from qmia import QuantSpec, get_profile
from qmia.attack_registry import models_needed
from qmia.config import PROFILES
from qmia.defences import Defence, sparsity_of
from qmia.experiment import evaluate
from qmia.parts import assign
from qmia.plan import DEFENCE_ATTACKS, book_plan, defence_configs
from qmia.train import TrainedModel, train

SMOKE = get_profile("smoke")


def _config(defence=Defence(), **kw):
    return SMOKE.config("lenet", defence=defence, **kw).with_(epochs=4)


def test_a_defence_keys_the_cache_only_when_set():
    plain = _config()
    assert plain.key == _config(Defence()).key
    keys = {
        _config(d).key
        for d in (
            Defence(),
            Defence("prune", sparsity=0.5),
            Defence("prune", sparsity=0.8),
            Defence("dp", epsilon=1.0),
            Defence("ptq", bits=4),
            Defence("ptq", bits=4, granularity="channel"),
        )
    }
    assert len(keys) == 6
    assert "prune-80%-global" in _config(Defence("prune", sparsity=0.8)).label


def test_a_defence_is_for_a_full_precision_model_only():
    with pytest.raises(ValueError, match="applies to a full-precision model"):
        SMOKE.config("lenet", quant=QuantSpec("mia", 4), defence=Defence("ptq", bits=4))


def test_pruned_and_quantized_models_start_from_the_cached_undefended_one(_isolated):
    base = train(_config())
    pruned = train(_config(Defence("prune", sparsity=0.8)))
    assert pruned.meta["sparsity"] == pytest.approx(0.8, abs=1e-3) and pruned.meta["finetune_epochs"] == 1
    assert sparsity_of(pruned.load()) == pytest.approx(0.8, abs=1e-3)
    ptq = train(_config(Defence("ptq", bits=2)))
    w_base = base.load().state_dict()
    for name, w in ptq.load().state_dict().items():
        if (
            name.endswith("weight") and w.dim() > 1
        ):  # conv and linear weights: ternary, with the base's largest magnitude
            assert len(torch.unique(w)) <= 3
            assert w.abs().max() == pytest.approx(float(w_base[name].abs().max()), rel=1e-6)
        else:
            assert torch.equal(w, w_base[name])
    again = TrainedModel(_config(Defence("ptq", bits=2)))
    assert torch.equal(again.outputs["logits"]["target_in"], ptq.outputs["logits"]["target_in"])


def test_dp_sgd_models_record_the_epsilon_spent_and_load(_isolated):
    m = train(_config(Defence("dp", epsilon=4.0)))
    assert 3.9 <= m.meta["dp_epsilon"] <= 4.0 and m.meta["dp_delta"] == pytest.approx(1 / 400)
    net = m.load()
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in net.modules())
    acc = float(m.meta["accuracy"]["target_in"])
    assert 0.0 <= acc <= 1.0


def test_the_attacker_trains_its_reference_models_with_the_targets_defence():
    target = _config(Defence("prune", sparsity=0.5))
    need = models_needed(target, DEFENCE_ATTACKS, 4)
    assert all(r.defence == target.defence for r in need["refs_adaptive"]) and len(need["refs_adaptive"]) == 4
    assert all(r.defence == Defence() and r.quant == QuantSpec() for r in need["refs_fp"] + need["shadow_fp"])


def test_the_frontier_rows_carry_the_defence(_isolated):
    df = evaluate(_config(Defence("ptq", bits=4)), DEFENCE_ATTACKS, profile=SMOKE, lira_refs=2)
    assert set(df["defence"]) == {"ptq-4b-tensor"}
    assert "lira-online-adaptive" in set(df["attack"])


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_frontier_target_is_in_the_plan_and_in_one_part(name):
    p = get_profile(name)
    configs = defence_configs(p)
    kinds = {c.defence.kind for c in configs}
    assert kinds == ({"none", "prune", "ptq", "dp"} if p.dp_epsilons else {"none", "prune", "ptq"})
    plan = dict(book_plan(p))
    assert all(set(DEFENCE_ATTACKS) <= set(plan[c]) for c in configs)
    taken = [e for es in assign(p).values() for e in es]
    for c in configs:
        assert sum(e == (c, "lira") for e in taken) == 1
