"""The paper's reported numbers, the verdict rules that set ours beside them, and the book's table style.

Famili & Lao, *Deep Neural Network Quantization Framework for Effective Defense against
Membership Inference Attacks*, Sensors 23(18):7722, 2023 (doi:10.3390/s23187722).

Only numbers read in the stored copy of the article (:data:`SOURCE`) are recorded here.
The stored copy holds the abstract and the introduction in full, but not the cells of
Tables 3-6 nor the data behind Figures 5-6 (:data:`NOT_RECOVERED`); the book says so where
those tables would stand beside ours, and compares with the abstract's claims instead.

Verdicts are computed from measured numbers by :func:`reduction_verdict`,
:func:`chance_verdict` and :func:`count_verdict`, never written by hand, so the report's
wording follows the data of whatever profile built it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

SOURCE = "https://www.mdpi.com/1424-8220/23/18/7722"
DOI = "10.3390/s23187722"
CITATION = (
    "Famili, A.; Lao, Y. Deep Neural Network Quantization Framework for Effective Defense against "
    "Membership Inference Attacks. Sensors 2023, 23(18), 7722."
)


@dataclass(frozen=True)
class Claim:
    """One quantitative claim of the paper, as printed.

    metric: the results column it is about; value: the number printed (a reduction in %);
    where: the part of the paper it is printed in; setting: its words for the experiment.
    """

    key: str
    metric: str
    value: float
    where: str
    setting: str
    quote: str


# The abstract: "for ResNet on Cifar10, our experimental results show that our algorithm can
# reduce the attack accuracy of MIA by 14%, the true positive rate by 37%, and F1-score of
# members by 39% compared to the full bitwidth network."  (read at SOURCE)
ABSTRACT_CLAIMS: dict[str, Claim] = {
    "attack_acc": Claim("attack_acc", "attack_acc", 14.0, "Abstract", "ResNet on Cifar10",
                        "reduce the attack accuracy of MIA by 14%"),
    "tpr": Claim("tpr", "tpr", 37.0, "Abstract", "ResNet on Cifar10",
                 "the true positive rate by 37%"),
    "f1_member": Claim("f1_member", "f1_member", 39.0, "Abstract", "ResNet on Cifar10",
                       "F1-score of members by 39%"),
}

# Introduction, contributions: the authors' preliminary (threshold-attack) study "demonstrate[s]
# a 7 to 9 point accuracy drop in the precision of MIA attacks on quantized models compared to
# their corresponding full precision models."  (read at SOURCE; context, not re-tested here)
PRELIMINARY_PRECISION_DROP_POINTS = (7.0, 9.0)

# Section 3.1, threat model (read at SOURCE): black-box access to the target's output only;
# the adversary samples data of the training distribution but not the training data itself.
THREAT_MODEL = (
    "the adversary could only access the target model output (black-box access)",
    "the adversary can sample from the available pool of data that has the same distribution as the training data",
)

# Tables and figures whose numbers could not be read from the stored copy of the article.
NOT_RECOVERED: dict[str, str] = {
    "Table 3": "target/shadow train and test accuracy and attack accuracy by dataset, model and bitwidth",
    "Table 4": "precision, recall and F1 of members and non-members",
    "Table 5": "attack accuracy, TN, FP, FN, TP",
    "Table 6": "DoReFa-Net vs the proposed quantizer on ResNet-20",
    "Figure 5": "ROC curves of the attack on ResNet-20",
    "Figure 6": "partial quantization of ResNet-20",
}


def not_recovered_note(item: str) -> str:
    """One sentence for the book where ``item`` (e.g. 'Table 3') would stand beside ours."""
    what = NOT_RECOVERED[item]
    return (f"The paper's {item} ({what}) could not be read from the stored copy of the article "
            f"({SOURCE}), so its cells are not shown here; the abstract's claims are compared in the "
            f"reproduction report instead.")


# ----------------------------------------------------------------------------- verdicts

REPRODUCED, PARTLY, NOT_REPRODUCED = "reproduced", "partly reproduced", "not reproduced"
MAX_UTILITY_DROP = 0.05  # a defence that costs more than 5 points of test accuracy is not the paper's claim


@dataclass(frozen=True)
class Verdict:
    word: str
    reason: str

    def __str__(self) -> str:
        return f"{self.word} ({self.reason})"


def relative_reduction(before: float, after: float) -> float:
    """How much lower ``after`` is than ``before``, in % of ``before`` (negative: it rose)."""
    if before == 0 or not math.isfinite(before) or not math.isfinite(after):
        return float("nan")
    return 100.0 * (before - after) / before


def _downgrade(word: str) -> str:
    return {REPRODUCED: PARTLY, PARTLY: PARTLY, NOT_REPRODUCED: NOT_REPRODUCED}[word]


def reduction_verdict(measured: float, claimed: float, *, significant: bool | None = None,
                      utility_drop: float | None = None, max_utility_drop: float = MAX_UTILITY_DROP) -> Verdict:
    """Verdict on a claimed reduction (both in % of the full-precision value).

    * measured <= 0 (or NaN): not reproduced, the metric did not fall;
    * 0 < measured < claimed / 2: partly, it fell by less than half the claimed amount;
    * measured >= claimed / 2: reproduced.

    Then one step down (reproduced -> partly) when the fall is not significant (the bootstrap
    intervals of the two models overlap, ``significant=False``) or when the quantized target
    lost more than ``max_utility_drop`` of test accuracy (the claim is of a defence that keeps
    the model useful, not of a broken model that leaks nothing).
    """
    if not math.isfinite(measured) or measured <= 0:
        return Verdict(NOT_REPRODUCED, f"measured {_pct(measured)} vs claimed {claimed:.0f} %")
    word = REPRODUCED if measured >= claimed / 2 else PARTLY
    reason = f"measured {_pct(measured)} vs claimed {claimed:.0f} %"
    if significant is False:
        word, reason = _downgrade(word), reason + "; the bootstrap intervals overlap"
    if utility_drop is not None and utility_drop > max_utility_drop:
        word = _downgrade(word)
        reason += f"; test accuracy fell by {100 * utility_drop:.1f} points"
    return Verdict(word, reason)


def chance_verdict(auc: float, *, auc_fp: float | None = None, utility_drop: float | None = None,
                   near: float = 0.05, partly: float = 0.10, max_utility_drop: float = MAX_UTILITY_DROP) -> Verdict:
    """Verdict on "the quantized model's ROC curve is near chance": |AUC - 0.5| <= near (reproduced),
    <= partly (partly), more (not reproduced).

    Lowered to partly when the full-precision model's AUC (``auc_fp``) is near chance too (the
    attack fails on both, so quantization is not what put the curve there) or when the
    quantized model lost more than ``max_utility_drop`` of test accuracy.
    """
    gap = abs(auc - 0.5)
    if not math.isfinite(gap):
        return Verdict(NOT_REPRODUCED, "no AUC")
    word = REPRODUCED if gap <= near else PARTLY if gap <= partly else NOT_REPRODUCED
    reason = f"AUC {auc:.3f}, {gap:.3f} from chance"
    if word == REPRODUCED and auc_fp is not None and abs(auc_fp - 0.5) <= near:
        word, reason = PARTLY, reason + f"; but full precision is near chance too (AUC {auc_fp:.3f})"
    if word == REPRODUCED and utility_drop is not None and utility_drop > max_utility_drop:
        word, reason = PARTLY, reason + f"; test accuracy fell by {100 * utility_drop:.1f} points"
    return Verdict(word, reason)


def count_verdict(wins: int, total: int, what: str) -> Verdict:
    """Verdict on a claim that should hold in each of ``total`` comparisons: all, some, none."""
    if total <= 0:
        return Verdict(NOT_REPRODUCED, f"no {what} to compare")
    word = REPRODUCED if wins == total else PARTLY if wins > 0 else NOT_REPRODUCED
    return Verdict(word, f"{what}: {wins} of {total}")


def intervals_overlap(lo_a: float, hi_a: float, lo_b: float, hi_b: float) -> bool:
    return not (hi_a < lo_b or hi_b < lo_a)


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.1f} %"


# ----------------------------------------------------------------------------- the book's tables

PCT = "{:.1%}"
NUM = "{:.3f}"
INT = "{:.0f}"

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
    "tpr_at_0.1%fpr": "TPR @ 0.1 % FPR",
    "tpr_at_1%fpr": "TPR @ 1 % FPR",
}

ARCH_NAMES = {"lenet": "LeNet-5", "resnet20": "ResNet-20", "resnet50": "ResNet-50"}
DATA_NAMES = {"digits": "digits", "fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}


def bitwidth(row) -> str:
    """'full precision' or 'b-bit' for a results row."""
    return "full precision" if row["method"] == "none" else f"{int(row['bits'])}-bit"


def model_name(arch: str, dataset: str) -> str:
    return f"{ARCH_NAMES.get(arch, arch)} / {DATA_NAMES.get(dataset, dataset)}"


def as_list(value) -> list:
    """A notebook parameter given as a list, or as its text: ``papermill -p bits "[2, 3, 6]"`` passes
    the string '[2, 3, 6]' (``-y`` passes a list); "2,3,6" works too. None stays None."""
    if value is None or not isinstance(value, str):
        return value
    import ast

    text = value.strip()
    try:
        parsed = ast.literal_eval(text if text.startswith(("[", "(")) else f"[{text}]")
    except (ValueError, SyntaxError):
        raise ValueError(f"expected a list such as [2, 3, 6]; got {value!r}") from None
    return list(parsed) if isinstance(parsed, (list, tuple)) else [parsed]


SEED_STD_COLUMNS = ("target_train_acc", "target_test_acc", "shadow_test_acc", "attack_acc", "auc", "f1_member",
                    "tpr", "tpr_at_1%fpr", "tpr_at_0.1%fpr", "advantage")


def mean_over_seeds(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean of the numeric columns over seeds (and any other rows sharing ``by``), in first-seen order,
    with ``n_seeds`` and, for the headline metrics, ``<metric>_std`` (sample std over seeds; NaN for one seed)."""
    groups = df.groupby(by, sort=False, dropna=False)
    out = groups.mean(numeric_only=True).reset_index()
    cols = [c for c in SEED_STD_COLUMNS if c in df.columns]
    std = groups[cols].std(ddof=1).reset_index().rename(columns={c: f"{c}_std" for c in cols})
    n = groups.size().reset_index(name="n_seeds")
    return out.drop(columns=[c for c in std.columns if c in out.columns and c not in by]).merge(std, on=by).merge(n, on=by)


