"""Several models trained at once (qmia.multitrain) give what one-by-one training gives."""

import json

import pytest
import torch

from qmia import QuantSpec, get_profile
from qmia.quantizers import export_quantized, max_levels, reading_spec, selected_layers
from qmia.multitrain import fit_many, group_key, train_many
from qmia.train import fit, is_cached, model_dir, prepare


def _configs(arch, quant, **kw):
    p = get_profile("smoke")
    base = p.config(arch, "digits", quant).with_(**kw)
    return [base, base.with_(seed=1), base.with_(role="ref", ref_index=1, ref_count=4)]


def _states(jobs):
    return [{k: v.clone() for k, v in j.model.state_dict().items()} for j in jobs]


@pytest.mark.parametrize("quant", [QuantSpec(), QuantSpec("mia", 4), QuantSpec("dorefa", 4)])
def test_fit_many_matches_fit_model_by_model(quant):
    configs = _configs("lenet", quant, epochs=2)
    alone, together = [prepare(c, device="cpu") for c in configs], [prepare(c, device="cpu") for c in configs]
    losses = [fit(j.model, j.config, j.x_train, j.y_train, False) for j in alone]
    losses_many = fit_many([j.model for j in together], configs, [j.x_train for j in together],
                           [j.y_train for j in together], False)
    assert losses_many == pytest.approx(losses, rel=1e-4)
    for a, b in zip(_states(alone), _states(together)):
        for k in a:
            assert torch.allclose(a[k].float(), b[k].float(), atol=1e-4), k


def test_fit_many_matches_fit_with_batchnorm_for_one_step():
    # ResNet-20 has BatchNorm: statistics and running buffers stay per model. (Over many steps its
    # training amplifies float rounding chaotically, so one step is what can be compared exactly.)
    configs = _configs("resnet20", QuantSpec("mia", 4), epochs=1, n_per_split=64, batch_size=64)
    alone, together = [prepare(c, device="cpu") for c in configs], [prepare(c, device="cpu") for c in configs]
    for j in alone:
        fit(j.model, j.config, j.x_train, j.y_train, False)
    fit_many([j.model for j in together], configs, [j.x_train for j in together], [j.y_train for j in together], False)
    for a, b in zip(_states(alone), _states(together)):
        for k in a:
            assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    assert not torch.equal(_states(together)[0]["bn1.running_mean"], _states(together)[1]["bn1.running_mean"])


def test_fit_many_rejects_models_that_cannot_share_steps():
    configs = _configs("lenet", QuantSpec(), epochs=1)
    jobs = [prepare(c, device="cpu") for c in configs]
    mixed = [configs[0], configs[1].with_(quant=QuantSpec("mia", 4))]
    with pytest.raises(ValueError, match="differ only in seed, role and quantizer bits"):
        fit_many([j.model for j in jobs[:2]], mixed, [j.x_train for j in jobs[:2]], [j.y_train for j in jobs[:2]], False)
    with pytest.raises(ValueError, match="one size"):
        fit_many([j.model for j in jobs[:2]], configs[:2], [jobs[0].x_train, jobs[1].x_train[:10]],
                 [jobs[0].y_train, jobs[1].y_train[:10]], False)
    assert group_key(configs[0]) == group_key(configs[2]) != group_key(mixed[1])
    c = configs[0]
    # bits, zero point and reading are buffers of one module layout; DoReFa, 1-bit DoReFa, partial layers, mode are not
    assert len({group_key(c.with_(quant=q)) for q in (QuantSpec("mia", 4), reading_spec("centred", 8),
                                                      reading_spec("min-anchored", 2), reading_spec("printed", 16))}) == 1
    others = (QuantSpec("dorefa", 4), QuantSpec("dorefa", 1), QuantSpec("mia", 4, layers="last:3"),
              QuantSpec("mia", 4, mode="project"), QuantSpec())
    assert len({group_key(c.with_(quant=q)) for q in (QuantSpec("mia", 4), *others)}) == 6
    assert group_key(c.with_(quant=QuantSpec("dorefa", 2))) == group_key(c.with_(quant=QuantSpec("dorefa", 8)))
    assert group_key(c.with_(quant=QuantSpec("mia", 4), epochs=3)) != group_key(c.with_(quant=QuantSpec("mia", 4)))


@pytest.mark.parametrize("quants", [
    (QuantSpec("mia", 4), reading_spec("centred", 8), reading_spec("min-anchored", 2), reading_spec("printed", 3)),
    (QuantSpec("dorefa", 2), QuantSpec("dorefa", 4), QuantSpec("dorefa", 3, act_bits=2)),
], ids=["mia-readings", "dorefa"])
def test_fit_many_trains_different_bitwidths_and_readings_together(quants):
    base = get_profile("smoke").config("lenet", "digits", QuantSpec()).with_(epochs=2)
    configs = [base.with_(quant=q, seed=i) for i, q in enumerate(quants)]
    alone, together = [prepare(c, device="cpu") for c in configs], [prepare(c, device="cpu") for c in configs]
    losses = [fit(j.model, j.config, j.x_train, j.y_train, False) for j in alone]
    losses_many = fit_many([j.model for j in together], configs, [j.x_train for j in together],
                           [j.y_train for j in together], False)
    assert losses_many == pytest.approx(losses, rel=1e-4)
    for a, b in zip(_states(alone), _states(together)):
        for k in a:
            assert torch.allclose(a[k].float(), b[k].float(), atol=1e-4), k
    for j, c in zip(together, configs):  # and each exports on its own grid
        for _, layer in selected_layers(export_quantized(j.model, c.quant), c.quant):
            assert len(torch.unique(layer.weight)) <= max_levels(c.quant.bits, c.quant.reading)


def test_train_many_caches_each_model_and_reuses_them(_isolated):
    configs = _configs("lenet", QuantSpec("mia", 4), epochs=2)
    models = train_many(configs, device="cpu", progress=False, group_size=3)
    assert [m.config for m in models] == configs and all(is_cached(c) for c in configs)
    metas = [json.loads((model_dir(c) / "meta.json").read_text()) for c in configs]
    assert [m["trained_with"] for m in metas] == [3, 3, 3]
    assert len(models[2].outputs["train_indices"]) == 400  # the ref model: half of target_in + target_out
    stamps = [(model_dir(c) / "model.pt").stat().st_mtime_ns for c in configs]
    train_many(configs, device="cpu", progress=False, group_size=3)
    assert [(model_dir(c) / "model.pt").stat().st_mtime_ns for c in configs] == stamps
