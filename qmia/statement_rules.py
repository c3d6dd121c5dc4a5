"""Each checkable statement's rule (:data:`qmia.statements.STATEMENTS`): one function per statement, from the rows
of :class:`qmia.evidence.Evidence` to a :class:`qmia.beyond_noise.Cell`, with the paper's own thresholds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from .beyond_noise import (
    Cell,
    accuracy_gap,
    attack_gap,
    bits_of,
    decide,
    drop_per_model,
    drop_rule,
    examples_per_split,
    fp_vs,
    model_gap,
    models_of,
    not_measurable,
    pct,
    short_name,
    sign,
)
from .claims import (
    ABSTRACT_CLAIMS,
    AGREES,
    CHANCE,
    DISAGREES,
    LEAK_MARGIN,
    MAX_UTILITY_DROP,
    claim_seeds,
    leaks,
)
from .evidence import Evidence
from .plan import reading_bits, reading_spec
from .quantizers import QuantSpec
from .vocabulary import DOREFA

SIMILAR_POINTS = 0.05  # "behaves similarly": test accuracy within 5 points (the utility tolerance; seed noise is ~2)


UNDISRUPTED_POINTS = 0.10  # "does not disrupt the training": no quantized target loses more than 10 points


SMALL_POINTS = 0.03  # "only a small difference in attack accuracy": within 3 points


NEARLY_30_POINTS = 0.20  # "a nearly 30-point reduction in TP": at least 20 points of TPR


MEMBER_PRECISION_POINTS = (0.07, 0.09)  # the Introduction's "7 to 9 point accuracy drop in the precision of MIA"


def undisrupted(ev: Evidence, reading: str) -> Cell:
    results = []
    for a, d in models_of(ev):
        fp = ev.row(ev.config(a, d))["target_test_acc"]
        for b in reading_bits(ev.p, a):
            q = ev.row(ev.config(a, d, reading_spec(reading, b)))["target_test_acc"]
            loss = model_gap(ev, fp, q, (a, d))
            state = "yes" if loss.hi <= UNDISRUPTED_POINTS else "no" if loss.lo > UNDISRUPTED_POINTS else "noise"
            results.append((state, f"{short_name(a)} {b}b loses {loss}"))
    return decide(results)


def abstract(key: str) -> Callable[[Evidence, str], Cell]:
    claim = ABSTRACT_CLAIMS[key]

    def check(ev: Evidence, reading: str) -> Cell:
        """The paper's quantity (hard decisions), full precision against the lowest bitwidth over the claim seeds:
        agrees when the relative reduction's interval holds the claimed value (no more, no less) and lies above
        zero, disagrees when it excludes the claimed value, and is not measurable at this size when it holds both
        the claim and zero; a collapsed quantized model or a baseline at chance is not measurable."""
        b = min(ev.p.bits)
        seeds, note = claim_seeds(ev, reading, b)
        fp = [ev.config(*ev.p.resnet, seed=s) for s in seeds]
        q = [ev.config(*ev.p.resnet, reading_spec(reading, b), seed=s) for s in seeds]
        auc = ev.estimate(fp)
        if not leaks(auc):
            return not_measurable(f"not measurable (the full-precision attack is at chance: AUC {auc})")
        drop = sum(ev.row(f)["target_test_acc"] - ev.row(x)["target_test_acc"] for f, x in zip(fp, q)) / len(seeds)
        c = ev.compare_many(fp, q, claim.metric, chance=CHANCE.get(claim.metric))
        base, rel = c.before.value, c.relative_interval
        text = (
            f"{claim.metric.replace('_', ' ')} {base:.3f} -> {c.after.value:.3f} at {b} bits: {rel[0]:.1f} % lower "
            f"(95 % CI {rel[1]:.1f} to {rel[2]:.1f} %; claimed {claim.value:.0f} %), {len(seeds)} seed(s)"
            + (f", {note}" if note else "")
        )
        if drop > MAX_UTILITY_DROP:
            return not_measurable(
                f"not measurable (utility collapse: test accuracy {100 * drop:.1f} points lower): {text}"
            )
        if not rel[1] <= claim.value <= rel[2]:
            return Cell(DISAGREES, text)
        if rel[1] <= 0:  # the claim is inside an interval that also holds no reduction at all
            return not_measurable("not measurable at this size: " + text, noise=True)
        return Cell(AGREES, text)

    return check


def resnet50_acc(ev: Evidence, reading: str) -> Cell:
    if not ev.has("resnet50", "cifar10"):
        return not_measurable("ResNet-50 is not in this profile")
    fp = ev.row(ev.config("resnet50", "cifar10"))["target_test_acc"]
    results = []
    for b in bits_of(ev, (4, 8)):
        q = ev.row(ev.config("resnet50", "cifar10", reading_spec(reading, b)))["target_test_acc"]
        g = model_gap(ev, q, fp, ("resnet50", "cifar10"))
        results.append((sign(g), f"{b}-bit test acc. {pct(q)} vs fp {pct(fp)}: {g}"))
    return decide(results) if results else not_measurable("no 4- or 8-bit ResNet-50 in this profile")


def resnet50_attack(ev: Evidence, reading: str) -> Cell:
    if not ev.has("resnet50", "cifar10"):
        return not_measurable("ResNet-50 is not in this profile")
    pairs = fp_vs(ev, reading, [("resnet50", "cifar10")], bits_of(ev, (4, 8)))
    return drop_rule(ev, pairs, ("attack_acc",)) if pairs else not_measurable("no 4- or 8-bit ResNet-50")


def shadow_counterpart(ev: Evidence, reading: str) -> Cell:
    """Section 4.2 on Table 3: "the shadow model of the full bitwidth model has higher accuracy than its quantized
    counterpart on Fashion MNIST, whereas that is not the case for Cifar10". Section 4.2 also says that for Tables
    3-5 "the shadow model is trained with full bitwidths"; read that way every row's shadow is one full-precision
    model and the sentence compares it with itself. Table 3 lists a shadow accuracy per row, so the rule reads "its
    quantized counterpart" as the shadow quantized like the target (the adaptive shadow), at the lowest bitwidth,
    and compares it with the full-precision shadow: higher on Fashion-MNIST (resolved), not higher on CIFAR-10
    (no resolved excess)."""
    b = min(ev.p.bits)
    want = {"fashion_mnist": True, "cifar10": False}
    found = [(a, d) for a, d in models_of(ev, without_resnet50=True) if d in want]
    if {d for _, d in found} != set(want):
        return not_measurable("needs both Fashion-MNIST and CIFAR-10 models")
    results = []
    for a, d in found:
        fp_row, q_row = ev.paired_rows(
            [(ev.config(a, d), "shadow"), (ev.config(a, d, reading_spec(reading, b)), "adaptive")]
        )
        g = model_gap(ev, fp_row["shadow_test_acc"], q_row["shadow_test_acc"], (a, d))
        if want[d]:
            state = sign(g)
        else:  # "not the case": the full-precision shadow is not resolved above the quantized one
            state = "no" if g.lo > 0 else "yes"
        fp_acc, q_acc = pct(fp_row["shadow_test_acc"]), pct(q_row["shadow_test_acc"])
        text = f"{short_name(a)}: fp shadow {fp_acc}, {b}-bit shadow {q_acc}: {g}"
        results.append((state, text))
    return decide(results)


def cifar_vs_fmnist(ev: Evidence):
    fm = [m for m in models_of(ev) if m[1] == "fashion_mnist"]
    cf = [m for m in models_of(ev) if m[1] == "cifar10" and m[0] == "resnet20"]
    return (fm[0], cf[0]) if fm and cf else None


def attack_lower_on_fmnist(ev: Evidence, reading: str) -> Cell:
    """LeNet / Fashion-MNIST against ResNet-20 / CIFAR-10 (only those: ResNet-50 is not compared), at full precision
    and each bitwidth both run: two independent attacks, their accuracies as proportions of their examples, each with
    at least the attack accuracy's training variation (:mod:`qmia.training_noise`)."""
    pair = cifar_vs_fmnist(ev)
    if pair is None:
        return not_measurable("needs LeNet / Fashion-MNIST and ResNet-20 / CIFAR-10")
    (fa, fd), (ca, cd) = pair
    nf, nc = (
        2 * examples_per_split(ev, fa, fd),
        2 * examples_per_split(ev, ca, cd),
    )  # the attack is scored on members and non-members
    results, collapsed = [], []
    noise = {a: ev.training_noise(a, "attack_acc") for a in (ca, fa)}  # two single trainings of two models
    sds = [n.sd if n is not None else 0.0 for n in noise.values()]
    said = "; ".join(
        dict.fromkeys(str(n) if n is not None else "training variation not measured" for n in noise.values())
    )
    fp_f, fp_c = ev.row(ev.config(fa, fd)), ev.row(ev.config(ca, cd))
    for b in [None, *[b for b in ev.p.bits if b in reading_bits(ev.p, fa) and b in reading_bits(ev.p, ca)]]:
        spec = None if b is None else reading_spec(reading, b)
        f, c = ev.row(ev.config(fa, fd, spec)), ev.row(ev.config(ca, cd, spec))
        label = "fp" if b is None else f"{b}b"
        if b is not None and any(
            base["target_test_acc"] - r["target_test_acc"] > MAX_UTILITY_DROP for base, r in ((fp_f, f), (fp_c, c))
        ):
            collapsed.append(label)
            continue
        g = replace(accuracy_gap(c["attack_acc"], f["attack_acc"], nc, nf, *sds), training=said)
        results.append((sign(g), f"{label}: {pct(f['attack_acc'])} vs {pct(c['attack_acc'])}, CIFAR-10 higher by {g}"))
    return decide(results, collapsed)


