"""The book's tables and figures: one function per table or figure, called by the notebooks.

Each function takes the notebook's :class:`qmia.book.Page`, runs (or reads) what it needs through
:func:`qmia.experiment.evaluate`, glues the numbers its prose cites, and returns what the cell
displays (a styled table or a Markdown block); figures are glued for ``{glue:figure}``. Table ids
and figure names are those ``scripts/check_site.py`` expects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import claims, statements
from .book import (INT, LABELS, NOT_MEASURABLE_TEXT, NUM, PCT, READING_NAMES, STATUS, Page, bitwidth, labelled,
                   mean_over_seeds, mean_std, model_name, styled, with_status)
from .claims import ABSTRACT_CLAIMS, ClaimResult
from .plan import (DEFENCE_ATTACKS, RANKING_ATTACKS, STRONGER_ATTACKS, SWEEP_CURVES, claim_configs, defence_configs,
                   dorefa_configs, lira_configs, paper_configs, partial_configs, precision_configs, reading_spec, runs_reading,
                   reading_bits, sweep_configs)
from .quantizers import READING_INFO, QuantSpec
from .ranking import attack_agreement, rank_quantizers
from .results import clipped_table, load_outcome, load_roc, provenance, stored_part, weight_stats
from .uncertainty import estimate, measurable_fpr, point_value

BY = ["arch", "dataset", "quant", "method", "bits", "reading"]


def _plt():
    import matplotlib.pyplot as plt  # in a notebook, the inline backend renders the glued figures as PNG

    return plt


def _finish(pg: Page, fig, key: str) -> None:
    """Lay a figure out, close it and glue it under ``key`` (its provenance line is in its caption, once)."""
    fig.tight_layout()
    _plt().close(fig)
    pg.keep(key, fig)


def _shown_rows(pg: Page, models=None, bits=None, seeds=None) -> pd.DataFrame:
    """Tables 3-5: full precision and each shown reading at each bitwidth."""
    frames = []
    for r in pg.shown_readings():
        cfgs = paper_configs(pg.profile, models or pg.models, bits or pg.bits, seeds or pg.seeds, reading=r)
        frames.append(pg.run(cfgs if r == "literal" else [c for c in cfgs if c.quant.method == "mia"
                                                          and runs_reading(c.arch, c.quant.bits, r)]))
    return pd.concat(frames, ignore_index=True)


def _pending_figure(pg: Page, key: str, lines: list[str]) -> None:
    """A figure panel whose rows are not computed yet: it stays in place and says which parts compute it."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.2, 1.6))
    ax.axis("off")
    ax.text(0.01, 0.5, "Not computed yet at this profile's scale:\n" + "\n".join(lines[:6])
            + ("\n..." if len(lines) > 6 else ""), fontsize=8, va="center", ha="left", wrap=True)
    _finish(pg, fig, key)


def _pending_lines(df: pd.DataFrame) -> list[str]:
    """The distinct reasons (parts and costs) of a frame's pending rows, most common first."""
    return list(df.loc[df["pending"] != "", "pending"].value_counts().index) if "pending" in df.columns else []


def _pending_page(pg: Page, df: pd.DataFrame, table_id: str, title: str, figures: tuple[str, ...], keys: tuple[str, ...]):
    """What a page (or section) shows when none of its rows is stored: one table naming each part it waits for and
    its cost, placeholder figures, and 'pending' for every number its prose cites."""
    from IPython.display import Markdown

    lines = _pending_lines(df)
    for f in figures:
        _pending_figure(pg, f, lines)
    for k in keys:
        pg.keep(k, provenance(df) if k.endswith("_provenance") else None)
    pending = df[df["pending"] != ""]
    counts = pending.groupby("pending", sort=False).size().reset_index(name="rows")
    table = pd.DataFrame({"what": [title] * len(counts), "rows": counts["rows"], STATUS: counts["pending"]})
    st = styled(table, table_id, f"{title}: not computed yet", provenance(df), {"rows": INT})
    return st, Markdown(f"None of the {len(df)} rows of this section is stored yet: " + "; ".join(lines) + ".")


def _status(t: pd.DataFrame) -> list[str]:
    """['status'] when the table has pending rows (:func:`qmia.book.with_status`), else []: the columns to add."""
    return [STATUS] if STATUS in t.columns else []


def _decide(fn, *args, **kw):
    """``fn(*args, **kw)`` (a verdict), or the :class:`qmia.claims.MissingRow` saying which part its rows wait for, or
    the :class:`qmia.claims.MixedInstances` saying which rows come from two trainings of one key."""
    try:
        return fn(*args, **kw)
    except claims.MixedInstances as e:
        return e
    except claims.MissingRow as e:
        if not e.pending:
            raise
        return e


def _word(missing: claims.MissingRow) -> str:
    """The verdict word of a verdict that could not be decided: pending, or not measurable (two trainings of a key)."""
    return claims.NOT_MEASURABLE if isinstance(missing, claims.MixedInstances) else claims.PENDING


def _why(missing: claims.MissingRow) -> str:
    return f"rows of two trainings of one key: {missing}" if isinstance(missing, claims.MixedInstances) else missing.pending


def _table(pg: Page, df: pd.DataFrame, cols: list[str], table_id: str, title: str, fmt: dict,
           not_measurable: tuple[str, ...] = ()):
    t = labelled(with_status(mean_over_seeds(df, BY), df, BY))
    show = t[["model", "bitwidth", "reading"] + cols + _status(t)].rename(columns=LABELS)
    return t, styled(show, table_id, title, provenance(df), fmt, tuple(LABELS.get(c, c) for c in not_measurable))


# ----------------------------------------------------------------------------- claims of the abstract


def claim_table(pg: Page, key: str, prefix: str):
    """The abstract's claim ``key`` under each shown reading: our measure, the paper's quantity, the verdict."""
    claim = ABSTRACT_CLAIMS[key]
    ev = pg.evidence()
    rows, results = [], {}
    for r in pg.shown_readings():
        res = _decide(claims.abstract_verdict, ev, key, r)
        if isinstance(res, claims.MissingRow):
            rows.append({"reading": READING_NAMES[r], "bits": min(pg.profile.bits), "our measure": _measure_name(key),
                         "verdict": _word(res), "why": _why(res)})
            for k, v in {"verdict": _word(res), "reason": _why(res)}.items():
                pg.keep(f"{prefix}_{_slug(r)}_{k}", v)
            continue
        results[r] = res
        o, pq = res.ours, res.paper_quantity
        rows.append({
            "reading": READING_NAMES[r], "bits": res.bits,
            "our measure": _measure_name(key),
            "full precision": o.before.value, "quantized": o.after.value,
            "reduction (our measure)": f"{o.relative:.1f} % (drop {o.reduction_lo:+.3f} to {o.reduction_hi:+.3f})",
            "p": o.p_value,
            f"paper's quantity ({claim.metric.replace('_', ' ')})": f"{pq.before.value:.3f} → {pq.after.value:.3f} "
                                                                     f"({pq.relative:.1f} % lower)",
            "test acc. lost": res.utility_drop,
            "verdict": res.verdict.word, "why": res.verdict.reason,
        })
        for k, v in {"verdict": res.verdict.word, "reason": res.verdict.reason, "fp": o.before.value, "q": o.after.value,
                     "reduction": o.relative, "paper_reduction": pq.relative, "bits": res.bits}.items():
            pg.keep(f"{prefix}_{_slug(r)}_{k}", v)
    df = pd.DataFrame(rows)
    used = sorted({s for res in results.values() for s in res.seeds}) or [0]
    seeds = ", ".join(map(str, used)) + (f" of {', '.join(map(str, pg.profile.claim_seeds))}"
                                         if len(used) < len(pg.profile.claim_seeds) else "")
    cfgs = claim_configs(pg.profile, pg.shown_readings())
    prov = provenance(pg.run(cfgs))
    pg.keep(f"{prefix}_provenance", prov)
    pg.keep(f"{prefix}_model", model_name(*pg.profile.resnet))
    return styled(df, f"{prefix}-claim", f"The abstract's claim — {claim.quote!r} — on {model_name(*pg.profile.resnet)}, "
                  f"full precision against {min(pg.profile.bits)} bits, seeds {seeds} (paired bootstrap over seeds and "
                  "examples; one-sided test)", prov, {"full precision": NUM, "quantized": NUM, "p": "{:.3f}", "test acc. lost": PCT})


def _measure_name(key: str) -> str:
    return {"attack_acc": "attack accuracy (credited down to 50 %)",
            "tpr": "TPR at the full-precision attack's FPR",
            "f1_member": "member F1 at the full-precision attack's FPR"}[key]


def _slug(reading: str) -> str:
    return reading.replace("-", "_")


# ----------------------------------------------------------------------------- Tables 3-5


def table3(pg: Page):
    df = _shown_rows(pg)
    cols = ["target_train_acc", "target_test_acc", "shadow_train_acc", "shadow_test_acc", "attack_acc"]
    t, st = _table(pg, df, cols, "table3", "Table 3: target, shadow and attack accuracy by model, bitwidth and reading "
                   "(shadow attack; the literal reading and the one most consistent with the paper)", {LABELS[c]: PCT for c in cols})
    if t["n_seeds"].max() > 1:
        st.data["attack acc., mean ± std over seeds"] = [mean_std(m, s) for m, s in zip(t["attack_acc"], t["attack_acc_std"])]
    return st


