"""The reproduction report and the answer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import claims, evidence, reading_choice, statements
from ..book import PCT, READING_NAMES, STATUS, Page, model_name, styled
from ..claims import ABSTRACT_CLAIMS
from ..estimates import part_cost
from ..experiment import row_keys
from ..part_status import missing_parts
from ..parts import assign
from ..plan import reading_bits, reading_spec
from ..quantizers import QuantSpec
from ..results import load_row, provenance
from ..uncertainty import estimate, lowest_measurable_fpr
from ..vocabulary import FULL_PRECISION
from ._common import _decide, _finish, _plt, _slug, _why, _word


def report_status(pg: Page):
    """The report's first lines: what this build holds at its profile's scale and what is pending, counted: parts and
    rows stored, the parts not computed yet with their costs, and the readings x statements table decided / pending."""
    from IPython.display import Markdown  # the book's extra (notebooks); the rest of qmia runs without it

    p = pg.profile
    table = statements.readings_table(pg.evidence())
    counts = reading_choice.consistency_counts(table)
    n_cells = table.size
    pending_cells = int(counts[claims.PENDING].sum())
    decided = int(counts[claims.AGREES].sum() + counts[claims.DISAGREES].sum())
    pg.keep("cells_decided", decided)
    pg.keep("cells_pending", pending_cells)
    cells_line = (
        f"The readings x statements table has {n_cells} cells ({len(table)} statements x {table.shape[1]} "
        f"readings): {decided} decided, {pending_cells} pending, "
        f"{int(counts[claims.UNMEASURABLE].sum())} not measurable in this profile."
    )
    if not pg.stored_only:
        return Markdown(f"Profile **{p.name}**: every result was computed for this build. {cells_line}")
    holding = {n: es for n, es in assign(p).items() if es}
    missing = [n for n in missing_parts(p) if n in holding]
    done = [n for n in holding if n not in missing]
    rows_total = sum(len(row_keys(c, g, p)) for es in holding.values() for c, g in es)
    rows_stored = sum(
        load_row(k) is not None for es in holding.values() for c, g in es for k in row_keys(c, g, p).values()
    )
    text = (
        f"**At the paper's scale** (`results/{p.name}/`, nothing trained for this build): {len(done)} of "
        f"{len(holding)} parts stored, {rows_stored} of {rows_total} result rows: {', '.join(f'`{n}`' for n in done)}."
        f"\n\n**Pending** ({len(missing)} parts, each named where its numbers would stand): "
        + "; ".join(f"`{n}` ({part_cost(p, n)})" for n in missing)
        + f".\n\n{cells_line}"
    )
    return Markdown(text)


def report_verdicts(pg: Page):
    """Every claim's verdict under the literal reading and the most consistent one(s): the book's answer."""
    ev = pg.evidence()
    shown = pg.shown_readings()
    rows = []

    def word_and_reason(decided) -> tuple[str, str]:
        if isinstance(decided, evidence.MissingRow):
            return _word(decided), _why(decided)
        v = decided[0] if isinstance(decided, tuple) else decided.verdict
        return v.word, v.reason

    for r in shown:
        decisions = [
            (f"{claim.quote} (abstract)", _decide(claims.abstract_verdict, ev, key, r))
            for key, claim in ABSTRACT_CLAIMS.items()
        ]
        decisions += [
            ("the quantized model's ROC is at chance (Figure 5)", _decide(claims.chance_verdict, ev, r)),
            ("the proposed quantizer defends better than DoReFa-Net (Table 6)", _decide(claims.dorefa_verdict, ev, r)),
            ("quantizing the last 5 layers lowers the attack (Figure 6)", _decide(claims.partial_verdict, ev, r)),
        ]
        for claim_text, decided in decisions:
            word, reason = word_and_reason(decided)
            rows.append({"claim": claim_text, "reading": READING_NAMES[r], "verdict": word, "why": reason})
    df = pd.DataFrame(rows)
    for r in shown:
        sub = df[df["reading"] == READING_NAMES[r]]
        pg.keep(f"{_slug(r)}_reproduced", int((sub["verdict"] == claims.REPRODUCED).sum()))
        for i, word in enumerate(sub["verdict"]):
            pg.keep(f"{_slug(r)}_{i}", word)
    pg.keep("n_claims", int(len(df) / len(shown)))
    pg.keep("best", ", ".join(shown[1:]) or "literal")
    prov = provenance(ev.rows)
    pg.keep("provenance", prov)
    compact = (
        df[["claim", "reading", "verdict"]]
        .pivot_table(index="claim", columns="reading", values="verdict", aggfunc="first", sort=False)
        .reset_index()
    )
    st_compact = styled(
        compact,
        "answer-verdicts",
        "The answer: each claim's verdict under the literal reading of the "
        "quantizer and the reading most consistent with the paper",
        prov,
    ).set_table_styles(
        [{"selector": "td, th", "props": "white-space: normal; text-align: left; vertical-align: top;"}],
        overwrite=False,
    )
    pg.glue_object("answer_table", st_compact)
    st_full = styled(df, "report-verdicts", "Every verdict with its reason (rules in the method chapter)", prov)
    st_full = st_full.set_table_styles(
        [{"selector": "td", "props": "white-space: normal; text-align: left;"}], overwrite=False
    )
    return st_compact, st_full


def answer_figure(pg: Page):
    """TPR at the lowest measurable FPR against test accuracy: full precision and each reading at the lowest bitwidth,
    and DoReFa-Net, over the claim seeds (seed 0 for DoReFa-Net)."""
    plt = _plt()
    ev = pg.evidence()
    p = pg.profile
    b = min(p.bits)
    groups = {FULL_PRECISION: [ev.config(*p.resnet, seed=s) for s in p.claim_seeds]}
    for r in p.readings:
        groups[READING_NAMES[r]] = [ev.config(*p.resnet, reading_spec(r, b), seed=s) for s in p.claim_seeds]
    groups[f"DoReFa-Net ({b}-bit)"] = [ev.config(*p.resnet, QuantSpec("dorefa", b))]
    n_non = int(ev.row(groups[FULL_PRECISION][0])["n_nonmembers"])
    alpha = lowest_measurable_fpr(n_non)
    fig, ax = plt.subplots(figsize=(8.4, 4.6))
    waiting = []
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
        ax.errorbar(
            np.mean(acc),
            tpr.value,
            yerr=[[tpr.value - tpr.lo], [tpr.hi - tpr.value]],
            xerr=np.std(acc) if len(acc) > 1 else None,
            fmt=marker,
            ms=10 if marker == "*" else 7,
            capsize=3,
            label=name if name == FULL_PRECISION or name.startswith("DoReFa") else f"{name}, {b}-bit",
        )
    ax.axhline(alpha, color="k", ls="--", lw=0.8, label=f"chance (TPR = FPR = {alpha:.1%})")
    ax.set_xlabel("target test accuracy (utility)")
    ax.set_ylabel(f"shadow attack TPR at {alpha:.1%} FPR")
    ax.set_yscale("log")
    ax.set_title(f"Leakage against utility, {model_name(*p.resnet)}", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    if waiting:
        ax.text(
            1.02,
            0.0,
            "Not computed yet:\n" + "\n".join(waiting),
            transform=ax.transAxes,
            fontsize=6.5,
            va="bottom",
            ha="left",
            color="0.3",
        )
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
                for claim in ABSTRACT_CLAIMS.values():
                    c = ev.compare(fp, q, claim.metric, chance=claims.CHANCE.get(claim.metric))
                    mid, lo, hi = c.relative_interval
                    row[f"{claim.metric.replace('_', ' ')} lower (claimed {claim.value:.0f} %)"] = (
                        f"{mid:.1f} % ({lo:.1f} to {hi:.1f})"
                    )
                    within.append(lo <= claim.value <= hi)
                useful = lost <= claims.MAX_UTILITY_DROP
                measured += 1
                hits += useful and all(within)
                row["keeps utility and holds every claim"] = (
                    "yes"
                    if useful and all(within)
                    else "no: utility lost"
                    if not useful
                    else f"no: {sum(within)} of {len(within)} claims in the interval"
                )
            except evidence.MixedInstances as e:
                row[STATUS] = f"not measurable: rows of two trainings of one key ({e})"
            except evidence.MissingRow as e:
                if not e.pending:
                    raise
                row[STATUS] = e.pending
            rows.append(row)
    show = pd.DataFrame(rows)
    if STATUS in show.columns:
        show = show[[c for c in show.columns if c != STATUS] + [STATUS]].fillna({STATUS: ""})
    pg.keep("needs_hits", hits)
    pg.keep("needs_measured", measured)
    return styled(
        show,
        "report-needs",
        f"What the abstract's numbers would need: {model_name(*p.resnet)}, full precision "
        "against each reading and bitwidth (seed 0; the paper's quantities, paired bootstrap over the examples): "
        "the relative reduction with its 95 % interval, and whether a setting that keeps its utility "
        f"(at most {100 * claims.MAX_UTILITY_DROP:.0f} points lost) holds all three claims",
        provenance(ev.rows),
        {"test acc. lost": PCT},
    )
