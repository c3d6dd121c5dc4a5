"""Defences side by side: quantization against pruning, DP-SGD and post-training quantization."""

from __future__ import annotations

import pandas as pd

from .. import evidence
from ..book import NUM, PCT, STATUS, Page, model_name, styled
from ..plan import DEFENCE_ATTACKS, defence_configs
from ..ranking import dominated_by
from ..results import load_outcome, provenance, stored_part
from ..uncertainty import estimate, lowest_measurable_fpr
from ..vocabulary import FAMILIES, FULL_PRECISION
from ._common import _finish, _pending_page, _plt
from .ranking import USEFUL_SHARE, _quantizer_name


def _setting(c) -> tuple[str, str]:
    """(family, setting name) of a frontier target configuration."""
    if c.defence.kind != "none":
        return c.defence.kind, c.defence.name
    if c.quant.method == "none":
        return "none", FULL_PRECISION
    return "qat", _quantizer_name(c.quant.curve, c.quant.bits)


def _short(setting: str) -> str:
    """A setting's name shortened for a crowded plot: 'pruning 80 % (global)' -> 'pruned 80 %', 'PTQ 4-bit per-channel'
    -> 'PTQ 4-bit ch.'."""
    for long, short in (
        ("pruning ", "pruned "),
        (" (global)", ""),
        (" per-channel", " ch."),
        (" per-tensor", " t."),
        ("proposed, literal (z = 2), ", "literal "),
        ("proposed, centred z, ", "centred "),
        ("DoReFa-Net, ", "DoReFa "),
        (FULL_PRECISION, "full prec."),
    ):
        setting = setting.replace(long, short)
    return setting