def shadow_higher_on_cifar(ev: Evidence, reading: str) -> Cell:
    pair = cifar_vs_fmnist(ev)
    if pair is None:
        return not_measurable("needs LeNet / Fashion-MNIST and ResNet-20 / CIFAR-10")
    (fa, fd), (ca, cd) = pair
    f, c = ev.row(ev.config(fa, fd))["shadow_test_acc"], ev.row(ev.config(ca, cd))["shadow_test_acc"]
    g = model_gap(ev, c, f, (ca, cd), (fa, fd))
    return decide([(sign(g), f"full-precision shadow test acc. CIFAR-10 {pct(c)}, Fashion-MNIST {pct(f)}: {g}")])


def sixteen_like_fp(ev: Evidence, reading: str) -> Cell:
    """A claim of no difference: agrees when the interval of the 16-bit model's accuracy minus full precision lies
    within the tolerance, disagrees when it lies outside, else not measurable at this size."""
    if 16 not in ev.p.bits:
        return not_measurable("no 16-bit models in this profile")
    results = []
    for a, d in [m for m in models_of(ev) if 16 in reading_bits(ev.p, m[0])]:
        fp = ev.row(ev.config(a, d))["target_test_acc"]
        q = ev.row(ev.config(a, d, reading_spec(reading, 16)))["target_test_acc"]
        g = model_gap(ev, q, fp, (a, d))
        state = (
            "yes"
            if -SIMILAR_POINTS <= g.lo and g.hi <= SIMILAR_POINTS
            else "no"
            if g.lo > SIMILAR_POINTS or g.hi < -SIMILAR_POINTS
            else "noise"
        )
        results.append((state, f"{short_name(a)} 16-bit test acc. {pct(q)} vs fp {pct(fp)}: {g}"))
    return decide(results)


