"""The stronger attacks wired into evaluate(): RMIA on LiRA's reference models, the label-only attacks, their
parameters in the row keys, and the augmented queries they make of a cached model."""

import numpy as np
import pytest
import torch

from qmia import QuantSpec, get_profile
from qmia.attack_registry import ATTACKS, AttackParams
from qmia.experiment import evaluate, row_keys
from qmia.queries import augmented_labels
from qmia.results import load_outcome
from qmia.train import TrainedModel, train

SMOKE = get_profile("smoke")


def _config(**kw):
    return SMOKE.config("lenet", quant=QuantSpec(), **kw).with_(epochs=8)


def test_rmia_and_label_only_rows_are_computed_stored_and_reused(_isolated):
    cfg = _config()
    df = evaluate(cfg, ("rmia", "label"), profile=SMOKE, lira_refs=2)
    assert list(df["attack"]) == list(ATTACKS["rmia"].variants + ATTACKS["label"].variants)
    assert (df.loc[df["attack_group"] == "rmia", "lira_refs"] == 2).all()
    assert df.loc[df["attack_group"] == "label", "lira_refs"].isna().all()
    for _, row in df.iterrows():
        o = load_outcome(row)
        assert len(o.scores) == 2 * cfg.n_per_split and o.member.sum() == cfg.n_per_split
        assert 0.0 <= row["auc"] <= 1.0
    rmia = load_outcome(df[df["attack"] == "rmia-online"].iloc[0])
    assert rmia.pred.sum() == pytest.approx(len(rmia.pred) / 2, abs=len(rmia.pred) * 0.05)  # the upper half
    gap = load_outcome(df[df["attack"] == "label-gap"].iloc[0])
    t = TrainedModel(cfg)
    correct = torch.cat(
        [t.outputs["logits"][s].argmax(1) == t.outputs["labels"][s] for s in ("target_in", "target_out")]
    )
    assert np.array_equal(gap.pred, correct.numpy().astype(int))
    assert (t.path / "augmented_labels_q16.pt").exists()
    again = evaluate(cfg, ("rmia", "label"), profile=SMOKE, lira_refs=2)
    assert list(again["created"]) == list(df["created"])  # read back, not recomputed


def test_attack_parameters_key_only_the_rows_of_the_groups_that_use_them():
    cfg = _config()
    base = row_keys(cfg, "all", SMOKE)
    other = row_keys(cfg, "all", SMOKE, params=AttackParams(rmia_gamma=2.0, label_queries=4))
    changed = {v for v in base if base[v] != other[v]}
    assert changed == set(ATTACKS["rmia"].variants + ATTACKS["label"].variants)
    only_pop = row_keys(cfg, "all", SMOKE, params=AttackParams(rmia_population=100))
    assert {v for v in base if base[v] != only_pop[v]} == set(ATTACKS["rmia"].variants)
    assert row_keys(cfg, "all", SMOKE, params=AttackParams()) == base


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"rmia_gamma": 0.0}, "rmia_gamma must be > 0"),
        ({"rmia_offline_a": 1.5}, r"rmia_offline_a must be in \[0, 1\]"),
        ({"rmia_population": 0}, "rmia_population must be a positive"),
        ({"label_queries": 0}, "label_queries must be a positive integer"),
    ],
)
def test_bad_attack_parameters_name_what_is_valid(kw, message):
    with pytest.raises(ValueError, match=message):
        AttackParams(**kw)


def test_reference_attacks_need_two_reference_models():
    with pytest.raises(ValueError, match="rmia need at least 2 reference models"):
        row_keys(_config(), "rmia", SMOKE, lira_refs=1)


def test_augmented_queries_start_with_the_image_and_are_the_same_for_every_model(_isolated):
    a, b = train(_config()), train(_config(seed=1))
    la = augmented_labels(a, ("target_in", "shadow_out"), 6)
    assert la["target_in"].shape == (SMOKE.n_per_split["digits"], 6)
    assert torch.equal(la["target_in"][:, 0], a.outputs["logits"]["target_in"].argmax(1))  # query 0: the image itself
    assert (la["target_in"][:, 1:] != la["target_in"][:, :1]).any()  # the augmentations change some answers
    assert torch.equal(augmented_labels(a, ("target_in",), 6)["target_in"], la["target_in"])  # cached, same
    # every model sees the same augmented image of an example: b, queried on a's images, answers as it does on its own
    shared = np.intersect1d(a.outputs["indices"]["target_in"].numpy(), b.outputs["indices"]["target_in"].numpy())
    assert len(shared) > 0
    lb = augmented_labels(b, ("target_in",), 6)["target_in"]
    pos_b = {int(i): k for k, i in enumerate(b.outputs["indices"]["target_in"])}
    from qmia.data import dataset_info, load_dataset
    from qmia.queries import _draws
    from qmia.train import predict

    info = dataset_info("digits")
    x, _ = load_dataset("digits")
    idx = torch.as_tensor(shared[:20])
    d = {k: v[idx] for k, v in _draws(len(x), 3, info).items()}
    direct = predict(b.load(), x[idx], info, draws=d).argmax(1)
    assert torch.equal(direct, lb[[pos_b[int(i)] for i in idx], 3])


def test_augmented_queries_refuse_bad_input_and_missing_weights(_isolated):
    m = train(_config())
    with pytest.raises(ValueError, match="unknown split"):
        augmented_labels(m, ("train",), 4)
    with pytest.raises(ValueError, match="n_queries must be a positive integer"):
        augmented_labels(m, ("target_in",), 0)
    (m.path / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match="weights are not in the cache"):
        augmented_labels(m, ("target_in",), 4)
