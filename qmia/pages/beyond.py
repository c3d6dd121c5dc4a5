"""Beyond the paper: the adaptive attacker, LiRA, the bitwidth sweep."""

from __future__ import annotations

import pandas as pd

from ..book import NUM, PCT, Page, labelled, mean_over_seeds, model_name, styled
from ..plan import SWEEP_CURVES, lira_configs, paper_configs, sweep_configs
from ..results import provenance
from ..vocabulary import FULL_PRECISION
from ._common import BY, _finish, _plt
from .ranking import CURVE_NAMES, _ci, row_curve


def beyond_adaptive(pg: Page):
    df = pg.run(paper_configs(pg.profile, pg.models, pg.bits, pg.seeds), attacks=("shadow", "adaptive", "metric"))
    t = labelled(mean_over_seeds(df, BY + ["attack"]))
    adaptive = t[t["attack"].isin(["shadow", "adaptive"])].pivot_table(
        index=["model", "bitwidth"], columns="attack", values=["attack_acc", "auc"], sort=False
    )
    adaptive.columns = [f"{'attack acc.' if m == 'attack_acc' else 'AUC'}, {a}" for m, a in adaptive.columns]
    adaptive = adaptive.reset_index()
    q = t[t["method"] == "mia"].pivot_table(index=["arch", "dataset", "bits"], columns="attack", values="auc")
    pg.keep("adaptive_gain", float((q["adaptive"] - q["shadow"]).mean()))
    metric = t[t["attack"].str.startswith("metric-")]
    pg.keep("best_metric", metric.groupby("attack")["auc"].mean().idxmax().removeprefix("metric-"))
    st1 = styled(
        adaptive,
        "beyond-adaptive",
        "The paper's attacker (shadow in full precision) vs the adaptive attacker "
        "(shadow quantized like the target), literal reading",
        provenance(df),
        {c: (PCT if c.startswith("attack acc") else NUM) for c in adaptive.columns[2:]},
    )
    m = metric.pivot_table(index=["model", "bitwidth"], columns="attack", values="auc", sort=False)
    m.columns = [f"AUC, {c.removeprefix('metric-')}" for c in m.columns]
    m = m.reset_index()
    st2 = styled(
        m,
        "beyond-metric",
        "Metric attacks (thresholds chosen on the shadow model's outputs): AUC",
        provenance(df),
        {c: NUM for c in m.columns[2:]},
    )
    return st1, st2


def beyond_lira(pg: Page):
    df = pg.run(lira_configs(pg.profile, seeds=pg.seeds), attacks=("lira",))
    lt = labelled(mean_over_seeds(df, BY + ["attack"]))

    show = pd.DataFrame(
        {
            "model": lt["model"],
            "bitwidth": lt["bitwidth"],
            "reading": lt["reading"],
            "attack": [a.removesuffix("-adaptive").removesuffix("-reference") for a in lt["attack"]],
            "reference models": [
                "quantized like the target" if a.endswith("-adaptive") else FULL_PRECISION for a in lt["attack"]
            ],
            "scoring": ["reference code" if a.endswith("-reference") else "qmia" for a in lt["attack"]],
            "AUC": lt["auc"],
            "TPR @ 0.1 % FPR (95 % CI)": [_ci(r, "tpr_at_0.1%fpr") for _, r in lt.iterrows()],
            "TPR @ 1 % FPR (95 % CI)": [_ci(r, "tpr_at_1%fpr") for _, r in lt.iterrows()],
        }
    )
    pg.keep("lira_refs", pg.profile.lira_refs)
    ours = lt[lt["attack"].isin(["lira-online", "lira-offline"])]["auc"].mean()
    ref = lt[lt["attack"].isin(["lira-online-reference", "lira-offline-reference"])]["auc"].mean()
    pg.keep("lira_ours_auc", ours)
    pg.keep("lira_ref_auc", ref)
    pg.keep("lira_stronger", "qmia's" if ours >= ref else "the reference code's")
    return styled(
        show,
        "beyond-lira",
        f"LiRA, online and offline, with {pg.profile.lira_refs} reference models per target "
        "(full precision, or quantized like the target: the adaptive attacker); qmia's scoring and the reference "
        "code's",
        provenance(df),
        {"AUC": NUM},
    )


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
            ax.annotate(
                f"{int(r['bits'])}b",
                (r["auc"], r["target_test_acc"]),
                textcoords="offset points",
                xytext=(4, 3),
                fontsize=7,
            )
    f = st[st["method"] == "none"].iloc[0]
    ax.plot([f["auc"]], [f["target_test_acc"]], "k*", ms=12, label=FULL_PRECISION)
    ax.axvline(0.5, color="k", ls="--", lw=0.8)
    ax.set_xlabel("attack AUC (shadow attack; 0.5 = chance)")
    ax.set_ylabel("target test accuracy")
    ax.set_title(f"Privacy–utility, {model_name(a, d)}", fontsize=10)
    ax.legend(fontsize=8)
    _finish(pg, fig, "beyond_privacy_utility")
    pg.keep("pu_provenance", prov)
    pg.keep("pu_model", model_name(a, d))
