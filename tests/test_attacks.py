import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from qmia.attack_registry import attack_variants
from qmia.attacks import augmentation_attack, gap_attack, metric_attack, metric_scores, shadow_attack
from qmia.config import TrainConfig
from qmia.data import dataset_info, load_dataset
from qmia.experiment import evaluate
from qmia.metrics import auc_score, best_threshold, tpr_at_fpr
from qmia.models import build_model
from qmia.reference_attacks import lira, reference_tpr_at_fpr, rmia, scaled_confidence, true_class_probability
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
    shadow = (
        _logits(100, seed=1) * 2,
        torch.zeros(100, dtype=torch.long),
        _logits(100, seed=2),
        torch.zeros(100, dtype=torch.long),
    )
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
    ref_in = (
        rng.random((r, n)).argsort(0) < r // 2
    )  # each example IN exactly half the refs (as qmia.splits.half_subset)
    ref_obs = base + 1.5 * ref_in + rng.normal(0, 0.3, (r, n))
    target = base + 1.5 * member + rng.normal(0, 0.3, n)
    for online in (True, False):
        scores = lira(target[:, None], ref_obs[..., None], ref_in, online=online)
        assert auc_score(scores, member.astype(int)) > 0.9
    with pytest.raises(ValueError, match="shapes disagree"):
        lira(target[:, None], ref_obs[:, :10, None], ref_in)


def _reference_set():
    """The fixed set the expected reference-code numbers below were computed on."""
    rng = np.random.default_rng(7)
    r, n, q = 8, 6, 2
    ref_in = rng.random((r, n)).argsort(0) < r // 2  # balanced: every example IN exactly 4 refs
    base = rng.normal(0, 1, (n, q))
    ref_obs = base + 1.5 * ref_in[..., None] + rng.normal(0, 0.5, (r, n, q))
    member = np.array([True, True, True, False, False, False])
    target_obs = base + 1.5 * member[:, None] + rng.normal(0, 0.5, (n, q))
    unbalanced = ref_in.copy()  # example 0 gains an IN ref (its first OUT one), example 1 loses its last IN ref
    unbalanced[np.flatnonzero(~unbalanced[:, 0])[0], 0] = True
    unbalanced[np.flatnonzero(unbalanced[:, 1])[-1], 1] = False
    return target_obs, ref_obs, ref_in, unbalanced, member


# Membership scores (higher = member) of Carlini et al.'s released code on _reference_set():
# tensorflow/privacy, research/mi_lira_2021/plot.py at commit 03035d5d4a271ac795dab80f5bc1cef82fc3d462,
# generate_ours (online) and generate_ours_offline (offline) called as
# fn(keep=ref_in, scores=ref_obs, check_keep=[member], check_scores=[target_obs], fix_variance=fv)
# with the file copied to /tmp and imported unchanged; printed as repr(float) of -prediction
# (their sweep() ranks by -prediction). Keys: (mask, online, fix_variance). Only the numbers are copied.
REFERENCE_SCORES = {
    ("balanced", True, True): [
        0.516402570005488,
        1.8665407335170907,
        0.6489052626352632,
        -0.3937291149717811,
        -1.5517155505783615,
        -2.21485708132308,
    ],
    ("balanced", True, False): [
        1.0323355550149234,
        16.02003966658913,
        4.5693296884372785,
        -6.013689300391478,
        -13.164226832565774,
        -21.386059000928235,
    ],
    ("balanced", False, True): [
        1.5050815934264103,
        2.69794307484363,
        1.5472673058566617,
        1.0585320514349097,
        1.318684454259044,
        1.1724396883877595,
    ],
    ("balanced", False, False): [
        4.683270203046972,
        16.14987166328263,
        5.404795443136916,
        1.4973971390081549,
        1.970045120290029,
        3.8944846298985727,
    ],
    ("unbalanced", True, True): [
        0.3138335707887461,
        1.1822704766501053,
        0.562727155328775,
        -0.26666387739572306,
        -1.2649910992205005,
        -1.7878849930440197,
    ],
    ("unbalanced", True, False): [
        44.01297970745942,
        14.680676426321488,
        4.694255518897597,
        -30.17746421779621,
        8.417096168940965,
        -13.310433192585549,
    ],
    ("unbalanced", False, True): [
        1.4254008505096771,
        2.4989236412535107,
        1.7881759129669255,
        1.074162876316086,
        1.419068907755801,
        1.2040604842919582,
    ],
    ("unbalanced", False, False): [
        45.012676163649964,
        15.207852143093188,
        5.727417347432249,
        2.1340109033437495,
        22.32827925101494,
        9.054578528724825,
    ],
}