def table4(pg: Page):
    df = _shown_rows(pg)
    cols = ["precision_member", "recall_member", "f1_member", "precision_nonmember", "recall_nonmember", "f1_nonmember"]
    return _table(pg, df, cols, "table4", "Table 4: precision, recall and F1 of the shadow attack, members and non-members",
                  {LABELS[c]: NUM for c in cols})[1]


def table5(pg: Page):
    df = _shown_rows(pg)
    cols = ["attack_acc", "tn", "fp", "fn", "tp", "tpr", "fpr", "advantage", "auc"]
    t = labelled(mean_over_seeds(df, BY))
    show = t[["model", "bitwidth", "reading"] + cols].rename(columns={
        "attack_acc": "attack acc.", "tn": "TN", "fp": "FP", "fn": "FN", "tp": "TP", "tpr": "TPR", "fpr": "FPR",
        "advantage": "advantage (TPR − FPR)", "auc": "AUC"})
    fmt = {"attack acc.": PCT, "TN": INT, "FP": INT, "FN": INT, "TP": INT, "TPR": NUM, "FPR": NUM, "advantage (TPR − FPR)": NUM,
           "AUC": NUM}
    return styled(show, "table5", "Table 5: attack accuracy and confusion matrix of the shadow attack (counts; mean over "
                  "seeds), with the advantage and AUC that a moved decision threshold cannot change", provenance(df), fmt)


# ----------------------------------------------------------------------------- Figure 5


def fig5(pg: Page):
    """ROC figures (linear and log-log) of full precision and each shown reading at the lowest bitwidth; AUC table."""
    plt = _plt()
    b = min(pg.bits)
    df = _shown_rows(pg, models=[pg.profile.resnet])
    curves = df[(df["method"] == "none") | (df["bits"] == b)]
    prov = provenance(df)
    pg.keep("f5_provenance", prov)
    pg.keep("f5_model", model_name(*pg.profile.resnet))
    pg.keep("f5_bits", b)
    for log in (False, True):
        fig, ax = plt.subplots(figsize=(5.2, 4.6))
        for _, row in curves.iterrows():
            fpr, tpr = load_roc(row)
            name = bitwidth(row) + ("" if row["method"] == "none" else f", {row['reading']}")
            ax.plot(fpr, tpr, lw=1.6, label=f"{name}{f', seed {row.seed}' if len(pg.seeds) > 1 else ''} (AUC {row['auc']:.3f})")
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
    show["AUC 95 % CI (examples; mean over seeds)"] = [f"{lo:.3f} – {hi:.3f}" for lo, hi in zip(t["auc_lo"], t["auc_hi"])]
    return styled(show, "fig5-auc", "Area under the ROC curves of Figure 5, the advantage and the true positive rate at low "
                  "false positive rates", prov, {"AUC": NUM, "advantage (TPR − FPR)": NUM, "TPR @ 0.1 % FPR": NUM,
                                                 "TPR @ 1 % FPR": NUM, "attack acc.": PCT},
                  not_measurable=("tpr_at_0.1%fpr", "tpr_at_1%fpr"))


def verdict_table(pg: Page, results: dict[str, ClaimResult], table_id: str, title: str, prefix: str, configs: list):
    """One verdict per shown reading (Figures 5-6): the comparison it rests on and its reason; glued by reading.
    ``configs``: the target configurations the verdicts were computed from (for the provenance line)."""
    rows = []
    for r, res in results.items():
        if isinstance(res, claims.MissingRow):
            rows.append({"reading": READING_NAMES[r], "verdict": _word(res), "why": _why(res)})
            word, reason = _word(res), _why(res)
        else:
            c = res.ours
            rows.append({"reading": READING_NAMES[r], "bits": res.bits, "before": f"{c.before}", "after": f"{c.after}",
                         "p (fall)": c.p_value, "test acc. lost": res.utility_drop, "verdict": res.verdict.word,
                         "why": res.verdict.reason})
            word, reason = res.verdict.word, res.verdict.reason
        pg.keep(f"{prefix}_{_slug(r)}_verdict", word)
        pg.keep(f"{prefix}_{_slug(r)}_reason", reason)
    ev = pg.evidence()
    show = pd.DataFrame(rows)
    show = show[[c for c in ("reading", "bits", "before", "after", "p (fall)", "test acc. lost", "verdict", "why")
                 if c in show.columns]]
    return styled(show, table_id, title, provenance(ev.frame(configs)), {"p (fall)": "{:.3f}", "test acc. lost": PCT})


def fig5_verdicts(pg: Page):
    res = {r: _decide(claims.chance_verdict, pg.evidence(), r) for r in pg.shown_readings()}
    return verdict_table(pg, res, "fig5-verdict", "Figure 5's reading: the full-precision attack succeeds and the quantized "
                         "model's attack is at chance (AUC, claim seeds)", "f5", claim_configs(pg.profile, pg.shown_readings()))


# ----------------------------------------------------------------------------- Table 6


def table6(pg: Page):
    a, d = pg.profile.resnet
    fp = pg.run([pg.profile.config(a, d, seed=s) for s in pg.seeds])
    frames = [fp, pg.run([c for c in dorefa_configs(pg.profile, pg.bits, pg.seeds) if c.quant.method == "dorefa"])]
    for r in pg.shown_readings():
        frames.append(pg.run([c for c in dorefa_configs(pg.profile, pg.bits, pg.seeds, reading=r) if c.quant.method == "mia"]))
    df = pd.concat(frames, ignore_index=True)
    t = labelled(with_status(mean_over_seeds(df, BY), df, BY))
    t.insert(2, "quantizer", t["method"].map({"none": "–", "mia": "proposed", "dorefa": "DoReFa-Net"}))
    cols = ["target_train_acc", "target_test_acc", "attack_acc", "precision_member", "recall_member", "f1_member", "auc"]
    show = t[["model", "bitwidth", "quantizer", "reading"] + cols + _status(t)].rename(columns=LABELS)
    fmt = {LABELS[c]: (PCT if c.endswith("acc") else NUM) for c in cols}
    pg.keep("t6_provenance", provenance(df))
    return styled(show, "table6", "Table 6: DoReFa-Net and the proposed quantizer against the shadow attack", provenance(df), fmt)


def table6_verdicts(pg: Page):
    rows = []
    for r in pg.shown_readings():
        decided = _decide(claims.dorefa_verdict, pg.evidence(), r)  # at the plan's bitwidths (4 and 8), whatever the page's
        if isinstance(decided, claims.MissingRow):
            rows.append({"reading": READING_NAMES[r], "verdict at this bitwidth": _word(decided), "why": _why(decided)})
            pg.keep(f"t6_{_slug(r)}_verdict", _word(decided))
            pg.keep(f"t6_{_slug(r)}_reason", _why(decided))
            continue
        v, per_bits = decided
        for res in per_bits:
            rows.append({"reading": READING_NAMES[r], "bits": res.bits, "AUC, DoReFa-Net": f"{res.ours.before}",
                         "AUC, proposed": f"{res.ours.after}", "p (fall)": res.ours.p_value,
                         "test acc. lost vs DoReFa-Net": res.utility_drop, "verdict at this bitwidth": res.verdict.word})
        pg.keep(f"t6_{_slug(r)}_verdict", v.word)
        pg.keep(f"t6_{_slug(r)}_reason", v.reason)
    return styled(pd.DataFrame(rows), "table6-summary", "Does the proposed quantizer defend better than DoReFa-Net? "
                  "(attack AUC, DoReFa-Net as the baseline; seed 0)", provenance(pg.evidence().rows),
                  {"p (fall)": "{:.3f}", "test acc. lost vs DoReFa-Net": PCT})


# ----------------------------------------------------------------------------- Figure 6


