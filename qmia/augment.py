"""What a batch looks like to the model: standardisation, normalisation, and the paper's training augmentations
(random crop and flip) as seeded draws that a batch applies, so that the same draws can be replayed (the label-only
attack queries a model under its own training augmentations, :mod:`qmia.queries`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .data import DatasetInfo


def standardize(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """Float images in [0, 1] -> standardised per channel with the dataset's mean and std."""
    mean = torch.tensor(info.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(info.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def normalize(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    """uint8 N x C x H x W -> float32 scaled to [0, 1] and standardised per channel."""
    return standardize(x.float() / 255, info)


def augment_draws(
    n: int, info: DatasetInfo, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """The random choices of :func:`apply_augment` for ``n`` images, drawn on the CPU from
    ``generator`` (so runs are reproducible on any device) and moved to ``device`` at once.

    {'dy', 'dx'}: crop offsets in [0, 2 * pad] (int64, n); 'flip' (bool, n) for 'crop+flip';
    'angle' (radians in [-10, 10] degrees, float32, n) for 'crop+rotate'.
    """
    p = info.pad
    u = torch.rand(3, n, generator=generator, device="cpu")
    draws = {"dy": (u[0] * (2 * p + 1)).long().clamp_max(2 * p), "dx": (u[1] * (2 * p + 1)).long().clamp_max(2 * p)}
    if info.augment == "crop+flip":
        draws["flip"] = u[2] < 0.5
    else:
        draws["angle"] = (u[2] * 2 - 1) * math.radians(10)
    return {k: v.to(device, non_blocking=True) for k, v in draws.items()}


def apply_augment(x: torch.Tensor, info: DatasetInfo, draws: dict[str, torch.Tensor]) -> torch.Tensor:
    """Augment a float batch N x C x H x W in [0, 1] with the choices ``draws`` (each of length N).

    'crop+flip' (CIFAR-10): random crop after zero-padding by ``info.pad``, horizontal flip.
    'crop+rotate' (Fashion-MNIST, digits): random crop, random rotation within +-10 degrees.
    No host synchronisation: everything stays on x's device.
    """
    n, c, h, w = x.shape
    dev = x.device
    p = info.pad
    padded = F.pad(x, (p, p, p, p))
    rows = (torch.arange(h, device=dev)[None] + draws["dy"][:, None])[:, None, :, None]
    cols = (torch.arange(w, device=dev)[None] + draws["dx"][:, None])[:, None, None, :]
    out = padded[
        torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None], rows, cols
    ]
    if "flip" in draws:
        return torch.where(draws["flip"][:, None, None, None], out.flip(-1), out)
    angle = draws["angle"]
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(out.dtype), [n, c, h, w], align_corners=False)
    return F.grid_sample(out, grid, align_corners=False)


def augment(x: torch.Tensor, info: DatasetInfo, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's augmentation (see :func:`apply_augment`) with fresh draws from ``generator``."""
    return apply_augment(x, info, augment_draws(len(x), info, generator, x.device))
