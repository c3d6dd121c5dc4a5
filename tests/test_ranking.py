import numpy as np
import pytest

from qmia.ranking import attack_agreement, rank_quantizers
from qmia.uncertainty import AttackOutcome, estimate

N = 3000  # members and as many non-members per seed


def _outcome(shift: float, rng_seed: int, seed: int = 0, n: int = N, decimals: int | None = None) -> AttackOutcome:
    """Scores N(0, 1) for non-members and N(shift, 1) for members (rounded to ``decimals``: ties);
    the split depends on the seed only."""
    rng = np.random.default_rng(rng_seed)
    member = np.r_[np.ones(n), np.zeros(n)].astype(int)
    scores = rng.normal(size=2 * n) + shift * member
    if decimals is not None:
        scores = np.round(scores, decimals)
    return AttackOutcome(scores, (scores >= shift / 2).astype(int), member, np.arange(2 * n) + 1000 * seed, seed)


def _case(shifts: dict[str, dict[str, float]], seeds=(0,)) -> dict[str, dict[str, list[AttackOutcome]]]:
    """outcomes[quantizer][attack], one outcome per seed, each with its own noise."""
    out, k = {}, 0
    for q, attacks in shifts.items():
        out[q] = {}
        for a, shift in attacks.items():
            out[q][a] = [_outcome(shift, rng_seed=1000 * s + k, seed=s) for s in seeds]
            k += 1
    return out


def _permuted(o: AttackOutcome, rng_seed: int) -> AttackOutcome:
    """The same scores handed to other examples of the same class: the same value on all examples,
    other values on a resample."""
    rng = np.random.default_rng(rng_seed)
    m = o.member.astype(bool)
    scores, pred = o.scores.copy(), o.pred.copy()
    for group in (np.flatnonzero(m), np.flatnonzero(~m)):
        moved = rng.permutation(group)
        scores[group], pred[group] = scores[moved], pred[moved]
    return AttackOutcome(scores, pred, o.member, o.index, o.seed)


def test_a_certain_order_is_found_with_certainty():
    out = _case(
        {"fp32": {"loss": 1.0, "lira": 1.8}, "int8": {"loss": 0.6, "lira": 1.0}, "int4": {"loss": 0.05, "lira": 0.3}}
    )
    df = rank_quantizers(out, n_boot=200)
    assert list(df.quantizer) == ["int4", "int8", "fp32"]  # most secure first
    assert list(df["rank"]) == [1, 2, 3]
    assert (df.rank_share >= 0.99).all() and list(df.best_share) == [pytest.approx(1.0, abs=0.01), 0.0, 0.0]
    assert list(df.mean_rank) == pytest.approx([1, 2, 3], abs=0.02)
    assert (df.value_lo < df.value).all() and (df.value < df.value_hi).all()
    assert list(df.strongest_attack) == ["lira"] * 3  # the planted strongest attack, not the first listed
    assert (df.n_attacks == 2).all() and (df.n_seeds == 1).all() and (df.n_boot == 200).all()
    assert df.attrs == {"metric": "max_advantage", "level": 0.95}


def test_mis_is_one_minus_the_value_and_only_for_advantages():
    out = _case({"a": {"x": 0.4}, "b": {"x": 0.9}})
    df = rank_quantizers(out, n_boot=20)
    assert np.allclose(df.mis, 1 - df.value) and (df.mis > 0).all()
    adv = rank_quantizers(out, "advantage", n_boot=20)
    assert np.allclose(adv.mis, 1 - adv.value) and adv.attrs["metric"] == "advantage"
    auc = rank_quantizers(out, "auc", n_boot=20)
    assert auc.mis.isna().all() and auc.attrs["metric"] == "auc" and list(auc.quantizer) == ["a", "b"]
    low = rank_quantizers(out, "tpr@0.01", n_boot=20)
    assert list(low.quantizer) == ["a", "b"] and low.mis.isna().all()


def test_values_and_intervals_are_those_of_estimate_of_the_strongest_attack():
    out = _case({"a": {"x": 0.4}, "b": {"x": 0.9}}, seeds=(0, 1, 2))
    out["c"] = {"x": [_outcome(0.6, rng_seed=50 + s, seed=s, decimals=1) for s in (0, 1, 2)]}  # many ties
    for metric in ("max_advantage", "auc"):
        df = rank_quantizers(out, metric, n_boot=150, seed=7, level=0.9).set_index("quantizer")
        for q in ("a", "b", "c"):  # one attack each: the same draws as estimate's, hence the same interval
            e = estimate(out[q]["x"], metric, n_boot=150, seed=7, level=0.9)
            assert (df.loc[q, "value"], df.loc[q, "value_lo"], df.loc[q, "value_hi"]) == pytest.approx(
                (e.value, e.lo, e.hi), abs=1e-12
            ), (metric, q)


