"""Weight (and activation) quantizers: the paper's MIA quantizer and DoReFa-Net.

The paper (Famili & Lao 2023, Section 3.3, Eq. 1-4, Algorithm 1) quantizes the weights
of every convolution and fully connected layer, layer by layer, with a uniform
round-and-clamp quantizer; activations stay in full precision:

    nbins = 2^b + 1                                   (Eq. 1)
    s     = (r1 - r0) / 2^b, [r0, r1] = [min W, max W]  (Eq. 2)
    W_C   = clamp(round(W / s) + z, 0, nbins)         (Eq. 3)
    W_Q   = s * (W_C - z)                             (Eq. 4)

with zero point z = 2. The integer codes W_C run over 0..nbins, so a layer holds at most
nbins + 1 = 2^b + 2 distinct values, spaced by s, from -z*s to (nbins - z)*s.

Readings of "quantized during training" (``QuantSpec.mode``):

* ``ste`` (default): full-precision latent weights are kept and updated by SGD; the
  forward pass uses W_Q; the gradient passes straight through the rounding and, as the
  clamp's own derivative, is zero for weights the clamp of Eq. 3 clips (the usual
  straight-through estimator for round-and-clamp). This is the standard
  quantization-aware training that the paper's Algorithm 1 describes (quantize, forward,
  backward, update) and the reading under which "during training" and a usable model
  at 4 bits are both true.

Zero point: the paper fixes z = 2, which leaves only two levels below zero, so at 8 bits
and more the clamp clips nearly every negative weight. z = 2 is the default (it is what
the paper states); ``QuantSpec(zero_point="centred")`` gives z = 2^(b-1), which keeps the
grid symmetric, so the book can separate the effect of quantization from that of clipping.
* ``project``: the stored weights themselves are replaced by W_Q after every optimizer
  step (no latent copy); the forward pass uses them as they are.
* ``ptq``: train in full precision, quantize once at the end (post-training).

Quantizers attach to layers with :mod:`torch.nn.utils.parametrize`, so the latent
weight lives in ``layer.parametrizations.weight.original`` and ``layer.weight`` is the
quantized tensor; :func:`export_quantized` removes the parametrization and leaves plain
layers whose stored weights hold only the quantized levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

QUANTIZERS = ("none", "mia", "dorefa")
MODES = ("ste", "project", "ptq")
MIN_BITS, MAX_BITS = 1, 32


def _check_bits(name: str, bits: object) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not (MIN_BITS <= bits <= MAX_BITS):
        raise ValueError(
            f"{name} must be an integer from {MIN_BITS} to {MAX_BITS} (the paper uses 4, 8, 16); "
            f"got {bits!r}. Use quant='none' for full precision."
        )
    return bits


def parse_layers(layers: str) -> int | None:
    """Parse a layer selection: ``'all'`` -> None, ``'last:K'`` -> K (K >= 1)."""
    if layers == "all":
        return None
    if isinstance(layers, str) and layers.startswith("last:"):
        k = layers[5:]
        if k.isdigit() and int(k) >= 1:
            return int(k)
    raise ValueError(f"layers must be 'all' or 'last:K' with K >= 1 (e.g. 'last:5'); got {layers!r}")


@dataclass(frozen=True)
class QuantSpec:
    """How a model is quantized.

    method: 'none' (full precision), 'mia' (the paper's quantizer) or 'dorefa'.
    bits: weight bitwidth b, 1..32 (None for 'none').
    act_bits: DoReFa activation bitwidth (defaults to ``bits``); must be None for 'mia'.
    layers: 'all' weight layers or 'last:K'.
    zero_point: the paper's z (default 2), or 'centred' for z = 2^(b-1); 'mia' only.
    mode: 'ste' (default), 'project' or 'ptq'; see the module docstring. 'mia' only.
    """

    method: str = "none"
    bits: int | None = None
    act_bits: int | None = None
    layers: str = "all"
    zero_point: int | str = 2
    mode: str = "ste"

    def __post_init__(self) -> None:
        if self.method not in QUANTIZERS:
            raise ValueError(f"unknown quantizer {self.method!r}; valid: {', '.join(QUANTIZERS)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown quantization mode {self.mode!r}; valid: {', '.join(MODES)}")
        parse_layers(self.layers)
        if self.method == "none":
            if self.bits is not None or self.act_bits is not None:
                raise ValueError("quant='none' is full precision and takes no bits")
            return
        _check_bits("bits", self.bits)
        if self.method == "dorefa":
            if self.act_bits is not None:
                _check_bits("act_bits", self.act_bits)
            if self.mode != "ste":
                raise ValueError("DoReFa-Net trains with the straight-through estimator only (mode='ste')")
        elif self.act_bits is not None:
            raise ValueError("the MIA quantizer leaves activations in full precision; act_bits is DoReFa only")
        if self.method == "mia":
            nbins = 2**self.bits + 1
            z = self.resolved_zero_point
            if not (1 <= z <= nbins - 1):
                raise ValueError(
                    f"zero point {z} leaves no quantization level on one side of zero at {self.bits} bits; "
                    f"valid: integers 1..{nbins - 1}, or 'centred'"
                )

    @property
    def resolved_zero_point(self) -> int:
        if self.zero_point == "centred":
            return 2 ** (self.bits - 1) if self.bits else 0
        if isinstance(self.zero_point, bool) or not isinstance(self.zero_point, int):
            raise ValueError(f"zero_point must be an integer or 'centred'; got {self.zero_point!r}")
        return self.zero_point

    @property
    def label(self) -> str:
        """Short human label, e.g. 'fp32', 'mia-4b', 'dorefa-w4a4', 'mia-4b-last5-zc'."""
        if self.method == "none":
            return "fp32"
        if self.method == "dorefa":
            s = f"dorefa-w{self.bits}a{self.act_bits or self.bits}"
        else:
            s = f"mia-{self.bits}b"
            if self.zero_point != 2:
                s += "-zc" if self.zero_point == "centred" else f"-z{self.zero_point}"
            if self.mode != "ste":
                s += f"-{self.mode}"
        k = parse_layers(self.layers)
        return s + (f"-last{k}" if k else "")

    @classmethod
    def parse(cls, quant: str, bits: int | None = None, **kw) -> "QuantSpec":
        """Build a spec from CLI-style strings ('none' ignores bits)."""
        if quant == "none":
            return cls()
        return cls(method=quant, bits=bits, **kw)


# ----------------------------------------------------------------------------- MIA quantizer


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward (the straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def mia_quantize(w: torch.Tensor, bits: int, zero_point: int = 2) -> torch.Tensor:
    """The paper's Eq. 1-4 applied to one weight tensor.

    Returns W_Q with the same shape as ``w``; at most 2^b + 2 distinct values spaced by
    s = (max w - min w) / 2^b. The step s is a constant to autograd; rounding passes the
    gradient straight through and the clamp of Eq. 3 passes it only inside [0, nbins], so
    a weight clipped by the clamp gets no gradient (the usual STE for round-and-clamp).
    """
    nbins = 2**bits + 1
    r0, r1 = torch.aminmax(w.detach())  # one pass over the layer
    s = (r1 - r0) / 2**bits
    s = torch.where(s > 0, s, torch.ones_like(s))  # constant layer: any step keeps it exact
    w_c = torch.clamp(_round_ste(w / s) + zero_point, 0, nbins)
    return s * (w_c - zero_point)


def mia_step(w: torch.Tensor, bits: int) -> float:
    """The step s of Eq. 2 for a weight tensor."""
    return float((w.max() - w.min()) / 2**bits)


class MIAQuantizer(nn.Module):
    """Parametrization: forward gives W_Q (Eq. 4); backward is the straight-through estimator."""

    def __init__(self, bits: int, zero_point: int = 2) -> None:
        super().__init__()
        self.bits, self.zero_point = _check_bits("bits", bits), zero_point

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return mia_quantize(w, self.bits, self.zero_point)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, zero_point={self.zero_point}"


# ----------------------------------------------------------------------------- DoReFa-Net


def _quantize_unit(x: torch.Tensor, bits: int) -> torch.Tensor:
    """k-bit uniform quantization of x in [0, 1] with a straight-through gradient (DoReFa Eq. 5)."""
    n = 2**bits - 1
    return x + (torch.round(x * n) / n - x).detach()


class DoReFaWeight(nn.Module):
    """DoReFa-Net weights (Zhou et al. 2016, Eq. 9): tanh, normalise to [0, 1], k-bit, map to [-1, 1].

    Gives at most 2^b values in [-1, 1], times a constant ``gain``. For b = 1 DoReFa uses
    sign(W) * E|W|, as in the paper.

    ``gain``: :func:`quantize_model` sets it to sqrt(6 / fan_in), so that weights spread over
    [-gain, gain] have He initialisation's variance 2 / fan_in. Under the BatchNorm that follows
    every quantized layer of the ResNets a constant gain changes nothing; LeNet-5 has no
    normalisation, and with weights of magnitude 1 its pre-activations saturate DoReFa's [0, 1]
    activation clip: on digits (smoke profile) LeNet-5 w4a4 stays at chance (11 %) with gain 1
    and reaches 94 % test accuracy with this gain (full precision: 91 %).
    """

    def __init__(self, bits: int, gain: float = 1.0) -> None:
        super().__init__()
        self.bits = _check_bits("bits", bits)
        self.gain = float(gain)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.bits == 1:
            e = w.detach().abs().mean()
            return self.gain * (w + (torch.sign(w) * e - w).detach())
        t = torch.tanh(w)
        x = t / (2 * t.detach().abs().max().clamp_min(1e-12)) + 0.5
        return self.gain * (2 * _quantize_unit(x, self.bits) - 1)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, gain={self.gain:.4g}"


class DoReFaActivation(nn.Module):
    """DoReFa-Net activation: clip to [0, 1], then k-bit uniform (straight-through). Replaces ReLU."""

    def __init__(self, bits: int) -> None:
        super().__init__()
        self.bits = _check_bits("act_bits", bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _quantize_unit(torch.clamp(x, 0, 1), self.bits)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


# ----------------------------------------------------------------------------- attaching to models

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Convolution and fully connected layers in registration (forward) order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, WEIGHT_LAYERS)]


def selected_layers(model: nn.Module, spec: QuantSpec) -> list[tuple[str, nn.Module]]:
    """The weight layers a spec quantizes: 'all' or the last K.

    DoReFa-Net with 'all' leaves the first and last layers in full precision, as its
    reference code (tensorpack's dorefa example) and paper do; the MIA quantizer takes all.
    """
    all_layers = weight_layers(model)
    k = parse_layers(spec.layers)
    if k is not None and k > len(all_layers):
        raise ValueError(f"layers='last:{k}' but the model has only {len(all_layers)} weight layers")
    if k is not None:
        return all_layers[-k:]
    return all_layers[1:-1] if spec.method == "dorefa" else all_layers


def _weight_parametrization(spec: QuantSpec, layer: nn.Module) -> nn.Module:
    if spec.method == "mia":
        return MIAQuantizer(spec.bits, spec.resolved_zero_point)
    fan_in = layer.weight[0].numel()  # in_channels/groups x kernel area, or in_features
    return DoReFaWeight(spec.bits, gain=(6 / fan_in) ** 0.5)


def _replace_relus(model: nn.Module, after: str, bits: int) -> int:
    """Replace nn.ReLU modules registered after the module named ``after`` by DoReFa activations."""
    names = [n for n, _ in model.named_modules()]
    start = names.index(after)
    count = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.ReLU) and names.index(name) > start:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, DoReFaActivation(bits))
            count += 1
    return count


def quantize_model(model: nn.Module, spec: QuantSpec, training: bool = True) -> nn.Module:
    """Attach ``spec``'s quantizers to ``model`` in place and return it.

    With ``training=True`` and mode 'ptq' or 'project' nothing is attached to the forward
    pass ('ptq' quantizes at export; 'project' calls :func:`project_weights` after each step).
    DoReFa also replaces the ReLUs that follow the first quantized layer by k-bit activations.
    """
    if spec.method == "none":
        return model
    layers = selected_layers(model, spec)
    if spec.method == "mia" and training and spec.mode != "ste":
        return model
    for _, layer in layers:
        parametrize.register_parametrization(layer, "weight", _weight_parametrization(spec, layer))
    if spec.method == "dorefa":  # quantize the activations that feed quantized layers
        names = [n for n, _ in weight_layers(model)]
        first = names.index(layers[0][0])
        _replace_relus(model, names[max(first - 1, 0)], spec.act_bits or spec.bits)
    return model


@torch.no_grad()
def project_weights(model: nn.Module, spec: QuantSpec) -> None:
    """Mode 'project': overwrite the stored weights of the selected layers with W_Q."""
    for _, layer in selected_layers(model, spec):
        layer.weight.copy_(mia_quantize(layer.weight, spec.bits, spec.resolved_zero_point))


def export_quantized(model: nn.Module, spec: QuantSpec) -> nn.Module:
    """Return ``model`` with plain layers whose stored weights are the quantized ones.

    For 'ptq' this is where quantization happens; for 'project' the weights are projected
    once more so the export is exactly on the grid. DoReFa activation modules stay.
    """
    if spec.method == "none":
        return model
    if spec.method == "mia" and spec.mode in ("ptq", "project"):
        project_weights(model, spec)
        return model
    for _, layer in selected_layers(model, spec):
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    return model


def clipped_fraction(w: torch.Tensor, bits: int, zero_point: int = 2) -> float:
    """Share of a tensor's weights that Eq. 3's clamp moves (codes outside 0..nbins)."""
    nbins = 2**bits + 1
    s = (w.max() - w.min()) / 2**bits
    if s <= 0:
        return 0.0
    codes = torch.round(w / s) + zero_point
    return float(((codes < 0) | (codes > nbins)).float().mean())


def max_levels(bits: int) -> int:
    """Most distinct values a layer can hold under Eq. 3-4: the codes 0..nbins, i.e. 2^b + 2."""
    return 2**bits + 2
