"""Every name the book displays, defined once: metrics, models, data sets, readings of the paper's quantizer (with
their equations and what each clamp cuts), the sweep's curves, attacks, defence families and the statements' marks.
The code's own names (keys of these dicts) live with their ideas; this module only says how the book prints them."""

from __future__ import annotations

from dataclasses import dataclass

# The status of a statement under a reading (:mod:`qmia.statements`) and of a verdict's row lookup.
AGREES, DISAGREES, UNMEASURABLE, PENDING = "agrees", "disagrees", "not measurable", "pending"
FULL_PRECISION = "full precision"
DOREFA = "DoReFa-Net"
NO_DEFENCE = "no defence"
LABELS = {
    "target_train_acc": "target train acc.",
    "target_test_acc": "target test acc.",
    "shadow_train_acc": "shadow train acc.",
    "shadow_test_acc": "shadow test acc.",
    "attack_acc": "attack acc.",
    "precision_member": "precision (members)",
    "recall_member": "recall (members)",
    "f1_member": "F1 (members)",
    "precision_nonmember": "precision (non-members)",
    "recall_nonmember": "recall (non-members)",
    "f1_nonmember": "F1 (non-members)",
    "auc": "AUC",
    "advantage": "advantage (TPR − FPR)",
    "tpr_at_0.1%fpr": "TPR @ 0.1 % FPR",
    "tpr_at_1%fpr": "TPR @ 1 % FPR",
}
NOT_MEASURABLE_TEXT = "not measurable at this size"
ARCH_NAMES = {"lenet": "LeNet-5", "resnet20": "ResNet-20", "resnet50": "ResNet-50"}
DATA_NAMES = {"digits": "digits", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
READING_NAMES = {
    "literal": "literal (Alg. 1, z = 2)",
    "centred": "centred (z = 2^(b-1))",
    "min-anchored": "min-anchored (z = 2)",
    "printed": "printed (Eq. 2–4)",
}

CURVE_NAMES = {
    "literal": "proposed, literal (z = 2)",
    "centred": "proposed, centred z",
    "min-anchored": "proposed, min-anchored",
    "printed": "proposed, printed",
    "dorefa": DOREFA,
    "none": FULL_PRECISION,
}
ATTACK_NAMES = {
    "shadow": "shadow (the paper's)",
    "adaptive": "shadow, adaptive",
    "lira-online": "LiRA online",
    "lira-offline": "LiRA offline",
    "rmia-online": "RMIA online",
    "rmia-offline": "RMIA offline",
    "label-gap": "label-only: gap",
    "label-augment": "label-only: augmentation",
    "whitebox": "white-box: loss and gradient norms",
    **{f"metric-{m}": f"metric: {m}" for m in ("confidence", "loss", "entropy", "mentropy")},
}

FAMILIES = {
    "none": NO_DEFENCE,
    "qat": "quantization-aware training",
    "prune": "pruning",
    "dp": "DP-SGD",
    "ptq": "post-training quantization",
}

# The extraction attacker's access levels (qmia.extraction.ACCESS) and the white-box page's target families.
ACCESS_NAMES = {"probs": "full probabilities", "top3": "top-3, rounded", "label": "top-1 label"}
EXPOSURE_FAMILY_NAMES = {
    "fp": FULL_PRECISION,
    "literal": "the proposed quantizer (literal)",
    "centred": "the proposed quantizer (centred)",
    "dorefa": DOREFA,
    "ptq": FAMILIES["ptq"],
}

MARK = {AGREES: "✓", DISAGREES: "✗", UNMEASURABLE: "–", PENDING: "…"}


@dataclass(frozen=True)
class Reading:
    """One reading of the paper's quantizer, as the book describes it (:func:`reading_spec` builds its QuantSpec)."""

    name: str
    title: str
    equations: str
    clips: str


READING_INFO: dict[str, Reading] = {
    "literal": Reading(
        "literal",
        "Algorithm 1 as printed (z = 2)",
        "W_C = clamp(round(W/s) + z, 0, 2^b + 1), W_Q = s (W_C - z)",
        "every weight below -2.5 s: most negative weights at 8 bits and more",
    ),
    "centred": Reading(
        "centred",
        "Algorithm 1 with a centred zero point (z = 2^(b-1))",
        "W_C = clamp(round(W/s) + 2^(b-1), 0, 2^b + 1), W_Q = s (W_C - 2^(b-1))",
        "the tail beyond about half the range on the longer side of zero",
    ),
    "min-anchored": Reading(
        "min-anchored",
        "codes counted from the minimum, offset by z = 2",
        "W_C = clamp(round((W - r0)/s) + z, 0, 2^b + 1), W_Q = s (W_C - z) + r0",
        "only the top bin: the weights within s/2 of the maximum",
    ),
    "printed": Reading(
        "printed",
        "Eq. 2-4 as printed (unsigned codes, no zero point)",
        "W_C = clamp(round(W/s), 0, 2^b - 1), W_Q = s W_C",
        "every negative weight (to 0)",
    ),
}
