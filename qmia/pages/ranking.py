"""Stronger attacks and the ranking of quantizers by membership-inference security."""

from __future__ import annotations

import pandas as pd

from ..book import (
    INT,
    NOT_MEASURABLE_TEXT,
    NUM,
    PCT,
    STATUS,
    Page,
    mean_over_seeds,
    model_name,
    styled,
    with_status,
)
from ..plan import (
    RANKING_ATTACKS,
    STRONGER_ATTACKS,
    SWEEP_CURVES,
    lira_configs,
    sweep_configs,
)
from ..ranking import attack_agreement, rank_quantizers
from ..results import load_outcome, provenance, stored_part
from ..uncertainty import lowest_measurable_fpr, point_value
from ..vocabulary import ATTACK_NAMES, CURVE_NAMES, FULL_PRECISION
from ._common import BY, _finish, _pending_lines, _pending_page, _plt


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
    return FULL_PRECISION if curve == "none" else f"{CURVE_NAMES.get(curve, curve)}, {int(bits)}-bit"


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
    keys = (
        "stronger_alpha",
        "stronger_refs",
        "strongest_attacks",
        *(f"{a}_{k}_{m}" for a in ("lira", "rmia") for k in ("online", "offline") for m in ("auc", "tpr")),
    )
    if not len(df):
        return _pending_page(pg, everything, "stronger-attacks", "The LiRA targets against every attack", (), keys)[0]
    t = with_status(mean_over_seeds(everything, BY + ["attack"]), everything, BY + ["attack"])
    t["quantizer"] = [quantizer_name(r) for _, r in t.iterrows()]
    t["model"] = [model_name(a, d) for a, d in zip(t["arch"], t["dataset"])]
    shown = t[t["attack"].isin(STRONGER_SHOWN)].copy()
    shown["order"] = shown["attack"].map(STRONGER_SHOWN.index)
    shown = shown.sort_values(["model", "quantizer", "order"], kind="stable")
    table = pd.DataFrame(
        {
            "model": shown["model"],
            "quantizer": shown["quantizer"],
            "attack": shown["attack"].map(attack_name),
            "AUC": shown["auc"],
            "TPR @ 0.1 % FPR (95 % CI)": [_ci(r, "tpr_at_0.1%fpr") for _, r in shown.iterrows()],
            "TPR @ 1 % FPR (95 % CI)": [_ci(r, "tpr_at_1%fpr") for _, r in shown.iterrows()],
        }
    )
    if STATUS in shown.columns:
        table[STATUS] = shown[STATUS].fillna("").to_numpy()
        table.loc[table[STATUS] != "", ["TPR @ 0.1 % FPR (95 % CI)", "TPR @ 1 % FPR (95 % CI)"]] = "–"
    # TPR at 0.1 % FPR, or at the lowest rate these non-members make measurable, over the seeds
    alpha = lowest_measurable_fpr(int(df["n_nonmembers"].min()))
    df = df.assign(
        quantizer=[quantizer_name(r) for _, r in df.iterrows()],
        model=[model_name(a, d) for a, d in zip(df["arch"], df["dataset"])],
    )
    low = pd.DataFrame(
        [
            {
                "model": m,
                "quantizer": q,
                "attack": a,
                "tpr": point_value([load_outcome(r) for _, r in g.iterrows()], f"tpr@{alpha}"),
            }
            for (m, q, a), g in df[df["attack"].isin(STRONGER_SHOWN)].groupby(
                ["model", "quantizer", "attack"], sort=False
            )
        ]
    )
    pg.keep("stronger_alpha", alpha)
    for kind in ("online", "offline"):
        for attack in ("lira", "rmia"):  # averaged over the same targets for both attacks, else pending
            both = set(low.loc[low["attack"] == f"lira-{kind}", "quantizer"]) == set(
                low.loc[low["attack"] == f"rmia-{kind}", "quantizer"]
            )
            mine = t[(t["attack"] == f"{attack}-{kind}") & (t[STATUS] == "" if STATUS in t.columns else True)]
            pg.keep(f"{attack}_{kind}_auc", float(mine["auc"].mean()) if both and len(mine) else None)
            pg.keep(
                f"{attack}_{kind}_tpr",
                float(low.loc[low["attack"] == f"{attack}-{kind}", "tpr"].mean()) if both and len(mine) else None,
            )
    pg.keep("stronger_refs", pg.profile.lira_refs)
    parts = []
    for (model, q), sub in low.groupby(["model", "quantizer"], sort=False):
        best = sub.loc[sub["tpr"].idxmax()]
        parts.append(f"{q} ({model}): {attack_name(best['attack'])}, TPR {best['tpr']:.2%} at {alpha:.1%} FPR")
    pg.keep("strongest_attacks", "; ".join(parts))
    return styled(
        table,
        "stronger-attacks",
        f"The LiRA targets against the paper's attack, LiRA and RMIA (the same "
        f"{pg.profile.lira_refs} full-precision reference models per target) and the label-only attacks",
        provenance(df),
        {"AUC": NUM},
    )


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
    acc = (
        df.assign(quantizer=[quantizer_name(r) for _, r in df.iterrows()])
        .groupby("quantizer")["target_test_acc"]
        .mean()
    )
    show = pd.DataFrame(
        {
            "rank": ranked["rank"],
            "quantizer": ranked["quantizer"],
            "MIS": ranked["mis"],
            "best advantage (95 % CI)": [
                f"{v:.3f} ({lo:.3f} – {hi:.3f})"
                for v, lo, hi in zip(ranked["value"], ranked["value_lo"], ranked["value_hi"])
            ],
            "strongest attack": ranked["strongest_attack"].map(attack_name),
            "rank holds": ranked["rank_share"],
            "ranked first": ranked["best_share"],
            "test acc.": ranked["quantizer"].map(acc),
        }
    )
    st = styled(
        show,
        table_id,
        title,
        f"{provenance(df)} · {n_boot} paired bootstrap resamples",
        {"MIS": NUM, "rank holds": PCT, "ranked first": PCT, "test acc.": PCT, "rank": INT},
    )
    return ranked.assign(test_acc=ranked["quantizer"].map(acc)), st


