"""Check that a built qmia book holds every table and figure it should.

    python scripts/check_site.py [book/_build/html]

Each result page must hold its tables (pandas Styler tables with the HTML id ``T_<id>``, set by
``qmia.paper.styled``) and its figures (``<figure id="<id>">`` holding an image that exists on
disk, made by ``{glue:figure}`` with ``:name: <id>``); every table caption and figure caption must
state its provenance (profile, seeds, data, commit). The prose pages must exist, and the report
must hold a computed verdict for each claim. Exits 1 naming everything missing, 0 when complete.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bs4 import BeautifulSoup

# page (relative to the site root) -> (tables, figures) it must hold, by id
EXPECTED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "book/generated/table3_accuracy.html": (("table3", "t3-claim"), ()),
    "book/generated/table4_prf.html": (("table4", "t4-claim"), ()),
    "book/generated/table5_confusion.html": (("table5", "t5-claim"), ()),
    "book/generated/fig5_roc.html": (("fig5-auc",), ("fig5-roc-linear", "fig5-roc-log")),
    "book/generated/table6_dorefa.html": (("table6", "table6-summary"), ()),
    "book/generated/fig6_partial.html": (("fig6-table",), ("fig6-partial",)),
    "book/generated/quantizer_clipping.html": (("clip-summary", "clip-rerun"), ("clip-heatmap",)),
    "book/generated/beyond_paper.html": (("beyond-adaptive", "beyond-metric", "beyond-lira"), ("beyond-privacy-utility",)),
}
PROSE = ("book/intro.html", "book/method.html", "book/report.html", "book/reproduce.html")
REPORT = "book/report.html"
REPORT_VERDICTS = 6  # attack accuracy, TPR, member F1, ROC near chance, DoReFa-Net, partial quantization
VERDICT = re.compile(r"^(reproduced|partly reproduced|not reproduced)$")
PROVENANCE = ("profile", "seeds", "data", "commit")


def _has_provenance(text: str) -> bool:
    return all(word in text for word in PROVENANCE)


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


def check_report(path: Path) -> list[str]:
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    pasted = [s.get_text(strip=True) for s in soup.select("span.pasted-text")]
    verdicts = [t for t in pasted if VERDICT.match(t)]
    if len(verdicts) < REPORT_VERDICTS:
        return [f"holds {len(verdicts)} computed verdicts, expected {REPORT_VERDICTS}"]
    return []


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
            problems.append(f"{page}: page is missing (tables {', '.join(tables) or '-'}; figures {', '.join(figures) or '-'})")
            continue
        problems += [f"{page}: {p}" for p in check_page(path, tables, figures)]
    if (root / REPORT).is_file():
        problems += [f"{REPORT}: {p}" for p in check_report(root / REPORT)]
    return problems


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
    print(f"check_site: {root}: all {n_tables} tables, {n_figures} figures and {len(PROSE)} prose pages present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
