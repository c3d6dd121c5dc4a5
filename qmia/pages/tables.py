"""Tables 3-5 and the abstract's claims beside them."""

from __future__ import annotations

import pandas as pd

from .. import claims, evidence
from ..book import (
    INT,
    LABELS,
    NUM,
    PCT,
    READING_NAMES,
    Page,
    labelled,
    mean_over_seeds,
    mean_std,
    model_name,
    styled,
)
from ..claims import ABSTRACT_CLAIMS
from ..plan import claim_configs
from ..results import provenance
from ..vocabulary import FULL_PRECISION
from ._common import BY, _decide, _measure_name, _shown_rows, _slug, _table, _why, _word


def claim_table(pg: Page, key: str, prefix: str):
    """The abstract's claim ``key`` under each shown reading: our measure, the paper's quantity, the verdict
    (table id ``<prefix>-claim``)."""
    claim = ABSTRACT_CLAIMS[key]
    ev = pg.evidence()
    rows, results = [], {}
    for r in pg.shown_readings():
        res = _decide(claims.abstract_verdict, ev, key, r)
        if isinstance(res, evidence.MissingRow):
            rows.append(
                {
                    "reading": READING_NAMES[r],
                    "bits": min(pg.profile.bits),
                    "our measure": _measure_name(key),
                    "verdict": _word(res),
                    "why": _why(res),
                }
            )
            for k, v in {"verdict": _word(res), "reason": _why(res)}.items():
                pg.keep(f"{_slug(r)}_{k}", v)
            continue
        results[r] = res
        o, pq = res.ours, res.paper_quantity
        rows.append(
            {
                "reading": READING_NAMES[r],
                "bits": res.bits,
                "our measure": _measure_name(key),
                FULL_PRECISION: o.before.value,
                "quantized": o.after.value,
                "reduction (our measure)": f"{o.relative:.1f} % (drop {o.reduction_lo:+.3f} to {o.reduction_hi:+.3f})",
                "p": o.p_value,
                f"paper's quantity ({claim.metric.replace('_', ' ')})": f"{pq.before.value:.3f} → {pq.after.value:.3f} "
                f"({pq.relative:.1f} % lower)",
                "test acc. lost": res.utility_drop,
                "verdict": res.verdict.word,
                "why": res.verdict.reason,
            }
        )
        for k, v in {
            "verdict": res.verdict.word,
            "reason": res.verdict.reason,
            "fp": o.before.value,
            "q": o.after.value,
            "reduction": o.relative,
            "paper_reduction": pq.relative,
            "bits": res.bits,
        }.items():
            pg.keep(f"{_slug(r)}_{k}", v)
    df = pd.DataFrame(rows)
    used = sorted({s for res in results.values() for s in res.seeds}) or [0]
    seeds = ", ".join(map(str, used)) + (
        f" of {', '.join(map(str, pg.profile.claim_seeds))}" if len(used) < len(pg.profile.claim_seeds) else ""
    )
    cfgs = claim_configs(pg.profile, pg.shown_readings())
    prov = provenance(pg.run(cfgs))
    pg.keep("provenance", prov)
    pg.keep("model", model_name(*pg.profile.resnet))
    return styled(
        df,
        f"{prefix}-claim",
        f"The abstract's claim — {claim.quote!r} — on {model_name(*pg.profile.resnet)}, "
        f"full precision against {min(pg.profile.bits)} bits, seeds {seeds} (paired bootstrap over seeds and "
        "examples; significant: one-sided p < 0.05 and a 95 % interval above zero)",
        prov,
        {FULL_PRECISION: NUM, "quantized": NUM, "p": "{:.3f}", "test acc. lost": PCT},
    )


def table3(pg: Page):
    df = _shown_rows(pg)
    cols = ["target_train_acc", "target_test_acc", "shadow_train_acc", "shadow_test_acc", "attack_acc"]
    t, st = _table(
        pg,
        df,
        cols,
        "table3",
        "Table 3: target, shadow and attack accuracy by model, bitwidth and reading "
        "(shadow attack; the literal reading and the one most consistent with the paper)",
        {LABELS[c]: PCT for c in cols},
    )
    if t["n_seeds"].max() > 1:
        st.data["attack acc., mean ± std over seeds"] = [
            mean_std(m, s) for m, s in zip(t["attack_acc"], t["attack_acc_std"])
        ]
    return st


def table4(pg: Page):
    df = _shown_rows(pg)
    cols = ["precision_member", "recall_member", "f1_member", "precision_nonmember", "recall_nonmember", "f1_nonmember"]
    return _table(
        pg,
        df,
        cols,
        "table4",
        "Table 4: precision, recall and F1 of the shadow attack, members and non-members",
        {LABELS[c]: NUM for c in cols},
    )[1]


def table5(pg: Page):
    df = _shown_rows(pg)
    cols = ["attack_acc", "tn", "fp", "fn", "tp", "tpr", "fpr", "advantage", "auc"]
    t = labelled(mean_over_seeds(df, BY))
    show = t[["model", "bitwidth", "reading"] + cols].rename(
        columns={
            "attack_acc": "attack acc.",
            "tn": "TN",
            "fp": "FP",
            "fn": "FN",
            "tp": "TP",
            "tpr": "TPR",
            "fpr": "FPR",
            "advantage": "advantage (TPR − FPR)",
            "auc": "AUC",
        }
    )
    fmt = {
        "attack acc.": PCT,
        "TN": INT,
        "FP": INT,
        "FN": INT,
        "TP": INT,
        "TPR": NUM,
        "FPR": NUM,
        "advantage (TPR − FPR)": NUM,
        "AUC": NUM,
    }
    return styled(
        show,
        "table5",
        "Table 5: attack accuracy and confusion matrix of the shadow attack (counts; mean over "
        "seeds), with the advantage and AUC that a moved decision threshold cannot change",
        provenance(df),
        fmt,
    )
