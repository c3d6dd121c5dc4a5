"""What the pages share: the rows a page shows, pending tables and figures, decisions, glued tables."""

from __future__ import annotations

import pandas as pd

from .. import claims, evidence
from ..book import (
    INT,
    LABELS,
    STATUS,
    Page,
    labelled,
    mean_over_seeds,
    styled,
    with_status,
)
from ..plan import paper_configs, runs_reading
from ..results import provenance

BY = ["arch", "dataset", "quant", "method", "bits", "reading"]


def _plt():
    import matplotlib.pyplot as plt  # in a notebook, the inline backend renders the glued figures as PNG

    return plt


def _finish(pg: Page, fig, key: str) -> None:
    """Lay a figure out, close it and glue it under ``key`` (its provenance line is in its caption, once)."""
    fig.tight_layout()
    _plt().close(fig)
    pg.glue_object(key, fig)


def _shown_rows(pg: Page, models=None, bits=None, seeds=None) -> pd.DataFrame:
    """Tables 3-5: full precision and each shown reading at each bitwidth."""
    frames = []
    for r in pg.shown_readings():
        cfgs = paper_configs(pg.profile, models or pg.models, bits or pg.bits, seeds or pg.seeds, reading=r)
        frames.append(
            pg.run(
                cfgs
                if r == "literal"
                else [c for c in cfgs if c.quant.method == "mia" and runs_reading(c.arch, c.quant.bits, r)]
            )
        )
    return pd.concat(frames, ignore_index=True)


def _pending_figure(pg: Page, key: str, lines: list[str]) -> None:
    """A figure panel whose rows are not computed yet: it stays in place and says which parts compute it."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.2, 1.6))
    ax.axis("off")
    ax.text(
        0.01,
        0.5,
        "Not computed yet at this profile's scale:\n" + "\n".join(lines[:6]) + ("\n..." if len(lines) > 6 else ""),
        fontsize=8,
        va="center",
        ha="left",
        wrap=True,
    )
    _finish(pg, fig, key)


def _pending_lines(df: pd.DataFrame) -> list[str]:
    """The distinct reasons (parts and costs) of a frame's pending rows, most common first."""
    return list(df.loc[df["pending"] != "", "pending"].value_counts().index) if "pending" in df.columns else []


def _pending_page(
    pg: Page, df: pd.DataFrame, table_id: str, title: str, figures: tuple[str, ...], keys: tuple[str, ...]
):
    """What a page (or section) shows when none of its rows is stored: one table naming each part it waits for and
    its cost, placeholder figures, and 'pending' for every number its prose cites."""
    from IPython.display import Markdown  # the book's extra (notebooks); the rest of qmia runs without it

    lines = _pending_lines(df)
    for f in figures:
        _pending_figure(pg, f, lines)
    for k in keys:
        pg.keep(k, provenance(df) if k == "provenance" or k.endswith("_provenance") else None)
    pending = df[df["pending"] != ""]
    counts = pending.groupby("pending", sort=False).size().reset_index(name="rows")
    table = pd.DataFrame({"what": [title] * len(counts), "rows": counts["rows"], STATUS: counts["pending"]})
    st = styled(table, table_id, f"{title}: not computed yet", provenance(df), {"rows": INT})
    return st, Markdown(f"None of the {len(df)} rows of this section is stored yet: " + "; ".join(lines) + ".")


def _status(t: pd.DataFrame) -> list[str]:
    """['status'] when the table has pending rows (:func:`qmia.book.with_status`), else []: the columns to add."""
    return [STATUS] if STATUS in t.columns else []


def _decide(fn, *args, **kw):
    """``fn(*args, **kw)`` (a verdict), or the :class:`qmia.evidence.MissingRow` saying which part its rows wait for, or
    the :class:`qmia.evidence.MixedInstances` saying which rows come from two trainings of one key."""
    try:
        return fn(*args, **kw)
    except evidence.MixedInstances as e:
        return e
    except evidence.MissingRow as e:
        if not e.pending:
            raise
        return e


def _word(missing: evidence.MissingRow) -> str:
    """The verdict word of a verdict that could not be decided: pending, or not measurable (two trainings of a key)."""
    return claims.NOT_MEASURABLE if isinstance(missing, evidence.MixedInstances) else claims.PENDING


def _why(missing: evidence.MissingRow) -> str:
    return (
        f"rows of two trainings of one key: {missing}"
        if isinstance(missing, evidence.MixedInstances)
        else missing.pending
    )


def _table(
    pg: Page,
    df: pd.DataFrame,
    cols: list[str],
    table_id: str,
    title: str,
    fmt: dict,
    not_measurable: tuple[str, ...] = (),
):
    t = labelled(with_status(mean_over_seeds(df, BY), df, BY))
    show = t[["model", "bitwidth", "reading"] + cols + _status(t)].rename(columns=LABELS)
    return t, styled(show, table_id, title, provenance(df), fmt, tuple(LABELS.get(c, c) for c in not_measurable))


def _measure_name(key: str) -> str:
    return {
        "attack_acc": "attack accuracy (credited down to 50 %)",
        "tpr": "TPR at the full-precision attack's FPR",
        "f1_member": "member F1 at the full-precision attack's FPR",
    }[key]


def _slug(reading: str) -> str:
    return reading.replace("-", "_")
