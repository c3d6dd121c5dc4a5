"""The plan in parts: every entry in one part, parts that fit a GPU command, results that travel
(compact per-example outcomes, manifests with provenance), and the book's fallback when parts are missing."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from qmia.config import get_profile
from qmia.estimates import LIMIT_SECONDS, estimate_seconds, part_estimate
from qmia.part_runs import run_part, verify_stored
from qmia.part_status import missing_parts
from qmia.parts import PART_NAMES, assign, carried_into, entry_keys, part_extractions, part_models, trained_for_later
from qmia.plan import book_plan
from qmia.results import load_outcome, load_row, save_row
from qmia.settings import results_root
from qmia.store import seal
from qmia.uncertainty import AttackOutcome, compare, estimate

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["smoke", "quick", "paper"])
def test_every_plan_entry_is_in_exactly_one_part(name):
    p = get_profile(name)
    parts = assign(p)
    entries = [e for es in parts.values() for e in es]
    plan = [(c, g) for c, groups in book_plan(p) for g in groups]
    assert sorted(entries, key=repr) == sorted(plan, key=repr) and len(set(entries)) == len(entries)
    assert not parts["rest"], f"entries no named part takes: {parts['rest'][:3]}"


def test_each_paper_part_fits_one_gpu_command_at_the_benchmark_rates():
    # on a bare machine, but for the models that models-only parts before it train and a lease carries to it
    p = get_profile("paper")
    est = {
        n: part_estimate(p, n, have=carried_into(p, n).__contains__)
        for n, es in assign(p).items()
        if es or trained_for_later(p, n) or part_extractions(p, n)
    }
    assert len(est) >= 10 and all(0 < s <= LIMIT_SECONDS for s in est.values()), est
    assert list(est)[:2] == ["tables-resnet20", "readings-resnet20"]  # what the book needs most comes first


def test_models_only_parts_train_the_dp_models_of_the_part_that_needs_them():
    p = get_profile("paper")
    a, b = trained_for_later(p, "defences-dp-models-a"), trained_for_later(p, "defences-dp-models-b")
    dp_part = part_models(p, assign(p)["defences-dp"])
    dp_models = [m for m in dp_part if m.defence.kind == "dp"]
    assert len(dp_models) == p.lira_refs + 1 and sorted(a + b, key=lambda m: m.key) == sorted(
        dp_models, key=lambda m: m.key
    )
    assert not set(a) & set(b) and {m.role for m in a} == {"ref"} and sum(m.role == "target" for m in b) == 1
    assert not assign(p)["defences-dp-models-a"] and carried_into(p, "defences-dp") >= set(dp_models)
    assert "defences-dp-models-a" not in missing_parts(p)  # no rows of its own: the book never waits for it
    # alone on a bare machine the DP part would not fit one command; with its models carried it does
    assert estimate_seconds(p, assign(p)["defences-dp"]) > LIMIT_SECONDS


def _outcome(rng, n=400, seed=0, ties=True):
    member = np.r_[np.ones(n // 2), np.zeros(n - n // 2)].astype(int)
    scores = rng.normal(size=n) + 0.8 * member
    if ties:  # saturated scores tie, as a shadow attack's probabilities do
        scores = np.round(1 / (1 + np.exp(-3 * scores)), 3)
    pred = (scores > np.median(scores)).astype(int)
    index = rng.permutation(10_000)[:n]
    return AttackOutcome(scores, pred, member, index, seed)


def test_compact_outcomes_give_the_same_uncertainty_as_the_raw_scores():
    rng = np.random.default_rng(3)
    raw = [_outcome(rng, seed=s) for s in (0, 1)]
    base = [
        AttackOutcome(b.scores, b.pred, o.member, o.index, o.seed)
        for b, o in zip((_outcome(rng, seed=s) for s in (0, 1)), raw)
    ]  # another attack on the same examples
    stored = []
    for i, o in enumerate(raw):
        key = f"row{i}"
        save_row(
            {"row_key": key, "seed": o.seed},
            np.r_[0.0, 1.0],
            np.r_[0.0, 1.0],
            scores=o.scores,
            pred=o.pred,
            member=o.member,
            index=o.index,
        )
        stored.append(load_outcome(load_row(key)))
    assert len(list((results_root() / "index").glob("*.npz"))) == 2  # one index file per distinct split
    for metric in ("auc", "attack_acc", "tpr@0.1", "f1_member"):
        a, b = estimate(raw, metric, n_boot=200), estimate(stored, metric, n_boot=200)
        assert (a.value, a.lo, a.hi) == (b.value, b.lo, b.hi), metric
    for metric in ("auc", "tpr_matched"):
        a, b = compare(base, raw, metric, n_boot=200), compare(base, stored, metric, n_boot=200)
        assert (a.reduction, a.reduction_lo, a.reduction_hi, a.after) == (
            b.reduction,
            b.reduction_lo,
            b.reduction_hi,
            b.after,
        )
    assert all(np.array_equal(s.index, o.index) and np.array_equal(s.pred, o.pred) for s, o in zip(stored, raw))


def test_a_part_runs_once_writes_its_manifest_and_its_results_travel(tmp_path, monkeypatch):
    p = get_profile("smoke")
    first = run_part(p, "table6-fig6", device="cpu", progress=False)
    assert first["part"] == "table6-fig6" and first["profile"] == "smoke" and first["models"] and first["rows"]
    assert all(first[f] for f in ("gpu", "torch", "commit", "date")) and first["wall_seconds"] > 0
    assert {m["key"] for m in first["models"]} and all(m["seconds"] > 0 for m in first["models"])
    assert "table6-fig6" not in missing_parts(p) and "tables-lenet" in missing_parts(p)
    again = run_part(p, "table6-fig6", device="cpu", progress=False)  # everything stored: nothing trained or rewritten
    assert again == first
    # the results folder travels (a lease sends it back): the same rows and the same uncertainty elsewhere
    moved = tmp_path / "travelled"
    shutil.copytree(results_root(), moved)
    here = {k: load_row(k) for k in first["rows"]}
    est_here = {k: estimate([load_outcome(r)], "auc", n_boot=100) for k, r in here.items()}
    monkeypatch.setenv("QMIA_RESULTS", str(moved))
    there = {k: load_row(k) for k in first["rows"]}
    assert there == here
    assert {k: estimate([load_outcome(r)], "auc", n_boot=100) for k, r in there.items()} == est_here


def test_manifest_provenance_is_checked(tmp_path, monkeypatch):
    p = get_profile("smoke")
    monkeypatch.setenv("QMIA_COMMIT", "abc1234")
    from qmia.train import git_commit

    git_commit.cache_clear()
    try:
        m = run_part(p, "table6-fig6", device="cpu", progress=False)
    finally:
        git_commit.cache_clear()
    assert m["commit"] == "abc1234" and verify_stored(p) == []
    path = results_root() / "parts" / "table6-fig6.json"
    sealed = json.loads(path.read_text())
    path.write_text(json.dumps({**sealed, "wall_seconds": 1.0}))  # edited by hand: fails its seal
    assert any("edited since it was written" in x for x in verify_stored(p))
    path.write_text(json.dumps(seal({**m, "commit": "abc1234-dirty"})))
    assert any("not a clean commit" in x for x in verify_stored(p))
    row_file = results_root() / "rows" / f"{m['rows'][0]}.json"
    path.write_text(json.dumps(seal(m)))
    row_file.unlink()
    assert any("missing or damaged" in x for x in verify_stored(p))
    path.write_text(json.dumps(seal({k: v for k, v in m.items() if k != "gpu"})))
    assert any("lacks gpu" in x for x in verify_stored(p))


def test_the_paper_results_in_the_repository_are_intact_and_true(monkeypatch):
    stored = ROOT / "results" / "paper"
    if not (stored / "parts").is_dir():
        pytest.skip("no paper-profile parts committed")
    monkeypatch.setenv("QMIA_RESULTS", str(stored))
    p = get_profile("paper")
    assert verify_stored(p) == []
    manifests = {
        n: json.loads((stored / "parts" / f"{n}.json").read_text())
        for n in PART_NAMES
        if (stored / "parts" / f"{n}.json").exists()
    }
    done = [n for n, m in manifests.items() if m.get("complete", True)]  # a part stopped by its budget is not done
    # the keys today's code gives find every stored row and model: no change altered a stored key
    assert done and not set(done) & set(missing_parts(p))
    parts = assign(p)
    for name, manifest in manifests.items():
        keys = sorted(k for _, k in entry_keys(p, parts[name]))
        if name in done:
            assert keys == manifest["rows"]
        else:  # its stored rows are the part's, and it still misses some
            assert set(manifest["rows"]) < set(keys) and name in missing_parts(p)
        assert {m["key"] for m in manifest["models"]} <= {m.key for m in part_models(p, parts[name])}
    clip_model = p.config(*p.resnet, seed=0)
    if "tables-resnet20" in done:
        assert json.loads((stored / "weights" / f"{clip_model.key}.json").read_text())["label"] == clip_model.label


def test_the_paper_book_is_built_from_what_is_stored_and_names_the_missing_parts(monkeypatch, capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import run_notebooks
    finally:
        sys.path.pop(0)
    run_notebooks.describe_stored("paper")  # the test's results folder is empty: every part pending
    out = capsys.readouterr().out
    assert "building the paper profile from the rows stored" in out and "0 of" in out
    assert "tables-resnet20" in out and "--part" in out and "TRAIN=1" in out
    monkeypatch.setenv("QMIA_TRAIN", "1")
    run_notebooks.describe_stored("paper")
    assert "computing the" in capsys.readouterr().out
    run_notebooks.describe_stored("smoke")
    assert capsys.readouterr().out == ""


def test_a_damaged_index_file_marks_its_rows_damaged_and_is_rewritten():
    rng = np.random.default_rng(5)
    o = _outcome(rng)
    args = dict(scores=o.scores, pred=o.pred, member=o.member, index=o.index)
    save_row({"row_key": "a", "seed": 0}, np.r_[0.0, 1.0], np.r_[0.0, 1.0], **args)
    (index_file,) = (results_root() / "index").glob("*.npz")
    index_file.write_bytes(index_file.read_bytes()[:50])  # truncated
    assert load_row("a") is None  # reported and moved aside, for the caller to recompute
    save_row({"row_key": "a", "seed": 0}, np.r_[0.0, 1.0], np.r_[0.0, 1.0], **args)
    assert np.array_equal(load_outcome(load_row("a")).index, o.index)


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_weights_carried_from_one_lease_to_the_next_are_not_trained_again(tmp_path, monkeypatch):
    from qmia.model_entries import is_cached, model_dir
    from qmia.multitrain import train_many
    from qmia.part_status import available
    from qmia.settings import cache_root
    from qmia.train import TrainedModel

    run_parts, carry_models = _script("run_parts"), _script("carry_models")
    p = get_profile("smoke")
    entries = assign(p)["tables-lenet"]
    models = part_models(p, entries)[:2]
    trained = train_many(models, device="cpu", progress=False)
    logits = [m.outputs["logits"]["shadow_out"].clone() for m in trained]
    # the lease sends the weights back (run_parts), they are unpacked for the next lease's carry (carry_models) ...
    returned, carried = tmp_path / "returned", tmp_path / "carried"
    returned.mkdir()
    files = [(model_dir(m) / f, f"models/{m.key}/{f}") for m in models for f in ("meta.json", "model.pt")]
    run_parts.write_chunks(run_parts.tar_bytes(files), returned, "models", 3)
    assert carry_models.unpack(returned, carried) == 2
    assert sorted(f.name for f in (carried / "models" / models[0].key).iterdir()) == ["meta.json", "model.pt"]
    # ... and seed the bare cache of the next lease, where the part's estimate no longer counts their training
    monkeypatch.setenv("QMIA_CACHE", str(tmp_path / "next-cache"))
    bare = estimate_seconds(p, entries, have=available)
    assert run_parts.seed_cache(carried, cache_root() / "models") == 2
    assert all(available(m) and not is_cached(m) for m in models)
    assert estimate_seconds(p, entries, have=available) < bare == estimate_seconds(p, entries)
    again = train_many(models, device="cpu", progress=False)  # outputs computed from the weights, nothing trained
    assert all(is_cached(m) for m in models)
    assert [TrainedModel(m).meta["train_seconds"] for m in models] == [m.meta["train_seconds"] for m in trained]
    assert all(torch.equal(a.outputs["logits"]["shadow_out"], b) for a, b in zip(again, logits))


def test_a_models_only_part_trains_its_models_and_stores_no_rows():
    from qmia.part_status import available, needed_models_parts

    p = get_profile("smoke")
    models = trained_for_later(p, "defences-dp-models-a")
    assert models and "defences-dp-models-a" in needed_models_parts(p)
    m = run_part(p, "defences-dp-models-a", device="cpu", progress=False)
    assert m["rows"] == [] and sorted(x["key"] for x in m["models"]) == sorted(c.key for c in models)
    assert all(x["defence"] == "dp" for x in m["models"]) and all(available(c) for c in models)
    assert (
        "defences-dp-models-a" not in needed_models_parts(p) and run_part(p, "defences-dp-models-a", device="cpu") == m
    )


def test_a_model_too_large_to_carry_travels_as_its_outputs(tmp_path, monkeypatch, capfd):
    from qmia.model_entries import is_cached, model_dir
    from qmia.multitrain import train_many
    from qmia.settings import cache_root
    from qmia.train import TrainedModel

    run_parts, carry_models = _script("run_parts"), _script("carry_models")
    p = get_profile("smoke")
    shadow = next(m for m in part_models(p, assign(p)["tables-lenet"]) if m.role == "shadow")
    logits = train_many([shadow], device="cpu", progress=False)[0].outputs["logits"]["shadow_in"].clone()
    returned, carried = tmp_path / "returned", tmp_path / "carried"
    returned.mkdir()
    files = [(model_dir(shadow) / f, f"models/{shadow.key}/{f}") for f in ("meta.json", "outputs.pt")]  # no weights
    run_parts.write_chunks(run_parts.tar_bytes(files), returned, "models", 3)
    assert carry_models.unpack(returned, carried) == 1
    monkeypatch.setenv("QMIA_CACHE", str(tmp_path / "next-cache"))
    assert run_parts.seed_cache(carried, cache_root() / "models") == 1
    assert is_cached(shadow)  # the attacks read only its outputs: nothing to train
    model = train_many([shadow], device="cpu", progress=False)[0]
    assert torch.equal(model.outputs["logits"]["shadow_in"], logits) and not (model.path / "model.pt").exists()
    with pytest.raises(FileNotFoundError, match="only the outputs"):
        TrainedModel(shadow).load()
    (model.path / "outputs.pt").write_bytes((model.path / "outputs.pt").read_bytes()[:-10])  # damaged: moved aside
    assert not is_cached(shadow) and "damaged" in capfd.readouterr().err


def _rows_of(keys):
    volatile = {"seconds", "created"}
    return {k: {f: v for f, v in load_row(k).items() if f not in volatile} for k in keys}


def test_a_part_stopped_by_its_budget_resumes_elsewhere_with_the_same_rows(tmp_path, monkeypatch, capfd):
    """A part run cut off by its budget stores the rows of its finished targets and carries its trained weights in the
    results folder; resumed with a fresh cache (another machine) and that folder only, it stores the rows of one run
    straight through. A carried file that does not match its checksum is not used (its model is trained again)."""
    from qmia import carry, part_runs, part_status
    from qmia.settings import cache_root
    from qmia.train import git_commit

    monkeypatch.setenv("QMIA_COMMIT", "abc1234")  # a clean commit, as in a clone
    git_commit.cache_clear()
    request_cleanup = git_commit.cache_clear
    p = get_profile("smoke")
    straight = run_part(p, "table6-fig6", device="cpu", progress=False)
    assert straight["complete"] and straight["models"]
    expected = _rows_of(straight["rows"])

    monkeypatch.setenv("QMIA_RESULTS", str(tmp_path / "stopped-results"))
    monkeypatch.setenv("QMIA_CACHE", str(tmp_path / "machine-a"))
    started = []

    def seconds(m, cpu):  # the third model does not fit: the budget stops the run there
        started.append(m)
        return 1e9 if len(started) >= 3 else 0.0

    monkeypatch.setattr(part_runs, "model_seconds", seconds)
    first = run_part(p, "table6-fig6", device="cpu", progress=False, budget=3600)
    assert not first["complete"] and len(first["models"]) == 2 and len(first["rows"]) < len(straight["rows"])
    assert "budget" in capfd.readouterr().out
    assert len(carry.carried_keys()) == 2 and verify_stored(p) == []
    monkeypatch.undo()
    monkeypatch.setenv("QMIA_COMMIT", "abc1234")
    monkeypatch.setenv("QMIA_PROGRESS", "0")
    monkeypatch.setenv("QMIA_RESULTS", str(tmp_path / "stopped-results"))
    monkeypatch.setenv("QMIA_CACHE", str(tmp_path / "machine-b"))  # nothing of machine a but the results folder
    bad = carry.carried_root() / carry.carried_keys()[1] / "model.pt"
    bad.write_bytes(bad.read_bytes()[:-8] + b"\0" * 8)
    resumed = run_part(p, "table6-fig6", device="cpu", progress=False)
    assert "not used" in capfd.readouterr().err
    assert resumed["complete"] and sorted(resumed["rows"]) == sorted(straight["rows"])
    assert len(resumed["runs"]) == 2 and len(resumed["models"]) == len(straight["models"])
    assert _rows_of(resumed["rows"]) == expected
    # the part is stored: only what other missing parts still need stays carried
    still_needed = {m.key for m in part_status.needed_models(p)}
    assert set(carry.carried_keys()) <= still_needed and len(carry.carried_keys()) < len(resumed["models"])
    assert verify_stored(p) == []
    assert all(m["device"] == "cpu" for m in resumed["models"]) and cache_root().name == "machine-b"
    request_cleanup()


def test_a_cpu_rate_is_the_pace_of_unhindered_models_not_their_mean():
    """A CPU run's recorded seconds include pauses and work beside it, which only slow a model: the CPU rate follows
    the unhindered models (a quantile of the per-model ratios), while a GPU rate stays the total ratio."""
    from qmia.estimates import CPU_RATES, _benchmark_seconds, manifest_path, measured_rates
    from qmia.store import atomic_write_json

    bench = _benchmark_seconds("resnet20", 1, 50 * 15_000, CPU_RATES)
    seconds = (bench, 1.1 * bench, bench, 4 * bench, 3 * bench)  # two of them slowed by a pause
    model = {"arch": "resnet20", "epochs": 50, "n_train": 15_000, "trained_with": 1, "precision": "bf16 autocast"}
    models = [{**model, "seconds": s} for s in seconds]
    for name, gpu in (("claims-resnet20", "CPU (x86_64)"), ("table6-fig6", "NVIDIA H200")):
        atomic_write_json(seal({"part": name, "gpu": gpu, "models": models}), manifest_path(name))
    cpu, _ = measured_rates(cpu=True)
    assert 1.0 <= cpu["resnet20"] <= 1.1  # the mean ratio, 2.0, would double every CPU estimate
    gpu, cards = measured_rates()
    gpu_bench = _benchmark_seconds("resnet20", 1, 50 * 15_000)  # a GPU run had the card to itself: the total ratio
    assert cards == "NVIDIA H200" and gpu["resnet20"] == pytest.approx(sum(seconds) / (5 * gpu_bench))
