"""Which quantizer did the paper run? The readings page."""

from __future__ import annotations

import pandas as pd

from .. import claims, reading_choice, statements
from ..book import (
    LABELS,
    NUM,
    PCT,
    READING_NAMES,
    STATUS,
    Page,
    labelled,
    model_name,
    styled,
)
from ..clipping import clipped_table, weight_stats
from ..plan import paper_configs, precision_configs, runs_reading
from ..results import load_outcome, provenance
from ..uncertainty import compare
from ..vocabulary import DOREFA, FULL_PRECISION, READING_INFO
from ._common import _status
from .clipping import _overall_shares


def readings_definitions(pg: Page):
    """Each reading's equations and what it clips, with the share it clips of the trained full-precision ResNet."""
    a, d = pg.profile.resnet
    cfg = pg.profile.config(a, d, seed=0)
    stats = weight_stats(cfg, pg.data_root)
    overall = _overall_shares(stats["sizes"], clipped_table(stats, list(READING_INFO), pg.bits))
    rows = []
    for name, info in READING_INFO.items():
        row = {
            "reading": READING_NAMES[name],
            "what it is": info.title,
            "equations": info.equations,
            "clips": info.clips,
        }
        for b, share in zip(pg.bits, overall[name]):
            row[f"clipped at {b} bits"] = float(share)
        rows.append(row)
    df = pd.DataFrame(rows)
    prov = provenance(pg.run([cfg]))
    st = styled(
        df,
        "readings-defs",
        f"The readings of Section 3.3, and the share of the weights of the trained full-precision "
        f"{model_name(a, d)} each one clips",
        prov,
        {c: PCT for c in df.columns if c.startswith("clipped")},
    )
    return st.set_table_styles([{"selector": "td", "props": "white-space: normal; text-align: left;"}], overwrite=False)


def readings_statements(pg: Page):
    """The statements x readings table (marks), the counts per reading, the numbers behind every cell, and the
    conclusion by the stated rule (glued)."""
    ev = pg.evidence()
    table = statements.readings_table(ev)
    counts = reading_choice.consistency_counts(table)
    choice = reading_choice.choose_reading(table)
    rows, details = [], []
    for s in statements.STATEMENTS:
        link = f'<a href="{s.page}.html">{s.where}</a>'
        row = {"statement": f"“{s.quote}” — {link}", "kind": s.kind, "rule": s.rule}
        for r in table.columns:
            cell = table.loc[s.key, r]
            row[READING_NAMES[r]] = cell.mark
            details.append(
                {
                    "statement": s.key,
                    "reading": READING_NAMES[r],
                    "": cell.mark,
                    "the numbers behind it": cell.detail,
                    "page": link,
                }
            )
        rows.append(row)
    prov = provenance(ev.rows)
    left = [{"selector": "td", "props": "white-space: normal; text-align: left; vertical-align: top;"}]
    st = styled(
        pd.DataFrame(rows),
        "readings-statements",
        "The paper's statements (the abstract, the Introduction, Sections "
        "3.3 and 4.2) under each reading of its quantizer: ✓ agrees, ✗ disagrees (each beyond noise: the 95 % "
        "interval of the comparison), – not measurable (within noise, a utility collapse, an attack at chance, or "
        "not in this profile; the numbers table says which), … pending (its rows not computed yet) (the paper's "
        "own quantities; seed 0 unless stated)",
        prov,
    ).set_table_styles(left, overwrite=False)
    st_details = styled(
        pd.DataFrame(details), "readings-details", "The numbers behind every cell", prov
    ).set_table_styles(left, overwrite=False)
    n = len(statements.STATEMENTS)
    pg.keep(
        "best",
        str(choice) if choice.decided else f"undecided between {', '.join(READING_NAMES[r] for r in choice.readings)}",
    )
    pg.keep("best_agrees", int(counts.loc[choice.shown, claims.AGREES]))
    pg.keep("best_disagrees", int(counts.loc[choice.shown, claims.DISAGREES]))
    pg.keep("shown", READING_NAMES[choice.shown])
    pg.keep("n_statements", n)
    pg.keep("literal_agrees", int(counts.loc["literal", claims.AGREES]) if "literal" in counts.index else 0)
    pg.keep("provenance", prov)
    noise = ev.training_noise(pg.profile.resnet[0])
    pg.keep(
        "training_noise",
        f"here a {noise}"
        if noise is not None
        else "not measured in these rows (no configuration trained twice), so they hold only the test examples' noise",
    )
    attack_noise = ev.training_noise(pg.profile.resnet[0], "attack_acc")
    pg.keep(
        "attack_training_noise",
        f"for attack accuracy a {attack_noise}"
        if attack_noise is not None
        else "not measured in these rows (no configuration trained twice), so they hold only the examples' noise",
    )
    counts_df = counts.reset_index().rename(columns={"index": "reading"})
    counts_df["range of the net"] = [f"{choice.bounds[r][0]} to {choice.bounds[r][1]}" for r in counts.index]
    counts_df["reading"] = counts_df["reading"].map(READING_NAMES)
    counts_st = styled(
        counts_df,
        "readings-counts",
        f"Statements per reading (of {n}); the rule: only decided statements "
        "count (net = agrees - disagrees); each within-noise statement could go either way, so a reading's "
        "net lies in its range; a reading is chosen when its range lies wholly above every other's",
        prov,
    )
    return st, counts_st, st_details


