import pytest
import torch


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Every test gets its own empty model cache and results store; two threads, no bars."""
    base = tmp_path_factory.mktemp("qmia")
    monkeypatch.setenv("QMIA_CACHE", str(base / "cache"))
    monkeypatch.setenv("QMIA_RESULTS", str(base / "results"))
    monkeypatch.setenv("QMIA_PROGRESS", "0")
    torch.set_num_threads(2)
    yield base
