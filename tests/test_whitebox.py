"""The white-box attack (issue 29): per-example gradient features, their cache, and the attack on them."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qmia import QuantSpec
from qmia.attacks import whitebox_attack
from qmia.config import TrainConfig
from qmia.experiment import evaluate
from qmia.models import build_model
from qmia.quantizers import export_quantized, quantize_model, weight_layers
from qmia.queries import gradient_features, whitebox_features
from qmia.train import train


def _loop(model, x, y):
    """The same features from one backward() per example."""
    model.eval()
    losses, norms = [], []
    for i in range(len(x)):
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[i : i + 1]).float(), y[i : i + 1])
        loss.backward()
        losses.append(float(loss))
        norms.append([float(m.weight.grad.norm()) for _, m in weight_layers(model)])
    return torch.tensor(losses), torch.tensor(norms)


@pytest.mark.parametrize(
    "arch, quant, shape",
    [
        ("lenet", QuantSpec(), (1, 16, 16)),
        ("lenet", QuantSpec("mia", 4), (1, 16, 16)),
        ("lenet", QuantSpec("dorefa", 4), (1, 16, 16)),
        ("resnet20", QuantSpec(), (3, 32, 32)),  # BatchNorm in eval mode: its running statistics, per example
    ],
)
def test_per_example_gradient_norms_equal_one_backward_per_example(arch, quant, shape):
    torch.manual_seed(0)
    model = build_model(arch, shape[0], 10, shape[1])
    model = export_quantized(quantize_model(model, quant, training=True), quant)  # as a trained model is loaded
    if arch == "resnet20":  # running statistics that are not the initial ones
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x, y = torch.randn(7, *shape), torch.randint(0, 10, (7,))
    loss, norms = gradient_features(model, x, y, batch_size=3)  # batches that do not divide n
    want_loss, want_norms = _loop(model, x, y)
    assert norms.shape == (7, len(weight_layers(model))) and (norms > 0).all()
    assert torch.allclose(loss, want_loss, rtol=1e-5, atol=1e-6)
    assert torch.allclose(norms, want_norms, rtol=1e-5, atol=1e-6)


def test_the_attack_scores_each_target_example_from_its_own_features_only():
    rng = np.random.default_rng(0)
    members = rng.lognormal(-3, 1, (200, 4))  # members: small losses and gradients
    nonmembers = rng.lognormal(-1, 1, (200, 4))
    target = np.concatenate([rng.lognormal(-3, 1, (100, 4)), rng.lognormal(-1, 1, (100, 4))])
    scores, preds = whitebox_attack(members, nonmembers, target)
    assert scores[:100].mean() > scores[100:].mean() + 0.3 and set(np.unique(preds)) <= {0, 1}
    # the target's membership is not an input: shuffling its examples shuffles their scores and nothing else
    order = rng.permutation(len(target))
    shuffled, _ = whitebox_attack(members, nonmembers, target[order])
    assert np.array_equal(shuffled, scores[order])


def test_whitebox_rows_on_a_memorising_model_and_its_cached_features(_isolated):
    cfg = TrainConfig(
        "digits", "lenet", n_per_split=100, epochs=60, batch_size=25, lr=0.05, weight_decay=0.0, augment=False,
        precision="fp32",
    )  # fmt: skip
    df = evaluate(cfg, ["whitebox"], n_boot=50, progress=False).set_index("attack")
    assert list(df.index) == ["whitebox", "whitebox-adaptive"]
    assert df.loc["whitebox", "target_train_acc"] == 1.0 and df.loc["whitebox", "auc"] > 0.6
    m = train(cfg)
    path = m.path / "whitebox_features.pt"
    first = whitebox_features(m, ("target_in",))["target_in"]
    assert path.exists() and first.shape == (100, 1 + 5)  # the loss and LeNet-5's five weight layers
    blob = torch.load(path, weights_only=True)
    blob["labels"]["target_in"][0, 0] += 1.0  # a changed feature fails its checksum: moved aside, computed again
    torch.save(blob, path)
    again = whitebox_features(m, ("target_in",))["target_in"]
    assert torch.equal(again, first) and list(m.path.glob("whitebox_features.pt.damaged*"))
    with pytest.raises(ValueError, match="valid: target_in"):
        whitebox_features(m, ("test",))