def readings_fit(pg: Page):
    """Every target of the readings plan: train and test accuracy, the gap, and the shadow attack's AUC
    with its interval."""
    ev = pg.evidence()
    cfgs = [
        c
        for r in pg.profile.readings
        for c in paper_configs(pg.profile, seeds=(0,), reading=r)
        if c.quant.method == "none" or runs_reading(c.arch, c.quant.bits, r)
    ]
    df = ev.frame(list(dict.fromkeys(cfgs)))
    t = labelled(
        df.reindex(
            columns=list(df.columns)
            + [c for c in ("target_train_acc", "target_test_acc", "auc", "auc_lo", "auc_hi") if c not in df.columns]
        )
    )
    t["gap"] = t["target_train_acc"] - t["target_test_acc"]
    t["AUC (95 % CI)"] = [
        f"{a:.3f} ({lo:.3f} – {hi:.3f})" if pd.notna(a) else "–"
        for a, lo, hi in zip(t["auc"], t["auc_lo"], t["auc_hi"])
    ]
    if (t["pending"] != "").any():
        t[STATUS] = t["pending"]
    show = t[
        ["model", "bitwidth", "reading", "target_train_acc", "target_test_acc", "gap", "AUC (95 % CI)"] + _status(t)
    ].rename(columns=LABELS)
    for _, r in t[(t["method"] == "none") & (t["pending"] == "")].iterrows():
        pg.keep(f"fp_{r['arch']}_train", r["target_train_acc"])
        pg.keep(f"fp_{r['arch']}_test", r["target_test_acc"])
        pg.keep(f"fp_{r['arch']}_auc", r["auc"])
    return styled(
        show,
        "readings-fit",
        "Every target behind the statements: how well it fits its training data and how much "
        "the shadow attack finds (seed 0)",
        provenance(df),
        {LABELS["target_train_acc"]: PCT, LABELS["target_test_acc"]: PCT, "gap": PCT},
    )


def readings_precision(pg: Page, n_boot: int = 1000):
    """The precision ablation: the profile's ResNet at full precision and at its highest bitwidth, in the profile's
    precision and in the other (:func:`qmia.plan.precision_configs`): accuracy and the shadow attack, and the AUC's
    change with its paired bootstrap interval over examples (same splits and seed)."""
    others = precision_configs(pg.profile)
    mine = [c.with_(precision=pg.profile.precision) for c in others]
    df = pg.run(mine + others)
    rows = []
    for a, b in zip(mine, others):
        ra, rb = df[df["target_key"] == a.key].iloc[0], df[df["target_key"] == b.key].iloc[0]
        row = {
            "model": model_name(a.arch, a.dataset),
            "bitwidth": FULL_PRECISION if a.quant.method == "none" else f"{a.quant.bits}-bit",
            "reading": READING_NAMES.get(a.quant.curve, "–"),
            f"test acc. ({a.precision})": ra.get("target_test_acc"),
            f"test acc. ({b.precision})": rb.get("target_test_acc"),
            f"attack acc. ({a.precision})": ra.get("attack_acc"),
            f"attack acc. ({b.precision})": rb.get("attack_acc"),
            f"AUC ({a.precision})": ra.get("auc"),
            f"AUC ({b.precision})": rb.get("auc"),
        }
        if ra["pending"] or rb["pending"]:
            row[STATUS] = ra["pending"] or rb["pending"]
        else:
            cmp = compare([load_outcome(ra)], [load_outcome(rb)], "auc", n_boot=n_boot)
            row[f"AUC change, {a.precision} → {b.precision} (95 % CI)"] = (
                f"{-cmp.reduction:+.3f} ({-cmp.reduction_hi:+.3f} to {-cmp.reduction_lo:+.3f})"
            )
        rows.append(row)
    show = pd.DataFrame(rows)
    if STATUS in show.columns:
        show = show[[c for c in show.columns if c != STATUS] + [STATUS]].fillna({STATUS: ""})
    fmt = {c: (PCT if "acc." in c else NUM) for c in show.columns if "acc." in c or c.startswith("AUC (")}
    return styled(
        show,
        "readings-precision",
        f"The compute precision as a reading: {model_name(*pg.profile.resnet)} "
        f"at full precision and {max(pg.profile.bits)} bits in the profile's precision ({pg.profile.precision}) "
        f"and in the other, shadow attack (seed 0; {n_boot} paired bootstrap resamples of the examples)",
        provenance(df),
        fmt,
    )


