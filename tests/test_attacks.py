import numpy as np
import pytest
import torch

from qmia.attacks import lira, metric_attack, metric_scores, scaled_confidence, shadow_attack
from qmia.config import TrainConfig
from qmia.data import dataset_info, load_dataset
from qmia.experiment import attack_variants, evaluate
from qmia.metrics import auc_score
from qmia.models import build_model
from qmia.train import predict


def test_metric_scores_by_hand():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]], dtype=torch.float64))
    y = torch.tensor([0, 2])
    assert np.allclose(metric_scores(logits, y, "confidence"), [0.7, 0.3])
    assert np.allclose(metric_scores(logits, y, "loss"), np.log([0.7, 0.3]))
    h0 = -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1))
    assert np.isclose(metric_scores(logits, y, "entropy")[0], -h0)
    m0 = -(1 - 0.7) * np.log(0.7) - 0.2 * np.log(0.8) - 0.1 * np.log(0.9)  # Song & Mittal's Mentr
    assert np.isclose(metric_scores(logits, y, "mentropy")[0], -m0)
    with pytest.raises(ValueError, match="confidence, loss, entropy, mentropy"):
        metric_scores(logits, y, "margin")


def test_scaled_confidence_is_the_logit_of_p_y():
    logits = torch.randn(5, 10)
    y = torch.randint(0, 10, (5,))
    p = torch.softmax(logits.double(), 1).gather(1, y[:, None]).squeeze(1).numpy()
    assert np.allclose(scaled_confidence(logits, y), np.log(p / (1 - p)))
    both = torch.stack([logits, logits], 1)  # n x queries x classes
    assert scaled_confidence(both, y).shape == (5, 2)


def _logits(n, classes=10, shift=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, classes, generator=g) * 2 + shift


def test_thresholds_never_see_the_targets_membership():
    shadow = (_logits(100, seed=1) * 2, torch.zeros(100, dtype=torch.long), _logits(100, seed=2), torch.zeros(100, dtype=torch.long))
    t_in, t_out = _logits(80, seed=3), _logits(80, seed=4)
    y = torch.randint(0, 10, (160,), generator=torch.Generator().manual_seed(5))
    perm = torch.randperm(160, generator=torch.Generator().manual_seed(6))
    both = torch.cat([t_in, t_out])
    shuffled = both[perm]
    for metric in ("confidence", "loss", "entropy", "mentropy"):
        s1, p1, thr1 = metric_attack(metric, shadow, (t_in, y[:80], t_out, y[80:]))
        s2, p2, thr2 = metric_attack(metric, shadow, (shuffled[:80], y[perm][:80], shuffled[80:], y[perm][80:]))
        assert thr1 == thr2  # the threshold is the shadow's
        assert np.allclose(s1[perm.numpy()], s2) and np.array_equal(p1[perm.numpy()], p2)  # decisions follow examples
    a1, _ = shadow_attack(shadow[0], shadow[2], t_in, t_out)
    a2, _ = shadow_attack(shadow[0], shadow[2], shuffled[:80], shuffled[80:])
    assert np.allclose(a1[perm.numpy()], a2)


def test_attacks_on_an_untrained_model_are_near_chance():
    torch.manual_seed(0)
    info = dataset_info("digits")
    x, y = load_dataset("digits")
    model = build_model("lenet", 1, 10, 16)
    idx = torch.randperm(len(x))
    parts = [idx[i * 400 : (i + 1) * 400] for i in range(4)]
    lg = [predict(model, x[p], info) for p in parts]
    labels = np.r_[np.ones(400), np.zeros(400)]
    scores, _ = shadow_attack(lg[0], lg[1], lg[2], lg[3])
    assert abs(auc_score(scores, labels) - 0.5) < 0.07
    s, _, _ = metric_attack("loss", (lg[0], y[parts[0]], lg[1], y[parts[1]]), (lg[2], y[parts[2]], lg[3], y[parts[3]]))
    assert abs(auc_score(s, labels) - 0.5) < 0.07


def test_lira_separates_synthetic_members():
    rng = np.random.default_rng(0)
    n, r = 400, 8
    member = np.r_[np.ones(n // 2), np.zeros(n // 2)].astype(bool)
    base = rng.normal(0, 1, n)
    ref_in = rng.random((r, n)).argsort(0) < r // 2  # each example IN exactly half the refs (as qmia.data.half_subset)
    ref_obs = base + 1.5 * ref_in + rng.normal(0, 0.3, (r, n))
    target = base + 1.5 * member + rng.normal(0, 0.3, n)
    for online in (True, False):
        scores = lira(target[:, None], ref_obs[..., None], ref_in, online=online)
        assert auc_score(scores, member.astype(int)) > 0.9
    with pytest.raises(ValueError, match="shapes disagree"):
        lira(target[:, None], ref_obs[:, :10, None], ref_in)


def test_unknown_attack_lists_the_valid_ones():
    with pytest.raises(ValueError, match="shadow, adaptive, metric, lira, all"):
        attack_variants(["shadow", "label-only"])
    assert attack_variants("all")[0] == "shadow" and len(attack_variants("all")) == 10


def test_memorising_model_leaks_and_attacks_detect_it():
    # 100 images per split, no augmentation, no weight decay, many epochs: a model that memorises
    cfg = TrainConfig("digits", "lenet", n_per_split=100, epochs=60, batch_size=25, lr=0.05, weight_decay=0.0, augment=False)
    df = evaluate(cfg, ["shadow", "metric", "lira"], lira_refs=8, n_boot=50, progress=False).set_index("attack")
    assert df.loc["shadow", "target_train_acc"] == 1.0 and df.loc["shadow", "target_test_acc"] < 0.95
    assert df.loc["shadow", "auc"] > 0.6
    assert df.loc["lira-online", "auc"] > 0.6
    assert df.loc["metric-loss", "auc"] > 0.6
    again = evaluate(cfg, ["shadow"], lira_refs=8, n_boot=50, progress=False)  # from the store, not recomputed
    assert again.loc[0, "created"] == df.loc["shadow", "created"] and again.loc[0, "auc"] == df.loc["shadow", "auc"]
