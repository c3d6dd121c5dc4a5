"""DoReFa-Net's k-bit weights and activations (Zhou et al. 2016), the paper's Table 6 baseline, as modules that
:func:`qmia.quantizers.quantize_model` attaches to a model."""

from __future__ import annotations

import torch
from torch import nn

from .quantizers import check_bits


def _quantize_unit(x: torch.Tensor, n) -> torch.Tensor:
    """k-bit uniform quantization of x in [0, 1] with a straight-through gradient (DoReFa Eq. 5); n = 2^k - 1
    (a number, or a 0-dim tensor, so that models of different bitwidths can share one vmapped step)."""
    return x + (torch.round(x * n) / n - x).detach()


class DoReFaWeight(nn.Module):
    """DoReFa-Net weights (Zhou et al. 2016, Eq. 9): tanh, normalise to [0, 1], k-bit, map to [-1, 1].

    Gives at most 2^b values in [-1, 1], times a constant ``gain``. For b = 1 DoReFa uses
    sign(W) * E|W|, as in the paper; that is already on the weights' own scale, so the gain
    is not applied there.

    ``gain``: :func:`quantize_model` sets it to sqrt(6 / fan_in), so that weights spread over
    [-gain, gain] have He initialisation's variance 2 / fan_in. Under the BatchNorm that follows
    every quantized layer of the ResNets a constant gain changes nothing; LeNet-5 has no
    normalisation, and with weights of magnitude 1 its pre-activations saturate DoReFa's [0, 1]
    activation clip and it does not learn (``tests/test_quantizers.py`` trains it both ways).
    """

    def __init__(self, bits: int, gain: float = 1.0) -> None:
        super().__init__()
        self.bits = check_bits("bits", bits)
        self.gain = float(gain)
        self.register_buffer("steps", torch.tensor(float(2**bits - 1)), persistent=False)  # 2^b - 1, per model

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.bits == 1:
            e = w.detach().abs().mean()
            return w + (torch.sign(w) * e - w).detach()
        t = torch.tanh(w)
        x = t / (2 * t.detach().abs().max().clamp_min(1e-12)) + 0.5
        return self.gain * (2 * _quantize_unit(x, self.steps) - 1)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, gain={self.gain:.4g}" + (" (unused at 1 bit)" if self.bits == 1 else "")


class DoReFaActivation(nn.Module):
    """DoReFa-Net activation: clip to [0, 1], then k-bit uniform (straight-through). Replaces ReLU."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = check_bits("act_bits", bits)
        self.register_buffer("steps", torch.tensor(float(2**bits - 1)), persistent=False)  # 2^b - 1, per model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _quantize_unit(torch.clamp(x, 0, 1), self.steps)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"
