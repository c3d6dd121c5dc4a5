import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from qmia.clipping import clipped_fraction, max_levels
from qmia.dorefa import DoReFaWeight
from qmia.mia_quantizer import MIAQuantizer, mia_quantize
from qmia.models import build_model
from qmia.quantizers import (
    PAPER_READINGS,
    QuantSpec,
    curve_spec,
    export_quantized,
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


@pytest.mark.parametrize(
    "spec",
    [
        QuantSpec("mia", 4),
        QuantSpec("mia", 3, zero_point="centred"),
        QuantSpec("mia", 4, mode="ptq"),
        QuantSpec("mia", 4, mode="project"),
        QuantSpec("dorefa", 3),
    ],
)
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


# ----------------------------------------------------------------------------- readings of Section 3.3

W_HAND = torch.tensor([-2.0, -1.0, -0.2, 0.6, 2.0])  # range 4; b = 3: s = 0.5; w/s = [-4, -2, -0.4, 1.2, 4]


def test_literal_reading_by_hand():
    # round(w/s) + 2 = [-2, 0, 2, 3, 6] -> clamp to 0..9 = [0, 0, 2, 3, 6] -> s * (c - 2)
    assert mia_quantize(W_HAND, 3, 2, "literal").tolist() == [-1.0, -1.0, 0.0, 0.5, 2.0]
    assert clipped_fraction(W_HAND, 3, 2, "literal") == pytest.approx(1 / 5)  # -2 is clipped to -2s = -1


def test_centred_reading_by_hand():
    # z = 2^(b-1) = 4: round(w/s) + 4 = [0, 2, 4, 5, 8], all inside 0..9 -> nothing clipped
    assert mia_quantize(W_HAND, 3, 4, "literal").tolist() == [-2.0, -1.0, 0.0, 0.5, 2.0]
    assert clipped_fraction(W_HAND, 3, 4, "literal") == 0.0


def test_min_anchored_reading_by_hand():
    # (w - r0)/s = [0, 2, 3.6, 5.2, 8] -> round + 2 = [2, 4, 6, 7, 10] -> clamp 0..9 = [2, 4, 6, 7, 9]
    # -> s * (c - 2) + r0 = [-2, -1, 0, 0.5, 1.5]: only the top weight (within s/2 of r1) is clipped
    assert mia_quantize(W_HAND, 3, 2, "min-anchored").tolist() == [-2.0, -1.0, 0.0, 0.5, 1.5]
    assert clipped_fraction(W_HAND, 3, 2, "min-anchored") == pytest.approx(1 / 5)


def test_printed_reading_by_hand():
    # Eq. 2-4: round(w/s) = [-4, -2, 0, 1, 4] -> clamp to 0..2^b - 1 = [0, 0, 0, 1, 4] -> s * c
    assert mia_quantize(W_HAND, 3, 0, "printed").tolist() == [0.0, 0.0, 0.0, 0.5, 2.0]
    assert clipped_fraction(W_HAND, 3, 0, "printed") == pytest.approx(2 / 5)  # both negative weights


@settings(max_examples=40, deadline=None)
@given(weights, st.integers(1, 10), st.sampled_from(["min-anchored", "printed"]))
def test_other_readings_stay_on_their_grid(w_spec, bits, reading):
    w = _tensor(w_spec)
    assume(w.max() > w.min())
    q = mia_quantize(w, bits, 0 if reading == "printed" else 2, reading)
    s = (w.max() - w.min()) / 2**bits
    offset = w.min() if reading == "min-anchored" else 0.0
    codes = (q - offset) / s
    assert torch.allclose(codes, codes.round(), atol=1e-2, rtol=1e-4)
    assert len(torch.unique(q)) <= max_levels(bits, reading)
    if reading == "printed":
        assert q.min() >= 0 and (q[w < 0] == 0).all()
    else:  # the clamp only ever moves the top code: everything below the top bin is plain rounding
        top = w >= w.max() - s / 2
        assert torch.allclose(q[~top], (torch.round((w[~top] - w.min()) / s)) * s + w.min(), atol=1e-5)


def test_constant_layer_is_left_exact():
    w = torch.full((3, 4), 0.37)
    for reading, z in (("literal", 2), ("min-anchored", 2), ("printed", 0)):
        assert torch.equal(mia_quantize(w, 4, z, reading), w)


def test_reading_specs_labels_and_validation():
    from qmia.quantizers import PAPER_READINGS, reading_spec
    from qmia.vocabulary import READING_INFO

    assert set(PAPER_READINGS) == set(READING_INFO) == {"literal", "centred", "min-anchored", "printed"}
    labels = {name: reading_spec(name, 4).label for name in PAPER_READINGS}
    assert labels == {"literal": "mia-4b", "centred": "mia-4b-zc", "min-anchored": "mia-4b-min", "printed": "mia-4b-eq"}
    assert all(reading_spec(n, 8).reading_name == n for n in PAPER_READINGS)
    with pytest.raises(ValueError, match="unknown reading 'odd'"):
        reading_spec("odd", 4)
    assert QuantSpec("mia", 4, reading="printed") == QuantSpec("mia", 4, reading="printed", zero_point=0)
    assert QuantSpec("mia", 4, zero_point=3).reading_name is None
    with pytest.raises(ValueError, match="literal, min-anchored, printed"):
        QuantSpec("mia", 4, reading="symmetric")
    with pytest.raises(ValueError, match="no zero point"):
        QuantSpec("mia", 4, reading="printed", zero_point=3)
    with pytest.raises(ValueError, match="reading='literal'"):
        QuantSpec("mia", 4, reading="min-anchored", zero_point="centred")
    with pytest.raises(ValueError, match="MIA quantizer"):
        QuantSpec("dorefa", 4, reading="printed")


def test_cache_keys_of_existing_configurations_are_unchanged():
    """Keys recorded before quantizer readings and versions existed: adding them must not retrain anything."""
    from qmia.config import TrainConfig

    recorded = {
        "b1a3f624b9e2fa1e": TrainConfig("digits", "lenet", 400, 30, batch_size=64),
        "3d67397cd1caf801": TrainConfig(
            "cifar10", "resnet20", 1000, 15, QuantSpec("mia", 16, zero_point="centred"), batch_size=32, seed=1
        ),
        "4f4e1a63344edc93": TrainConfig("cifar10", "resnet20", 1000, 15, QuantSpec("dorefa", 4), batch_size=32),
        "600138ee3e864070": TrainConfig(
            "fashion_mnist",
            "lenet",
            15000,
            50,
            QuantSpec("mia", 4, layers="last:5"),
            role="ref",
            ref_index=3,
            ref_count=16,
        ),
        "2fbac4cd7facf638": TrainConfig("cifar10", "resnet50", 15000, 50, QuantSpec("mia", 8), role="shadow"),
        "bc1174ba4a73cebf": TrainConfig("cifar10", "resnet20", 15000, 50, QuantSpec("mia", 4), augment=False),
    }
    assert {c.key: c for c in recorded.values()} == recorded
    base = recorded["bc1174ba4a73cebf"]
    new = {base.with_(quant=QuantSpec("mia", 4, reading=r)).key for r in ("min-anchored", "printed")}
    assert len(new) == 2 and base.key not in new
    # a version bump changes only the keys of the specs it covers (1-bit DoReFa)
    one_bit = base.with_(quant=QuantSpec("dorefa", 1)).quant.key_dict()
    assert one_bit["version"] == 2 and "version" not in base.with_(quant=QuantSpec("dorefa", 2)).quant.key_dict()


def test_one_bit_dorefa_keeps_the_weights_scale():
    w = torch.randn(16, 32) * 0.05
    q = DoReFaWeight(1, gain=(6 / 32) ** 0.5)(w)
    assert torch.allclose(q.abs(), w.abs().mean().expand_as(q))  # sign(W) E|W|, no gain on top
    q2 = DoReFaWeight(2, gain=2.0)(w)
    assert q2.abs().max() == pytest.approx(2.0)  # the gain scales the [-1, 1] levels of b >= 2


@pytest.mark.parametrize("curve", [*PAPER_READINGS, "dorefa"])
def test_curve_names_a_quantizer_and_curve_spec_inverts_it(curve):
    spec = curve_spec(curve, 4)
    assert spec.curve == curve and spec.bits == 4
    assert QuantSpec().curve == "none"
    assert QuantSpec("mia", 4, zero_point=5).curve == "literal"  # a zero point no reading names: the raw reading


def _by_the_equations(w: torch.Tensor, bits: int, z: int, reading: str) -> torch.Tensor:
    """The module docstring's formulas with scalar constants and torch.clamp (round passes the gradient through)."""
    r0, r1 = w.detach().min(), w.detach().max()
    s = (r1 - r0) / 2**bits
    ste = lambda x: x + (torch.round(x) - x).detach()  # noqa: E731
    if reading == "printed":
        return s * torch.clamp(ste(w / s), 0, 2**bits - 1)
    o = r0 if reading == "min-anchored" else 0.0
    return s * (torch.clamp(ste((w - o) / s) + z, 0, 2**bits + 1) - z) + o


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("reading", list(PAPER_READINGS))
def test_quantizer_module_is_bit_identical_to_the_equations_in_value_and_gradient(bits, reading):
    # The module holds its constants as tensors (so models of different bitwidths share a vmapped step); that
    # must change no bit of W_Q nor of the straight-through gradient, which clamp zeroes at both ends of the range.
    spec = curve_spec(reading, bits)
    g = torch.Generator().manual_seed(bits)
    w = (torch.randn(48, 9, generator=g) * 0.7 - 0.1).requires_grad_()
    weight = torch.randn(48, 9, generator=g)
    mine = MIAQuantizer(bits, spec.resolved_zero_point, spec.reading)(w)
    ref = _by_the_equations(w, bits, spec.resolved_zero_point, spec.reading)
    assert torch.equal(mine, ref)
    (g_mine,), (g_ref,) = torch.autograd.grad((mine * weight).sum(), w), torch.autograd.grad((ref * weight).sum(), w)
    assert torch.equal(g_mine, g_ref)
    # some weights sit on or past an end of the clamp; at 1 bit the printed reading's codes 0 and 1 are both ends
    assert (g_mine == 0).any() and ((g_mine != 0).any() or (reading, bits) == ("printed", 1))
    assert set(MIAQuantizer(bits).state_dict()) == set()  # the buffers are not saved with a model
