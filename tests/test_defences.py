import pytest
import torch
from torch import nn

from qmia.defences import (
    Defence,
    finetune_epochs_for,
    make_permanent,
    prunable,
    prune_model,
    ptq_model,
    ptq_weight,
    sparsity_of,
)
from qmia.dp import dp_compatible, dp_fit, noise_multiplier
from qmia.models import build_model


def _lenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("lenet", 1, 10, 16)


def _separable(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n 1x8x8 images of two classes whose means differ by one standard deviation per pixel."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    return torch.randn(n, 1, 8, 8, generator=g) + (y.float() - 0.5).view(-1, 1, 1, 1), y


# ----------------------------------------------------------------------------- Defence


def test_defence_keys_labels_and_names():
    none = Defence()
    assert none.key_dict() == {} and none.label == "none" and none.name == "no defence"
    cases = {
        Defence("prune", sparsity=0.8): ("prune-80%-global", "pruning 80 % (global)"),
        Defence("prune", sparsity=0.875, scope="layer", finetune_epochs=2): (
            "prune-87.5%-layer-ft2",
            "pruning 87.5 % (per layer, 2 fine-tuning epochs)",
        ),
        Defence("dp", epsilon=4.0): ("dp-eps4", "DP-SGD ε = 4"),
        Defence("dp", epsilon=0.5, max_grad_norm=2.0): ("dp-eps0.5-c2", "DP-SGD ε = 0.5, C = 2"),
        Defence("ptq", bits=4, granularity="channel"): ("ptq-4b-channel", "PTQ 4-bit per-channel"),
        Defence("ptq", bits=8): ("ptq-8b-tensor", "PTQ 8-bit per-tensor"),
    }
    for d, (label, name) in cases.items():
        assert (d.label, d.name) == (label, name)
    assert Defence("dp", epsilon=4.0).key_dict() == {"kind": "dp", "epsilon": 4.0, "max_grad_norm": 1.0}
    assert Defence("dp", epsilon=4).key_dict() == Defence("dp", epsilon=4.0).key_dict()
    assert Defence("ptq", bits=4).key_dict() == {"kind": "ptq", "bits": 4, "granularity": "tensor"}
    variants = [
        none,
        *cases,
        Defence("prune", sparsity=0.8, scope="layer"),
        Defence("prune", sparsity=0.5),
        Defence("dp", epsilon=8.0),
        Defence("ptq", bits=4),
    ]
    keys = [repr(sorted(d.key_dict().items())) for d in variants]
    assert len(set(keys)) == len(variants)
    assert len({d.label for d in variants}) == len(variants)


def test_finetune_epochs_default():
    assert finetune_epochs_for(Defence("prune", sparsity=0.5), 30) == 7
    assert finetune_epochs_for(Defence("prune", sparsity=0.5), 2) == 1
    assert finetune_epochs_for(Defence("prune", sparsity=0.5, finetune_epochs=0), 30) == 0
    with pytest.raises(ValueError, match="'prune'"):
        finetune_epochs_for(Defence("dp", epsilon=1.0), 30)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"kind": "dp", "epsilon": 0.0}, "epsilon must be > 0"),
        ({"kind": "dp", "epsilon": -1.0}, "epsilon must be > 0"),
        ({"kind": "dp"}, "epsilon must be > 0"),
        ({"kind": "dp", "epsilon": 1.0, "max_grad_norm": 0.0}, "max_grad_norm must be > 0"),
        ({"kind": "prune", "sparsity": 1.0}, r"sparsity must be in \[0, 1\)"),
        ({"kind": "prune"}, r"sparsity must be in \[0, 1\)"),
        ({"kind": "prune", "sparsity": 0.5, "scope": "net"}, "valid: global, layer"),
        ({"kind": "prune", "sparsity": 0.5, "finetune_epochs": -1}, "finetune_epochs"),
        ({"kind": "ptq", "bits": 1}, "from 2 to 16"),
        ({"kind": "ptq", "bits": 17}, "from 2 to 16"),
        ({"kind": "ptq", "bits": 4, "granularity": "row"}, "valid: tensor, channel"),
        ({"kind": "dp", "epsilon": 1.0, "sparsity": 0.5}, "does not use sparsity"),
        ({"kind": "none", "bits": 4}, "does not use bits"),
        ({"kind": "ptq", "bits": 4, "scope": "layer"}, "does not use scope"),
        ({"kind": "distill"}, "valid: none, prune, dp, ptq"),
    ],
)
def test_bad_settings_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        Defence(**kw)


# ----------------------------------------------------------------------------- pruning


