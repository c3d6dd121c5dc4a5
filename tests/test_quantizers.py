import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qmia.models import build_model
from qmia.quantizers import (
    DoReFaWeight,
    MIAQuantizer,
    QuantSpec,
    clipped_fraction,
    export_quantized,
    max_levels,
    mia_quantize,
    quantize_model,
    selected_layers,
    weight_layers,
)

weights = st.tuples(st.integers(1, 64), st.integers(1, 64), st.integers(0, 2**31 - 1), st.floats(1e-3, 10.0))


def _tensor(shape_seed):
    rows, cols, seed, scale = shape_seed
    return torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed)) * scale


@settings(max_examples=60, deadline=None)
@given(weights, st.integers(1, 10), st.sampled_from([1, 2, 3, "centred"]))
def test_mia_levels_are_few_and_evenly_spaced(w_spec, bits, z):
    w = _tensor(w_spec)
    zp = 2 ** (bits - 1) if z == "centred" else z
    assume(zp <= 2**bits and w.max() > w.min())
    q = mia_quantize(w, bits, zp)
    s = (w.max() - w.min()) / 2**bits
    values = torch.unique(q)
    assert len(values) <= max_levels(bits) == 2**bits + 2
    codes = q / s + zp
    assert torch.allclose(codes, codes.round(), atol=1e-3, rtol=1e-4)  # every value is s * integer
    assert codes.round().min() >= 0 and codes.round().max() <= 2**bits + 1  # Eq. 3's clamp
    if len(values) > 1:
        gaps = values.diff() / s
        assert torch.allclose(gaps, gaps.round(), atol=1e-3, rtol=1e-4) and gaps.round().min() >= 1


def test_mia_quantizer_matches_the_paper_equations_by_hand():
    w = torch.tensor([-1.0, -0.3, 0.0, 0.26, 1.0])  # range 2, b = 2: s = 0.5, nbins = 5
    q = mia_quantize(w, bits=2, zero_point=2)
    # round(w/s) = [-2, -1, 0, 1, 2] -> +z = [0, 1, 2, 3, 4] -> s*(c - z)
    assert q.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    q8 = mia_quantize(w, bits=3, zero_point=2)  # s = 0.25: -1 -> code -2 is clamped to 0 -> -0.5
    assert q8[0].item() == pytest.approx(-0.5)
    assert clipped_fraction(w, 3, 2) == pytest.approx(1 / 5)


def test_gradients_reach_latent_weights():
    layer = torch.nn.Linear(8, 4)
    torch.nn.utils.parametrize.register_parametrization(layer, "weight", MIAQuantizer(4))
    layer(torch.randn(5, 8)).sum().backward()
    g = layer.parametrizations.weight.original.grad
    assert g is not None and g.abs().sum() > 0


@settings(max_examples=40, deadline=None)
@given(weights, st.integers(2, 8))
def test_dorefa_weights_in_unit_interval_with_few_levels(w_spec, bits):
    q = DoReFaWeight(bits)(_tensor(w_spec))
    assert q.min() >= -1 - 1e-6 and q.max() <= 1 + 1e-6
    assert len(torch.unique(q)) <= 2**bits


def test_dorefa_gradients_and_activations():
    model = quantize_model(build_model("resnet20", 3, 10, 32), QuantSpec("dorefa", 2, act_bits=2))
    x = torch.randn(2, 3, 32, 32)
    model(x).sum().backward()
    latent = [m.parametrizations.weight.original for _, m in selected_layers(model, QuantSpec("dorefa", 2))]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in latent)
    acts = [m for m in model.modules() if type(m).__name__ == "DoReFaActivation"]
    assert len(acts) == 19  # every ReLU after the (full-precision) first convolution


def test_last_k_leaves_other_layers_bit_identical():
    torch.manual_seed(0)
    model = build_model("resnet20", 3, 10, 32)
    before = {n: m.weight.detach().clone() for n, m in weight_layers(model)}
    spec = QuantSpec("mia", 4, layers="last:5")
    export_quantized(quantize_model(model, spec), spec)
    changed = [n for n, m in weight_layers(model) if not torch.equal(before[n], m.weight)]
    assert changed == [n for n, _ in weight_layers(model)][-5:]


@pytest.mark.parametrize("spec", [QuantSpec("mia", 4), QuantSpec("mia", 3, zero_point="centred"),
                                  QuantSpec("mia", 4, mode="ptq"), QuantSpec("mia", 4, mode="project"),
                                  QuantSpec("dorefa", 3)])
def test_exported_model_holds_only_the_levels(spec):
    torch.manual_seed(1)
    model = export_quantized(quantize_model(build_model("lenet", 1, 10, 28), spec), spec)
    for _, layer in selected_layers(model, spec):
        assert not torch.nn.utils.parametrize.is_parametrized(layer)
        w = layer.weight.detach()
        assert len(torch.unique(w)) <= (2**spec.bits if spec.method == "dorefa" else max_levels(spec.bits))
        gaps = torch.unique(w).diff()
        assert len(gaps) >= 1
        steps = gaps / gaps.min()  # every value sits on one evenly spaced grid
        assert torch.allclose(steps, steps.round(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "mia", "bits": 0}, "1 to 32"),
        ({"method": "mia", "bits": 33}, "1 to 32"),
        ({"method": "mia", "bits": 4.0}, "integer"),
        ({"method": "mia", "bits": None}, "integer"),
        ({"method": "ternary", "bits": 2}, "none, mia, dorefa"),
        ({"method": "mia", "bits": 4, "zero_point": 0}, "no quantization level"),
        ({"method": "mia", "bits": 2, "zero_point": 5}, "no quantization level"),
        ({"method": "mia", "bits": 4, "layers": "last:0"}, "last:K"),
        ({"method": "mia", "bits": 4, "mode": "qat"}, "ste, project, ptq"),
        ({"method": "none", "bits": 4}, "full precision"),
    ],
)
def test_bad_specs_raise_naming_what_is_valid(kwargs, match):
    with pytest.raises(ValueError, match=match):
        QuantSpec(**kwargs)


def test_labels():
    assert QuantSpec().label == "fp32"
    assert QuantSpec("mia", 4, layers="last:5").label == "mia-4b-last5"
    assert QuantSpec("mia", 8, zero_point="centred").label == "mia-8b-zc"
    assert QuantSpec("dorefa", 4, act_bits=8).label == "dorefa-w4a8"
