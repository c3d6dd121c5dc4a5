"""Beyond the black box, decided: does quantization lower white-box membership leakage, and does it lower how
faithfully an attacker can copy the model (extraction fidelity)? The same verdict vocabulary and standard as the
abstract's claims (:func:`qmia.claims.reduction_verdict`): a baseline that does not leak (or cannot be copied) makes
the comparison not measurable; a reduction counts only if it is significant (paired, one-sided, level
:data:`qmia.claims.ALPHA`); a quantized model that lost more than :data:`qmia.claims.MAX_UTILITY_DROP` of test
accuracy lowers the attack only "with a utility loss".

* White-box: the full-precision target's ``whitebox`` row against the quantized target's ``whitebox-adaptive`` row
  (the attacker who holds the weights and knows the defence, :mod:`qmia.attack_registry`), AUC paired by example
  (:func:`qmia.uncertainty.compare`, credited down to chance, 0.5).
* Extraction: at each access level, the surrogate's fidelity at the largest query budget, full precision against the
  quantized target, paired by test example (:func:`qmia.extraction.compare_fidelity`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .claims import (
    ALPHA,
    LEAK_MARGIN,
    MAX_UTILITY_DROP,
    NOT_MEASURABLE,
    NOT_REPRODUCED,
    REPRODUCED,
    WITH_LOSS,
    Verdict,
    reduction_verdict,
)
from .extraction import FidelityDrop, compare_fidelity
from .uncertainty import AttackOutcome, compare

WHITEBOX_RULE = "quantization lowers white-box leakage"
EXTRACTION_RULE = "quantization lowers extraction fidelity"
# The smallest reduction that counts (AUC, or fidelity as a share): a significant drop below it (e.g. 16-bit
# post-training quantization, whose model differs from full precision in a few weights) is not a defence.
MIN_DROP = 0.01


@dataclass(frozen=True)
class ExposureResult:
    """A rule's verdict on one quantized setting, with the two values it compared and the drop's interval."""

    verdict: Verdict
    before: float
    after: float
    drop: float
    drop_lo: float
    drop_hi: float
    utility_drop: float


def whitebox_verdict(
    fp: AttackOutcome, quantized: AttackOutcome, utility_drop: float, n_boot: int = 400
) -> ExposureResult:
    """ "Quantization lowers white-box leakage": the full-precision target's white-box outcome (``fp``) against the
    quantized target's adaptive white-box outcome, AUC paired by example; ``utility_drop``: full precision's test
    accuracy minus the quantized target's (a share, 0.05 = 5 points)."""
    cmp = compare([fp], [quantized], "auc", chance=0.5, n_boot=n_boot)  # cmp.before: the baseline's AUC estimate
    v = _at_least(reduction_verdict(cmp, cmp.before, utility_drop), cmp.reduction)
    return ExposureResult(
        v, cmp.before.value, cmp.after.value, cmp.reduction, cmp.reduction_lo, cmp.reduction_hi, utility_drop
    )


def _at_least(v: Verdict, drop: float) -> Verdict:
    """A reduction verdict, made 'not reproduced' where the drop is significant but smaller than :data:`MIN_DROP`."""
    if v.word in (REPRODUCED, WITH_LOSS) and drop < MIN_DROP:
        return Verdict(NOT_REPRODUCED, f"{v.reason}: significant, but smaller than {MIN_DROP} (not a defence)")
    return v


def copyable(record: dict, classes: int, margin: float = LEAK_MARGIN) -> bool:
    """Whether the full-precision target can be copied at all: its surrogate's fidelity interval lies above
    1/classes + margin (what a surrogate that guesses agrees with any target)."""
    return record["fidelity_lo"] > 1 / classes + margin


def extraction_verdict(
    fp: dict, quantized: dict, classes: int, utility_drop: float, n_boot: int = 2000
) -> ExposureResult:
    """ "Quantization lowers extraction fidelity": two extraction records of one access level and budget (full
    precision's and the quantized target's), fidelity paired by test example."""
    d: FidelityDrop = compare_fidelity(fp, quantized, n_boot=n_boot)
    what = (
        f"fidelity {d.before:.3f} -> {d.after:.3f} (95 % CI of the drop {d.lo:+.3f} to {d.hi:+.3f}, "
        f"p = {d.p_value:.3f})"
    )
    if not copyable(fp, classes):
        v = Verdict(
            NOT_MEASURABLE,
            f"the full-precision surrogate does not copy its target beyond chance (fidelity {fp['fidelity']:.3f}, "
            f"95 % CI {fp['fidelity_lo']:.3f}-{fp['fidelity_hi']:.3f}; chance {1 / classes:.3f})",
        )
    elif not (d.drop > 0 and d.p_value < ALPHA):
        v = Verdict(NOT_REPRODUCED, what + ": not a significant reduction")
    elif utility_drop > MAX_UTILITY_DROP:
        v = Verdict(WITH_LOSS, what + f"; but test accuracy fell by {100 * utility_drop:.1f} points: not a defence")
    else:
        v = Verdict(REPRODUCED, what)
    v = _at_least(v, d.drop)
    return ExposureResult(v, d.before, d.after, d.drop, d.lo, d.hi, utility_drop)