def readings_recipes(pg: Page):
    ev = pg.evidence()
    table = reading_choice.recipe_table(ev)
    pick = reading_choice.pick_recipe(table)
    pg.keep("recipe_pick", pick)
    pg.keep("recipe_profile", pg.profile.recipe)
    return styled(
        table,
        "readings-recipes",
        "The training recipe as a reading: the abstract's three statements under each "
        f"recipe (best reading; {model_name(*pg.profile.resnet)}, seed 0). The rule picks *{pick}*.",
        provenance(ev.rows),
        {"fp train acc": PCT, "fp test acc": PCT, "fp attack AUC": NUM, "AUC lo": NUM, "AUC hi": NUM},
    )


VARIATION_METRICS = ("target_test_acc", "attack_acc", "auc", "precision_member", "recall_member", "f1_member")


def readings_training_variation(pg: Page):
    """Where the training SDs that widen the statements' comparisons of single trainings come from: each
    configuration of the profile's ResNet trained two or more times, its seed-to-seed SD of test accuracy and of the
    shadow attack's metrics, and the pooled SD over those that keep utility (:mod:`qmia.training_noise`)."""
    from .. import training_noise

    ev = pg.evidence()
    arch = pg.profile.resnet[0]
    df = training_noise.by_config(ev.rows, arch, VARIATION_METRICS)
    if df.empty:
        return "No configuration of this profile's models was trained twice: the comparisons hold only examples' noise."
    df["bits"] = ["–" if b in ("none", "nan") else str(int(float(b))) for b in df["bits"]]
    df["method"] = df["method"].replace({"none": FULL_PRECISION, "mia": "the paper's quantizer", "dorefa": DOREFA})
    df = df.rename(columns={"bits": "bitwidth"}).replace({"reading": {"none": "–"}})
    show_cols = [c for c in ("method", "reading", "bitwidth", "layers") if c in df.columns]
    df = df[[*show_cols, "trainings", "pooled", *[m for m in VARIATION_METRICS if m in df.columns]]].copy()
    pooled = {"method": "pooled (utility kept)", "trainings": int(df.loc[df["pooled"], "trainings"].sum())}
    for m in VARIATION_METRICS:
        noise = ev.training_noise(arch, m)
        if m in df.columns and noise is not None and not noise.borrowed:
            pooled[m] = noise.sd
    df = pd.concat([df, pd.DataFrame([pooled])], ignore_index=True)
    df["pooled"] = df["pooled"].map({True: "yes", False: "no (collapsed)"}).fillna("")
    for m in VARIATION_METRICS:
        if m in df.columns:
            df[m] = 100 * df[m]
    df = df.rename(columns={m: f"SD of {LABELS.get(m, m.replace('_', ' '))} (points)" for m in VARIATION_METRICS})
    sd_cols = [c for c in df.columns if c.startswith("SD of")]
    df[[c for c in df.columns if c not in sd_cols]] = df[[c for c in df.columns if c not in sd_cols]].fillna("")
    return styled(
        df,
        "readings-training-variation",
        f"How much one training of {model_name(*pg.profile.resnet)} decides: the seed-to-seed SD of each "
        "configuration trained two or more times (test accuracy; the shadow attack's metrics), and the pooled SD "
        "that widens every comparison of two single trainings",
        provenance(ev.rows),
        {c: "{:.2f}" for c in df.columns if c.startswith("SD of")},
    )
