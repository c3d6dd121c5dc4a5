"""How much of a layer the paper's quantizer clamps: the share of weights whose codes fall outside the clamp's range,
per reading and bitwidth (the book's clipping page), and the most distinct values a layer can hold."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .quantizers import mia_constants, reading_spec


def clipped_fraction(w: torch.Tensor, bits: int, zero_point: int = 2, reading: str = "literal") -> float:
    """Share of a tensor's weights that the clamp moves (codes outside its range), under ``reading``."""
    levels, zero, anchored, top = mia_constants(bits, zero_point, reading)
    s = (w.max() - w.min()) / levels
    if s <= 0:
        return 0.0
    codes = torch.round((w - w.min() * anchored) / s) + zero
    return float(((codes < 0) | (codes > top)).float().mean())


def max_levels(bits: int, reading: str = "literal") -> int:
    """Most distinct values a layer can hold: the codes 0..nbins (2^b + 2) under Algorithm 1's
    clamp ('literal', 'min-anchored'), 0..2^b - 1 (2^b) under Eq. 2-4 as printed."""
    return 2**bits if reading == "printed" else 2**bits + 2


def clipped_shares(layers: list[tuple[str, nn.Module]], readings: list[str], bits: list[int]) -> dict[str, np.ndarray]:
    """{reading: layers x bits array}: the share of each layer's weights each reading's clamp moves at each bitwidth."""
    out = {}
    for r in readings:
        specs = [reading_spec(r, b) for b in bits]
        out[r] = np.array([[clipped_fraction(m.weight.detach(), s.bits, s.resolved_zero_point, s.reading) for s in specs]
                           for _, m in layers])
    return out