def mean_std(mean: float, std: float, fmt: str = "{:.1%}") -> str:
    """'mean ± std' (just the mean when std is NaN, i.e. one seed)."""
    return fmt.format(mean) if pd.isna(std) else f"{fmt.format(mean)} ± {fmt.format(std)}"


def styled(df: pd.DataFrame, table_id: str, title: str, caption: str, formats: dict[str, str] | None = None):
    """A pandas Styler with a stable HTML id (``T_<table_id>``) and a caption of title + provenance line.

    ``scripts/check_site.py`` finds the book's tables by these ids.
    """
    from pandas.io.formats.style import Styler

    fmt = {c: f for c, f in (formats or {}).items() if c in df.columns}
    st = Styler(df, cell_ids=False).format(fmt, na_rep="–").hide(axis="index")
    st = st.set_uuid(table_id).set_caption(f"<b>{title}</b><br><small>{caption}</small>")
    return st.set_table_attributes('class="qmia-table"').set_table_styles(
        [{"selector": "", "props": "font-size: 0.85em; border-collapse: collapse;"},
         {"selector": "caption", "props": "caption-side: top; text-align: left; padding-bottom: .4em; white-space: normal;"},
         {"selector": "td, th", "props": "padding: .2em .6em; text-align: right; white-space: nowrap;"},
         {"selector": "td:first-child, th:first-child", "props": "text-align: left;"}]
    )


