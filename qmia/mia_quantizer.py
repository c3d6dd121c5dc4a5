"""The paper's MIA quantizer (Famili & Lao 2023, Section 3.3, Eq. 1-4, Algorithm 1) under each formula its text
admits (:data:`qmia.quantizers.FORMULAS`; ``QuantSpec.reading`` names one, the book's readings add the zero point:
:data:`qmia.quantizers.PAPER_READINGS`). With [r0, r1] = [min W, max W] of a layer and s = (r1 - r0) / 2^b (Eq. 2):

* ``literal`` -- Algorithm 1 as printed, zero point z (the paper: z = 2)::

      nbins = 2^b + 1;  W_C = clamp(round(W / s) + z, 0, nbins);  W_Q = s * (W_C - z)

  at most 2^b + 2 values, spaced by s, from -z*s to (nbins - z)*s: with z = 2 every weight
  below -2.5 s is clipped to -2 s (most negative weights at 8 bits and more).
  ``zero_point="centred"`` takes z = 2^(b-1) instead (the book's "centred" reading).
* ``min-anchored`` -- the codes counted from r0, offset by z ("using zero point z, we can
  offset the range")::

      W_C = clamp(round((W - r0) / s) + z, 0, nbins);  W_Q = s * (W_C - z) + r0

  the weights fill the codes z..2^b + z, so z = 2 clips only the top code (the weights
  within s/2 of r1, moved down by s).
* ``printed`` -- Eq. 2-4 of Section 3.3 as printed, which have no zero point: W_r =
  round(W / s) "clamping r1 to 2^b - 1", W_Q = min(max(W_r, r0), r1) with the code range
  [r0, r1] = [0, 2^b - 1]::

      W_C = clamp(round(W / s), 0, 2^b - 1);  W_Q = s * W_C

  unsigned codes: every negative weight becomes 0.

Zero point: the paper fixes z = 2, which leaves only two levels below zero, so at 8 bits
and more the clamp clips nearly every negative weight. z = 2 is the default (it is what
the paper states); ``QuantSpec(zero_point="centred")`` gives z = 2^(b-1), which keeps the
grid symmetric, so the book can separate the effect of quantization from that of clipping.
"""

from __future__ import annotations

import torch
from torch import nn

from .quantizers import FORMULAS, check_bits


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward (the straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def mia_constants(bits: int, zero_point: int = 2, reading: str = "literal") -> tuple[float, float, float, float]:
    """The numbers that set the paper's quantizer under ``reading``: (2^b, z, anchored, top code), where
    ``anchored`` is 1 when codes count from r0 ('min-anchored') and 0 when from zero, and the clamp keeps codes
    0..top (2^b + 1 under Algorithm 1, 2^b - 1 under Eq. 2-4 as printed, whose z is 0)."""
    if reading not in FORMULAS:
        raise ValueError(f"unknown quantizer reading {reading!r}; valid: {', '.join(FORMULAS)}")
    if reading == "printed":
        return float(2**bits), 0.0, 0.0, float(2**bits - 1)
    return float(2**bits), float(zero_point), float(reading == "min-anchored"), float(2**bits + 1)


def quantize_with(w: torch.Tensor, levels, zero, anchored, top) -> torch.Tensor:
    """The quantizer of every reading in one formula, from :func:`mia_constants` (numbers, or 0-dim tensors, so
    that models with different bitwidths and readings can share one vmapped step)::

        s = (r1 - r0) / 2^b;  o = anchored * r0;  W_C = clamp(round((W - o) / s) + z, 0, top);  W_Q = s (W_C - z) + o

    With o = 0 this is bit for bit the literal and printed formulas, with o = r0 the min-anchored one.
    """
    r0, r1 = torch.aminmax(w.detach())  # one pass over the layer
    s = (r1 - r0) / levels
    step = torch.where(s > 0, s, torch.ones_like(s))
    offset = r0 * anchored
    codes = torch.clamp(_round_ste((w - offset) / step) + zero, min=0)
    w_c = torch.where(codes >= top, top, codes)  # the upper clamp with a tensor bound; like clamp, no gradient at top
    return torch.where(s > 0, step * (w_c - zero) + offset, w)


def mia_quantize(w: torch.Tensor, bits: int, zero_point: int = 2, reading: str = "literal") -> torch.Tensor:
    """The paper's quantizer applied to one weight tensor, under ``reading`` (see the module docstring).

    Returns W_Q with the same shape as ``w``, on a grid of step s = (max w - min w) / 2^b (Eq. 2).
    The step is a constant to autograd; rounding passes the gradient straight through and the
    clamp passes it only inside its range, so a clipped weight gets no gradient (the usual STE
    for round-and-clamp). A constant tensor (s = 0) is returned exactly.
    """
    return quantize_with(w, *mia_constants(bits, zero_point, reading))


class MIAQuantizer(nn.Module):
    """Parametrization: forward gives W_Q (Eq. 4); backward is the straight-through estimator."""

    def __init__(self, bits: int, zero_point: int = 2, reading: str = "literal") -> None:
        super().__init__()
        self.bits, self.zero_point, self.reading = check_bits("bits", bits), zero_point, reading
        # The constants live in (unsaved) buffers, not in Python attributes, so a vmapped step over models with
        # different bitwidths or readings (qmia.multitrain) gives each model its own.
        for name, value in zip(("levels", "zero", "anchored", "top"), mia_constants(bits, zero_point, reading)):
            self.register_buffer(name, torch.tensor(value), persistent=False)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return quantize_with(w, self.levels, self.zero, self.anchored, self.top)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, zero_point={self.zero_point}, reading={self.reading}"