def test_two_identical_quantizers_tie_and_share_an_uncertain_rank():
    out = _case({"a": {"x": 0.8}, "c": {"x": 1.6}})
    out["b"] = {"x": [_permuted(out["a"]["x"][0], rng_seed=3)]}  # a's scores on other examples
    df = rank_quantizers(out, n_boot=300).set_index("quantizer")
    assert df.loc["a", "value"] == df.loc["b", "value"]  # tied exactly ...
    assert df.loc["a", "rank"] == df.loc["b", "rank"] == 1 and df.loc["c", "rank"] == 3  # ... sharing the lower rank
    for q in ("a", "b"):
        assert 0.15 < df.loc[q, "best_share"] < 0.85  # which of the two is safer is a coin toss
        assert df.loc[q, "rank_share"] == df.loc[q, "best_share"]
        assert 1.15 < df.loc[q, "mean_rank"] < 1.85
    assert df.loc["a", "best_share"] + df.loc["b", "best_share"] >= 1  # one of them is always first, ties counted
    assert df.loc["c", "best_share"] == 0 and df.loc["c", "rank_share"] == 1
    behind = dict(out, d=_case({"d": {"x": 0.1}})["d"])  # a clearly safer one: the pair shares rank 2
    df = rank_quantizers(behind, n_boot=300).set_index("quantizer")
    assert list(df["rank"]) == [1, 2, 2, 4] and list(df.index) == ["d", "a", "b", "c"]
    for q in ("a", "b"):
        assert 0.15 < df.loc[q, "rank_share"] < 0.85 and df.loc[q, "best_share"] == 0  # 2nd or 3rd, never 1st
        assert 2.15 < df.loc[q, "mean_rank"] < 2.85
    assert df.loc["a", "rank_share"] + df.loc["b", "rank_share"] >= 1
    same = _case({"a": {"x": 0.8}, "c": {"x": 1.6}})
    same["b"] = same["b2"] = same["a"]  # the very same outcomes: tied on every resample
    df = rank_quantizers(same, n_boot=100).set_index("quantizer")
    assert list(df["rank"]) == [1, 1, 1, 4]
    assert (df.loc[["a", "b", "b2"], "best_share"] == 1).all() and (df.loc[["a", "b", "b2"], "mean_rank"] == 1).all()


def test_nearly_tied_quantizers_have_uncertain_ranks():
    out = _case({"e": {"x": 0.8}, "g": {"x": 1.6}})
    f = _permuted(out["e"]["x"][0], rng_seed=4)
    scores = f.scores.copy()
    scores[np.argmax(np.where(f.member == 1, scores, -np.inf))] = -10.0  # its top member falls below every cut
    out["f"] = {"x": [AttackOutcome(scores, f.pred, f.member, f.index, 0)]}  # 1 / 3000 below e on all examples
    df = rank_quantizers(out, n_boot=300).set_index("quantizer")
    assert df.loc["f", "value"] == pytest.approx(df.loc["e", "value"] - 1 / N)
    assert list(df.index) == ["f", "e", "g"] and list(df["rank"]) == [1, 2, 3]
    assert 0.1 < df.loc["e", "rank_share"] < 0.9  # 2nd on all examples, often 1st on a resample
    assert df.loc["e", "rank_share"] + df.loc["e", "best_share"] == pytest.approx(1, abs=0.05)  # ties are rare
    assert 0.1 < df.loc["f", "best_share"] == df.loc["f", "rank_share"] < 0.9
    assert df.loc["e", "value_lo"] < df.loc["f", "value"] < df.loc["e", "value"] < df.loc["f", "value_hi"]


def test_a_quantizer_ranks_by_its_strongest_attack_not_its_average():
    out = _case({"x": {"loss": 0.0, "lira": 1.2}, "y": {"loss": 0.8, "lira": 0.8}})
    df = rank_quantizers(out, n_boot=200).set_index("quantizer")
    mean = {q: np.mean([estimate(os, "max_advantage", n_boot=2).value for os in out[q].values()]) for q in out}
    assert mean["x"] < mean["y"]  # on average over attacks x would look safer ...
    assert df.loc["y", "rank"] == 1 and df.loc["x", "rank"] == 2  # ... but its strongest attack breaks it more
    assert df.loc["x", "strongest_attack"] == "lira"
    assert df.loc["x", "value"] == pytest.approx(estimate(out["x"]["lira"], "max_advantage", n_boot=2).value)
    assert df.loc["x", "rank_share"] > 0.99