def figure_caption(fig, text: str) -> None:
    """Print the provenance line inside a matplotlib figure, under the axes."""
    fig.text(0.01, 0.005, text, fontsize=7, color="0.35", ha="left", va="bottom")


def direction_verdict(before: float, after: float, *, significant: bool | None = None,
                      utility_drop: float | None = None, max_utility_drop: float = MAX_UTILITY_DROP) -> Verdict:
    """Verdict on a claim that a metric falls (no number claimed): it fell significantly at
    little cost in utility (reproduced), it fell but not significantly or at a cost (partly),
    or it did not fall (not reproduced)."""
    red = relative_reduction(before, after)
    if not math.isfinite(red) or red <= 0:
        return Verdict(NOT_REPRODUCED, f"{before:.3f} -> {after:.3f}")
    word, reason = REPRODUCED, f"{before:.3f} -> {after:.3f} ({_pct(red)} lower)"
    if significant is False:
        word, reason = PARTLY, reason + "; the bootstrap intervals overlap"
    if utility_drop is not None and utility_drop > max_utility_drop:
        word, reason = PARTLY, reason + f"; test accuracy fell by {100 * utility_drop:.1f} points"
    return Verdict(word, reason)


def plain(value):
    """A numpy scalar as the Python number it holds (so that glued text reads 0.5, not np.float64(0.5))."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return item()
    return value