USEFUL_SHARE = 0.9  # a quantizer "keeps its utility" at >= this share of full precision's test accuracy


def _keep_first(pg: Page, ranked: pd.DataFrame, ranking: str) -> None:
    """Glue the most secure quantizer, and the most secure one that keeps its utility (a model that stopped
    learning leaks nothing and is useless, so the ranking alone would crown it)."""
    first = ranked.iloc[0]
    pg.keep(f"{ranking}_first", first["quantizer"])
    pg.keep(f"{ranking}_first_share", float(first["best_share"]))
    pg.keep(f"{ranking}_first_acc", float(first["test_acc"]))
    floor = USEFUL_SHARE * float(ranked.loc[ranked["quantizer"] == FULL_PRECISION, "test_acc"].iloc[0])
    useful = ranked[ranked["test_acc"] >= floor]
    best = useful.iloc[0]
    pg.keep(f"{ranking}_useful", best["quantizer"])
    pg.keep(f"{ranking}_useful_rank", int(best["rank"]))
    pg.keep(f"{ranking}_useful_mis", float(best["mis"]))
    pg.keep(f"{ranking}_useful_acc", float(best["test_acc"]))


def ranking_lira(pg: Page, n_boot: int = 1000):
    """The LiRA targets ranked by their strongest attack of all (LiRA, RMIA, label-only, the shadow attack)."""
    df = pg.run(lira_configs(pg.profile, seeds=pg.seeds), attacks=("shadow",) + STRONGER_ATTACKS)
    df, waiting = _complete_quantizers(df)
    pg.keep("useful_share", USEFUL_SHARE)
    if not len(df):
        return _pending_page(
            pg,
            waiting,
            "ranking-lira",
            "The LiRA targets ranked by membership-inference security",
            (),
            (
                "lira_first",
                "lira_first_acc",
                "lira_first_share",
                "lira_useful",
                "lira_useful_rank",
                "lira_useful_mis",
                "lira_useful_acc",
            ),
        )[0]
    ranked, st = _ranking_table(
        df,
        _outcomes(df),
        "ranking-lira",
        "The LiRA targets ranked by membership-inference security, "
        "every attack (MIS = 1 − the best advantage of the strongest attack)" + _waiting_note(waiting),
        n_boot,
    )
    _keep_first(pg, ranked, "lira")
    return st