def test_prunable_takes_conv_and_linear_weights_only():
    model = build_model("resnet20", 3, 10, 32)
    pairs = prunable(model)
    assert all(isinstance(m, (nn.Conv2d, nn.Linear)) and n == "weight" for m, n in pairs)
    assert len(pairs) == 20  # 19 convolutions and the classifier


@pytest.mark.parametrize("sparsity", [0.3, 0.8])
def test_global_pruning_zeroes_the_smallest_weights(sparsity):
    model = _lenet()
    before = [m.weight.detach().clone() for m, _ in prunable(model)]
    prune_model(model, sparsity, "global")
    after = [m.weight.detach() for m, _ in prunable(model)]
    total = sum(w.numel() for w in before)
    assert sum(int((w == 0).sum()) for w in after) == round(sparsity * total)
    assert sparsity_of(model) == pytest.approx(round(sparsity * total) / total)
    kept = torch.cat([b[a != 0].abs() for b, a in zip(before, after)])
    pruned = torch.cat([b[a == 0].abs() for b, a in zip(before, after)])
    assert kept.min() >= pruned.max()
    for b, a in zip(before, after):  # kept weights are unchanged
        assert torch.equal(a[a != 0], b[a != 0])


def test_layer_pruning_zeroes_the_same_share_of_every_layer():
    model = _lenet()
    before = [m.weight.detach().clone() for m, _ in prunable(model)]
    prune_model(model, 0.6, "layer")
    for b, (m, _) in zip(before, prunable(model)):
        w = m.weight.detach()
        assert int((w == 0).sum()) == round(0.6 * w.numel())
        assert b[w != 0].abs().min() >= b[w == 0].abs().max()
    with pytest.raises(ValueError, match="valid: global, layer"):
        prune_model(_lenet(), 0.5, "net")
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        prune_model(_lenet(), 1.0)


def test_masks_keep_pruned_weights_at_zero_through_training_and_make_permanent():
    model = prune_model(_lenet(), 0.7, "global")
    zero_masks = [m.weight_mask == 0 for m, _ in prunable(model)]
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 1, 16, 16, generator=g), torch.randint(0, 10, (16,), generator=g)
    before = [m.weight_orig.detach().clone() for m, _ in prunable(model)]
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert any(not torch.equal(b, m.weight_orig) for b, (m, _) in zip(before, prunable(model)))  # it did train
    model(x)  # the forward pre-hook recomputes weight = weight_orig * mask
    for z, (m, _) in zip(zero_masks, prunable(model)):
        assert (m.weight[z] == 0).all()
    share = sparsity_of(model)
    assert share == pytest.approx(0.7, abs=1e-4)
    make_permanent(model)
    for z, (m, _) in zip(zero_masks, prunable(model)):
        assert not hasattr(m, "weight_orig") and not hasattr(m, "weight_mask")
        assert isinstance(m.weight, nn.Parameter) and not m._forward_pre_hooks
        assert (m.weight[z] == 0).all()
    assert sparsity_of(model) == share


# ----------------------------------------------------------------------------- post-training quantization


def _channels_of_different_scales() -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    scales = torch.tensor([0.01, 0.1, 1.0, 10.0]).view(4, 1, 1, 1)
    return torch.randn(4, 3, 3, 3, generator=g) * scales


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_ptq_levels_scale_and_idempotence(bits, granularity):
    w = _channels_of_different_scales()
    wq = ptq_weight(w, bits, granularity)
    assert wq.shape == w.shape and wq.dtype == w.dtype
    q = 2 ** (bits - 1) - 1
    groups = [(w, wq)] if granularity == "tensor" else list(zip(w, wq))
    for a, b in groups:
        m = a.abs().max()
        assert b.abs().max() == m  # the largest magnitude is kept exactly
        assert len(torch.unique(b)) <= 2**bits - 1
        codes = b / (m / q)
        assert torch.allclose(codes, codes.round(), atol=1e-4) and codes.abs().max() <= q + 1e-4
        assert (b - a).abs().max() <= m / q / 2 * (1 + 1e-5)  # round to nearest
    assert torch.equal(ptq_weight(wq, bits, granularity), wq)


def test_ptq_two_bits_is_ternary_and_zeros_stay_zero():
    w = _channels_of_different_scales()
    w[1] = 0
    wq = ptq_weight(w, 2, "channel")
    for a, b in zip(w, wq):
        s = a.abs().max()
        assert set(torch.unique(b).tolist()) <= {-float(s), 0.0, float(s)}
    assert (wq[1] == 0).all()
    assert (ptq_weight(torch.zeros(3, 4), 4, "tensor") == 0).all()


