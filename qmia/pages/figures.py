"""Figure 5, Table 6 and Figure 6, each with its verdicts."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import claims, evidence
from ..book import (
    LABELS,
    NUM,
    PCT,
    READING_NAMES,
    STATUS,
    Page,
    bitwidth,
    labelled,
    mean_over_seeds,
    model_name,
    styled,
    with_status,
)
from ..claims import ClaimResult
from ..plan import claim_configs, dorefa_configs, partial_configs
from ..results import load_roc, provenance
from ..vocabulary import DOREFA, FULL_PRECISION
from ._common import (
    BY,
    _decide,
    _finish,
    _plt,
    _shown_rows,
    _slug,
    _status,
    _why,
    _word,
)


def fig5(pg: Page):
    """ROC figures (linear and log-log) of full precision and each shown reading at the lowest bitwidth; AUC table."""
    plt = _plt()
    b = min(pg.bits)
    df = _shown_rows(pg, models=[pg.profile.resnet])
    curves = df[(df["method"] == "none") | (df["bits"] == b)]
    prov = provenance(df)
    pg.keep("provenance", prov)
    pg.keep("model", model_name(*pg.profile.resnet))
    pg.keep("bits", b)
    for log in (False, True):
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        for _, row in curves.iterrows():
            fpr, tpr = load_roc(row)
            name = bitwidth(row) + ("" if row["method"] == "none" else f", {row['reading']}")
            ax.plot(
                fpr,
                tpr,
                lw=1.6,
                label=f"{name}{f', seed {row.seed}' if len(pg.seeds) > 1 else ''} (AUC {row['auc']:.3f})",
            )
        grid = np.logspace(-4, 0, 50) if log else np.linspace(0, 1, 50)
        ax.plot(grid, grid, "k--", lw=0.8, label="chance")
        if log:
            n_non = int(curves["n_nonmembers"].min())
            ax.set_xscale("log"), ax.set_yscale("log")
            ax.set_xlim(1 / n_non, 1), ax.set_ylim(1 / n_non, 1)
            ax.axvspan(1 / n_non, min(10 / n_non, 1), color="0.9", zorder=0, label="fewer than 10 false positives")
        else:
            ax.set_xlim(0, 1), ax.set_ylim(0, 1)
        ax.set_xlabel("false positive rate"), ax.set_ylabel("true positive rate")
        ax.set_title(f"Shadow attack on {model_name(*pg.profile.resnet)}" + (" (log–log)" if log else ""), fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
        _finish(pg, fig, "fig5_roc_log" if log else "fig5_roc_linear")
    t = labelled(mean_over_seeds(df, BY))
    cols = ["auc", "advantage", "tpr_at_0.1%fpr", "tpr_at_1%fpr", "attack_acc"]
    show = t[["model", "bitwidth", "reading"] + cols].rename(columns=LABELS)
    show["AUC 95 % CI (examples; mean over seeds)"] = [
        f"{lo:.3f} – {hi:.3f}" for lo, hi in zip(t["auc_lo"], t["auc_hi"])
    ]
    return styled(
        show,
        "fig5-auc",
        "Area under the ROC curves of Figure 5, the advantage and the true positive rate at low false positive rates",
        prov,
        {"AUC": NUM, "advantage (TPR − FPR)": NUM, "TPR @ 0.1 % FPR": NUM, "TPR @ 1 % FPR": NUM, "attack acc.": PCT},
        not_measurable=("tpr_at_0.1%fpr", "tpr_at_1%fpr"),
    )


def verdict_table(pg: Page, results: dict[str, ClaimResult], table_id: str, title: str, configs: list):
    """One verdict per shown reading (Figures 5-6): the comparison it rests on and its reason; glued by reading.
    ``configs``: the target configurations the verdicts were computed from (for the provenance line)."""
    rows = []
    for r, res in results.items():
        if isinstance(res, evidence.MissingRow):
            rows.append({"reading": READING_NAMES[r], "verdict": _word(res), "why": _why(res)})
            word, reason = _word(res), _why(res)
        else:
            c = res.ours
            rows.append(
                {
                    "reading": READING_NAMES[r],
                    "bits": res.bits,
                    "before": f"{c.before}",
                    "after": f"{c.after}",
                    "p (fall)": c.p_value,
                    "test acc. lost": res.utility_drop,
                    "verdict": res.verdict.word,
                    "why": res.verdict.reason,
                }
            )
            word, reason = res.verdict.word, res.verdict.reason
        pg.keep(f"{_slug(r)}_verdict", word)
        pg.keep(f"{_slug(r)}_reason", reason)
    ev = pg.evidence()
    show = pd.DataFrame(rows)
    show = show[
        [
            c
            for c in ("reading", "bits", "before", "after", "p (fall)", "test acc. lost", "verdict", "why")
            if c in show.columns
        ]
    ]
    return styled(show, table_id, title, provenance(ev.frame(configs)), {"p (fall)": "{:.3f}", "test acc. lost": PCT})


def fig5_verdicts(pg: Page):
    res = {r: _decide(claims.chance_verdict, pg.evidence(), r) for r in pg.shown_readings()}
    return verdict_table(
        pg,
        res,
        "fig5-verdict",
        "Figure 5's reading: the full-precision attack succeeds and the quantized "
        "model's attack is at chance (AUC, claim seeds)",
        claim_configs(pg.profile, pg.shown_readings()),
    )


def table6(pg: Page):
    a, d = pg.profile.resnet
    fp = pg.run([pg.profile.config(a, d, seed=s) for s in pg.seeds])
    frames = [fp, pg.run([c for c in dorefa_configs(pg.profile, pg.bits, pg.seeds) if c.quant.method == "dorefa"])]
    for r in pg.shown_readings():
        frames.append(
            pg.run([c for c in dorefa_configs(pg.profile, pg.bits, pg.seeds, reading=r) if c.quant.method == "mia"])
        )
    df = pd.concat(frames, ignore_index=True)
    t = labelled(with_status(mean_over_seeds(df, BY), df, BY))
    t.insert(2, "quantizer", t["method"].map({"none": "–", "mia": "proposed", "dorefa": DOREFA}))
    cols = [
        "target_train_acc",
        "target_test_acc",
        "attack_acc",
        "precision_member",
        "recall_member",
        "f1_member",
        "auc",
    ]
    show = t[["model", "bitwidth", "quantizer", "reading"] + cols + _status(t)].rename(columns=LABELS)
    fmt = {LABELS[c]: (PCT if c.endswith("acc") else NUM) for c in cols}
    pg.keep("provenance", provenance(df))
    return styled(
        show, "table6", "Table 6: DoReFa-Net and the proposed quantizer against the shadow attack", provenance(df), fmt
    )


def table6_verdicts(pg: Page):
    rows = []
    for r in pg.shown_readings():
        decided = _decide(
            claims.dorefa_verdict, pg.evidence(), r
        )  # at the plan's bitwidths (4 and 8), whatever the page's
        if isinstance(decided, evidence.MissingRow):
            rows.append({"reading": READING_NAMES[r], "verdict at this bitwidth": _word(decided), "why": _why(decided)})
            pg.keep(f"{_slug(r)}_verdict", _word(decided))
            pg.keep(f"{_slug(r)}_reason", _why(decided))
            continue
        v, per_bits = decided
        for res in per_bits:
            rows.append(
                {
                    "reading": READING_NAMES[r],
                    "bits": res.bits,
                    "AUC, DoReFa-Net": f"{res.ours.before}",
                    "AUC, proposed": f"{res.ours.after}",
                    "p (fall)": res.ours.p_value,
                    "test acc. lost vs DoReFa-Net": res.utility_drop,
                    "verdict at this bitwidth": res.verdict.word,
                    "why": res.verdict.reason,
                }
            )
        pg.keep(f"{_slug(r)}_verdict", v.word)
        pg.keep(f"{_slug(r)}_reason", v.reason)
    return styled(
        pd.DataFrame(rows),
        "table6-summary",
        "Does the proposed quantizer defend better than DoReFa-Net? (attack AUC, DoReFa-Net as the baseline; seed 0)",
        provenance(pg.evidence().rows),
        {"bits": "{:.0f}", "p (fall)": "{:.3f}", "test acc. lost vs DoReFa-Net": PCT},
    )


def fig6(pg: Page):
    plt = _plt()
    a, d = pg.profile.resnet
    frames = [pg.run([pg.profile.config(a, d, seed=s) for s in pg.seeds])]
    for r in pg.shown_readings():
        frames.append(
            pg.run([c for c in partial_configs(pg.profile, pg.bits, 5, pg.seeds, reading=r) if c.quant.method == "mia"])
        )
    df = pd.concat(frames, ignore_index=True)
    prov = provenance(df)
    t = labelled(with_status(mean_over_seeds(df, BY + ["layers"]), df, BY + ["layers"]))
    waiting = t[STATUS].fillna("") if STATUS in t.columns else pd.Series("", index=t.index)
    t["setting"] = [
        (
            FULL_PRECISION
            if m == "none"
            else f"{int(b)}-bit {r}, " + ("last 5 layers" if layers == "last:5" else "all layers")
        )
        + (" (not computed yet)" if w else "")
        for m, b, r, layers, w in zip(t["method"], t["bits"], t["reading"], t["layers"], waiting)
    ]
    metrics = {
        "target_test_acc": "target test acc.",
        "attack_acc": "attack acc.",
        "auc": "attack AUC",
        "precision_nonmember": "precision (non-members)",
        "f1_member": "F1 (members)",
    }
    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    width = 0.8 / len(t)
    for i, (_, row) in enumerate(t.iterrows()):
        ax.bar(
            np.arange(len(metrics)) + (i - (len(t) - 1) / 2) * width,
            [row[m] for m in metrics],
            width,
            label=row["setting"],
        )
    ax.set_xticks(np.arange(len(metrics)), list(metrics.values()), fontsize=8)
    ax.axhline(0.5, color="k", ls="--", lw=0.8)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Partial quantization of {model_name(a, d)}", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    _finish(pg, fig, "fig6_partial")
    pg.keep("provenance", prov)
    pg.keep("model", model_name(a, d))
    cols = [
        "target_train_acc",
        "target_test_acc",
        "attack_acc",
        "auc",
        "precision_member",
        "recall_member",
        "f1_member",
        "precision_nonmember",
        "recall_nonmember",
        "f1_nonmember",
    ]
    show = t[["model", "setting"] + cols + _status(t)].rename(columns=LABELS)
    return styled(
        show,
        "fig6-table",
        "The numbers of Figure 6",
        prov,
        {LABELS[c]: (PCT if c.endswith("acc") else NUM) for c in cols},
    )


def fig6_verdicts(pg: Page):
    res = {r: _decide(claims.partial_verdict, pg.evidence(), r) for r in pg.shown_readings()}  # at the plan's 4 bits
    cfgs = [c for r in pg.shown_readings() for c in partial_configs(pg.profile, seeds=(0,), reading=r)]
    return verdict_table(
        pg,
        res,
        "fig6-verdict",
        "Does quantizing the last five layers lower the attack? (AUC, seed 0)",
        list(dict.fromkeys(cfgs)),
    )
