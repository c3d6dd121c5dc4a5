import json
import subprocess
import sys

import pytest
import torch

from qmia import compute, loop
from qmia.clipping import max_levels
from qmia.config import TrainConfig, get_profile
from qmia.model_entries import model_dir
from qmia.quantizers import QuantSpec, selected_layers
from qmia.splits import SPLITS
from qmia.train import train


def _config(quant=QuantSpec(), epochs=6, **kw):
    return get_profile("smoke").config("lenet", quant=quant, **kw).with_(epochs=epochs)


def test_key_hashes_every_weight_setting():
    base = _config()
    assert base.key == _config().key
    variants = [
        base.with_(seed=1),
        base.with_(lr=0.01),
        base.with_(quant=QuantSpec("mia", 4)),
        base.with_(role="shadow"),
        base.with_(quant=QuantSpec("mia", 4, zero_point="centred")),
        base.with_(epochs=7),
        base.with_(role="ref", ref_index=1, ref_count=2),
    ]
    assert len({v.key for v in variants} | {base.key}) == len(variants) + 1


def test_train_caches_outputs_and_reuses(_isolated):
    cfg = _config(quant=QuantSpec("mia", 4))
    m = train(cfg)
    assert (m.path / "meta.json").exists() and m.path == model_dir(cfg)
    out = m.outputs
    for s in SPLITS:
        assert out["logits"][s].shape == (400, 10) and torch.isfinite(out["logits"][s]).all()
        assert out["labels"][s].shape == (400,)
    assert torch.equal(out["train_indices"], out["indices"]["target_in"])
    mtime = (m.path / "model.pt").stat().st_mtime_ns
    again = train(cfg)
    assert (again.path / "model.pt").stat().st_mtime_ns == mtime  # not retrained
    model = again.load()
    for _, layer in selected_layers(model, cfg.quant):
        assert len(torch.unique(layer.weight)) <= max_levels(4)
    # the cached logits are the reloaded model's outputs
    from qmia.data import dataset_info, load_dataset
    from qmia.train import predict

    x, _ = load_dataset("digits")
    fresh = predict(model, x[out["indices"]["target_out"]], dataset_info("digits"))
    assert torch.allclose(fresh, out["logits"]["target_out"], atol=1e-4)
    assert not any(p.name.endswith(".part") for p in m.path.iterdir())


def test_training_is_deterministic_by_seed(_isolated, monkeypatch):
    cfg = _config(epochs=3)
    a = train(cfg).outputs["logits"]["target_out"]
    monkeypatch.setenv("QMIA_CACHE", str(_isolated / "other"))
    b = train(cfg).outputs["logits"]["target_out"]
    assert torch.allclose(a, b, atol=1e-5)


def test_full_precision_learns_digits():
    m = train(_config(epochs=30))
    assert m.meta["accuracy"]["target_out"] > 0.8


def test_dorefa_lenet_learns_digits():
    # LeNet-5 has no BatchNorm: DoReFa's [-1, 1] weights need the He gain to train at all
    m = train(_config(quant=QuantSpec("dorefa", 4), epochs=30))
    assert m.meta["accuracy"]["target_out"] > 0.8


def test_ref_models_train_on_half_the_candidates():
    m = train(_config(role="ref", ref_index=0, ref_count=2, epochs=1))
    o = m.outputs
    cand = set(torch.cat([o["indices"]["target_in"], o["indices"]["target_out"]]).tolist())
    t = set(o["train_indices"].tolist())
    assert t <= cand and 300 < len(t) < 500  # about half of the 800 candidates
    from qmia.splits import half_subset

    other = set(half_subset(torch.cat([o["indices"]["target_in"], o["indices"]["target_out"]]), 1, 2, 0).tolist())
    assert not (t & other) and (t | other) == cand  # with 2 models, each candidate is in exactly one


def test_cli_trains_then_reuses(_isolated):
    cmd = [
        sys.executable,
        "-m",
        "qmia",
        "train",
        "--dataset",
        "digits",
        "--arch",
        "lenet",
        "--quant",
        "mia",
        "--bits",
        "4",
        "--profile",
        "smoke",
        "--no-progress",
    ]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "trained in" in first.stdout
    path = first.stdout.strip().splitlines()[-1]
    assert json.loads((_isolated / "cache" / "models" / path.split("/")[-1] / "meta.json").read_text())[
        "label"
    ].endswith("mia-4b/target/seed0")
    second = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "reused cache" in second.stdout


@pytest.mark.parametrize(
    "args, match",
    [
        (["--quant", "mia"], "needs --bits"),
        (["--quant", "mia", "--bits", "0"], "1 to 32"),
        (["--bits", "4"], "needs --quant"),
    ],
)
def test_cli_rejects_bad_bits(args, match):
    r = subprocess.run(
        [sys.executable, "-m", "qmia", "train", "--profile", "smoke", *args], capture_output=True, text=True
    )
    assert r.returncode == 2 and match in r.stderr


def test_config_rejects_bad_input():
    with pytest.raises(ValueError, match="ref_count >= 2"):
        TrainConfig("digits", "lenet", 10, 1, role="ref", ref_index=2, ref_count=2)
    with pytest.raises(ValueError, match="target, shadow, ref"):
        TrainConfig("digits", "lenet", 10, 1, role="victim")
    with pytest.raises(ValueError, match="valid: smoke, quick, paper"):
        get_profile("huge")


def test_compute_precision_is_a_recorded_setting_of_the_config(monkeypatch):
    """The paper profile computes in bf16 (autocast, channels_last) on a CPU as on CUDA; smoke and quick in float32;
    fp32 keys another model, while the keys of the stored (bf16) paper models stay what they were."""
    import importlib

    train_mod = importlib.import_module("qmia.train")  # the module (qmia.train is also the function)
    paper, smoke = get_profile("paper"), get_profile("smoke")
    assert paper.config("resnet20").precision == "bf16" and paper.config("resnet20").key == "29ac6e624c5b0954"
    assert smoke.config("lenet").precision == get_profile("quick").config("lenet").precision == "fp32"
    assert paper.config("resnet20", precision="fp32").key != paper.config("resnet20").key
    with pytest.raises(ValueError, match="valid: bf16, fp32"):
        smoke.config("lenet", precision="fp16")
    seen = {}
    for precision in ("bf16", "fp32"):
        cfg = _config(epochs=1, precision=precision)
        job = train_mod.prepare(cfg, device="cpu")

        def record(module, inputs, output, precision=precision) -> None:
            seen.setdefault(precision, (output.dtype, inputs[0].is_contiguous(memory_format=torch.channels_last)))

        hook = job.model.conv1.register_forward_hook(record)
        loop.fit(job.model, cfg, job.x_train, job.y_train, progress=False)
        hook.remove()
    assert seen["bf16"] == (torch.bfloat16, True) and seen["fp32"][0] == torch.float32
    m = train(_config(epochs=1, precision="bf16"))
    assert m.meta["precision"] == ("bf16 autocast" if compute.cpu_native_bf16() else "bf16 autocast, emulated")
    assert train(_config(epochs=1)).meta["precision"] == "fp32"
    monkeypatch.setattr(compute, "cpu_native_bf16", lambda: False)
    assert compute.compute_record(_config(precision="bf16"), torch.device("cpu")) == "bf16 autocast, emulated"
    assert compute.compute_record(_config(precision="bf16"), torch.device("cuda")) == "bf16 autocast"