def fig6(pg: Page):
    plt = _plt()
    a, d = pg.profile.resnet
    frames = [pg.run([pg.profile.config(a, d, seed=s) for s in pg.seeds])]
    for r in pg.shown_readings():
        frames.append(pg.run([c for c in partial_configs(pg.profile, pg.bits, 5, pg.seeds, reading=r) if c.quant.method == "mia"]))
    df = pd.concat(frames, ignore_index=True)
    prov = provenance(df)
    t = labelled(with_status(mean_over_seeds(df, BY + ["layers"]), df, BY + ["layers"]))
    waiting = t[STATUS].fillna("") if STATUS in t.columns else pd.Series("", index=t.index)
    t["setting"] = [("full precision" if m == "none" else f"{int(b)}-bit {r}, " + ("last 5 layers" if l == "last:5" else "all layers"))
                    + (" (not computed yet)" if w else "")
                    for m, b, r, l, w in zip(t["method"], t["bits"], t["reading"], t["layers"], waiting)]
    metrics = {"target_test_acc": "target test acc.", "attack_acc": "attack acc.", "auc": "attack AUC",
               "precision_nonmember": "precision (non-members)", "f1_member": "F1 (members)"}
    fig, ax = plt.subplots(figsize=(7.2, 4.0))
    width = 0.8 / len(t)
    for i, (_, row) in enumerate(t.iterrows()):
        ax.bar(np.arange(len(metrics)) + (i - (len(t) - 1) / 2) * width, [row[m] for m in metrics], width, label=row["setting"])
    ax.set_xticks(np.arange(len(metrics)), list(metrics.values()), fontsize=8)
    ax.axhline(0.5, color="k", ls="--", lw=0.8)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Partial quantization of {model_name(a, d)}", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    _finish(pg, fig, "fig6_partial")
    pg.keep("f6_provenance", prov)
    pg.keep("f6_model", model_name(a, d))
    cols = ["target_train_acc", "target_test_acc", "attack_acc", "auc", "precision_member", "recall_member", "f1_member",
            "precision_nonmember", "recall_nonmember", "f1_nonmember"]
    show = t[["model", "setting"] + cols + _status(t)].rename(columns=LABELS)
    return styled(show, "fig6-table", "The numbers of Figure 6", prov, {LABELS[c]: (PCT if c.endswith("acc") else NUM) for c in cols})


def fig6_verdicts(pg: Page):
    res = {r: _decide(claims.partial_verdict, pg.evidence(), r) for r in pg.shown_readings()}  # at the plan's 4 bits
    cfgs = [c for r in pg.shown_readings() for c in partial_configs(pg.profile, seeds=(0,), reading=r)]
    return verdict_table(pg, res, "fig6-verdict", "Does quantizing the last five layers lower the attack? (AUC, seed 0)", "f6",
                         list(dict.fromkeys(cfgs)))


# ----------------------------------------------------------------------------- which quantizer did the paper run?


def readings_definitions(pg: Page):
    """Each reading's equations and what it clips, with the share it clips of the trained full-precision ResNet."""
    a, d = pg.profile.resnet
    cfg = pg.profile.config(a, d, seed=0)
    stats = weight_stats(cfg, pg.data_root)
    overall = _overall_shares(stats["sizes"], clipped_table(stats, list(READING_INFO), pg.bits))
    rows = []
    for name, info in READING_INFO.items():
        row = {"reading": READING_NAMES[name], "what it is": info.title, "equations": info.equations, "clips": info.clips}
        for b, share in zip(pg.bits, overall[name]):
            row[f"clipped at {b} bits"] = float(share)
        rows.append(row)
    df = pd.DataFrame(rows)
    prov = provenance(pg.run([cfg]))
    st = styled(df, "readings-defs", f"The readings of Section 3.3, and the share of the weights of the trained full-precision "
                f"{model_name(a, d)} each one clips", prov, {c: PCT for c in df.columns if c.startswith("clipped")})
    return st.set_table_styles([{"selector": "td", "props": "white-space: normal; text-align: left;"}], overwrite=False)


def readings_statements(pg: Page):
    """The statements x readings table (marks), the counts per reading, the numbers behind every cell, and the
    conclusion by the stated rule (glued)."""
    ev = pg.evidence()
    table = statements.readings_table(ev)
    counts = statements.consistency_counts(table)
    choice = statements.choose_reading(table)
    rows, details = [], []
    for s in statements.STATEMENTS:
        link = f'<a href="{s.page}.html">{s.where}</a>'
        row = {"statement": f"“{s.quote}” — {link}", "kind": s.kind, "rule": s.rule}
        for r in table.columns:
            cell = table.loc[s.key, r]
            row[READING_NAMES[r]] = cell.mark
            details.append({"statement": s.key, "reading": READING_NAMES[r], "": cell.mark, "the numbers behind it": cell.detail,
                            "page": link})
        rows.append(row)
    prov = provenance(ev.rows)
    left = [{"selector": "td", "props": "white-space: normal; text-align: left; vertical-align: top;"}]
    st = styled(pd.DataFrame(rows), "readings-statements", "The paper's statements (the abstract, the Introduction, Sections "
                "3.3 and 4.2) under each reading of its quantizer: ✓ agrees, ✗ disagrees (each beyond noise: the 95 % "
                "interval of the comparison), – not measurable (within noise, a utility collapse, an attack at chance, or "
                "not in this profile; the numbers table says which), … pending (its rows not computed yet) (the paper's "
                "own quantities; seed 0 unless stated)", prov).set_table_styles(left, overwrite=False)
    st_details = styled(pd.DataFrame(details), "readings-details", "The numbers behind every cell", prov).set_table_styles(
        left, overwrite=False)
    n = len(statements.STATEMENTS)
    pg.keep("rd_best", str(choice) if choice.decided else f"undecided between {', '.join(READING_NAMES[r] for r in choice.readings)}")
    pg.keep("rd_best_agrees", int(counts.loc[choice.shown, claims.AGREES]))
    pg.keep("rd_best_disagrees", int(counts.loc[choice.shown, claims.DISAGREES]))
    pg.keep("rd_shown", READING_NAMES[choice.shown])
    pg.keep("rd_n_statements", n)
    pg.keep("rd_literal_agrees", int(counts.loc["literal", claims.AGREES]) if "literal" in counts.index else 0)
    pg.keep("rd_provenance", prov)
    counts_df = counts.reset_index().rename(columns={"index": "reading"})
    counts_df["range of the net"] = [f"{choice.bounds[r][0]} to {choice.bounds[r][1]}" for r in counts.index]
    counts_df["reading"] = counts_df["reading"].map(READING_NAMES)
    counts_st = styled(counts_df, "readings-counts", f"Statements per reading (of {n}); the rule: only decided statements "
                       "count (net = agrees - disagrees); each within-noise statement could go either way, so a reading's "
                       "net lies in its range; a reading is chosen when its range lies wholly above every other's", prov)
    return st, counts_st, st_details


def readings_fit(pg: Page):
    """Every target of the readings plan: train and test accuracy, the gap, and the shadow attack's AUC with its interval."""
    ev = pg.evidence()
    cfgs = [c for r in pg.profile.readings for c in paper_configs(pg.profile, seeds=(0,), reading=r)
            if c.quant.method == "none" or runs_reading(c.arch, c.quant.bits, r)]
    df = ev.frame(list(dict.fromkeys(cfgs)))
    t = labelled(df.reindex(columns=list(df.columns) + [c for c in ("target_train_acc", "target_test_acc", "auc", "auc_lo",
                                                                   "auc_hi") if c not in df.columns]))
    t["gap"] = t["target_train_acc"] - t["target_test_acc"]
    t["AUC (95 % CI)"] = [f"{a:.3f} ({lo:.3f} – {hi:.3f})" if pd.notna(a) else "–"
                          for a, lo, hi in zip(t["auc"], t["auc_lo"], t["auc_hi"])]
    if (t["pending"] != "").any():
        t[STATUS] = t["pending"]
    show = t[["model", "bitwidth", "reading", "target_train_acc", "target_test_acc", "gap", "AUC (95 % CI)"]
             + _status(t)].rename(columns=LABELS)
    for _, r in t[(t["method"] == "none") & (t["pending"] == "")].iterrows():
        pg.keep(f"rd_fp_{r['arch']}_train", r["target_train_acc"])
        pg.keep(f"rd_fp_{r['arch']}_test", r["target_test_acc"])
        pg.keep(f"rd_fp_{r['arch']}_auc", r["auc"])
    return styled(show, "readings-fit", "Every target behind the statements: how well it fits its training data and how much "
                  "the shadow attack finds (seed 0)", provenance(df), {LABELS["target_train_acc"]: PCT,
                                                                      LABELS["target_test_acc"]: PCT, "gap": PCT})


def readings_precision(pg: Page, n_boot: int = 1000):
    """The precision ablation: the profile's ResNet at full precision and at its highest bitwidth, in the profile's
    precision and in the other (:func:`qmia.plan.precision_configs`): accuracy and the shadow attack, and the AUC's
    change with its paired bootstrap interval over examples (same splits and seed)."""
    from .uncertainty import compare

    others = precision_configs(pg.profile)
    mine = [c.with_(precision=pg.profile.precision) for c in others]
    df = pg.run(mine + others)
    rows = []
    for a, b in zip(mine, others):
        ra, rb = df[df["target_key"] == a.key].iloc[0], df[df["target_key"] == b.key].iloc[0]
        row = {"model": model_name(a.arch, a.dataset), "bitwidth": "full precision" if a.quant.method == "none"
               else f"{a.quant.bits}-bit", "reading": READING_NAMES.get(a.quant.curve, "–"),
               f"test acc. ({a.precision})": ra.get("target_test_acc"), f"test acc. ({b.precision})": rb.get("target_test_acc"),
               f"attack acc. ({a.precision})": ra.get("attack_acc"), f"attack acc. ({b.precision})": rb.get("attack_acc"),
               f"AUC ({a.precision})": ra.get("auc"), f"AUC ({b.precision})": rb.get("auc")}
        if ra["pending"] or rb["pending"]:
            row[STATUS] = ra["pending"] or rb["pending"]
        else:
            cmp = compare([load_outcome(ra)], [load_outcome(rb)], "auc", n_boot=n_boot)
            row[f"AUC change, {a.precision} → {b.precision} (95 % CI)"] = (
                f"{-cmp.reduction:+.3f} ({-cmp.reduction_hi:+.3f} to {-cmp.reduction_lo:+.3f})")
        rows.append(row)
    show = pd.DataFrame(rows)
    if STATUS in show.columns:
        show = show[[c for c in show.columns if c != STATUS] + [STATUS]].fillna({STATUS: ""})
    fmt = {c: (PCT if "acc." in c else NUM) for c in show.columns if "acc." in c or c.startswith("AUC (")}
    return styled(show, "readings-precision", f"The compute precision as a reading: {model_name(*pg.profile.resnet)} "
                  f"at full precision and {max(pg.profile.bits)} bits in the profile's precision ({pg.profile.precision}) "
                  f"and in the other, shadow attack (seed 0; {n_boot} paired bootstrap resamples of the examples)",
                  provenance(df), fmt)


