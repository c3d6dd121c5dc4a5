"""The book's sources: notebook parameters, the table of contents, thin notebooks, the site checker,
the parameter parsing of the pages. Fast: nothing is executed or built (the verdict rules are in
tests/test_claims.py)."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qmia import book

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
NAMES = [p.stem for p in NOTEBOOKS]
PARAMETERS = ("profile", "models", "bits", "seeds", "data_root")


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"_book_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check_site = _load_script("check_site")
run_notebooks = _load_script("run_notebooks")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _code(path: Path) -> str:
    return "\n".join(_source(c) for c in _cells(path) if c["cell_type"] == "code")


def _toc_files() -> list[str]:
    return re.findall(r"^\s*(?:root|-\s*file):\s*(\S+)\s*$", (ROOT / "_toc.yml").read_text(), flags=re.M)


# ----------------------------------------------------------------------------- notebooks


def test_every_result_of_the_paper_has_a_notebook():
    assert set(run_notebooks.ORDER) == set(NAMES)
    assert set(check_site.EXPECTED) == {f"book/generated/{n}.html" for n in run_notebooks.ORDER}
    assert run_notebooks.ORDER[0] == "readings" and run_notebooks.ORDER[-1] == "report"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_has_one_parameters_cell_with_the_documented_names(path):
    tagged = [c for c in _cells(path) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'"
    assert tagged[0]["cell_type"] == "code"
    values = {}
    for node in ast.parse(_source(tagged[0])).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, f"{path.name}: only plain assignments"
        values[node.targets[0].id] = ast.literal_eval(node.value)
    assert tuple(values) == PARAMETERS
    assert values["profile"] == "smoke"
    assert values["models"] is None and values["data_root"] is None
    assert values["seeds"] == [0]
    if (
        values["bits"] is None
    ):  # allowed where the cell says what None means (the ranking: the profile's sweep bitwidths)
        assert "None means the profile's" in _source(tagged[0]), (
            f"{path.name}: bits = None without saying what it means"
        )
    else:
        assert values["bits"] and all(isinstance(b, int) and 1 <= b <= 32 for b in values["bits"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_is_thin(path):
    """Parameters, one setup call, calls into qmia.pages, prose: no function definitions, no logic."""
    code = _code(path)
    tree = ast.parse(code.replace("%", "#"))
    defs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Lambda, ast.ClassDef, ast.For, ast.While))]
    assert not defs, f"{path.name}: function definitions and loops belong in qmia (found {type(defs[0]).__name__})"
    assert re.search(rf'book\.setup\(\s*"{path.stem}"', code), f"{path.name} does not call book.setup with its own name"
    for banned in ("evaluate(", " fit(", ".fit(", "torch", "sklearn", "plt.", "glue(", "groupby", "pivot"):
        assert banned not in code, f"{path.name} contains {banned!r}: that belongs in qmia"


def test_notebooks_hold_under_250_lines_of_code_in_all():
    lines = sum(
        len([ln for ln in _code(p).splitlines() if ln.strip() and not ln.strip().startswith("#")]) for p in NOTEBOOKS
    )
    assert 0 < lines < 250, lines


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_is_stored_without_outputs(path):
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{path.name}: clear outputs before committing"
            )


@pytest.mark.parametrize("name", NAMES)
def test_notebook_makes_the_tables_and_figures_the_site_check_expects(name):
    tables, figures = check_site.EXPECTED[f"book/generated/{name}.html"]
    text = "\n".join(_source(c) for c in _cells(ROOT / "notebooks" / f"{name}.ipynb"))
    pages_src = "\n".join(f.read_text() for f in sorted((ROOT / "qmia" / "pages").glob("*.py")))
    called = set(re.findall(r"pages\.(\w+)\(", text))
    bodies = {
        m.group(1): m.group(2) for m in re.finditer(r"^def (\w+)\(.*?\n(.*?)(?=^def |\Z)", pages_src, flags=re.M | re.S)
    }
    reachable = "\n".join(bodies.get(f, "") for f in called)
    for f in called:  # one level of helpers (claim_table, verdict_table, _table)
        reachable += "\n".join(bodies.get(g, "") for g in re.findall(r"\b(\w+)\(", bodies.get(f, "")) if g in bodies)
    for tid in tables:
        assert f'"{tid}"' in reachable or (
            tid.endswith(("-claim", "-verdict"))
            and "table_id" in reachable
            or tid.endswith("-claim")
            and "{prefix}-claim" in reachable
        ), f"{name}: no table {tid!r}"
    for fid in figures:
        assert f":name: {fid}" in text, f"{name}: no figure {fid!r}"


# ----------------------------------------------------------------------------- the book


def test_toc_lists_every_notebook_and_chapter_and_nothing_else():
    files = _toc_files()
    assert len(files) == len(set(files))
    chapters = {f"book/{p.stem}" for p in (ROOT / "book").glob("*.md")}
    generated = {f"book/generated/{n}" for n in NAMES}
    assert set(files) == chapters | generated
    for f in files:
        if f.startswith("book/generated/"):
            assert (ROOT / "notebooks" / f"{Path(f).name}.ipynb").is_file()
        else:
            assert (ROOT / f"{f}.md").is_file()


def test_config_builds_only_toc_files_from_executed_notebooks():
    cfg = (ROOT / "_config.yml").read_text()
    assert re.search(r"^only_build_toc_files:\s*true", cfg, flags=re.M)
    assert re.search(r'execute_notebooks:\s*"?off"?', cfg)
    for excluded in (".venv", "cache", "results", "notebooks"):
        assert re.search(rf"^\s*-\s*{re.escape(excluded)}\s*$", cfg, flags=re.M), excluded


# ----------------------------------------------------------------------------- the site checker


def _fake_site(
    root: Path, drop_figure: str | None = None, drop_table: str | None = None, profile: str = "smoke"
) -> Path:
    prov = f"profile {profile} · seeds 0 · data digits (400/split) · commit abc1234"
    header = f"<p>Profile <strong>{profile}</strong>: digits.</p>"
    verdict_rows = "".join(
        f"<tr><td>claim {i}</td><td>{w}</td></tr>"
        for i, w in enumerate(
            [
                "reproduced",
                "partly reproduced",
                "not reproduced",
                "not measurable",
                "reproduced only with a utility loss",
                "not reproduced",
            ]
        )
    )
    answer = f'<table id="T_answer-verdicts"><caption><b>answer</b><br>{prov}</caption>{verdict_rows}</table>'
    (root / "index.html").write_text("<html></html>")
    (root / "_images").mkdir(parents=True)
    (root / "_images" / "f.png").write_bytes(b"\x89PNG")
    for page in check_site.PROSE:
        (root / page).parent.mkdir(parents=True, exist_ok=True)
        (root / page).write_text("<html><body><p>prose</p></body></html>")
    (root / check_site.LANDING).write_text(f'<html><body>{answer}<img src="../_images/f.png"></body></html>')
    for page, (tables, figures) in check_site.EXPECTED.items():
        body = [header]
        for t in tables:
            if t == "answer-verdicts":
                body.append(answer)
            elif t != drop_table:
                body.append(f'<table id="T_{t}"><caption><b>{t}</b><br>{prov}</caption><tr><td>1</td></tr></table>')
        for f in figures:
            if f != drop_figure:
                body.append(
                    f'<figure id="{f}"><img src="../../_images/f.png"><figcaption>{f} {prov}</figcaption></figure>'
                )
        (root / page).parent.mkdir(parents=True, exist_ok=True)
        (root / page).write_text(f"<html><body>{''.join(body)}</body></html>")
    return root


def test_check_site_passes_a_complete_site(tmp_path):
    assert check_site.check_site(_fake_site(tmp_path)) == []
    assert check_site.main([str(tmp_path)]) == 0


def test_check_site_fails_on_a_missing_figure_and_names_it(tmp_path, capsys):
    _fake_site(tmp_path, drop_figure="fig5-roc-log")
    problems = check_site.check_site(tmp_path)
    assert problems == ["book/generated/fig5_roc.html: figure 'fig5-roc-log' is missing"]
    assert check_site.main([str(tmp_path)]) == 1
    assert "fig5-roc-log" in capsys.readouterr().err


def test_check_site_fails_on_a_missing_table_page_image_or_caption(tmp_path):
    _fake_site(tmp_path, drop_table="table6")
    (tmp_path / "book/generated/fig6_partial.html").unlink()
    (tmp_path / "_images/f.png").unlink()
    problems = "\n".join(check_site.check_site(tmp_path))
    assert "table 'table6' is missing" in problems
    assert "fig6_partial.html: page is missing" in problems
    assert "figure 'clip-heatmap': image ../../_images/f.png is not on disk" in problems
    page = tmp_path / "book/generated/table3_accuracy.html"
    page.write_text(page.read_text().replace("commit", "revision"))
    assert "table 'table3' has no provenance caption" in "\n".join(check_site.check_site(tmp_path))


def test_check_site_requires_the_report_verdicts_and_the_answer_first(tmp_path):
    _fake_site(tmp_path)
    report = tmp_path / check_site.REPORT
    report.write_text(report.read_text().replace("not measurable", "n/a").replace("partly reproduced", "maybe"))
    assert f"{check_site.REPORT}: holds 4 computed verdicts, expected at least 6" in check_site.check_site(tmp_path)
    (tmp_path / check_site.LANDING).write_text("<html><body><p>welcome</p></body></html>")
    problems = check_site.check_site(tmp_path)
    assert f"{check_site.LANDING}: does not open with the verdict table (answer-verdicts)" in problems
    assert f"{check_site.LANDING}: has no answer figure" in problems


def test_check_site_catches_pages_of_another_parameter_set(tmp_path):
    _fake_site(tmp_path)
    table3 = tmp_path / "book/generated/table3_accuracy.html"
    table3.write_text(table3.read_text().replace("<strong>smoke</strong>", "<strong>quick</strong>"))
    beyond = tmp_path / "book/generated/beyond_paper.html"
    beyond.write_text(beyond.read_text().replace("</body>", f"<div>{check_site.RERUN}</div></body>"))
    clipping = tmp_path / "book/generated/fig6_partial.html"  # a rerun page the report does not paste from: fine
    clipping.write_text(clipping.read_text().replace("</body>", f"<div>{check_site.RERUN}</div></body>"))
    problems = check_site.check_site(tmp_path)
    assert len(problems) == 2
    assert "table3_accuracy.html: executed with profile 'quick', the report with 'smoke'" in problems[0]
    assert "beyond_paper.html: rerun with other parameters, but the report pastes its numbers" in problems[1]


def test_check_site_on_no_site(tmp_path):
    assert "no index.html" in check_site.check_site(tmp_path / "nothing")[0]


# ----------------------------------------------------------------------------- page parameters


def test_page_parameters_are_checked_and_named():
    page = book.setup("table3_accuracy", "smoke", None, "[2, 3, 6]", "0, 1", None)
    assert (
        page.bits == [2, 3, 6] and page.seeds == [0, 1] and page.models == [("lenet", "digits"), ("resnet20", "digits")]
    )
    assert page.changed == {"bits": ([2, 3, 6], [4, 8, 16]), "seeds": ([0, 1], [0])}
    assert book.setup("table6_dorefa", "smoke", bits=[4, 8], default_bits=[4, 8]).changed == {}
    for kwargs, match in (
        ({"profile": "nonsense"}, "unknown profile 'nonsense'; valid: smoke, quick, paper"),
        ({"bits": "[0]"}, r"bits must be integers from 1 to 32; got 0"),
        ({"bits": "[4, 40]"}, "from 1 to 32; got 40"),
        ({"bits": "[]"}, "non-empty list"),
        ({"bits": "four"}, r"bits must be a list such as \[2, 3, 6\]"),
        ({"seeds": "[-1]"}, "seeds must be integers from 0 to 4294967295; got -1"),
        ({"models": '[["vgg", "digits"]]'}, "arch in lenet, resnet20, resnet50"),
        ({"models": '[["lenet", "cifar10"]]'}, "profile 'smoke' has no dataset 'cifar10'"),
        ({"data_root": 3}, "data_root must be a folder path"),
    ):
        with pytest.raises(ValueError, match=match):
            book.setup("table3_accuracy", **{"profile": "smoke", **kwargs})


def test_list_parameters_given_as_text_by_papermill_p():
    assert book.as_list("[2, 3, 6]") == [2, 3, 6] and book.as_list("2,3,6") == [2, 3, 6] and book.as_list("4") == [4]
    assert book.as_list([4, 8]) == [4, 8] and book.as_list(None) is None
    assert book.as_list('[["resnet20", "cifar10"]]') == [["resnet20", "cifar10"]]


def test_styled_table_has_the_id_caption_and_not_measurable_cells():
    df = pd.DataFrame({"a": [0.5, 0.6], "TPR @ 0.1 % FPR": [float("nan"), 0.125], "b": [float("nan"), 1.0]})
    html = book.styled(
        df,
        "table3",
        "Title",
        "profile smoke · seeds 0 · data d · commit c",
        {"a": book.PCT, "TPR @ 0.1 % FPR": book.NUM},
        not_measurable=("TPR @ 0.1 % FPR",),
    ).to_html()
    assert 'id="T_table3"' in html and "50.0%" in html and "commit c" in html and "0.125" in html
    assert book.NOT_MEASURABLE_TEXT in html and html.count(book.NOT_MEASURABLE_TEXT) == 1
    assert book.plain(np.float64(0.25)) == 0.25 and type(book.plain(np.float64(1))) is float


def test_mean_over_seeds_gives_mean_std_and_count():
    df = pd.DataFrame(
        {
            "arch": ["lenet"] * 3 + ["resnet20"],
            "seed": [0, 1, 2, 0],
            "attack_acc": [0.50, 0.60, 0.70, 0.55],
            "auc": [0.5, 0.5, 0.5, 0.6],
        }
    )
    out = book.mean_over_seeds(df, ["arch"])
    lenet, resnet = out.iloc[0], out.iloc[1]
    assert lenet["attack_acc"] == pytest.approx(0.6) and lenet["attack_acc_std"] == pytest.approx(0.1)
    assert lenet["auc_std"] == 0 and lenet["n_seeds"] == 3
    assert resnet["n_seeds"] == 1 and np.isnan(resnet["attack_acc_std"])
    assert book.mean_std(0.6, 0.1) == "60.0% ± 10.0%" and book.mean_std(0.55, float("nan")) == "55.0%"


# ----------------------------------------------------------------------------- run_notebooks


def test_run_notebooks_arguments():
    assert run_notebooks.int_list("2,3, 6") == [2, 3, 6]
    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated integers"):
        run_notebooks.int_list("two")
    assert run_notebooks.notebook_names([])[: len(run_notebooks.ORDER)] == list(run_notebooks.ORDER)
    assert run_notebooks.notebook_names(["fig5_roc.ipynb"]) == ["fig5_roc"]
    with pytest.raises(SystemExit, match="unknown notebook"):
        run_notebooks.notebook_names(["table99"])