@pytest.mark.parametrize("key", sorted(REFERENCE_SCORES))
def test_lira_reference_scoring_matches_the_released_code(key):
    target_obs, ref_obs, balanced, unbalanced, _ = _reference_set()
    mask, online, fix_variance = key
    ref_in = balanced if mask == "balanced" else unbalanced
    got = lira(target_obs, ref_obs, ref_in, online=online, fix_variance=fix_variance, scoring="reference")
    assert np.allclose(got, REFERENCE_SCORES[key], rtol=0, atol=1e-9)


def test_lira_default_scoring_is_ours_and_unknown_scoring_raises():
    target_obs, ref_obs, ref_in, _, _ = _reference_set()
    for online in (True, False):
        default = lira(target_obs, ref_obs, ref_in, online=online)
        assert np.array_equal(default, lira(target_obs, ref_obs, ref_in, online=online, scoring="qmia"))
        assert not np.allclose(default, lira(target_obs, ref_obs, ref_in, online=online, scoring="reference"))
    with pytest.raises(ValueError, match="qmia, reference"):
        lira(target_obs, ref_obs, ref_in, scoring="bogus")
    no_in = ref_in.copy()
    no_in[:, 0] = False
    with pytest.raises(ValueError, match="IN reference"):
        lira(target_obs, ref_obs, no_in, scoring="reference")


def test_reference_tpr_at_fpr_uses_fpr_strictly_below_alpha():
    # ranked: M M N M N M N N; ROC points (fpr, tpr): (0, .5), (.25, .5), (.25, .75), (.5, .75), ...
    scores = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1])
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    assert reference_tpr_at_fpr(scores, labels, 0.25) == 0.5  # FPR < 0.25: only fpr 0
    assert reference_tpr_at_fpr(scores, labels, 0.3) == 0.75
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    assert tpr_at_fpr(fpr, tpr, 0.25) == 0.75  # ours, FPR <= 0.25
    with pytest.raises(ValueError, match="above 0"):
        reference_tpr_at_fpr(scores, labels, 0.0)


def _conf_logits(p_true: np.ndarray, labels: np.ndarray, classes: int = 3) -> torch.Tensor:
    """Logits whose softmax gives probability p_true to the true label, the rest spread evenly."""
    p = np.repeat(((1 - p_true) / (classes - 1))[:, None], classes, 1)
    p[np.arange(len(p)), labels] = p_true
    return torch.tensor(np.log(p))


def _class_split(rng, n: int, conf: dict[int, float]) -> tuple[torch.Tensor, torch.Tensor]:
    labels = np.arange(n) % len(conf)
    p = np.clip(np.array([conf[c] for c in labels]) + rng.normal(0, 0.02, n), 0.01, 0.999)
    return _conf_logits(p, labels), torch.tensor(labels)


def test_class_wise_thresholds_beat_one_global_threshold():
    # class 0: members ~0.99, non-members ~0.9; class 1: members ~0.6, non-members ~0.3
    rng = np.random.default_rng(0)
    member, nonmember = {0: 0.99, 1: 0.6}, {0: 0.9, 1: 0.3}
    shadow = (*_class_split(rng, 200, member), *_class_split(rng, 200, nonmember))
    target = (*_class_split(rng, 200, member), *_class_split(rng, 200, nonmember))
    truth = np.r_[np.ones(200), np.zeros(200)]
    s_g, p_g, thr_g = metric_attack("confidence", shadow, target)
    s_c, p_c, thr_c = metric_attack("confidence", shadow, target, class_wise=True)
    assert np.array_equal(s_g, s_c)  # same scores, so the same AUC
    acc_g, acc_c = (p_g == truth).mean(), (p_c == truth).mean()
    assert acc_c > 0.97 and acc_c > acc_g + 0.15
    assert thr_c.shape == (2,) and thr_c.dtype == np.float64
    assert 0.9 < thr_c[0] < 0.99 and 0.3 < thr_c[1] < 0.6 and isinstance(thr_g, float)