def readings_recipes(pg: Page):
    ev = pg.evidence()
    table = statements.recipe_table(ev)
    pick = statements.pick_recipe(table)
    pg.keep("rd_recipe_pick", pick)
    pg.keep("rd_recipe_profile", pg.profile.recipe)
    return styled(table, "readings-recipes", "The training recipe as a reading: the abstract's three statements under each "
                  f"recipe (best reading; {model_name(*pg.profile.resnet)}, seed 0). The rule picks *{pick}*.",
                  provenance(ev.rows), {"fp train acc": PCT, "fp test acc": PCT, "fp attack AUC": NUM, "AUC lo": NUM, "AUC hi": NUM})


# ----------------------------------------------------------------------------- the zero point and clipping


def _overall_shares(sizes: list[int], shares: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{reading: per-bitwidth share of all weights clipped, each layer weighted by its size}."""
    w = np.asarray(sizes, dtype=np.float64)
    return {r: (s * w[:, None]).sum(0) / w.sum() for r, s in shares.items()}


def clipping(pg: Page):
    """Heat map of the share each reading's clamp moves, per layer of the trained full-precision ResNet, and the summary."""
    plt = _plt()
    a, d = pg.profile.resnet
    cfg = pg.profile.config(a, d, seed=pg.seeds[0])
    fp_df = pg.run([cfg])
    stats = weight_stats(cfg, pg.data_root)
    heat_bits = sorted(set(pg.bits) | set(pg.profile.sweep_bits))
    names = stats["layers"]
    prov = provenance(fp_df)
    readings = [r for r in READING_INFO if r in pg.profile.readings]
    fig, axes = plt.subplots(1, len(readings) + 1, figsize=(2.3 * len(readings) + 1.8, 0.2 * len(names) + 1.8),
                             gridspec_kw={"width_ratios": [1] * len(readings) + [0.08]})
    cax, axes = axes[-1], axes[:-1]
    summary = {"bitwidth": [f"{b}-bit" for b in heat_bits]}
    shares = clipped_table(stats, readings, heat_bits)
    overall = _overall_shares(stats["sizes"], shares)
    for i, (ax, r) in enumerate(zip(axes, readings)):
        im = ax.imshow(shares[r], aspect="auto", cmap="magma_r", vmin=0, vmax=1)
        ax.set_xticks(range(len(heat_bits)), heat_bits, fontsize=7)
        ax.set_title(READING_NAMES[r], fontsize=8)
        ax.set_xlabel("bits", fontsize=8)
        ax.set_yticks(range(len(names)), names if i == 0 else [""] * len(names), fontsize=6)
        summary[f"clipped share, {READING_NAMES[r]}"] = list(overall[r])
    fig.colorbar(im, cax=cax, label="share of the layer's weights clipped")
    fig.suptitle(f"Weights the clamp moves, trained full-precision {model_name(a, d)}", fontsize=10)
    fig.subplots_adjust(bottom=0.1)
    plt.close(fig)
    pg.keep("clip_heatmap", fig)
    lit = summary[f"clipped share, {READING_NAMES['literal']}"]
    for b, v in zip(heat_bits, lit):
        pg.keep(f"clip_share_{b}", v)
    pg.keep("clip_bits_hi", max(pg.bits))
    pg.keep("clip_share_hi", lit[heat_bits.index(max(pg.bits))])
    pg.keep("clip_bits_lo", min(pg.bits))
    pg.keep("clip_share_lo", lit[heat_bits.index(min(pg.bits))])
    pg.keep("clip_provenance", prov)
    pg.keep("clip_model", model_name(a, d))
    df = pd.DataFrame(summary)
    return styled(df, "clip-summary", "Share of all weights clipped (weighted by layer size), by reading", prov,
                  {c: PCT for c in df.columns if c != "bitwidth"})


def clipping_rerun(pg: Page):
    """The ResNet's rows at every bitwidth under every reading: what the clipping does to the model and to the attack."""
    a, d = pg.profile.resnet
    frames = [pg.run([c for c in paper_configs(pg.profile, [(a, d)], pg.bits, pg.seeds, reading=r)
                      if r == "literal" or c.quant.method == "mia"]) for r in pg.profile.readings]
    df = pd.concat(frames, ignore_index=True)
    t = labelled(mean_over_seeds(df, BY))
    cols = ["target_train_acc", "target_test_acc", "attack_acc", "auc"]
    show = t[["model", "bitwidth", "reading"] + cols].rename(columns=LABELS)
    b = max(pg.bits)
    for r in pg.profile.readings:
        row = t[(t["bits"] == b) & (t["reading"] == READING_NAMES[r])]
        if len(row):
            pg.keep(f"clip_{_slug(r)}_test_acc", row.iloc[0]["target_test_acc"])
            pg.keep(f"clip_{_slug(r)}_attack_acc", row.iloc[0]["attack_acc"])
    pg.keep("clip_bits", b)
    return styled(show, "clip-rerun", "Table 3's ResNet rows under every reading of the quantizer", provenance(df),
                  {LABELS[c]: (PCT if c.endswith("acc") else NUM) for c in cols})


# ----------------------------------------------------------------------------- beyond the paper


def beyond_adaptive(pg: Page):
    df = pg.run(paper_configs(pg.profile, pg.models, pg.bits, pg.seeds), attacks=("shadow", "adaptive", "metric"))
    t = labelled(mean_over_seeds(df, BY + ["attack"]))
    adaptive = t[t["attack"].isin(["shadow", "adaptive"])].pivot_table(
        index=["model", "bitwidth"], columns="attack", values=["attack_acc", "auc"], sort=False)
    adaptive.columns = [f"{'attack acc.' if m == 'attack_acc' else 'AUC'}, {a}" for m, a in adaptive.columns]
    adaptive = adaptive.reset_index()
    q = t[t["method"] == "mia"].pivot_table(index=["arch", "dataset", "bits"], columns="attack", values="auc")
    pg.keep("adaptive_gain", float((q["adaptive"] - q["shadow"]).mean()))
    metric = t[t["attack"].str.startswith("metric-")]
    pg.keep("best_metric", metric.groupby("attack")["auc"].mean().idxmax().removeprefix("metric-"))
    st1 = styled(adaptive, "beyond-adaptive", "The paper's attacker (shadow in full precision) vs the adaptive attacker "
                 "(shadow quantized like the target), literal reading", provenance(df),
                 {c: (PCT if c.startswith("attack acc") else NUM) for c in adaptive.columns[2:]})
    m = metric.pivot_table(index=["model", "bitwidth"], columns="attack", values="auc", sort=False)
    m.columns = [f"AUC, {c.removeprefix('metric-')}" for c in m.columns]
    m = m.reset_index()
    st2 = styled(m, "beyond-metric", "Metric attacks (thresholds chosen on the shadow model's outputs): AUC", provenance(df),
                 {c: NUM for c in m.columns[2:]})
    return st1, st2


def beyond_lira(pg: Page):
    df = pg.run(lira_configs(pg.profile, seeds=pg.seeds), attacks=("lira",))
    lt = labelled(mean_over_seeds(df, BY + ["attack"]))

    show = pd.DataFrame({
        "model": lt["model"], "bitwidth": lt["bitwidth"], "reading": lt["reading"],
        "attack": [a.removesuffix("-adaptive").removesuffix("-reference") for a in lt["attack"]],
        "reference models": ["quantized like the target" if a.endswith("-adaptive") else "full precision" for a in lt["attack"]],
        "scoring": ["reference code" if a.endswith("-reference") else "qmia" for a in lt["attack"]],
        "AUC": lt["auc"],
        "TPR @ 0.1 % FPR (95 % CI)": [_ci(r, "tpr_at_0.1%fpr") for _, r in lt.iterrows()],
        "TPR @ 1 % FPR (95 % CI)": [_ci(r, "tpr_at_1%fpr") for _, r in lt.iterrows()]})
    pg.keep("lira_refs", pg.profile.lira_refs)
    ours = lt[lt["attack"].isin(["lira-online", "lira-offline"])]["auc"].mean()
    ref = lt[lt["attack"].isin(["lira-online-reference", "lira-offline-reference"])]["auc"].mean()
    pg.keep("lira_ours_auc", ours)
    pg.keep("lira_ref_auc", ref)
    pg.keep("lira_stronger", "qmia's" if ours >= ref else "the reference code's")
    return styled(show, "beyond-lira", f"LiRA, online and offline, with {pg.profile.lira_refs} reference models per target "
                  "(full precision, or quantized like the target: the adaptive attacker); qmia's scoring and the reference "
                  "code's", provenance(df), {"AUC": NUM})


def beyond_sweep(pg: Page):
    plt = _plt()
    a, d = pg.profile.sweep
    sweep = pg.run(sweep_configs(pg.profile, seeds=pg.seeds))
    st = mean_over_seeds(sweep, BY)
    st["curve"] = [row_curve(r) for _, r in st.iterrows()]
    prov = provenance(sweep)
    fig, ax = plt.subplots(figsize=(6.0, 4.4))
    for curve, marker in zip(SWEEP_CURVES, "o^vs"):
        s = st[st["curve"] == curve].sort_values("bits")
        ax.plot(s["auc"], s["target_test_acc"], marker=marker, label=CURVE_NAMES[curve])
        for _, r in s.iterrows():
            ax.annotate(f"{int(r['bits'])}b", (r["auc"], r["target_test_acc"]), textcoords="offset points", xytext=(4, 3), fontsize=7)
    f = st[st["method"] == "none"].iloc[0]
    ax.plot([f["auc"]], [f["target_test_acc"]], "k*", ms=12, label="full precision")
    ax.axvline(0.5, color="k", ls="--", lw=0.8)
    ax.set_xlabel("attack AUC (shadow attack; 0.5 = chance)")
    ax.set_ylabel("target test accuracy")
    ax.set_title(f"Privacy–utility, {model_name(a, d)}", fontsize=10)
    ax.legend(fontsize=8)
    _finish(pg, fig, "beyond_privacy_utility")
    pg.keep("pu_provenance", prov)
    pg.keep("pu_model", model_name(a, d))


# ----------------------------------------------------------------------------- stronger attacks and the ranking

CURVE_NAMES = {"literal": "proposed, literal (z = 2)", "centred": "proposed, centred z", "min-anchored": "proposed, min-anchored",
               "printed": "proposed, printed", "dorefa": "DoReFa-Net", "none": "full precision"}
ATTACK_NAMES = {"shadow": "shadow (the paper's)", "adaptive": "shadow, adaptive", "lira-online": "LiRA online",
                "lira-offline": "LiRA offline", "rmia-online": "RMIA online", "rmia-offline": "RMIA offline",
                "label-gap": "label-only: gap", "label-augment": "label-only: augmentation",
                **{f"metric-{m}": f"metric: {m}" for m in ("confidence", "loss", "entropy", "mentropy")}}


def attack_name(variant: str) -> str:
    """A readable name of an attack variant ('rmia-online-adaptive' -> 'RMIA online, adaptive')."""
    for suffix, words in (("-adaptive", "adaptive"), ("-reference", "reference code")):
        if variant.endswith(suffix) and variant != "adaptive":
            base = variant.removesuffix(suffix)
            return f"{ATTACK_NAMES.get(base, base)}, {words}"
    return ATTACK_NAMES.get(variant, variant)


def row_curve(row) -> str:
    """The curve of a results row (as :attr:`qmia.quantizers.QuantSpec.curve`: 'none', 'dorefa' or the reading)."""
    return row["method"] if row["method"] != "mia" else row["reading"]


def _quantizer_name(curve: str, bits) -> str:
    return "full precision" if curve == "none" else f"{CURVE_NAMES.get(curve, curve)}, {int(bits)}-bit"


def quantizer_name(row) -> str:
    """'full precision', or the quantizer (reading or DoReFa-Net) and its bitwidth, of a results row."""
    return _quantizer_name(row_curve(row), row["bits"])


def _outcomes(df: pd.DataFrame) -> dict[str, dict[str, list]]:
    """{quantizer: {attack: [outcome per seed]}} of stored rows, for :mod:`qmia.ranking`."""
    out: dict[str, dict[str, list]] = {}
    for _, r in df.iterrows():
        out.setdefault(quantizer_name(r), {}).setdefault(r["attack"], []).append(load_outcome(r))
    return out


def _ci(row, col: str) -> str:
    """A rate with its 95 % interval, or why it is missing."""
    if pd.isna(row[col]):
        return NOT_MEASURABLE_TEXT
    return f"{row[col]:.2%} ({row[col + '_lo']:.2%} – {row[col + '_hi']:.2%})"


STRONGER_SHOWN = ("shadow", "lira-online", "lira-offline", "rmia-online", "rmia-offline", "label-gap", "label-augment")


def stronger_attacks(pg: Page):
    """The LiRA targets against every attack: RMIA beside LiRA on the same reference models, and the label-only
    attacks; glues the RMIA-LiRA comparison and, per quantizer, the strongest attack at 0.1 % FPR."""
    everything = pg.run(lira_configs(pg.profile, seeds=pg.seeds), attacks=("shadow",) + STRONGER_ATTACKS)
    df = stored_part(everything)
    keys = ("stronger_alpha", "stronger_refs", "strongest_attacks", *(f"{a}_{k}_{m}" for a in ("lira", "rmia")
                                                                      for k in ("online", "offline") for m in ("auc", "tpr")))
    if not len(df):
        return _pending_page(pg, everything, "stronger-attacks", "The LiRA targets against every attack", (), keys)[0]
    t = with_status(mean_over_seeds(everything, BY + ["attack"]), everything, BY + ["attack"])
    t["quantizer"] = [quantizer_name(r) for _, r in t.iterrows()]
    t["model"] = [model_name(a, d) for a, d in zip(t["arch"], t["dataset"])]
    shown = t[t["attack"].isin(STRONGER_SHOWN)].copy()
    shown["order"] = shown["attack"].map(STRONGER_SHOWN.index)
    shown = shown.sort_values(["model", "quantizer", "order"], kind="stable")
    table = pd.DataFrame({"model": shown["model"], "quantizer": shown["quantizer"],
                          "attack": shown["attack"].map(attack_name), "AUC": shown["auc"],
                          "TPR @ 0.1 % FPR (95 % CI)": [_ci(r, "tpr_at_0.1%fpr") for _, r in shown.iterrows()],
                          "TPR @ 1 % FPR (95 % CI)": [_ci(r, "tpr_at_1%fpr") for _, r in shown.iterrows()]})
    if STATUS in shown.columns:
        table[STATUS] = shown[STATUS].fillna("").to_numpy()
        table.loc[table[STATUS] != "", ["TPR @ 0.1 % FPR (95 % CI)", "TPR @ 1 % FPR (95 % CI)"]] = "–"
    # TPR at 0.1 % FPR, or at the lowest rate these non-members make measurable, over the seeds
    alpha = lowest_measurable_fpr(int(df["n_nonmembers"].min()))
    df = df.assign(quantizer=[quantizer_name(r) for _, r in df.iterrows()],
                   model=[model_name(a, d) for a, d in zip(df["arch"], df["dataset"])])
    low = pd.DataFrame([{"model": m, "quantizer": q, "attack": a,
                         "tpr": point_value([load_outcome(r) for _, r in g.iterrows()], f"tpr@{alpha}")}
                        for (m, q, a), g in df[df["attack"].isin(STRONGER_SHOWN)].groupby(["model", "quantizer", "attack"],
                                                                                         sort=False)])
    pg.keep("stronger_alpha", alpha)
    for kind in ("online", "offline"):
        for attack in ("lira", "rmia"):  # averaged over the same targets for both attacks, else pending
            both = set(low.loc[low["attack"] == f"lira-{kind}", "quantizer"]) == set(
                low.loc[low["attack"] == f"rmia-{kind}", "quantizer"])
            mine = t[(t["attack"] == f"{attack}-{kind}") & (t[STATUS] == "" if STATUS in t.columns else True)]
            pg.keep(f"{attack}_{kind}_auc", float(mine["auc"].mean()) if both and len(mine) else None)
            pg.keep(f"{attack}_{kind}_tpr", float(low.loc[low["attack"] == f"{attack}-{kind}", "tpr"].mean())
                    if both and len(mine) else None)
    pg.keep("stronger_refs", pg.profile.lira_refs)
    parts = []
    for (model, q), sub in low.groupby(["model", "quantizer"], sort=False):
        best = sub.loc[sub["tpr"].idxmax()]
        parts.append(f"{q} ({model}): {attack_name(best['attack'])}, TPR {best['tpr']:.2%} at "
                     f"{alpha:.1%} FPR")
    pg.keep("strongest_attacks", "; ".join(parts))
    return styled(table, "stronger-attacks", f"The LiRA targets against the paper's attack, LiRA and RMIA (the same "
                  f"{pg.profile.lira_refs} full-precision reference models per target) and the label-only attacks",
                  provenance(df), {"AUC": NUM})


def _complete_quantizers(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the stored rows of the quantizers whose every row is stored, the rows of the others): a ranking ranks only
    quantizers measured by every attack, and names the others as pending."""
    names = pd.Series([quantizer_name(r) for _, r in df.iterrows()], index=df.index)
    incomplete = set(names[df["pending"] != ""])
    return df[~names.isin(incomplete)], df[names.isin(incomplete)]


def _waiting_note(waiting: pd.DataFrame) -> str:
    """' (not ranked yet, rows pending: ...)' naming the quantizers a ranking leaves out, or ''."""
    if not len(waiting):
        return ""
    names = list(dict.fromkeys(quantizer_name(r) for _, r in waiting.iterrows()))
    return f" (not ranked yet, rows pending: {', '.join(names)}; {'; '.join(_pending_lines(waiting))})"


def _ranking_table(df: pd.DataFrame, outcomes: dict, table_id: str, title: str, n_boot: int):
    ranked = rank_quantizers(outcomes, "max_advantage", n_boot=n_boot, seed=0)
    acc = df.assign(quantizer=[quantizer_name(r) for _, r in df.iterrows()]).groupby("quantizer")["target_test_acc"].mean()
    show = pd.DataFrame({
        "rank": ranked["rank"], "quantizer": ranked["quantizer"], "MIS": ranked["mis"],
        "best advantage (95 % CI)": [f"{v:.3f} ({lo:.3f} – {hi:.3f})" for v, lo, hi in
                                     zip(ranked["value"], ranked["value_lo"], ranked["value_hi"])],
        "strongest attack": ranked["strongest_attack"].map(attack_name),
        "rank holds": ranked["rank_share"], "ranked first": ranked["best_share"],
        "test acc.": ranked["quantizer"].map(acc)})
    st = styled(show, table_id, title, f"{provenance(df)} · {n_boot} paired bootstrap resamples",
                {"MIS": NUM, "rank holds": PCT, "ranked first": PCT, "test acc.": PCT, "rank": INT})
    return ranked.assign(test_acc=ranked["quantizer"].map(acc)), st


USEFUL_SHARE = 0.9  # a quantizer "keeps its utility" at >= this share of full precision's test accuracy


def _keep_first(pg: Page, ranked: pd.DataFrame, prefix: str) -> None:
    """Glue the most secure quantizer, and the most secure one that keeps its utility (a model that stopped
    learning leaks nothing and is useless, so the ranking alone would crown it)."""
    first = ranked.iloc[0]
    pg.keep(f"{prefix}_first", first["quantizer"])
    pg.keep(f"{prefix}_first_share", float(first["best_share"]))
    pg.keep(f"{prefix}_first_acc", float(first["test_acc"]))
    floor = USEFUL_SHARE * float(ranked.loc[ranked["quantizer"] == "full precision", "test_acc"].iloc[0])
    useful = ranked[ranked["test_acc"] >= floor]
    best = useful.iloc[0]
    pg.keep(f"{prefix}_useful", best["quantizer"])
    pg.keep(f"{prefix}_useful_rank", int(best["rank"]))
    pg.keep(f"{prefix}_useful_mis", float(best["mis"]))
    pg.keep(f"{prefix}_useful_acc", float(best["test_acc"]))


def ranking_lira(pg: Page, n_boot: int = 1000):
    """The LiRA targets ranked by their strongest attack of all (LiRA, RMIA, label-only, the shadow attack)."""
    df = pg.run(lira_configs(pg.profile, seeds=pg.seeds), attacks=("shadow",) + STRONGER_ATTACKS)
    df, waiting = _complete_quantizers(df)
    pg.keep("useful_share", USEFUL_SHARE)
    if not len(df):
        return _pending_page(pg, waiting, "ranking-lira", "The LiRA targets ranked by membership-inference security", (),
                             ("rank_lira_first", "rank_lira_first_acc", "rank_lira_first_share", "rank_lira_useful",
                              "rank_lira_useful_rank", "rank_lira_useful_mis", "rank_lira_useful_acc"))[0]
    ranked, st = _ranking_table(df, _outcomes(df), "ranking-lira", "The LiRA targets ranked by membership-inference security, "
                                "every attack (MIS = 1 − the best advantage of the strongest attack)" + _waiting_note(waiting),
                                n_boot)
    _keep_first(pg, ranked, "rank_lira")
    return st


def ranking_sweep(pg: Page, n_boot: int = 1000):
    """The sweep's quantizers ranked by MIS over the attacks that need only the full-precision shadow, the
    attacks' agreement (Kendall's W) and the figure of the best advantage against the bitwidth."""
    plt = _plt()
    a, d = pg.profile.sweep
    df = pg.run(sweep_configs(pg.profile, pg.bits, pg.seeds), attacks=("shadow",) + RANKING_ATTACKS)
    df, waiting = _complete_quantizers(df)
    if not len(df):
        keys = ("rank_sweep_first", "rank_sweep_first_acc", "rank_sweep_first_share", "rank_sweep_useful",
                "rank_sweep_useful_rank", "rank_sweep_useful_mis", "rank_sweep_useful_acc", "rank_sweep_last",
                "rank_sweep_w", "rank_sweep_n", "rank_provenance")
        pg.keep("rank_sweep_model", model_name(a, d))
        st = _pending_page(pg, waiting, "ranking-sweep", "The sweep's quantizers ranked by membership-inference security",
                           ("ranking_advantage",), keys)[0]
        agree = _pending_page(pg, waiting, "ranking-agreement", "Each attack's own ranking of the sweep's quantizers",
                              (), ())[0]
        return st, agree
    outcomes = _outcomes(df)  # read once: the ranking and the attacks' agreement
    ranked, st = _ranking_table(df, outcomes, "ranking-sweep", f"The sweep's quantizers on {model_name(a, d)} ranked by "
                                "membership-inference security over the paper's, the metric and the label-only attacks"
                                + _waiting_note(waiting), n_boot)
    ranks, w = attack_agreement(outcomes, "max_advantage")
    agree = ranks.rename(columns=attack_name).loc[ranked["quantizer"]].reset_index()
    agree = agree.rename(columns={agree.columns[0]: "quantizer"})
    st_agree = styled(agree, "ranking-agreement", f"Each attack's own ranking of the sweep's quantizers (1 = most secure); "
                      f"Kendall's W = {w:.2f}", provenance(df), {c: INT for c in agree.columns[1:]})
    _keep_first(pg, ranked, "rank_sweep")
    pg.keep("rank_sweep_last", ranked.iloc[-1]["quantizer"])
    pg.keep("rank_sweep_w", w)
    pg.keep("rank_sweep_n", len(ranked))
    pg.keep("rank_sweep_model", model_name(a, d))
    st_rows = mean_over_seeds(df, BY)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    by_name = ranked.set_index("quantizer")
    for curve, marker in zip(SWEEP_CURVES, "o^vs"):
        s = st_rows[[row_curve(r) == curve for _, r in st_rows.iterrows()]]
        s = s.sort_values("bits")
        names = [quantizer_name(r) for _, r in s.iterrows()]
        v = by_name.loc[names]
        ax.errorbar(s["bits"], v["value"], yerr=[v["value"] - v["value_lo"], v["value_hi"] - v["value"]], marker=marker,
                    capsize=3, label=CURVE_NAMES[curve])
    fp = by_name.loc["full precision"]
    ax.axhspan(fp["value_lo"], fp["value_hi"], color="k", alpha=0.1)
    ax.axhline(fp["value"], color="k", lw=1, label="full precision (95 % CI shaded)")
    ax.set_xscale("log", base=2)
    bits = sorted(st_rows["bits"].dropna().unique())
    ax.set_xticks(bits, [f"{int(b)}" for b in bits])
    ax.set_xlabel("weight bitwidth")
    ax.set_ylabel("best advantage of the strongest attack (1 − MIS)")
    ax.set_title(f"Membership advantage against bitwidth, {model_name(a, d)}", fontsize=10)
    ax.legend(fontsize=8)
    _finish(pg, fig, "ranking_advantage")
    pg.keep("rank_provenance", provenance(df))
    return st, st_agree


# ----------------------------------------------------------------------------- defences side by side

FAMILIES = {"none": "no defence", "qat": "quantization-aware training", "prune": "pruning", "dp": "DP-SGD",
            "ptq": "post-training quantization"}


def _setting(c) -> tuple[str, str]:
    """(family, setting name) of a frontier target configuration."""
    if c.defence.kind != "none":
        return c.defence.kind, c.defence.name
    if c.quant.method == "none":
        return "none", "full precision"
    return "qat", _quantizer_name(c.quant.curve, c.quant.bits)


def _short(setting: str) -> str:
    """A setting's name shortened for a crowded plot: 'pruning 80 % (global)' -> 'pruned 80 %', 'PTQ 4-bit per-channel'
    -> 'PTQ 4-bit ch.'."""
    for long, short in (("pruning ", "pruned "), (" (global)", ""), (" per-channel", " ch."),
                        (" per-tensor", " t."), ("proposed, literal (z = 2), ", "literal "), ("proposed, centred z, ", "centred "),
                        ("DoReFa-Net, ", "DoReFa "), ("full precision", "full prec.")):
        setting = setting.replace(long, short)
    return setting


def dominated_by(acc: np.ndarray, tpr: np.ndarray) -> list[list[int]]:
    """For each setting i, the settings j that dominate it: test accuracy at least as high and TPR at most as high,
    one of the two strictly (point estimates)."""
    return [[j for j in range(len(acc)) if j != i and acc[j] >= acc[i] and tpr[j] <= tpr[i]
             and (acc[j] > acc[i] or tpr[j] < tpr[i])] for i in range(len(acc))]


def defences_frontier(pg: Page, n_boot: int = 400):
    """Every defence and strength against LiRA online with reference models trained with the same defence: the
    table, the privacy-utility frontier figure and, per defence, which settings dominate which."""
    plt = _plt()
    configs = defence_configs(pg.profile, pg.seeds)
    df = pg.run(configs, attacks=DEFENCE_ATTACKS)
    stored = stored_part(df)
    if not len(stored):
        return _pending_page(pg, df, "defences-table", "Each defence and strength against LiRA online",
                             ("defences_frontier",), ("def_alpha", "def_best", "def_best_tpr", "def_best_acc", "def_fp_tpr",
                                                      "def_fp_acc", "def_provenance"))
    alpha = lowest_measurable_fpr(int(stored["n_nonmembers"].min()))
    rows, waiting = [], []
    for c in dict.fromkeys(c.with_(seed=0) for c in configs):
        keys = [x.key for x in configs if x.with_(seed=0) == c]
        mine = stored[(stored["attack"] == "lira-online-adaptive") & stored["target_key"].isin(keys)]
        family, name = _setting(c)
        if not len(mine):
            why = df.loc[df["target_key"].isin(keys) & (df["pending"] != ""), "pending"]
            waiting.append({"defence": FAMILIES[family], "setting": name, STATUS: why.iloc[0] if len(why) else ""})
            continue
        outs = [load_outcome(r) for _, r in mine.iterrows()]
        low, auc = estimate(outs, f"tpr@{alpha}", n_boot=n_boot), estimate(outs, "auc", n_boot=n_boot)
        rows.append({"family": family, "defence": FAMILIES[family], "setting": name, "test acc.": mine["target_test_acc"].mean(),
                     "AUC": auc.value, "auc_lo": auc.lo, "auc_hi": auc.hi, "tpr": low.value, "tpr_lo": low.lo, "tpr_hi": low.hi,
                     "TPR @ 0.1 % FPR": mine["tpr_at_0.1%fpr"].mean(), "TPR @ 1 % FPR": mine["tpr_at_1%fpr"].mean()})
    t = pd.DataFrame(rows)
    dom = dominated_by(t["test acc."].to_numpy(), t["tpr"].to_numpy())
    front = {i for i, d in enumerate(dom) if not d}  # every dominated setting is dominated by one on the frontier
    t["dominated by"] = [", ".join(t["setting"][j] for j in d if j in front) or "–" for d in dom]
    show = t[["defence", "setting", "test acc.", "AUC", "TPR @ 0.1 % FPR", "TPR @ 1 % FPR", "dominated by"]].copy()
    show.insert(4, f"TPR @ {alpha:.1%} FPR (95 % CI)", [f"{v:.2%} ({lo:.2%} – {hi:.2%})" for v, lo, hi in
                                                         zip(t["tpr"], t["tpr_lo"], t["tpr_hi"])])
    if waiting:
        show = pd.concat([show, pd.DataFrame(waiting)], ignore_index=True)
        show[STATUS] = show[STATUS].fillna("")
        show["dominated by"] = show["dominated by"].fillna("–")
    prov = provenance(df)
    st = styled(show, "defences-table", "Each defence and strength: test accuracy against LiRA online with reference "
                f"models trained with the same defence ({pg.profile.lira_refs} per target); 'dominated by': the settings on the "
                "frontier with at least its test accuracy and at most its TPR (point estimates)",
                f"{prov} · {n_boot} bootstrap resamples",
                {"test acc.": PCT, "AUC": NUM, "TPR @ 0.1 % FPR": "{:.2%}", "TPR @ 1 % FPR": "{:.2%}",
                 "dominated by": "{}"},
                ("TPR @ 0.1 % FPR", "TPR @ 1 % FPR"))
    # one sentence per defence: its settings on the frontier, and what dominates the others
    sentences = []
    for family in [f for f in FAMILIES if f in set(t["family"])]:
        sub = t[t["family"] == family]
        free = [r["setting"] for i, r in sub.iterrows() if not dom[i]]
        beaten = [f"{r['setting']} (by {r['dominated by']})" for i, r in sub.iterrows() if dom[i]]
        text = f"**{FAMILIES[family]}**: " + (f"on the frontier: {', '.join(free)}" if free else "no setting on the frontier")
        sentences.append(text + (f"; dominated: {'; '.join(beaten)}." if beaten else "."))
    if waiting:
        sentences.append(f"Not computed yet, so not on this frontier: {', '.join(w['setting'] for w in waiting)}.")
    if "none" not in set(t["family"]):
        raise claims.MissingRow("the full-precision target's LiRA rows are not stored", "its part is pending")
    fp_acc = float(t.loc[t["family"] == "none", "test acc."].iloc[0])
    useful = t[t["test acc."] >= USEFUL_SHARE * fp_acc]
    best = useful.loc[useful["tpr"].idxmin()]
    pg.keep("def_alpha", alpha)
    pg.keep("def_refs", pg.profile.lira_refs)
    pg.keep("def_best", f"{best['setting']} ({FAMILIES[best['family']]})")
    pg.keep("def_best_tpr", float(best["tpr"]))
    pg.keep("def_best_acc", float(best["test acc."]))
    pg.keep("def_fp_tpr", float(t.loc[t["family"] == "none", "tpr"].iloc[0]))
    pg.keep("def_fp_acc", fp_acc)
    pg.keep("def_useful_share", USEFUL_SHARE)
    a, d = pg.profile.sweep
    pg.keep("def_model", model_name(a, d))
    pg.keep("def_provenance", prov)
    floor = alpha / 10  # a TPR of 0 on a log axis: drawn at a tenth of the FPR
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4.6), gridspec_kw={"width_ratios": [1, 1.25]})
    keep = USEFUL_SHARE * fp_acc
    for ax, zoom in zip(axes, (False, True)):
        for (family, sub), marker in zip(t.groupby("family", sort=False), "*osv^D"):
            sub = sub[sub["test acc."] >= keep] if zoom else sub
            y = sub["tpr"].clip(lower=floor)
            ax.errorbar(sub["test acc."], y, yerr=[y - sub["tpr_lo"].clip(lower=floor), sub["tpr_hi"].clip(lower=floor) - y],
                        fmt=marker, ms=11 if marker == "*" else 7, capsize=3, label=FAMILIES[family], alpha=0.85)
            for _, r in sub.iterrows() if zoom else ():
                ax.annotate(_short(r["setting"]), (r["test acc."], max(r["tpr"], floor)), textcoords="offset points",
                            xytext=(5, -3), fontsize=7)
        ax.axhline(alpha, color="k", ls="--", lw=0.8, label=f"chance (TPR = FPR = {alpha:.1%})")
        ax.set_yscale("log")
        ax.set_xlabel("target test accuracy (utility)")
    axes[0].set_ylabel(f"LiRA online TPR at {alpha:.1%} FPR\n(reference models with the same defence)")
    axes[0].set_title(f"Every setting, {model_name(a, d)}", fontsize=10)
    axes[1].set_title(f"Settings keeping ≥ {USEFUL_SHARE:.0%} of full precision's accuracy", fontsize=10)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    _finish(pg, fig, "defences_frontier")
    from IPython.display import Markdown

    return st, Markdown("\n\n".join(sentences))


# ----------------------------------------------------------------------------- the report and the answer


def lowest_measurable_fpr(n_nonmembers: int) -> float:
    """The lowest of 0.1 %, 1 %, 2 %, 5 %, 10 % FPR at which TPR is measured (>= 10 false positives)."""
    for alpha in (0.001, 0.01, 0.02, 0.05, 0.1):
        if measurable_fpr(n_nonmembers, alpha):
            return alpha
    return 0.5


def report_status(pg: Page):
    """The report's first lines: what this build holds at its profile's scale and what is pending, counted: parts and
    rows stored, the parts not computed yet with their costs, and the readings x statements table decided / pending."""
    from IPython.display import Markdown

    from .parts import assign, missing_parts, part_cost

    p = pg.profile
    table = statements.readings_table(pg.evidence())
    counts = statements.consistency_counts(table)
    n_cells = table.size
    pending_cells = int(counts[claims.PENDING].sum())
    decided = int(counts[claims.AGREES].sum() + counts[claims.DISAGREES].sum())
    pg.keep("rep_cells_decided", decided)
    pg.keep("rep_cells_pending", pending_cells)
    cells_line = (f"The readings x statements table has {n_cells} cells ({len(table)} statements x {table.shape[1]} "
                  f"readings): {decided} decided, {pending_cells} pending, "
                  f"{int(counts[claims.UNMEASURABLE].sum())} not measurable in this profile.")
    if not pg.stored_only:
        return Markdown(f"Profile **{p.name}**: every result was computed for this build. {cells_line}")
    holding = {n: es for n, es in assign(p).items() if es}
    missing = [n for n in missing_parts(p) if n in holding]
    done = [n for n in holding if n not in missing]
    from .experiment import row_keys
    from .results import load_row

    rows_total = sum(len(row_keys(c, g, p)) for es in holding.values() for c, g in es)
    rows_stored = sum(load_row(k) is not None for es in holding.values() for c, g in es for k in row_keys(c, g, p).values())
    text = (f"**At the paper's scale** (`results/{p.name}/`, nothing trained for this build): {len(done)} of "
            f"{len(holding)} parts stored, {rows_stored} of {rows_total} result rows: {', '.join(f'`{n}`' for n in done)}."
            f"\n\n**Pending** ({len(missing)} parts, each named where its numbers would stand): "
            + "; ".join(f"`{n}` ({part_cost(p, n)})" for n in missing) + f".\n\n{cells_line}")
    return Markdown(text)


def report_verdicts(pg: Page):
    """Every claim's verdict under the literal reading and the most consistent one(s): the book's answer."""
    ev = pg.evidence()
    shown = pg.shown_readings()
    rows = []
    def word_and_reason(decided) -> tuple[str, str]:
        if isinstance(decided, claims.MissingRow):
            return _word(decided), _why(decided)
        v = decided[0] if isinstance(decided, tuple) else decided.verdict
        return v.word, v.reason

    for r in shown:
        decisions = [(f"{claim.quote} (abstract)", _decide(claims.abstract_verdict, ev, key, r))
                     for key, claim in ABSTRACT_CLAIMS.items()]
        decisions += [("the quantized model's ROC is at chance (Figure 5)", _decide(claims.chance_verdict, ev, r)),
                      ("the proposed quantizer defends better than DoReFa-Net (Table 6)",
                       _decide(claims.dorefa_verdict, ev, r)),
                      ("quantizing the last 5 layers lowers the attack (Figure 6)", _decide(claims.partial_verdict, ev, r))]
        for claim_text, decided in decisions:
            word, reason = word_and_reason(decided)
            rows.append({"claim": claim_text, "reading": READING_NAMES[r], "verdict": word, "why": reason})
    df = pd.DataFrame(rows)
    for r in shown:
        sub = df[df["reading"] == READING_NAMES[r]]
        pg.keep(f"rep_{_slug(r)}_reproduced", int((sub["verdict"] == claims.REPRODUCED).sum()))
        for i, word in enumerate(sub["verdict"]):
            pg.keep(f"rep_{_slug(r)}_{i}", word)
    pg.keep("rep_n_claims", int(len(df) / len(shown)))
    pg.keep("rep_best", ", ".join(shown[1:]) or "literal")
    prov = provenance(ev.rows)
    pg.keep("rep_provenance", prov)
    compact = df[["claim", "reading", "verdict"]].pivot_table(index="claim", columns="reading", values="verdict",
                                                             aggfunc="first", sort=False).reset_index()
    st_compact = styled(compact, "answer-verdicts", "The answer: each claim's verdict under the literal reading of the "
                        "quantizer and the reading most consistent with the paper", prov).set_table_styles(
        [{"selector": "td, th", "props": "white-space: normal; text-align: left; vertical-align: top;"}], overwrite=False)
    pg.keep("answer_table", st_compact)
    st_full = styled(df, "report-verdicts", "Every verdict with its reason (rules in the method chapter)", prov)
    st_full = st_full.set_table_styles([{"selector": "td", "props": "white-space: normal; text-align: left;"}], overwrite=False)
    return st_compact, st_full


def answer_figure(pg: Page):
    """TPR at the lowest measurable FPR against test accuracy: full precision and each reading at the lowest bitwidth,
    and DoReFa-Net, over the claim seeds (seed 0 for DoReFa-Net)."""
    plt = _plt()
    ev = pg.evidence()
    p = pg.profile
    b = min(p.bits)
    groups = {"full precision": [ev.config(*p.resnet, seed=s) for s in p.claim_seeds]}
    for r in p.readings:
        groups[READING_NAMES[r]] = [ev.config(*p.resnet, reading_spec(r, b), seed=s) for s in p.claim_seeds]
    groups[f"DoReFa-Net ({b}-bit)"] = [ev.config(*p.resnet, QuantSpec("dorefa", b))]
    n_non = int(ev.row(groups["full precision"][0])["n_nonmembers"])
    alpha = lowest_measurable_fpr(n_non)
    fig, ax = plt.subplots(figsize=(8.4, 4.6))
    rows, waiting = [], []
    for (name, cfgs), marker in zip(groups.items(), "*osv^D"):
        have = [c for c in cfgs if (c.key, "shadow") not in ev.pending]
        if len(have) < len(cfgs):
            waiting.append(f"{name}: {len(cfgs) - len(have)} of {len(cfgs)} seeds not computed yet")
        if not have:
            continue
        cfgs = have
        outs = ev.outcomes(cfgs)
        tpr = estimate(outs, f"tpr@{alpha}", n_boot=400)
        acc = [ev.row(c)["target_test_acc"] for c in cfgs]
        ax.errorbar(np.mean(acc), tpr.value, yerr=[[tpr.value - tpr.lo], [tpr.hi - tpr.value]],
                    xerr=np.std(acc) if len(acc) > 1 else None, fmt=marker, ms=10 if marker == "*" else 7, capsize=3,
                    label=name if name == "full precision" or name.startswith("DoReFa") else f"{name}, {b}-bit")
        rows.append((name, tpr.value, np.mean(acc)))
    ax.axhline(alpha, color="k", ls="--", lw=0.8, label=f"chance (TPR = FPR = {alpha:.1%})")
    ax.set_xlabel("target test accuracy (utility)")
    ax.set_ylabel(f"shadow attack TPR at {alpha:.1%} FPR")
    ax.set_yscale("log")
    ax.set_title(f"Leakage against utility, {model_name(*p.resnet)}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    if waiting:
        ax.text(1.02, 0.0, "Not computed yet:\n" + "\n".join(waiting), transform=ax.transAxes, fontsize=6.5,
                va="bottom", ha="left", color="0.3")
    _finish(pg, fig, "answer_figure")
    pg.keep("answer_alpha", alpha)
    pg.keep("answer_n_nonmembers", n_non)


def report_needs(pg: Page):
    """What the abstract's numbers would need: per reading and bitwidth, the profile's ResNet at full precision
    against quantized (seed 0, the paper's quantities, paired): each claimed metric's relative change with its 95 %
    interval, the test accuracy lost, and whether the setting keeps utility and its interval holds the claim (glued:
    how many settings do, of how many measured)."""
    ev, p = pg.evidence(), pg.profile
    fp = ev.config(*p.resnet)
    rows, hits, measured = [], 0, 0
    for r in p.readings:
        for b in [b for b in pg.bits if b in reading_bits(p, p.resnet[0])]:
            q = ev.config(*p.resnet, reading_spec(r, b))
            row = {"reading": READING_NAMES[r], "bits": b}
            try:
                fp_row, q_row = ev.paired_rows([(fp, "shadow"), (q, "shadow")])
                lost = float(fp_row["target_test_acc"] - q_row["target_test_acc"])
                row["test acc. lost"] = lost
                within = []
                for key, claim in ABSTRACT_CLAIMS.items():
                    c = ev.compare(fp, q, claim.metric, chance=claims.CHANCE.get(claim.metric))
                    mid, lo, hi = c.relative_interval
                    row[f"{claim.metric.replace('_', ' ')} lower (claimed {claim.value:.0f} %)"] = f"{mid:.1f} % ({lo:.1f} to {hi:.1f})"
                    within.append(lo <= claim.value <= hi)
                useful = lost <= claims.MAX_UTILITY_DROP
                measured += 1
                hits += useful and all(within)
                row["keeps utility and holds every claim"] = ("yes" if useful and all(within) else
                                                              "no: utility lost" if not useful else
                                                              f"no: {sum(within)} of {len(within)} claims in the interval")
            except claims.MixedInstances as e:
                row[STATUS] = f"not measurable: rows of two trainings of one key ({e})"
            except claims.MissingRow as e:
                if not e.pending:
                    raise
                row[STATUS] = e.pending
            rows.append(row)
    show = pd.DataFrame(rows)
    if STATUS in show.columns:
        show = show[[c for c in show.columns if c != STATUS] + [STATUS]].fillna({STATUS: ""})
    pg.keep("rep_needs_hits", hits)
    pg.keep("rep_needs_measured", measured)
    return styled(show, "report-needs", f"What the abstract's numbers would need: {model_name(*p.resnet)}, full precision "
                  "against each reading and bitwidth (seed 0; the paper's quantities, paired bootstrap over the examples): "
                  "the relative reduction with its 95 % interval, and whether a setting that keeps its utility "
                  f"(at most {100 * claims.MAX_UTILITY_DROP:.0f} points lost) holds all three claims",
                  provenance(ev.rows), {"test acc. lost": PCT})