def test_two_seeds_are_averaged():
    out = _case({"a": {"x": 0.3, "y": 0.5}, "b": {"x": 1.0, "y": 0.7}}, seeds=(0, 1))
    df = rank_quantizers(out, n_boot=100).set_index("quantizer")
    assert (df.n_seeds == 2).all() and list(df.index) == ["a", "b"]
    want = max(np.mean([estimate([o], "max_advantage", n_boot=2).value for o in out["b"][a]]) for a in ("x", "y"))
    assert df.loc["b", "value"] == pytest.approx(want, abs=1e-12)


def test_outcomes_that_cannot_be_paired_or_ranked_are_refused():
    out = _case({"a": {"x": 0.3}, "b": {"x": 0.6, "y": 0.4}})
    o = out["b"]["y"][0]
    bad = dict(out, b={"x": out["b"]["x"], "y": [AttackOutcome(o.scores, o.pred, o.member, o.index + 1, 0)]})
    with pytest.raises(ValueError, match="quantizer 'b', attack 'y', seed 0: not evaluated on the same examples"):
        rank_quantizers(bad, n_boot=5)
    other_seed = dict(out, b={"x": out["b"]["x"], "y": [AttackOutcome(o.scores, o.pred, o.member, o.index, 1)]})
    with pytest.raises(ValueError, match="same seeds"):
        rank_quantizers(other_seed, n_boot=5)
    with pytest.raises(ValueError, match="at least 2 quantizers"):
        rank_quantizers({"a": out["a"]}, n_boot=5)
    with pytest.raises(ValueError, match="quantizer 'b' has no attacks"):
        rank_quantizers(dict(out, b={}), n_boot=5)
    with pytest.raises(ValueError, match="cannot rank"):
        rank_quantizers(out, "tpr_matched", n_boot=5)
    with pytest.raises(ValueError, match="valid: .*max_advantage"):
        rank_quantizers(out, "precision", n_boot=5)


def test_attack_agreement_is_one_when_attacks_agree_and_low_when_they_do_not():
    quantizers = {"q1": 0.2, "q2": 0.6, "q3": 1.0, "q4": 1.4}
    agree = _case({q: {"loss": s, "lira": s + 0.1, "entropy": s - 0.1} for q, s in quantizers.items()})
    ranks, w = attack_agreement(agree)
    assert w == pytest.approx(1.0)
    assert list(ranks.index) == list(quantizers) and list(ranks.columns) == ["loss", "lira", "entropy"]
    assert (ranks.to_numpy() == np.array([[1], [2], [3], [4]])).all()
    shifts = list(quantizers.values())
    disagree = _case(
        {
            q: {"loss": s, "lira": s, "entropy": shifts[-1 - i]}  # entropy reverses the order
            for i, (q, s) in enumerate(quantizers.items())
        }
    )
    ranks, w = attack_agreement(disagree)
    assert list(ranks["entropy"]) == [4, 3, 2, 1]
    assert w == pytest.approx(1 / 9)  # rank sums 6, 7, 8, 9: 12 * 5 / (3^2 * (4^3 - 4))
    extra = dict(agree, q1=dict(agree["q1"], only_here=agree["q1"]["loss"]))
    assert list(attack_agreement(extra)[0].columns) == ["loss", "lira", "entropy"]  # only attacks run on all


def test_attack_agreement_corrects_for_ties_and_needs_two_common_attacks():
    out = _case({"q1": {"loss": 0.3, "lira": 0.4}, "q3": {"loss": 1.2, "lira": 1.3}})
    out["q2"] = out["q1"]  # tied with q1 under every attack
    ranks, w = attack_agreement(out)
    assert list(ranks["loss"]) == [1, 3, 1]  # ties share the lower rank, as in rank_quantizers
    assert w == pytest.approx(1.0)  # the same order everywhere; without the tie correction W would be 0.75
    with pytest.raises(ValueError, match="at least 2 attacks"):
        attack_agreement({"a": {"x": out["q1"]["loss"], "y": out["q1"]["lira"]}, "b": {"x": out["q3"]["loss"]}})
