"""Every statement rule of :data:`qmia.statements.STATEMENTS` on hand-built rows.

Each rule is checked where it must agree, disagree, and be not measurable: a quantized model that collapsed, a
full-precision attack at chance, an interval across zero (or across the statement's threshold), and a tie (two
targets with the very same attack outcomes). The rows are a small synthetic world: every model of a profile with
LeNet-5 / Fashion-MNIST, ResNet-20 and ResNet-50 / CIFAR-10 at 4, 8 and 16 bits, DoReFa-Net at 4 and 8 bits, the
last-5-layers model and the adaptive shadows, each with an attack whose true- and false-positive rates, score
separation, target test accuracy and shadow test accuracy a case sets.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytest

from qmia import claims, evidence, statements
from qmia.config import Profile
from qmia.metrics import attack_metrics
from qmia.plan import reading_spec
from qmia.quantizers import QuantSpec
from qmia.uncertainty import AttackOutcome

READING = "min-anchored"
P = Profile(
    name="synthetic-rules",
    n_per_split={"fashion_mnist": 5000, "cifar10": 5000},
    epochs={"lenet": 1, "resnet20": 1, "resnet50": 1},
    models=(("lenet", "fashion_mnist"), ("resnet20", "cifar10"), ("resnet50", "cifar10")),
    resnet=("resnet20", "cifar10"),
    sweep=("resnet20", "cifar10"),
    bits=(4, 8, 16),
    claim_seeds=(0,),
    readings=(READING,),
    lira_refs=2,
)
DATASET = {"lenet": "fashion_mnist", "resnet20": "cifar10", "resnet50": "cifar10"}


@dataclass(frozen=True)
class Model:
    """One target's attack row: the attack's decisions (``tpr``, ``fpr``), the separation of its scores (``shift``:
    member scores N(shift, 1), non-members N(0, 1); 0 is chance), the target's and its shadow's test accuracy, and
    ``salt``: two models of one salt share their examples' random order, so their decisions nest (a paired comparison
    of them is precise); another salt draws them independently."""

    tpr: float = 0.8
    fpr: float = 0.4
    shift: float = 1.0
    acc: float = 0.80
    shadow_acc: float = 0.80
    salt: int = 0


def _spec(name: str) -> QuantSpec | None:
    what = name.split("/")[1] if "/" in name else "fp"
    if what == "fp":
        return None
    if what.startswith("dorefa"):
        return QuantSpec("dorefa", int(what[len("dorefa") :]))
    if what == "last5":
        return reading_spec(READING, 4, layers="last:5")
    return reading_spec(READING, int(what))


NAMES = (
    "lenet",
    "lenet/4",
    "lenet/8",
    "lenet/16",
    "resnet20",
    "resnet20/4",
    "resnet20/8",
    "resnet20/16",
    "resnet20/dorefa4",
    "resnet20/dorefa8",
    "resnet20/last5",
    "resnet50",
    "resnet50/4",
    "resnet50/8",
)
ADAPTIVE = ("lenet/4", "resnet20/4")  # the rows of shadows quantized like their target (shadow-counterpart)


def _outcome(m: Model, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    member = np.r_[np.ones(n), np.zeros(n)].astype(int)
    order = np.random.default_rng(m.salt).permutation(n)
    pred = np.zeros(2 * n, dtype=int)
    pred[order[: round(m.tpr * n)]] = 1
    pred[n + order[: round(m.fpr * n)]] = 1
    scores = np.random.default_rng(1000 + m.salt).normal(size=2 * n) + m.shift * member
    return scores, pred, member


def world(overrides: dict[str, dict], n: int = 1000) -> evidence.Evidence:
    """Evidence of every model in :data:`NAMES`, ``n`` members and ``n`` non-members per attack. ``overrides``: comma-
    separated fnmatch patterns of model names (':adaptive' names an adaptive-shadow row), each setting fields of the
    models it matches, later ones over earlier."""
    rows, outcomes = [], {}
    for name in NAMES + tuple(f"{a}:adaptive" for a in ADAPTIVE):
        m = Model()
        for patterns, fields in overrides.items():
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns.split(",")):
                m = replace(m, **fields)
        base, _, attack = name.partition(":")
        arch = base.split("/")[0]
        cfg = P.config(arch, DATASET[arch], _spec(base))
        scores, pred, member = _outcome(m, n)
        shadow = f"shadow-{arch}" if not attack else f"adaptive-shadow-{base}"
        row = {
            "row_key": f"row-{len(rows)}",
            "target_key": cfg.key,
            "attack": attack or "shadow",
            "seed": 0,
            "target_train_acc": m.acc + 0.1,
            "target_test_acc": m.acc,
            "target_instance": f"t-{base}",
            "shadow_key": shadow,
            "shadow_instance": f"i-{shadow}",
            "shadow_test_acc": m.shadow_acc,
            "shadow_train_acc": m.shadow_acc + 0.1,
            **attack_metrics(scores, member, pred),
        }
        outcomes[("outcome", cfg.key, row["attack"])] = AttackOutcome(scores, pred, member, np.arange(2 * n), 0)
        rows.append(row)
    return evidence.Evidence(P, pd.DataFrame(rows), n_boot=200, _memo=outcomes)  # the outcomes in memory, not stored


AGREE, DISAGREE, NA = claims.AGREES, claims.DISAGREES, claims.UNMEASURABLE
NOISE, COLLAPSE, CHANCE = "at this size", "utility collapse", "at chance"
LOW = {"tpr": 0.6, "fpr": 0.4}  # member precision .60, recall .60, F1 .60 and attack accuracy .60, from .67/.80/.73/.70
HIGH = {"tpr": 0.9, "fpr": 0.2}  # every metric of the attack higher than the default's
NEAR = {"tpr": 0.79, "fpr": 0.41, "salt": 1}  # one point off, drawn independently: within noise
SAME = {}  # the default model: the very same outcomes as its full-precision baseline
BROKEN = {"acc": 0.60, "tpr": 0.5, "fpr": 0.5}  # lost 20 points of test accuracy, its attack at chance
BLIND = {"shift": 0.0, "tpr": 0.5, "fpr": 0.5}  # a full-precision attack at chance


FPS = "lenet,resnet20,resnet50"  # the full-precision models
QUANTIZED = "*/[0-9]*"  # the models of the paper's quantizer at every bitwidth


def drop_cases(after: str, baseline: str, low: dict = LOW, broken: str | None = None) -> list[tuple]:
    """The six cases of a rule "the attack is lower on ``after`` than on ``baseline``" (patterns); ``low``: a model
    whose attack is lower on every metric the rule reads; ``broken``: the one model that collapses (default: all
    ``after``)."""
    return [
        ("agree", {after: low}, AGREE, None),
        ("disagree", {after: HIGH}, DISAGREE, None),
        ("noise", {after: NEAR}, NA, NOISE),
        ("tie", {after: SAME}, NA, NOISE),
        ("collapse", {after: low, broken or after: BROKEN}, NA, COLLAPSE),
        ("chance", {baseline: BLIND}, NA, CHANCE),
    ]


STRONG = {"resnet20": {"shift": 3.0}}  # a full-precision attack that leaks clearly even on a few examples
CASES: dict[str, list[tuple]] = {
    "no-disruption": [
        ("agree", {}, AGREE, None),
        ("disagree", {"resnet20/4": {"acc": 0.60}}, DISAGREE, None),
        ("noise", {"lenet/8": {"acc": 0.70}}, NA, NOISE),
        ("tie", {QUANTIZED: SAME}, AGREE, None),
    ],  # the claim of no loss holds when nothing is lost
    "abstract-attack-acc": [
        ("agree", {"resnet20/4": {"tpr": 0.60, "fpr": 0.396}}, AGREE, None),  # .700 -> .602
        ("disagree", {"resnet20/4": {"tpr": 0.5, "fpr": 0.5}}, DISAGREE, None),  # 29 % lower
        ("noise", {**STRONG, "resnet20/4": {"tpr": 0.60, "fpr": 0.40, "salt": 1}, "_n": 40}, NA, NOISE),
        ("tie", {}, DISAGREE, None),  # no reduction: the claimed 14 % is outside
        ("collapse", {"resnet20/4": {"tpr": 0.60, "fpr": 0.396, "acc": 0.6}}, NA, COLLAPSE),
        ("chance", {"resnet20": BLIND}, NA, CHANCE),
    ],
    "abstract-tpr": [
        ("agree", {"resnet20/4": {"tpr": 0.504}}, AGREE, None),  # .800 -> .504: 37 % lower
        ("disagree", {"resnet20/4": {"tpr": 0.7}}, DISAGREE, None),
        ("noise", {**STRONG, "resnet20/4": {"tpr": 0.5, "salt": 1}, "_n": 10}, NA, NOISE),
        ("tie", {}, DISAGREE, None),
        ("collapse", {"resnet20/4": {"tpr": 0.504, "acc": 0.6}}, NA, COLLAPSE),
        ("chance", {"resnet20": BLIND}, NA, CHANCE),
    ],
    "abstract-f1": [
        ("agree", {"resnet20/4": {"tpr": 0.40}}, AGREE, None),  # member F1 .727 -> .444: 39 % lower
        ("disagree", {"resnet20/4": {"tpr": 0.7}}, DISAGREE, None),
        ("noise", {**STRONG, "resnet20/4": {"tpr": 0.40, "salt": 1}, "_n": 10}, NA, NOISE),
        ("tie", {}, DISAGREE, None),
        ("collapse", {"resnet20/4": {"tpr": 0.40, "acc": 0.6}}, NA, COLLAPSE),
        ("chance", {"resnet20": BLIND}, NA, CHANCE),
    ],
    # member precision .667 -> .587 (8 points) at every bitwidth, nested decisions: a precise paired drop
    "intro-7-9": [
        ("agree", {"resnet20/*": {"fpr": 0.563}, "_n": 5000}, AGREE, None),
        ("disagree", {"resnet20/*": {"fpr": 0.8}}, DISAGREE, None),  # .50: 17 points
        ("noise", {"resnet20/*": {"fpr": 0.563, "salt": 1}}, NA, NOISE),
        ("tie", {}, DISAGREE, None),  # no drop: outside 7-9 points
        (
            "collapse",
            {"resnet20/*": {"fpr": 0.563}, "resnet20/4": {"fpr": 0.563, "acc": 0.6}, "_n": 5000},
            NA,
            COLLAPSE,
        ),
    ],
    "resnet50-accuracy": [
        ("agree", {"resnet50/*": {"acc": 0.85}}, AGREE, None),
        ("disagree", {"resnet50/8": {"acc": 0.75}}, DISAGREE, None),
        ("noise", {"resnet50/*": {"acc": 0.805}}, NA, NOISE),
        ("tie", {}, NA, NOISE),
    ],
    "resnet50-attack": drop_cases("resnet50/*", "resnet50", broken="resnet50/4"),
    "shadow-counterpart": [
        ("agree", {"lenet/4:adaptive": {"shadow_acc": 0.76}, "resnet20/4:adaptive": {"shadow_acc": 0.82}}, AGREE, None),
        (
            "disagree",
            {"lenet/4:adaptive": {"shadow_acc": 0.76}, "resnet20/4:adaptive": {"shadow_acc": 0.70}},
            DISAGREE,
            None,
        ),  # the full-precision shadow resolved higher on CIFAR-10 too
        ("noise", {"lenet/4:adaptive": {"shadow_acc": 0.795}}, NA, NOISE),
        ("tie", {}, NA, NOISE),
    ],
    "attack-lower-fmnist": [
        ("agree", {"lenet*": LOW}, AGREE, None),
        ("disagree", {"lenet*": HIGH}, DISAGREE, None),
        ("noise", {"lenet*": NEAR}, NA, NOISE),
        ("tie", {}, NA, NOISE),
        ("collapse", {"lenet*": LOW, "lenet/8": {**LOW, "acc": 0.6}}, NA, COLLAPSE),
    ],
    "shadow-higher-cifar": [
        ("agree", {"resnet20": {"shadow_acc": 0.85}}, AGREE, None),
        ("disagree", {"resnet20": {"shadow_acc": 0.70}}, DISAGREE, None),
        ("noise", {"resnet20": {"shadow_acc": 0.805}}, NA, NOISE),
        ("tie", {}, NA, NOISE),
    ],
    "16bit-like-fp": [
        ("agree", {"*/16": {"acc": 0.79}}, AGREE, None),
        ("disagree", {"resnet20/16": {"acc": 0.70}}, DISAGREE, None),
        ("noise", {"lenet/16": {"acc": 0.75}}, NA, NOISE),
        ("tie", {}, AGREE, None),
    ],  # a claim of no difference holds on no difference
    "16bit-attack-lower": drop_cases("*/16", FPS, broken="resnet20/16"),
    "member-prf-drop": drop_cases(QUANTIZED, FPS, broken="resnet20/4"),
    "tp-lower": drop_cases(QUANTIZED, FPS, broken="lenet/8"),
    "resnet20-8bit-tp": [
        ("agree", {"resnet20/8": {"tpr": 0.55, "fpr": 0.15}}, AGREE, None),  # accuracy .70 -> .70, TPR 25 points lower
        ("disagree", {"resnet20/8": {"tpr": 0.75, "fpr": 0.35}}, DISAGREE, None),  # TPR only 5 points lower
        ("noise", {"resnet20/8": {"tpr": 0.60, "fpr": 0.20}}, NA, NOISE),  # TPR 20 points lower: on the threshold
        ("tie", {}, DISAGREE, None),  # no TPR reduction at all
        ("collapse", {"resnet20/8": {"tpr": 0.55, "fpr": 0.15, "acc": 0.6}}, NA, COLLAPSE),
    ],
    "fig5-chance": [
        ("agree", {"resnet20/4": BLIND, "_n": 5000}, AGREE, None),
        ("disagree", {"resnet20/4": {"shift": 0.5}}, DISAGREE, None),
        ("noise", {"resnet20/4": BLIND, "_n": 300}, NA, NOISE),  # holds 0.5, but wider than 0.48-0.52
        ("tie", {}, DISAGREE, None),  # as successful as full precision: not random
        ("collapse", {"resnet20/4": {**BLIND, "acc": 0.6}}, NA, COLLAPSE),
        ("chance", {"resnet20": BLIND}, NA, CHANCE),
    ],
    "table6-both-reduce": drop_cases("resnet20/[48],resnet20/dorefa*", "resnet20", broken="resnet20/dorefa8"),
    "table6-all-three": drop_cases("resnet20/[48]", "resnet20/dorefa*", broken="resnet20/8"),
    "table6-f1-28": [
        ("agree", {"resnet20/4": {"tpr": 0.40}}, AGREE, None),  # F1 .727 -> .444: 39 % lower
        ("disagree", {"resnet20/4": LOW}, DISAGREE, None),  # .600: 17 % lower
        ("noise", {"resnet20/4": {"tpr": 0.495}}, NA, NOISE),  # .523: 28 % lower, on the threshold
        ("tie", {}, DISAGREE, None),
        ("collapse", {"resnet20/4": {"tpr": 0.40, "acc": 0.6}}, NA, COLLAPSE),
        ("chance", {"resnet20/dorefa4": BLIND}, NA, CHANCE),
    ],
    # last 5 layers at .6 / .5: member precision .545, recall .6, F1 .571; non-member precision .556, recall .5,
    # F1 .526, each below full precision's (.667 / .8 / .727; .75 / .6 / .667)
    "fig6-all-lower": drop_cases("resnet20/last5", "resnet20", low={"tpr": 0.6, "fpr": 0.5}),
    "fig6-nonmember-precision": drop_cases("resnet20/last5", "resnet20"),
}


ABOUT_SHADOWS = ("shadow-counterpart", "shadow-higher-cifar")  # statements of shadow accuracies: no target collapses


def test_every_statement_has_its_cases():
    assert set(CASES) == {s.key for s in statements.STATEMENTS}
    for key, cases in CASES.items():
        kinds = {c[0].split()[0] for c in cases}
        assert {"agree", "disagree", "tie"} <= kinds, key
        assert "noise" in kinds, key
        if key not in ABOUT_SHADOWS and next(s for s in statements.STATEMENTS if s.key == key).kind == "attack":
            assert "collapse" in kinds, key  # a statement about an attack on a quantized target has a collapsed one


@pytest.mark.parametrize(
    "key, case, overrides, status, words",
    [(k, c[0], c[1], c[2], c[3]) for k, cs in CASES.items() for c in cs],
    ids=[f"{k}-{c[0].replace(' ', '-')}" for k, cs in CASES.items() for c in cs],
)
def test_each_statement_rule(key, case, overrides, status, words):
    overrides = dict(overrides)
    n = overrides.pop("_n", 1000)
    ev = world(overrides, n)
    stmt = next(s for s in statements.STATEMENTS if s.key == key)
    cell = statements.check_statement(stmt, ev, READING)
    assert cell.status == status, (key, case, cell)
    if status != NA:
        assert not cell.noise, (key, case, cell)
    else:
        assert words in cell.detail and cell.noise == (words == NOISE), (key, case, cell)