def ranking_sweep(pg: Page, n_boot: int = 1000):
    """The sweep's quantizers ranked by MIS over the attacks that need only the full-precision shadow, the
    attacks' agreement (Kendall's W) and the figure of the best advantage against the bitwidth."""
    plt = _plt()
    a, d = pg.profile.sweep
    df = pg.run(sweep_configs(pg.profile, pg.bits, pg.seeds), attacks=("shadow",) + RANKING_ATTACKS)
    df, waiting = _complete_quantizers(df)
    if not len(df):
        keys = (
            "sweep_first",
            "sweep_first_acc",
            "sweep_first_share",
            "sweep_useful",
            "sweep_useful_rank",
            "sweep_useful_mis",
            "sweep_useful_acc",
            "sweep_last",
            "sweep_w",
            "sweep_n",
            "provenance",
        )
        pg.keep("sweep_model", model_name(a, d))
        st = _pending_page(
            pg,
            waiting,
            "ranking-sweep",
            "The sweep's quantizers ranked by membership-inference security",
            ("ranking_advantage",),
            keys,
        )[0]
        agree = _pending_page(
            pg, waiting, "ranking-agreement", "Each attack's own ranking of the sweep's quantizers", (), ()
        )[0]
        return st, agree
    outcomes = _outcomes(df)  # read once: the ranking and the attacks' agreement
    ranked, st = _ranking_table(
        df,
        outcomes,
        "ranking-sweep",
        f"The sweep's quantizers on {model_name(a, d)} ranked by "
        "membership-inference security over the paper's, the metric and the label-only attacks"
        + _waiting_note(waiting),
        n_boot,
    )
    ranks, w = attack_agreement(outcomes, "max_advantage")
    agree = ranks.rename(columns=attack_name).loc[ranked["quantizer"]].reset_index()
    agree = agree.rename(columns={agree.columns[0]: "quantizer"})
    st_agree = styled(
        agree,
        "ranking-agreement",
        f"Each attack's own ranking of the sweep's quantizers (1 = most secure); Kendall's W = {w:.2f}",
        provenance(df),
        {c: INT for c in agree.columns[1:]},
    )
    _keep_first(pg, ranked, "sweep")
    pg.keep("sweep_last", ranked.iloc[-1]["quantizer"])
    pg.keep("sweep_w", w)
    pg.keep("sweep_n", len(ranked))
    pg.keep("sweep_model", model_name(a, d))
    st_rows = mean_over_seeds(df, BY)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    by_name = ranked.set_index("quantizer")
    for curve, marker in zip(SWEEP_CURVES, "o^vs"):
        s = st_rows[[row_curve(r) == curve for _, r in st_rows.iterrows()]]
        s = s.sort_values("bits")
        names = [quantizer_name(r) for _, r in s.iterrows()]
        v = by_name.loc[names]
        ax.errorbar(
            s["bits"],
            v["value"],
            yerr=[v["value"] - v["value_lo"], v["value_hi"] - v["value"]],
            marker=marker,
            capsize=3,
            label=CURVE_NAMES[curve],
        )
    fp = by_name.loc[FULL_PRECISION]
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
    pg.keep("provenance", provenance(df))
    return st, st_agree
