"""How much of a layer the paper's quantizer clamps: the share of weights whose codes fall outside the clamp's range,
per reading and bitwidth (the book's clipping page), the statistics of a trained model's weights stored beside the
results (:func:`weight_stats`), and the most distinct values a layer can hold."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .mia_quantizer import mia_constants
from .quantizers import PAPER_READINGS, reading_spec, weight_layers
from .results import WEIGHT_STATS_BITS, weight_stats_path
from .store import DamagedEntry, atomic_write_json, move_aside, read_sealed, seal
from .train import train


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
        out[r] = np.array(
            [
                [clipped_fraction(m.weight.detach(), s.bits, s.resolved_zero_point, s.reading) for s in specs]
                for _, m in layers
            ]
        )
    return out


def weight_stats(config, data_root=None) -> dict:
    """What the book reads of a trained model's weights, stored beside the results so that a build needs no
    weights: {label, key, commit, layers: [names], sizes: [weights per layer], clipped: {reading: layers x bits
    share of each layer's weights the reading's clamp moves}, bits: the bitwidths 1..32}. Read when stored, else
    computed from the trained model (trained or read from the cache) and stored, sealed (an edited or unsealed file
    is moved aside and computed again)."""
    path = weight_stats_path(config.key)
    if path.exists():
        try:
            return read_sealed(path)
        except DamagedEntry as e:
            move_aside(path, str(e))
    model = train(config, data_root=data_root)
    layers = weight_layers(model.load())
    shares = clipped_shares(layers, list(PAPER_READINGS), list(WEIGHT_STATS_BITS))
    stats = {
        "label": config.label,
        "key": config.key,
        "commit": model.meta.get("commit", ""),
        "device": model.meta.get("device", ""),
        "layers": [n for n, _ in layers],
        "sizes": [int(m.weight.numel()) for _, m in layers],
        "bits": list(WEIGHT_STATS_BITS),
        "clipped": {r: np.round(s, 7).tolist() for r, s in shares.items()},
    }
    atomic_write_json(seal(stats), path)
    return stats


def clipped_table(stats: dict, readings, bits) -> dict[str, np.ndarray]:
    """{reading: layers x bits array} of the stored shares at ``bits`` (each in 1..32)."""
    bad = [b for b in bits if b not in stats["bits"]]
    if bad:
        raise ValueError(f"weight statistics are stored for bitwidths 1 to 32; got {bad}")
    cols = [stats["bits"].index(b) for b in bits]
    return {r: np.asarray(stats["clipped"][r])[:, cols] for r in readings}