def defences_frontier(pg: Page, n_boot: int = 400):
    """Every defence and strength against LiRA online with reference models trained with the same defence: the
    table, the privacy-utility frontier figure and, per defence, which settings dominate which."""
    plt = _plt()
    configs = defence_configs(pg.profile, pg.seeds)
    df = pg.run(configs, attacks=DEFENCE_ATTACKS)
    stored = stored_part(df)
    if not len(stored):
        return _pending_page(
            pg,
            df,
            "defences-table",
            "Each defence and strength against LiRA online",
            ("defences_frontier",),
            ("alpha", "best", "best_tpr", "best_acc", "fp_tpr", "fp_acc", "provenance"),
        )
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
        rows.append(
            {
                "family": family,
                "defence": FAMILIES[family],
                "setting": name,
                "test acc.": mine["target_test_acc"].mean(),
                "AUC": auc.value,
                "auc_lo": auc.lo,
                "auc_hi": auc.hi,
                "tpr": low.value,
                "tpr_lo": low.lo,
                "tpr_hi": low.hi,
                "TPR @ 0.1 % FPR": mine["tpr_at_0.1%fpr"].mean(),
                "TPR @ 1 % FPR": mine["tpr_at_1%fpr"].mean(),
            }
        )
    t = pd.DataFrame(rows)
    dom = dominated_by(t["test acc."].to_numpy(), t["tpr"].to_numpy())
    front = {i for i, d in enumerate(dom) if not d}  # every dominated setting is dominated by one on the frontier
    t["dominated by"] = [", ".join(t["setting"][j] for j in d if j in front) or "–" for d in dom]
    show = t[["defence", "setting", "test acc.", "AUC", "TPR @ 0.1 % FPR", "TPR @ 1 % FPR", "dominated by"]].copy()
    show.insert(
        4,
        f"TPR @ {alpha:.1%} FPR (95 % CI)",
        [f"{v:.2%} ({lo:.2%} – {hi:.2%})" for v, lo, hi in zip(t["tpr"], t["tpr_lo"], t["tpr_hi"])],
    )
    if waiting:
        show = pd.concat([show, pd.DataFrame(waiting)], ignore_index=True)
        show[STATUS] = show[STATUS].fillna("")
        show["dominated by"] = show["dominated by"].fillna("–")
    prov = provenance(df)
    st = styled(
        show,
        "defences-table",
        "Each defence and strength: test accuracy against LiRA online with reference "
        f"models trained with the same defence ({pg.profile.lira_refs} per target); 'dominated by': the settings "
        "on the frontier with at least its test accuracy and at most its TPR (point estimates)",
        f"{prov} · {n_boot} bootstrap resamples",
        {"test acc.": PCT, "AUC": NUM, "TPR @ 0.1 % FPR": "{:.2%}", "TPR @ 1 % FPR": "{:.2%}", "dominated by": "{}"},
        ("TPR @ 0.1 % FPR", "TPR @ 1 % FPR"),
    )
    # one sentence per defence: its settings on the frontier, and what dominates the others
    sentences = []
    for family in [f for f in FAMILIES if f in set(t["family"])]:
        sub = t[t["family"] == family]
        free = [r["setting"] for i, r in sub.iterrows() if not dom[i]]
        beaten = [f"{r['setting']} (by {r['dominated by']})" for i, r in sub.iterrows() if dom[i]]
        text = f"**{FAMILIES[family]}**: " + (
            f"on the frontier: {', '.join(free)}" if free else "no setting on the frontier"
        )
        sentences.append(text + (f"; dominated: {'; '.join(beaten)}." if beaten else "."))
    if waiting:
        sentences.append(f"Not computed yet, so not on this frontier: {', '.join(w['setting'] for w in waiting)}.")
    if "none" not in set(t["family"]):
        raise evidence.MissingRow("the full-precision target's LiRA rows are not stored", "its part is pending")
    fp_acc = float(t.loc[t["family"] == "none", "test acc."].iloc[0])
    useful = t[t["test acc."] >= USEFUL_SHARE * fp_acc]
    best = useful.loc[useful["tpr"].idxmin()]
    pg.keep("alpha", alpha)
    pg.keep("refs", pg.profile.lira_refs)
    pg.keep("best", f"{best['setting']} ({FAMILIES[best['family']]})")
    pg.keep("best_tpr", float(best["tpr"]))
    pg.keep("best_acc", float(best["test acc."]))
    pg.keep("fp_tpr", float(t.loc[t["family"] == "none", "tpr"].iloc[0]))
    pg.keep("fp_acc", fp_acc)
    pg.keep("useful_share", USEFUL_SHARE)
    a, d = pg.profile.sweep
    pg.keep("model", model_name(a, d))
    pg.keep("provenance", prov)
    floor = alpha / 10  # a TPR of 0 on a log axis: drawn at a tenth of the FPR
    fig, axes = plt.subplots(1, 2, figsize=(10.4, 4.6), gridspec_kw={"width_ratios": [1, 1.25]})
    keep = USEFUL_SHARE * fp_acc
    for ax, zoom in zip(axes, (False, True)):
        for (family, sub), marker in zip(t.groupby("family", sort=False), "*osv^D"):
            sub = sub[sub["test acc."] >= keep] if zoom else sub
            y = sub["tpr"].clip(lower=floor)
            ax.errorbar(
                sub["test acc."],
                y,
                yerr=[y - sub["tpr_lo"].clip(lower=floor), sub["tpr_hi"].clip(lower=floor) - y],
                fmt=marker,
                ms=11 if marker == "*" else 7,
                capsize=3,
                label=FAMILIES[family],
                alpha=0.85,
            )
            for _, r in sub.iterrows() if zoom else ():
                ax.annotate(
                    _short(r["setting"]),
                    (r["test acc."], max(r["tpr"], floor)),
                    textcoords="offset points",
                    xytext=(5, -3),
                    fontsize=7,
                )
        ax.axhline(alpha, color="k", ls="--", lw=0.8, label=f"chance (TPR = FPR = {alpha:.1%})")
        ax.set_yscale("log")
        ax.set_xlabel("target test accuracy (utility)")
    axes[0].set_ylabel(f"LiRA online TPR at {alpha:.1%} FPR\n(reference models with the same defence)")
    axes[0].set_title(f"Every setting, {model_name(a, d)}", fontsize=10)
    axes[1].set_title(f"Settings keeping ≥ {USEFUL_SHARE:.0%} of full precision's accuracy", fontsize=10)
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    _finish(pg, fig, "defences_frontier")
    from IPython.display import Markdown  # the book's extra (notebooks); the rest of qmia runs without it

    return st, Markdown("\n\n".join(sentences))