def test_per_channel_error_is_not_above_per_tensor_error():
    w = _channels_of_different_scales()
    for bits in (2, 4, 8):
        err_channel = (ptq_weight(w, bits, "channel") - w).pow(2).mean()
        err_tensor = (ptq_weight(w, bits, "tensor") - w).pow(2).mean()
        assert err_channel <= err_tensor
    assert (ptq_weight(w, 4, "channel")[0] != 0).any()  # the small channel survives per channel only
    assert (ptq_weight(w, 4, "tensor")[0] == 0).all()


def test_ptq_model_quantizes_weights_only():
    model = build_model("resnet20", 3, 10, 32)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # norm layers and biases off their round initial values
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ptq_model(model, 3, "channel")
    weights = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, ptq_weight(before[k], 3, "channel"))
            assert all(len(torch.unique(c)) <= 7 for c in v)
        else:
            assert torch.equal(v, before[k]), k
    pruned = prune_model(_lenet(), 0.5)  # masks in place: zeros stay zero
    ptq_model(pruned, 4, "tensor")
    assert sparsity_of(pruned) >= 0.5
    with pytest.raises(ValueError, match="from 2 to 16"):
        ptq_model(_lenet(), 1)
    with pytest.raises(ValueError, match="valid: tensor, channel"):
        ptq_model(_lenet(), 4, "row")


# ----------------------------------------------------------------------------- DP-SGD


@pytest.mark.parametrize("epsilon, sample_rate, epochs", [(4.0, 0.02, 10), (1.0, 0.1, 3)])
def test_noise_multiplier_meets_the_target_epsilon(epsilon, sample_rate, epochs):
    from opacus.accountants import RDPAccountant

    delta = 1e-3
    sigma = noise_multiplier(epsilon, delta, sample_rate, epochs)
    assert sigma > 0
    acc = RDPAccountant()
    for _ in range(int(epochs / sample_rate)):
        acc.step(noise_multiplier=sigma, sample_rate=sample_rate)
    eps = acc.get_epsilon(delta)
    assert 0.99 * epsilon <= eps <= epsilon
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        noise_multiplier(0.0, delta, sample_rate, epochs)


def test_dp_compatible_replaces_batchnorm_by_groupnorm():
    from opacus.validators import ModuleValidator

    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)
    ).eval()
    fixed = dp_compatible(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fixed.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in fixed.modules())
    assert isinstance(model[1], nn.BatchNorm2d)  # a copy: the original is unchanged
    assert not fixed.training  # the mode is kept
    assert ModuleValidator.validate(fixed.train(), strict=True) == []
    resnet = dp_compatible(build_model("resnet20", 3, 10, 32))
    assert sum(isinstance(m, nn.GroupNorm) for m in resnet.modules()) == 19
    with pytest.raises(ValueError, match="conv1"):  # a pruning mask is a buffer Opacus cannot privatise
        dp_compatible(prune_model(_lenet(), 0.5))


def test_dp_fit_spends_at_most_epsilon_learns_and_is_deterministic():
    x, y = _separable()
    target = 4.0

    def run(seed: int) -> tuple[nn.Module, float]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
        state = torch.random.get_rng_state()
        out = dp_fit(model, x, y, epochs=3, batch_size=50, lr=0.5, epsilon=target, max_grad_norm=1.0, seed=seed)
        assert torch.equal(torch.random.get_rng_state(), state)  # the caller's global generator is left alone
        return out

    model, spent = run(0)
    assert 0 < spent <= target * 1.01
    assert spent >= 0.99 * target  # calibrated to the whole run, not far below it
    assert type(model) is nn.Sequential and not model.training
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())
    assert "opacus" not in type(model).__module__
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean()
    assert accuracy > 0.8  # chance is 0.5
    again, spent_again = run(0)
    assert spent_again == spent
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    other, _ = run(1)
    assert not all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))


def test_dp_fit_applies_augmentation_and_refuses_bad_settings():
    x, y = _separable(60)
    seen = []

    def flip(xb: torch.Tensor) -> torch.Tensor:
        seen.append(len(xb))
        return xb.flip(-1)

    model, spent = dp_fit(
        nn.Sequential(nn.Flatten(), nn.Linear(64, 2)),
        x,
        y,
        epochs=1,
        batch_size=20,
        lr=0.1,
        epsilon=8.0,
        augment_fn=flip,
    )
    assert seen and spent <= 8.0 * 1.01
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        dp_fit(model, x, y, epochs=1, batch_size=20, lr=0.1, epsilon=0.0)
    with pytest.raises(ValueError, match="max_grad_norm must be > 0"):
        dp_fit(model, x, y, epochs=1, batch_size=20, lr=0.1, epsilon=1.0, max_grad_norm=-1.0)