def test_class_wise_falls_back_to_the_global_threshold():
    rng = np.random.default_rng(1)
    member, nonmember = {0: 0.99, 1: 0.6, 2: 0.8}, {0: 0.9, 1: 0.3, 2: 0.5}
    s_in, y_in = _class_split(rng, 300, member)
    s_out, y_out = _class_split(rng, 300, nonmember)
    keep = y_out != 2  # the shadow has no non-members of class 2
    shadow = (s_in, y_in, s_out[keep], y_out[keep])
    target = (*_class_split(rng, 300, member), *_class_split(rng, 300, nonmember))
    _, _, thr_g = metric_attack("confidence", shadow, target)
    _, p_c, thr_c = metric_attack("confidence", shadow, target, class_wise=True)
    assert thr_c.shape == (3,) and thr_c[2] == thr_g
    sh_scores = np.concatenate(
        [metric_scores(shadow[0], shadow[1], "confidence"), metric_scores(shadow[2], shadow[3], "confidence")]
    )
    sh_labels = torch.cat([shadow[1], shadow[3]]).numpy()
    sh_member = np.r_[np.ones(len(y_in)), np.zeros(int(keep.sum()))]
    for c in (0, 1):
        assert thr_c[c] == best_threshold(sh_scores[sh_labels == c], sh_member[sh_labels == c])
    assert thr_c[0] > 0.9 > thr_g  # class 0 got its own threshold
    t_labels = torch.cat([target[1], target[3]]).numpy()
    t_scores = np.concatenate(
        [metric_scores(target[0], target[1], "confidence"), metric_scores(target[2], target[3], "confidence")]
    )
    assert np.array_equal(p_c[t_labels == 2], (t_scores[t_labels == 2] >= thr_g).astype(int))


def test_unknown_attack_lists_the_valid_ones():
    with pytest.raises(ValueError, match="shadow, adaptive, metric, lira, rmia, label, whitebox, all"):
        attack_variants(["shadow", "label-only"])
    every = attack_variants("all")
    assert every[0] == "shadow" and len(every) == len(set(every)) == 20
    assert every[10:12] == ["lira-online-reference", "lira-offline-reference"]  # LiRA scored as Carlini et al.'s code
    assert every[-4:] == ["label-gap", "label-augment", "whitebox", "whitebox-adaptive"]


def test_memorising_model_leaks_and_attacks_detect_it():
    # 100 images per split, no augmentation, no weight decay, many epochs: a model that memorises
    cfg = TrainConfig(
        "digits",
        "lenet",
        n_per_split=100,
        epochs=60,
        batch_size=25,
        lr=0.05,
        weight_decay=0.0,
        augment=False,
        precision="fp32",
    )
    df = evaluate(cfg, ["shadow", "metric", "lira"], lira_refs=8, n_boot=50, progress=False).set_index("attack")
    assert df.loc["shadow", "target_train_acc"] == 1.0 and df.loc["shadow", "target_test_acc"] < 0.95
    assert df.loc["shadow", "auc"] > 0.6
    assert df.loc["lira-online", "auc"] > 0.6
    assert df.loc["metric-loss", "auc"] > 0.6
    again = evaluate(cfg, ["shadow"], lira_refs=8, n_boot=50, progress=False)  # from the store, not recomputed
    assert again.loc[0, "created"] == df.loc["shadow", "created"] and again.loc[0, "auc"] == df.loc["shadow", "auc"]


# RMIA (Zarifzadeh et al. 2024) and label-only attacks (Choquette-Choo et al. 2021)


def test_true_class_probability_is_the_softmax_of_the_label():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=g) * 3
    y = torch.randint(0, 5, (6,), generator=g)
    want = torch.softmax(logits.double(), 1)[torch.arange(6), y].numpy()
    got = true_class_probability(logits, y)
    assert got.dtype == np.float64 and got.shape == (6,) and np.allclose(got, want, rtol=1e-12, atol=0)
    queries = torch.stack([logits, torch.randn(6, 5, generator=g)], 1)  # n x queries x classes
    got3 = true_class_probability(queries, y)
    assert got3.shape == (6, 2)
    for j in range(2):
        assert np.allclose(
            got3[:, j], torch.softmax(queries[:, j].double(), 1)[torch.arange(6), y].numpy(), rtol=1e-12, atol=0
        )
    big = torch.tensor([[1000.0, 999.0, -1000.0], [-1000.0, 1000.0, 0.0]])
    p = true_class_probability(big, torch.tensor([0, 0]))
    assert np.isfinite(p).all()
    assert np.isclose(p[0], 1 / (1 + np.exp(-1.0)), rtol=1e-12) and p[1] == 0.0
    assert np.isclose(true_class_probability(big, torch.tensor([1, 1]))[1], 1.0, rtol=1e-12)


