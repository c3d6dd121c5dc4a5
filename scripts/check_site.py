"""Check that a built qmia book holds every table and figure it should.

    python scripts/check_site.py [book/_build/html]

Each result page must hold its tables (pandas Styler tables with the HTML id ``T_<id>``, set by
``qmia.book.styled``) and its figures (``<figure id="<id>">`` holding an image that exists on
disk, made by ``{glue:figure}`` with ``:name: <id>``); every table caption and figure caption must
state its provenance (profile, seeds, data, commit). The prose pages must exist, the report must
hold a computed verdict for each claim, the landing page must open with the answer (the verdict
table and the figure), and every page the report combines must have been executed with the same
profile and with the notebooks' own parameters. Exits 1 naming everything missing, 0 when complete.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bs4 import BeautifulSoup

# page (relative to the site root) -> (tables, figures) it must hold, by id
EXPECTED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "book/generated/readings.html": (
        (
            "readings-defs",
            "readings-statements",
            "readings-counts",
            "readings-details",
            "readings-training-variation",
            "readings-fit",
            "readings-recipes",
            "readings-precision",
        ),
        (),
    ),
    "book/generated/table3_accuracy.html": (("table3", "t3-claim"), ()),
    "book/generated/table4_prf.html": (("table4", "t4-claim"), ()),
    "book/generated/table5_confusion.html": (("table5", "t5-claim"), ()),
    "book/generated/fig5_roc.html": (("fig5-auc", "fig5-verdict"), ("fig5-roc-linear", "fig5-roc-log")),
    "book/generated/table6_dorefa.html": (("table6", "table6-summary"), ()),
    "book/generated/fig6_partial.html": (("fig6-table", "fig6-verdict"), ("fig6-partial",)),
    "book/generated/quantizer_clipping.html": (("clip-summary", "clip-rerun"), ("clip-heatmap",)),
    "book/generated/beyond_paper.html": (
        ("beyond-adaptive", "beyond-metric", "beyond-lira"),
        ("beyond-privacy-utility",),
    ),
    "book/generated/defences.html": (("defences-table",), ("defences-frontier",)),
    "book/generated/ranking.html": (
        ("stronger-attacks", "ranking-lira", "ranking-sweep", "ranking-agreement"),
        ("ranking-advantage",),
    ),
    "book/generated/exposure.html": (
        ("exposure-whitebox", "exposure-whitebox-verdicts", "exposure-extraction", "exposure-extraction-verdicts"),
        ("exposure-fidelity",),
    ),
    "book/generated/report.html": (("answer-verdicts", "report-verdicts", "report-needs"), ("answer-figure",)),
}
PROSE = ("book/intro.html", "book/method.html", "book/reproduce.html")
REPORT = "book/generated/report.html"
LANDING = "book/intro.html"
# the pages whose glued values the report pastes: they must agree with it on the parameters
COMBINED = (
    "book/generated/quantizer_clipping.html",
    "book/generated/beyond_paper.html",
    "book/generated/defences.html",
    "book/generated/ranking.html",
)
REPORT_VERDICTS = 6  # attack accuracy, TPR, member F1, ROC at chance, DoReFa-Net, partial quantization
VERDICT = re.compile(
    r"^(reproduced|partly reproduced|reproduced only with a utility loss|not reproduced|not measurable|"
    r"pending)$"
)
# A table or figure whose rows are not computed yet (the paper book built from what is stored) says so instead of
# naming seeds, data and commit.
PENDING_CAPTION = ("no row stored yet", "not computed yet")
PENDING_CELL = "not computed yet"
PROVENANCE = ("profile", "seeds", "data", "commit")
RERUN = "Rerun with other parameters"
PROFILE = re.compile(r"Profile\s+(\w+)\s*:")


def _has_provenance(text: str) -> bool:
    return all(word in text for word in PROVENANCE) or ("profile" in text and any(p in text for p in PENDING_CAPTION))


def pending_cells(root: Path) -> int:
    """How many table cells of the site say what is not computed yet (and which part computes it)."""
    count = 0
    for page in EXPECTED:
        path = root / page
        if path.is_file():
            soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
            count += sum(PENDING_CELL in td.get_text() for td in soup.find_all("td"))
    return count


def check_page(path: Path, tables: tuple[str, ...], figures: tuple[str, ...]) -> list[str]:
    """Problems with one result page (empty when it holds everything)."""
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    problems = []
    for tid in tables:
        table = soup.find("table", id=f"T_{tid}")
        if table is None:
            problems.append(f"table '{tid}' is missing")
            continue
        if not table.find("td"):
            problems.append(f"table '{tid}' has no rows")
        caption = table.find("caption")
        if caption is None or not _has_provenance(caption.get_text(" ")):
            problems.append(f"table '{tid}' has no provenance caption (profile, seeds, data, commit)")
    for fid in figures:
        figure = soup.find("figure", id=fid)
        if figure is None:
            problems.append(f"figure '{fid}' is missing")
            continue
        img = figure.find("img")
        if img is None or not img.get("src"):
            problems.append(f"figure '{fid}' has no image")
        elif not img["src"].startswith("data:") and not (path.parent / img["src"]).is_file():
            problems.append(f"figure '{fid}': image {img['src']} is not on disk")
        caption = figure.find("figcaption")
        if caption is None or not _has_provenance(caption.get_text(" ")):
            problems.append(f"figure '{fid}' has no provenance caption (profile, seeds, data, commit)")
    return problems


def _verdict_cells(soup: BeautifulSoup, table_id: str) -> list[str]:
    table = soup.find("table", id=f"T_{table_id}")
    return (
        []
        if table is None
        else [td.get_text(strip=True) for td in table.find_all("td") if VERDICT.match(td.get_text(strip=True))]
    )


def check_report(path: Path) -> list[str]:
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    verdicts = _verdict_cells(soup, "answer-verdicts")
    if len(verdicts) < REPORT_VERDICTS:
        return [f"holds {len(verdicts)} computed verdicts, expected at least {REPORT_VERDICTS}"]
    return []


def check_landing(path: Path) -> list[str]:
    """The landing page opens with the answer: the verdict table and the figure, pasted from the report."""
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    problems = []
    if len(_verdict_cells(soup, "answer-verdicts")) < REPORT_VERDICTS:
        problems.append("does not open with the verdict table (answer-verdicts)")
    if not any(img.get("src") for img in soup.find_all("img")):
        problems.append("has no answer figure")
    return problems


def page_parameters(path: Path) -> tuple[str | None, bool]:
    """(profile named in the page's header, whether the page says it was rerun with other parameters)."""
    text = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser").get_text(" ")
    m = PROFILE.search(text)
    return (m.group(1) if m else None), RERUN in text


def check_parameters(root: Path) -> list[str]:
    """Every result page names one profile, the report's; the pages the report pastes from were not rerun."""
    report = root / REPORT
    if not report.is_file():
        return []
    profile, _ = page_parameters(report)
    problems = []
    for page in EXPECTED:
        path = root / page
        if not path.is_file():
            continue
        other, rerun = page_parameters(path)
        if other != profile:
            problems.append(
                f"{page}: executed with profile {other!r}, the report with {profile!r}: rebuild with `make book`"
            )
        if rerun and page in COMBINED:
            problems.append(
                f"{page}: rerun with other parameters, but the report pastes its numbers: rerun it with the "
                "notebook's defaults (`make notebook NB=...` without BITS/SEEDS) or rebuild with `make book`"
            )
    return problems


def check_site(root: Path) -> list[str]:
    """Every problem of the site at ``root``, as 'page: problem' lines."""
    root = Path(root)
    if not (root / "index.html").is_file():
        return [f"{root}: no index.html (is this a built site? run `make book`)"]
    problems = []
    for page in PROSE:
        if not (root / page).is_file():
            problems.append(f"{page}: page is missing")
    for page, (tables, figures) in EXPECTED.items():
        path = root / page
        if not path.is_file():
            problems.append(
                f"{page}: page is missing (tables {', '.join(tables) or '-'}; figures {', '.join(figures) or '-'})"
            )
            continue
        problems += [f"{page}: {p}" for p in check_page(path, tables, figures)]
    if (root / REPORT).is_file():
        problems += [f"{REPORT}: {p}" for p in check_report(root / REPORT)]
    if (root / LANDING).is_file():
        problems += [f"{LANDING}: {p}" for p in check_landing(root / LANDING)]
    return problems + check_parameters(root)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "book" / "_build" / "html"
    problems = check_site(root)
    if problems:
        print(f"check_site: {root} is missing {len(problems)} item(s):", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    n_tables = sum(len(t) for t, _ in EXPECTED.values())
    n_figures = sum(len(f) for _, f in EXPECTED.values())
    waiting = pending_cells(root)
    print(
        f"check_site: {root}: all {n_tables} tables, {n_figures} figures and {len(PROSE)} prose pages present"
        + (f"; {waiting} cells name rows not computed yet" if waiting else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
