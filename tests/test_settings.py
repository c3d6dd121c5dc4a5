import re
from pathlib import Path

import pytest

from qmia import settings

ROOT = Path(__file__).resolve().parent.parent


def test_only_settings_reads_the_environment():
    readers = [
        p.name
        for p in (ROOT / "qmia").glob("*.py")
        if re.search(r"os\.environ|os\.getenv", p.read_text()) and p.name != "settings.py"
    ]
    assert readers == []


def test_folders_are_absolute_and_rooted(monkeypatch, tmp_path):
    monkeypatch.delenv("QMIA_CACHE")
    monkeypatch.delenv("QMIA_RESULTS")
    monkeypatch.delenv("QMIA_DATA", raising=False)
    assert settings.cache_root() == ROOT / "cache" and settings.results_root() == ROOT / "results"
    assert settings.data_root() == ROOT / "data" and settings.data_root("x") == (Path.cwd() / "x").resolve()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QMIA_CACHE", "rel/cache")
    assert settings.cache_root() == tmp_path.resolve() / "rel" / "cache"
    assert settings.results_root() == ROOT / "results"  # defaults do not follow the working directory


@pytest.mark.parametrize(
    "variable, value, match",
    [
        ("QMIA_PROGRESS", "no", "QMIA_PROGRESS must be 0 or 1"),
        ("QMIA_CUDA_GRAPHS", "off", "QMIA_CUDA_GRAPHS must be 0 or 1"),
        ("QMIA_GROUP", "0", "QMIA_GROUP must be a positive integer"),
        ("QMIA_GROUP", "four", "QMIA_GROUP must be a positive integer"),
    ],
)
def test_bad_variables_say_what_is_valid(monkeypatch, variable, value, match):
    monkeypatch.setenv(variable, value)
    reader = {
        "QMIA_PROGRESS": settings.progress_default,
        "QMIA_CUDA_GRAPHS": settings.cuda_graphs_default,
        "QMIA_GROUP": settings.group_size_override,
    }[variable]
    with pytest.raises(ValueError, match=match):
        reader()


def test_group_and_flags_read_through(monkeypatch):
    monkeypatch.setenv("QMIA_GROUP", "4")
    monkeypatch.setenv("QMIA_PROGRESS", "1")
    assert settings.group_size_override() == 4 and settings.progress_default() is True
