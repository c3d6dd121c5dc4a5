"""The paper's checkable statements, each decided only beyond noise, and the reading of the quantizer they choose.

Each statement of Section 4.2 and of the abstract (:data:`STATEMENTS`) is checked under each reading on the
stored rows (:class:`qmia.evidence.Evidence`) by a stated rule that returns one :class:`Cell`:

* **agrees** / **disagrees**: the comparison behind it is resolved, with its 95 % interval in the detail;
* **not measurable**: at this size (``noise``: the interval holds zero, or straddles the statement's
  tolerance), because of a utility collapse (a quantized target that lost more than
  :data:`qmia.claims.MAX_UTILITY_DROP` of test accuracy: an attack that drops on a model that learned nothing
  is not the paper's claim), because the full-precision attack is at chance (nothing to reduce), because two
  rows to be compared come from two trainings of one key (:meth:`qmia.evidence.Evidence.paired_rows`), or because
  the profile lacks the models;
* **pending**: its rows are in the plan but not stored yet.

The rules are in :mod:`qmia.statement_rules`, how each comparison is decided in :mod:`qmia.beyond_noise`.
Comparisons of one attack on two targets are paired by seed and example (:func:`qmia.uncertainty.compare`);
comparisons of two models' test accuracies use the normal interval of a difference of two proportions, each model
given at least the training-to-training variance measured on the stored rows (:func:`qmia.beyond_noise.model_gap`,
:mod:`qmia.training_noise`). Ties never agree. "Significant" in the paper's sentence means the interval excludes
zero. :func:`qmia.reading_choice.choose_reading` counts only decided cells and names the readings it cannot
separate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from .beyond_noise import Cell, not_measurable
from .claims import (
    PENDING,
)
from .evidence import Evidence, MissingRow, MixedInstances
from .statement_rules import (
    NEARLY_30_POINTS,
    SIMILAR_POINTS,
    SMALL_POINTS,
    UNDISRUPTED_POINTS,
    abstract,
    attack_lower_on_fmnist,
    below_dorefa,
    both_reduce,
    f1_28,
    fig5,
    member_prf,
    partial_all,
    partial_nonmember_precision,
    resnet20_8bit,
    resnet50_acc,
    resnet50_attack,
    seven_to_nine,
    shadow_counterpart,
    shadow_higher_on_cifar,
    sixteen_attack_lower,
    sixteen_like_fp,
    tp_lower,
    undisrupted,
)


@dataclass(frozen=True)
class Statement:
    """A checkable statement of the paper: its words, where it is, the result page, its rule, and its kind:
    'utility' (about the target's accuracy) or 'attack' (about the attack's numbers)."""

    key: str
    quote: str
    where: str
    page: str
    rule: str
    check: Callable[[Evidence, str], Cell]
    kind: str = "attack"


STATEMENTS: tuple[Statement, ...] = (
    Statement(
        "no-disruption",
        "To ensure a smooth training process, we apply quantization to each W_Li in a manner "
        "that does not disrupt the training.",
        "Section 3.3",
        "table3_accuracy",
        f"no quantized target (any model, any bitwidth) loses more than {100 * UNDISRUPTED_POINTS:.0f} points of "
        "test accuracy against full precision (the loss's 95 % interval)",
        undisrupted,
        "utility",
    ),
    Statement(
        "abstract-attack-acc",
        "our algorithm can reduce the attack accuracy of MIA by 14%",
        "Abstract",
        "table3_accuracy",
        "ResNet / CIFAR-10, full precision vs the lowest bitwidth over the claim seeds (paired): "
        "the 95 % interval of the relative reduction of attack accuracy holds 14 %; the quantized model keeps its "
        "utility",
        abstract("attack_acc"),
    ),
    Statement(
        "abstract-tpr",
        "the true positive rate by 37%",
        "Abstract",
        "table5_confusion",
        "as above, the attack's TPR (its decisions): the interval holds 37 %",
        abstract("tpr"),
    ),
    Statement(
        "abstract-f1",
        "and F1-score of members by 39%",
        "Abstract",
        "table4_prf",
        "as above, member F1: the interval holds 39 %",
        abstract("f1_member"),
    ),
    Statement(
        "intro-7-9",
        "our preliminary study [...] found a 7 to 9 point accuracy drop in the precision of MIA "
        "attacks on quantized models",
        "Introduction",
        "table4_prf",
        "ResNet-20 / CIFAR-10: the member precision of the shadow attack drops by 7-9 points at every bitwidth "
        "that keeps utility (paired interval within 7-9 points)",
        seven_to_nine,
    ),
    Statement(
        "resnet50-accuracy",
        "In the case of ResNet-50, the quantized model has a better target model accuracy "
        "than the full bitwidth model.",
        "Section 4.2, Table 3",
        "table3_accuracy",
        "ResNet-50 test accuracy at 4 and 8 bits above full precision (interval above zero)",
        resnet50_acc,
        "utility",
    ),
    Statement(
        "resnet50-attack",
        "However, the attack accuracy drops when compared to the quantized model.",
        "Section 4.2, Table 3",
        "table3_accuracy",
        "ResNet-50 attack accuracy at 4 and 8 bits below full precision (paired, interval above zero; utility kept)",
        resnet50_attack,
    ),
    Statement(
        "shadow-counterpart",
        "the shadow model of the full bitwidth model has higher accuracy than its quantized "
        "counterpart on Fashion MNIST, whereas that is not the case for Cifar10",
        "Section 4.2, Table 3",
        "table3_accuracy",
        "test accuracy of the full-precision shadow resolved above that of the shadow quantized "
        "like the target (lowest bitwidth; Table 3 gives each row its own shadow, though Section 4.2 says shadows "
        "train at full bitwidth) on Fashion-MNIST, and not resolved above it on CIFAR-10",
        shadow_counterpart,
    ),
    Statement(
        "attack-lower-fmnist",
        "We also find that the attack model accuracy is lower on Fashion MNIST than on Cifar10.",
        "Section 4.2, Table 3",
        "table3_accuracy",
        "attack accuracy of LeNet / Fashion-MNIST below ResNet-20 / CIFAR-10 (interval of the difference) at full "
        "precision and every bitwidth where both keep utility",
        attack_lower_on_fmnist,
    ),
    Statement(
        "shadow-higher-cifar",
        "However, the shadow model accuracy is higher for Cifar10.",
        "Section 4.2, Table 3",
        "table3_accuracy",
        "the full-precision shadow's test accuracy resolved higher on CIFAR-10 (ResNet-20) than "
        "on Fashion-MNIST (LeNet); the same under every reading",
        shadow_higher_on_cifar,
    ),
    Statement(
        "16bit-like-fp",
        "Out of all quantized networks, 16-bit quantization behaves similarly to the full bitwidth model.",
        "Section 4.2, Table 3",
        "table3_accuracy",
        f"16-bit test accuracy within {100 * SIMILAR_POINTS:.0f} points of full precision, every model (the whole "
        "interval of the difference)",
        sixteen_like_fp,
        "utility",
    ),
    Statement(
        "16bit-attack-lower",
        "However, the attack model accuracy is still lower than for the full bitwidth model.",
        "Section 4.2, Table 3",
        "table3_accuracy",
        "16-bit attack accuracy below full precision, every model (paired; baseline leaks; utility kept)",
        sixteen_attack_lower,
    ),
    Statement(
        "member-prf-drop",
        "We can see a significant drop in all three metrics when we compare the member class "
        "[...] to the quantized models. The same trend can also be observed for ResNet-20 and the simpler LeNet model.",
        "Section 4.2, Table 4",
        "table4_prf",
        "member precision, recall and F1 significantly below full precision (paired interval above zero) for every "
        "model and bitwidth; baseline leaks; utility kept",
        member_prf,
    ),
    Statement(
        "tp-lower",
        "the true positive rates are lower after employing our quantization",
        "Section 4.2, Table 5",
        "table5_confusion",
        "TPR below full precision for every model and bitwidth (paired; baseline leaks; utility kept)",
        tp_lower,
    ),
    Statement(
        "resnet20-8bit-tp",
        "although we observe only a small difference in attack accuracy for the 8-bit "
        "quantized network on ResNet-20 [...] there is a nearly 30-point reduction in TP value",
        "Section 4.2, Table 5",
        "table5_confusion",
        f"8-bit ResNet-20: the attack-accuracy difference's interval within {100 * SMALL_POINTS:.0f} points, and the "
        f"TPR drop's interval above {100 * NEARLY_30_POINTS:.0f} points",
        resnet20_8bit,
    ),
    Statement(
        "fig5-chance",
        "the MIA on the full bitwidth model is successful while behaving as a random classification "
        "on the quantized model",
        "Section 4.2, Figure 5",
        "fig5_roc",
        "full-precision AUC leaks (>= 0.52, interval above 0.5), the lowest bitwidth's AUC interval lies within "
        "0.48-0.52 (holds 0.5 but is wider: within noise), and that model keeps its utility",
        fig5,
    ),
    Statement(
        "table6-both-reduce",
        "We can see the impact of MIA is significantly reduced in both quantization methods.",
        "Section 4.2, Table 6",
        "table6_dorefa",
        "member F1 significantly below full precision for DoReFa-Net and ours at 4 and 8 bits (paired; utility kept)",
        both_reduce,
    ),
    Statement(
        "table6-all-three",
        "Compared to DoReFa-Net, our method achieves further reductions in all three metrics",
        "Section 4.2, Table 6",
        "table6_dorefa",
        "our member precision, recall and F1 significantly below DoReFa-Net's at 4 and 8 bits (paired; ties do not "
        "pass)",
        below_dorefa,
    ),
    Statement(
        "table6-f1-28",
        "our method achieves over 28% reduction in F1-score compared to DoReFa-Net for the 4-bit quantization",
        "Section 4.2, Table 6",
        "table6_dorefa",
        "4-bit member F1 below DoReFa-Net's by more than 28 % (relative), the whole interval",
        f1_28,
    ),
    Statement(
        "fig6-all-lower",
        "in both members and non-members, the partially quantized network has lower F1-score, precision, and recall",
        "Section 4.2, Figure 6",
        "fig6_partial",
        "last 5 layers at 4 bits: all six precision, recall and F1 values below full precision (paired)",
        partial_all,
    ),
    Statement(
        "fig6-nonmember-precision",
        "We can see a significant drop in Precision for the non-member class, which "
        "also leads to greatly reduced TP values",
        "Section 4.2, Figure 6",
        "fig6_partial",
        "last 5 layers at 4 bits: non-member precision and TPR significantly below full precision (paired)",
        partial_nonmember_precision,
    ),
)


def check_statement(statement: Statement, ev: Evidence, reading: str) -> Cell:
    """One cell of the readings table: a statement whose rows the plan computes but are not stored yet is pending
    (naming the part), never decided from part of its rows; one whose rows no plan computes, or whose rows come
    from two trainings of one key, is not measurable."""
    try:
        return statement.check(ev, reading)
    except MixedInstances as e:
        return not_measurable(f"not measurable (rows of two trainings of one key: {e})")
    except MissingRow as e:
        return Cell(PENDING, f"pending: {e}") if e.pending else not_measurable(str(e))


def readings_table(ev: Evidence, readings: Sequence[str] | None = None) -> pd.DataFrame:
    """Statements x readings: one :class:`Cell` per entry (columns: the readings; index: statement keys)."""
    readings = list(readings or ev.p.readings)
    return pd.DataFrame(
        {r: [check_statement(s, ev, r) for s in STATEMENTS] for r in readings}, index=[s.key for s in STATEMENTS]
    )
