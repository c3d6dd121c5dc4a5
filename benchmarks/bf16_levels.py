"""What bf16 autocast does to a quantized layer's weights: distinct levels before and after the cast to bf16.

    python benchmarks/bf16_levels.py

For each reading of the paper's quantizer at 4, 8, 12 and 16 bits, on a 64 x 64 x 3 x 3 tensor of N(0, 0.05^2)
weights (seed 0): the quantized tensor's distinct values, those left after ``.to(torch.bfloat16)`` (what autocast
feeds a convolution), and the share of weights moved by more than half a quantization level. The method chapter's
table ("Compute precision") is this script's output.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qmia.mia_quantizer import mia_quantize  # noqa: E402
from qmia.quantizers import PAPER_READINGS, QuantSpec  # noqa: E402


def bf16_levels(w: torch.Tensor, bits: int, reading: str) -> tuple[int, int, float]:
    """(levels, levels after the bf16 cast, share of weights moved by more than half a level) of ``w`` quantized."""
    spec = QuantSpec("mia", bits, **PAPER_READINGS[reading])
    q = mia_quantize(w, bits, spec.resolved_zero_point, spec.reading)
    cast = q.to(torch.bfloat16).float()
    levels = torch.unique(q)
    step = float((levels[1:] - levels[:-1]).min()) if len(levels) > 1 else float("inf")
    return len(levels), len(torch.unique(cast)), float(((cast - q).abs() > step / 2).float().mean())


def main() -> int:
    w = torch.randn(64, 64, 3, 3, generator=torch.Generator().manual_seed(0)) * 0.05
    print(f"{'reading':13s} bits  levels  in bf16  moved > half a level")
    for reading in PAPER_READINGS:
        for bits in (4, 8, 12, 16):
            n, nb, moved = bf16_levels(w, bits, reading)
            print(f"{reading:13s} {bits:4d} {n:7d} {nb:8d}  {moved:6.1%}")
    print(f"full precision: {len(torch.unique(w))} distinct weights, {len(torch.unique(w.to(torch.bfloat16)))} in bf16")
    return 0


if __name__ == "__main__":
    sys.exit(main())