def sixteen_attack_lower(ev: Evidence, reading: str) -> Cell:
    if 16 not in ev.p.bits:
        return not_measurable("no 16-bit models in this profile")
    return drop_per_model(
        ev, reading, [m for m in models_of(ev) if 16 in reading_bits(ev.p, m[0])], [16], ("attack_acc",)
    )


def member_prf(ev: Evidence, reading: str) -> Cell:
    return drop_per_model(ev, reading, models_of(ev), ev.p.bits, ("precision_member", "recall_member", "f1_member"))


def tp_lower(ev: Evidence, reading: str) -> Cell:
    return drop_per_model(ev, reading, models_of(ev), ev.p.bits, ("tpr",))


def seven_to_nine(ev: Evidence, reading: str) -> Cell:
    """The Introduction: the preliminary study found "a 7 to 9 point accuracy drop in the precision of MIA attacks on
    quantized models": member precision of the shadow attack, full precision minus each quantized model that keeps
    its utility, on the ResNet-20 / CIFAR-10 of the tables. Agrees when every drop's interval meets 7-9 points,
    disagrees when one lies wholly outside it."""
    pairs = fp_vs(ev, reading, [ev.p.resnet], ev.p.bits)
    results, collapsed = [], []
    lo_claim, hi_claim = MEMBER_PRECISION_POINTS
    for label, fp, q in pairs:
        b_row, a_row = ev.paired_rows([(fp, "shadow"), (q, "shadow")])
        if b_row["target_test_acc"] - a_row["target_test_acc"] > MAX_UTILITY_DROP:
            collapsed.append(label)
            continue
        g = attack_gap(ev, fp, q, "precision_member")
        state = (
            "no" if g.hi < lo_claim or g.lo > hi_claim else "yes" if lo_claim <= g.lo and g.hi <= hi_claim else "noise"
        )
        results.append((state, f"{label} member precision drop {g}"))
    return decide(results, collapsed)


