"""The book's sources: notebook parameters, the table of contents, no logic in notebooks,
the site checker, the verdict rules and the paper's numbers. Fast: nothing is executed or built."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qmia import paper

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
    assert set(run_notebooks.ORDER) <= set(NAMES), set(run_notebooks.ORDER) - set(NAMES)
    assert set(check_site.EXPECTED) == {f"book/generated/{n}.html" for n in run_notebooks.ORDER}


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
    assert values["bits"] and all(isinstance(b, int) and 1 <= b <= 32 for b in values["bits"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_holds_no_training_or_attack_logic(path):
    code = _code(path)
    for banned in ("fit(", "optim", "MLPClassifier", "backward(", "sklearn", "torch.nn", "shadow_attack", "metric_attack",
                   "lira(", "roc_curve", "bootstrap_intervals", "attack_metrics("):
        assert banned not in code, f"{path.name} contains {banned!r}: training and attacks belong in qmia"
    assert "evaluate(" in code, f"{path.name} never calls qmia.experiment.evaluate"
    compile(code.replace("%", "#"), path.name, "exec")  # valid Python


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NAMES)
def test_notebook_is_stored_without_outputs(path):
    for cell in _cells(path):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name}: clear outputs before committing"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_makes_the_tables_and_figures_the_site_check_expects(name):
    tables, figures = check_site.EXPECTED[f"book/generated/{name}.html"]
    text = "\n".join(_source(c) for c in _cells(ROOT / "notebooks" / f"{name}.ipynb"))
    for tid in tables:
        assert f'"{tid}"' in text or f'"{{prefix}}' in text and tid.endswith("-claim"), f"{name}: no table {tid!r}"
    for fid in figures:
        assert f":name: {fid}" in text, f"{name}: no figure {fid!r}"
    assert "provenance(" in text


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


def test_cross_page_glue_references_name_existing_notebooks_and_glued_keys():
    glued = {n: set(re.findall(r'keep\(f?"([a-z0-9_]+)', _code(ROOT / "notebooks" / f"{n}.ipynb"))) for n in NAMES}
    prefixes = {n: set(re.findall(r'keep\(f"([a-z0-9]+_)\{', _code(ROOT / "notebooks" / f"{n}.ipynb"))) for n in NAMES}
    refs = []
    for md in (ROOT / "book").glob("*.md"):
        refs += re.findall(r"\{glue:text\}`generated/([a-z0-9_]+)\.ipynb::([a-z0-9_]+):[^`]+`", md.read_text())
        # a cross-page text role needs an explicit format (myst-nb reads 'doc::key' without one as key 'doc:')
        assert not re.search(r"\{glue:text\}`[^`]*::[a-z0-9_]+`", md.read_text()), md.name
    assert refs
    for nb, key in refs:
        assert nb in NAMES, nb
        assert key in glued[nb] or any(key.startswith(p) for p in prefixes[nb]), f"{nb} never glues {key!r}"


# ----------------------------------------------------------------------------- the site checker


def _fake_site(root: Path, drop_figure: str | None = None, drop_table: str | None = None) -> Path:
    prov = "profile smoke · seeds 0 · data digits (400/split) · commit abc1234"
    (root / "index.html").write_text("<html></html>")
    (root / "_images").mkdir(parents=True)
    (root / "_images" / "f.png").write_bytes(b"\x89PNG")
    for page in check_site.PROSE:
        (root / page).parent.mkdir(parents=True, exist_ok=True)
        (root / page).write_text("<html><body><p>prose</p></body></html>")
    verdicts = "".join(f'<span class="pasted-text">{w}</span>' for w in ["reproduced", "partly reproduced", "not reproduced"] * 2)
    (root / check_site.REPORT).write_text(f"<html><body>{verdicts}</body></html>")
    for page, (tables, figures) in check_site.EXPECTED.items():
        body = []
        for t in tables:
            if t != drop_table:
                body.append(f'<table id="T_{t}"><caption><b>{t}</b><br>{prov}</caption><tr><td>1</td></tr></table>')
        for f in figures:
            if f != drop_figure:
                body.append(f'<figure id="{f}"><img src="../../_images/f.png"><figcaption>{f} {prov}</figcaption></figure>')
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


def test_check_site_requires_the_report_verdicts(tmp_path):
    _fake_site(tmp_path)
    (tmp_path / check_site.REPORT).write_text('<html><span class="pasted-text">reproduced</span></html>')
    assert check_site.check_site(tmp_path) == [f"{check_site.REPORT}: holds 1 computed verdicts, expected 6"]


def test_check_site_on_no_site(tmp_path):
    assert "no index.html" in check_site.check_site(tmp_path / "nothing")[0]


# ----------------------------------------------------------------------------- run_notebooks


def test_run_notebooks_arguments():
    assert run_notebooks.int_list("2,3, 6") == [2, 3, 6]
    with pytest.raises(Exception):
        run_notebooks.int_list("two")
    assert run_notebooks.notebook_names([])[: len(run_notebooks.ORDER)] == list(run_notebooks.ORDER)
    assert run_notebooks.notebook_names(["fig5_roc.ipynb"]) == ["fig5_roc"]
    with pytest.raises(SystemExit, match="unknown notebook"):
        run_notebooks.notebook_names(["table99"])


# ----------------------------------------------------------------------------- verdicts and the paper's numbers


def test_reduction_verdict_thresholds():
    assert paper.reduction_verdict(14.0, 14.0).word == paper.REPRODUCED
    assert paper.reduction_verdict(7.0, 14.0).word == paper.REPRODUCED  # half the claim is enough
    assert paper.reduction_verdict(6.9, 14.0).word == paper.PARTLY
    assert paper.reduction_verdict(0.0, 14.0).word == paper.NOT_REPRODUCED
    assert paper.reduction_verdict(-5.0, 14.0).word == paper.NOT_REPRODUCED
    assert paper.reduction_verdict(float("nan"), 14.0).word == paper.NOT_REPRODUCED


def test_reduction_verdict_is_lowered_by_overlap_and_by_lost_utility():
    assert paper.reduction_verdict(20.0, 14.0, significant=False).word == paper.PARTLY
    v = paper.reduction_verdict(30.0, 14.0, utility_drop=0.70)
    assert v.word == paper.PARTLY and "70.0 points" in v.reason
    assert paper.reduction_verdict(30.0, 14.0, utility_drop=0.04, significant=True).word == paper.REPRODUCED
    assert paper.reduction_verdict(-1.0, 14.0, utility_drop=0.9).word == paper.NOT_REPRODUCED


def test_other_verdicts():
    assert paper.chance_verdict(0.52).word == paper.REPRODUCED
    assert paper.chance_verdict(0.43).word == paper.PARTLY
    assert paper.chance_verdict(0.75).word == paper.NOT_REPRODUCED
    assert paper.count_verdict(2, 2, "x").word == paper.REPRODUCED
    assert paper.count_verdict(1, 2, "x").word == paper.PARTLY
    assert paper.count_verdict(0, 2, "x").word == paper.NOT_REPRODUCED
    assert paper.direction_verdict(0.60, 0.52, significant=True, utility_drop=0.01).word == paper.REPRODUCED
    assert paper.direction_verdict(0.60, 0.52, significant=False).word == paper.PARTLY
    assert paper.direction_verdict(0.60, 0.61).word == paper.NOT_REPRODUCED
    assert paper.relative_reduction(0.5, 0.4) == pytest.approx(20.0)
    assert paper.intervals_overlap(0.1, 0.3, 0.2, 0.4) and not paper.intervals_overlap(0.1, 0.2, 0.3, 0.4)


def test_paper_numbers_are_the_abstracts():
    assert {k: c.value for k, c in paper.ABSTRACT_CLAIMS.items()} == {"attack_acc": 14.0, "tpr": 37.0, "f1_member": 39.0}
    assert all(c.where == "Abstract" and f"{c.value:.0f}%" in c.quote for c in paper.ABSTRACT_CLAIMS.values())
    assert paper.SOURCE.startswith("https://www.mdpi.com/1424-8220/23/18/7722")
    assert set(paper.NOT_RECOVERED) == {"Table 3", "Table 4", "Table 5", "Table 6", "Figure 5", "Figure 6"}
    assert "Table 3" in paper.not_recovered_note("Table 3") and paper.SOURCE in paper.not_recovered_note("Table 3")


def test_styled_table_has_the_id_and_caption_the_site_check_reads():
    import pandas as pd

    html = paper.styled(pd.DataFrame({"a": [0.5]}), "table3", "Title", "profile smoke · seeds 0 · data d · commit c",
                        {"a": paper.PCT}).to_html()
    assert 'id="T_table3"' in html and "50.0%" in html and "commit c" in html
    assert paper.plain(__import__("numpy").float64(0.25)) == 0.25 and type(paper.plain(__import__("numpy").float64(1))) is float


def test_mean_over_seeds_gives_mean_std_and_count():
    df = pd.DataFrame({"arch": ["lenet"] * 3 + ["resnet20"], "seed": [0, 1, 2, 0],
                       "attack_acc": [0.50, 0.60, 0.70, 0.55], "auc": [0.5, 0.5, 0.5, 0.6]})
    out = paper.mean_over_seeds(df, ["arch"])
    lenet, resnet = out.iloc[0], out.iloc[1]
    assert lenet["attack_acc"] == pytest.approx(0.6) and lenet["attack_acc_std"] == pytest.approx(0.1)
    assert lenet["auc_std"] == 0 and lenet["n_seeds"] == 3
    assert resnet["n_seeds"] == 1 and np.isnan(resnet["attack_acc_std"])
    assert paper.mean_std(0.6, 0.1) == "60.0% ± 10.0%" and paper.mean_std(0.55, float("nan")) == "55.0%"


def test_list_parameters_given_as_text_by_papermill_p():
    assert paper.as_list("[2, 3, 6]") == [2, 3, 6] and paper.as_list("2,3,6") == [2, 3, 6] and paper.as_list("4") == [4]
    assert paper.as_list([4, 8]) == [4, 8] and paper.as_list(None) is None
    assert paper.as_list('[["resnet20", "cifar10"]]') == [["resnet20", "cifar10"]]
    with pytest.raises(ValueError, match=r"\[2, 3, 6\]"):
        paper.as_list("four bits")