def _rmia_planted(seed=0, n=400, m=400, r=8, q=2, effect=0.5, sd=0.05):
    """Candidates of widely varying difficulty (base probability ~ Beta(0.5, 0.5)); training on
    an example moves its probability a share ``effect`` of the way to 1 (the paper's offline
    approximation); references and the target add Gaussian noise. Half the candidates are
    the target's members, each candidate is IN exactly half the references."""
    rng = np.random.default_rng(seed)

    def p_of(base, trained, shape):
        return np.clip(base + effect * (1 - base) * trained + rng.normal(0, sd, shape), 1e-4, 1.0)

    base = rng.beta(0.5, 0.5, n) * 0.96 + 0.02
    member = rng.permutation(n) < n // 2
    ref_in = rng.random((r, n)).argsort(0) < r // 2
    ref_p = p_of(base[:, None], ref_in[..., None], (r, n, q))
    target_p = p_of(base[:, None], member[:, None], (n, q))
    pop_base = rng.beta(0.5, 0.5, m) * 0.96 + 0.02
    pop_target_p = p_of(pop_base[:, None], 0, (m, q))
    pop_ref_p = p_of(pop_base[:, None], 0, (r, m, q))
    return target_p, ref_p, ref_in, pop_target_p, pop_ref_p, member


def test_rmia_finds_planted_members_that_raw_confidence_misses():
    target_p, ref_p, ref_in, pop_t, pop_r, member = _rmia_planted()
    raw = roc_auc_score(member, target_p.mean(1))
    online = roc_auc_score(member, rmia(target_p, ref_p, ref_in, pop_t, pop_r))
    offline = roc_auc_score(member, rmia(target_p, ref_p, ref_in, pop_t, pop_r, online=False))
    assert raw < 0.75  # difficulty varies more than membership moves the confidence (0.68 with this seed)
    assert online > 0.9 and online > raw + 0.2  # 0.98 with this seed
    assert offline > 0.8 and offline > raw + 0.1  # 0.97 with this seed


def _rmia_brute(target_p, ref_p, ref_in, pop_t, pop_r, online, gamma, a):
    """The definition, one pair (x, z) at a time."""
    t, rp, zt, zr = target_p.mean(-1), ref_p.mean(-1), pop_t.mean(-1), pop_r.mean(-1)
    scores = []
    for i in range(len(t)):
        if online:
            pr_x = rp[:, i].mean()
        else:
            pr_x = 0.5 * ((1 + a) * rp[~ref_in[:, i], i].mean() + (1 - a))
        dominated = 0
        for j in range(len(zt)):
            pr_z = zr[:, j].mean() if online else 0.5 * ((1 + a) * zr[:, j].mean() + (1 - a))
            dominated += (t[i] / pr_x) / (zt[j] / pr_z) > gamma
        scores.append(dominated / len(zt))
    return np.array(scores)


def _rmia_small(seed=1, n=12, m=30, r=5, q=3):
    rng = np.random.default_rng(seed)
    ref_in = rng.random((r, n)) < 0.5
    ref_in[0] = False  # every candidate has an OUT reference
    return rng.random((n, q)), rng.random((r, n, q)), ref_in, rng.random((m, q)), rng.random((r, m, q))


def test_rmia_matches_the_brute_force_definition():
    args = _rmia_small()
    for online in (True, False):
        for gamma in (0.5, 1.0, 2.0):
            for a in (0.0, 0.3, 1.0):
                got = rmia(*args, online=online, gamma=gamma, offline_a=a)
                assert np.allclose(got, _rmia_brute(*args, online, gamma, a), rtol=0, atol=1e-12)
    ones = rmia(*args)
    assert 0 < ones.mean() < 1 and len(np.unique(ones)) > 3  # not a degenerate case


def test_rmia_scores_are_shares_monotone_in_gamma_and_scale_free_online():
    args = _rmia_small(seed=2, n=40, m=60)
    for online in (True, False):
        by_gamma = np.stack([rmia(*args, online=online, gamma=g) for g in (0.25, 0.5, 1.0, 2.0, 4.0)])
        assert ((by_gamma >= 0) & (by_gamma <= 1)).all()
        assert (np.diff(by_gamma, axis=0) <= 0).all()  # a higher bar dominates fewer z
        assert by_gamma[0].mean() > by_gamma[-1].mean()
    base = rmia(*args)
    for c in (0.3, 2.5):
        assert np.array_equal(rmia(*(x * c if x.dtype != bool else x for x in args)), base)
    # offline is not scale-free: its 1 - a term is an absolute probability
    assert not np.array_equal(
        rmia(*(x * 0.3 if x.dtype != bool else x for x in args), online=False), rmia(*args, online=False)
    )
    one_d = rmia(*(x.mean(-1) if x.dtype != bool else x for x in args))  # queries are averaged first
    assert np.array_equal(one_d, base)