def resnet20_8bit(ev: Evidence, reading: str) -> Cell:
    if 8 not in ev.p.bits or ("resnet20", "cifar10") not in models_of(ev):
        return not_measurable("needs the 8-bit ResNet-20 on CIFAR-10")
    fp, q = ev.config("resnet20", "cifar10"), ev.config("resnet20", "cifar10", reading_spec(reading, 8))
    fp_row, q_row = ev.paired_rows([(fp, "shadow"), (q, "shadow")])
    if fp_row["target_test_acc"] - q_row["target_test_acc"] > MAX_UTILITY_DROP:
        return not_measurable(
            f"not measurable (utility collapse: 8-bit test acc. {pct(q_row['target_test_acc'])} vs "
            f"{pct(fp_row['target_test_acc'])})"
        )
    acc, tpr = attack_gap(ev, fp, q, "attack_acc"), attack_gap(ev, fp, q, "tpr")
    small = (
        "yes"
        if -SMALL_POINTS <= acc.lo and acc.hi <= SMALL_POINTS
        else ("no" if acc.lo > SMALL_POINTS or acc.hi < -SMALL_POINTS else "noise")
    )
    large = "yes" if tpr.lo >= NEARLY_30_POINTS else "no" if tpr.hi < NEARLY_30_POINTS else "noise"
    return decide([(small, f"attack acc. drop {acc}"), (large, f"TPR drop {tpr}")])


