import pytest
import torch

from qmia.models import build_model, count_parameters
from qmia.quantizers import weight_layers


@pytest.mark.parametrize(
    "arch, channels, size, params, layers",
    [
        ("lenet", 1, 28, 61_706, 5),  # the classic LeNet-5 on 28x28
        ("resnet20", 3, 32, 269_722, 20),  # He et al.: "0.27M"
        ("resnet50", 3, 32, 23_520_842, 54),  # torchvision's resnet50 less the 7x7 stem and 1000-way head
    ],
)
def test_parameter_counts_and_weight_layers(arch, channels, size, params, layers):
    model = build_model(arch, channels, 10, size)
    assert count_parameters(model) == params
    assert len(weight_layers(model)) == layers


@pytest.mark.parametrize("arch, channels, size", [("lenet", 1, 16), ("resnet20", 1, 16), ("resnet50", 3, 32)])
def test_forward_shapes(arch, channels, size):
    out = build_model(arch, channels, 10, size)(torch.randn(2, channels, size, size))
    assert out.shape == (2, 10)


def test_unknown_arch_lists_valid_ones():
    with pytest.raises(ValueError, match="lenet, resnet20, resnet50"):
        build_model("vgg", 3, 10, 32)


@pytest.mark.parametrize("arch", ["resnet20", "resnet50"])
def test_resnets_pool_globally_as_adaptive_average_pooling_does(arch):
    model = build_model(arch, 3, 10, 32).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    features = model.layers(model.relu1(model.bn1(model.conv1(x))))
    expected = model.fc(torch.nn.functional.adaptive_avg_pool2d(features, 1).flatten(1))
    assert torch.allclose(model(x), expected, atol=1e-6)
    assert not any(isinstance(m, torch.nn.AdaptiveAvgPool2d) for m in model.modules())  # no vmap fallback loop