def test_rmia_counts_strictly_greater_ratios():
    # the population is the candidates themselves: each ties with itself, and "> gamma" does not count the tie
    target_p, ref_p, _, _, _ = _rmia_small(seed=3, n=20)
    ref_in = np.zeros(ref_p.shape[:2], dtype=bool)
    for online in (True, False):
        scores = rmia(target_p, ref_p, ref_in, target_p, ref_p, online=online)
        assert np.array_equal(np.sort(scores), np.arange(20) / 20)  # rank / m: the top one dominates the 19 others


def test_rmia_validation_names_what_is_wrong():
    target_p, ref_p, ref_in, pop_t, pop_r = _rmia_small()
    with pytest.raises(ValueError, match=r"shapes disagree.*refs \(5, 11, 3\)"):
        rmia(target_p, ref_p[:, :11], ref_in, pop_t, pop_r)
    with pytest.raises(ValueError, match="shapes disagree"):
        rmia(target_p, ref_p, ref_in, pop_t[:, :2], pop_r[..., :2])  # queries differ from the candidates'
    with pytest.raises(ValueError, match="shapes disagree"):
        rmia(target_p, ref_p, ref_in, pop_t, pop_r[:4])  # population scored by other references
    for gamma in (0.0, -1.0):
        with pytest.raises(ValueError, match="gamma must be above 0"):
            rmia(target_p, ref_p, ref_in, pop_t, pop_r, gamma=gamma)
    for a in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"offline_a must be in \[0, 1\]"):
            rmia(target_p, ref_p, ref_in, pop_t, pop_r, online=False, offline_a=a)
    no_out = ref_in.copy()
    no_out[:, [0, 3]] = True
    with pytest.raises(ValueError, match="2 of 12 candidates have no OUT reference"):
        rmia(target_p, ref_p, no_out, pop_t, pop_r, online=False)
    assert rmia(target_p, ref_p, no_out, pop_t, pop_r).shape == (12,)  # online needs no OUT reference
    with pytest.raises(ValueError, match="empty population"):
        rmia(target_p, ref_p, ref_in, pop_t[:0], pop_r[:, :0])
    with pytest.raises(ValueError, match="at least 1 reference"):
        rmia(target_p, ref_p[:0], ref_in[:0], pop_t, pop_r[:0])


def test_gap_attack_is_correctness():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.5, 0.2, 0.9], [1.0, 0.0, -1.0]])
    y = torch.tensor([0, 2, 2, 1])
    scores, preds = gap_attack(logits, y)
    assert scores.dtype == np.float64 and np.array_equal(scores, [1.0, 0.0, 1.0, 0.0])
    assert np.array_equal(preds, [1, 0, 1, 0]) and preds.dtype.kind == "i"
    with pytest.raises(ValueError, match="n x classes"):
        gap_attack(logits, y[:3])


def _correct(rng, n, q, p):
    return rng.random((n, q)) < p


def test_augmentation_attack_thresholds_on_the_shadow():
    rng = np.random.default_rng(0)
    q = 10
    s_in, s_out = _correct(rng, 300, q, 0.9), _correct(rng, 300, q, 0.5)  # members robust to augmentation
    t_in, t_out = _correct(rng, 300, q, 0.9), _correct(rng, 300, q, 0.5)
    scores, preds, thr = augmentation_attack(s_in, s_out, np.concatenate([t_in, t_out]))
    truth = np.r_[np.ones(300), np.zeros(300)]
    assert np.allclose(scores, np.concatenate([t_in, t_out]).mean(1))
    assert 0.5 < thr <= 0.9 and (preds == truth).mean() > 0.9
    assert np.array_equal(preds, (scores >= thr).astype(int))
    assert thr == best_threshold(np.r_[s_in.mean(1), s_out.mean(1)], np.r_[np.ones(300), np.zeros(300)])
    # the threshold is the shadow's: a target of mostly members or mostly non-members leaves it
    _, _, thr_members = augmentation_attack(s_in, s_out, np.concatenate([t_in, t_out[:30]]))
    _, _, thr_nonmembers = augmentation_attack(s_in, s_out, np.concatenate([t_in[:30], t_out]))
    assert thr_members == thr_nonmembers == thr


def test_augmentation_attack_validation():
    rng = np.random.default_rng(0)
    a, b = _correct(rng, 5, 4, 0.5), _correct(rng, 5, 3, 0.5)
    with pytest.raises(ValueError, match="same number of queries"):
        augmentation_attack(a, a, b)
    with pytest.raises(ValueError, match=r"target_correct must be a non-empty n x q array, got shape \(0, 4\)"):
        augmentation_attack(a, a, a[:0])
    with pytest.raises(ValueError, match=r"shadow_in_correct must be a non-empty n x q array, got shape \(5,\)"):
        augmentation_attack(a[:, 0], a, a)