def fig5(ev: Evidence, reading: str) -> Cell:
    """ "successful" on full precision (the attack leaks) and "random" on the quantized model: a claim of no
    difference from chance, so the quantized model's AUC interval must lie within chance's band (0.5 +- the leak
    margin, :data:`qmia.claims.LEAK_MARGIN`) to agree; it disagrees when it excludes 0.5, and an interval that holds
    0.5 but reaches beyond the band is not measurable at this size; a collapsed model is not measurable."""
    b = min(ev.p.bits)
    fp_cfg, q_cfg = ev.config(*ev.p.resnet), ev.config(*ev.p.resnet, reading_spec(reading, b))
    a_fp, a_q = ev.estimate([fp_cfg]), ev.estimate([q_cfg])
    if not leaks(a_fp):
        return not_measurable(f"not measurable (the full-precision attack is at chance: AUC {a_fp})")
    fp_row, q_row = ev.paired_rows([(fp_cfg, "shadow"), (q_cfg, "shadow")])
    text = f"AUC fp {a_fp}, {b}-bit {a_q}"
    if fp_row["target_test_acc"] - q_row["target_test_acc"] > MAX_UTILITY_DROP:
        return not_measurable(
            f"not measurable (utility collapse: {b}-bit test acc. {pct(q_row['target_test_acc'])}): {text}"
        )
    if a_q.lo > 0.5 or a_q.hi < 0.5:
        return Cell(DISAGREES, text)
    if 0.5 - LEAK_MARGIN <= a_q.lo and a_q.hi <= 0.5 + LEAK_MARGIN:
        return Cell(AGREES, text)
    return not_measurable("not measurable at this size: " + text, noise=True)


def table6(ev: Evidence, reading: str, b: int):
    return ev.config(*ev.p.resnet, QuantSpec("dorefa", b)), ev.config(*ev.p.resnet, reading_spec(reading, b))


def both_reduce(ev: Evidence, reading: str) -> Cell:
    fp = ev.config(*ev.p.resnet)
    pairs = [
        (f"{b}-bit {name}", fp, cfg) for b in (4, 8) for name, cfg in zip((DOREFA, "ours"), table6(ev, reading, b))
    ]
    return drop_rule(ev, pairs, ("f1_member",))


def below_dorefa(ev: Evidence, reading: str) -> Cell:
    pairs = [(f"{b}-bit ours vs DoReFa-Net", *table6(ev, reading, b)) for b in (4, 8)]
    return drop_rule(ev, pairs, ("precision_member", "recall_member", "f1_member"))


def f1_28(ev: Evidence, reading: str) -> Cell:
    """Over 28 % (relative) below DoReFa-Net's member F1 at 4 bits, the whole interval; DoReFa-Net's attack must leak
    (a reduction from chance is noise) and ours must keep DoReFa-Net's utility."""
    d, m = table6(ev, reading, 4)
    d_row, m_row = ev.paired_rows([(d, "shadow"), (m, "shadow")])
    auc = ev.estimate([d])
    if not leaks(auc):
        return not_measurable(f"not measurable (the DoReFa-Net attack is at chance: AUC {auc})")
    c, g = ev.compare(d, m, "f1_member"), attack_gap(ev, d, m, "f1_member")
    base = c.before.value
    mid, lo, hi = (100 * x / base if base else float("nan") for x in (g.value, g.lo, g.hi))
    text = (
        f"4-bit member F1 {c.after.value:.3f} vs DoReFa-Net {base:.3f}: {mid:.1f} % lower (95 % CI {lo:.1f} to "
        f"{hi:.1f} %" + (f"; {g.training}" if g.training else "") + ")"
    )
    if d_row["target_test_acc"] - m_row["target_test_acc"] > MAX_UTILITY_DROP:
        return not_measurable("not measurable (utility collapse against DoReFa-Net): " + text)
    return decide([("yes" if lo > 28 else "no" if hi <= 28 else "noise", text)])


def partial(ev: Evidence, reading: str, metrics: Sequence[str]) -> Cell:
    fp = ev.config(*ev.p.resnet)
    part = ev.config(*ev.p.resnet, reading_spec(reading, 4, layers="last:5"))
    return drop_rule(ev, [("last 5 layers at 4 bits", fp, part)], metrics)


def partial_all(ev: Evidence, reading: str) -> Cell:
    return partial(
        ev,
        reading,
        ("precision_member", "recall_member", "f1_member", "precision_nonmember", "recall_nonmember", "f1_nonmember"),
    )


def partial_nonmember_precision(ev: Evidence, reading: str) -> Cell:
    return partial(ev, reading, ("precision_nonmember", "tpr"))
