"""The paper's architectures: LeNet-5, ResNet-20 (CIFAR variant) and ResNet-50 (CIFAR stem).

Every ReLU is its own ``nn.ReLU`` module, registered in forward order, so DoReFa-Net can
swap them for quantized activations; every weight layer is an ``nn.Conv2d`` or
``nn.Linear`` so the quantizers find them (:func:`qmia.quantizers.weight_layers`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) for C x H x W inputs; 28x28x1 gives the classic 61,706 parameters.

    conv 6@5x5 (pad 2) -> ReLU -> max-pool 2 -> conv 16@5x5 -> ReLU -> max-pool 2
    -> fc 120 -> ReLU -> fc 84 -> ReLU -> fc classes.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        side = ((image_size // 2) - 4) // 2
        if side < 1:
            raise ValueError(f"LeNet-5 needs images of at least 10x10 pixels; got {image_size}")
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = torch.flatten(x, 1)
        x = self.relu4(self.fc2(self.relu3(self.fc1(x))))
        return self.fc3(x)


class BasicBlock(nn.Module):
    """ResNet basic block with the CIFAR paper's option-A shortcut (identity, zero-padded channels)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.stride, self.pad = stride, planes - in_planes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


def global_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """Mean over the spatial dimensions: N x C x H x W -> N x C. The same numbers as ``AdaptiveAvgPool2d(1)``
    and a flatten, which under ``vmap`` on CUDA (channels_last) falls back to a per-model loop for its
    ``as_strided_`` (PyTorch has no batching rule for it)."""
    return x.mean((2, 3))


class ResNetCIFAR(nn.Module):
    """ResNet-(6n+2) of He et al. 2016, Section 4.2: 16-32-64 channels, n blocks per stage."""

    def __init__(self, n: int = 3, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        blocks, planes = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(BasicBlock(planes, width, 2 if (stage > 0 and i == 0) else 1))
                planes = width
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.relu1(self.bn1(self.conv1(x))))
        return self.fc(global_avg_pool(x))


class Bottleneck(nn.Module):
    """ResNet bottleneck block (1x1, 3x3, 1x1; expansion 4) with a projection shortcut."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != out:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
        self.relu3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + self.shortcut(x))


class ResNet50CIFAR(nn.Module):
    """ResNet-50 (3-4-6-3 bottlenecks, 64-512 planes) with a CIFAR stem: 3x3 conv, no max-pool."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu1 = nn.ReLU()
        blocks, planes = [], 64
        for stage, (width, count) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
            for i in range(count):
                blocks.append(Bottleneck(planes, width, 2 if (stage > 0 and i == 0) else 1))
                planes = width * Bottleneck.expansion
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.relu1(self.bn1(self.conv1(x))))
        return self.fc(global_avg_pool(x))


ARCHS: dict[str, Callable[..., nn.Module]] = {
    "lenet": lambda c, k, s: LeNet5(c, k, s),
    "resnet20": lambda c, k, s: ResNetCIFAR(3, c, k),
    "resnet50": lambda c, k, s: ResNet50CIFAR(c, k),
}


def build_model(arch: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """Build an architecture by registry name ('lenet', 'resnet20', 'resnet50')."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHS)}")
    return ARCHS[arch](in_channels, num_classes, image_size)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
