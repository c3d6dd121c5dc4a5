"""Weight (and activation) quantizers: the paper's MIA quantizer and DoReFa-Net.

The paper (Famili & Lao 2023, Section 3.3) quantizes the weights of every convolution and fully connected
layer, layer by layer, with a uniform round-and-clamp quantizer; activations stay in full precision. Its text
admits several formulas (:data:`FORMULAS`, written out in :mod:`qmia.mia_quantizer`); the book's named
readings, a formula with its zero point, are :data:`PAPER_READINGS`. DoReFa-Net's modules: :mod:`qmia.dorefa`.

Readings of "quantized during training" (``QuantSpec.mode``):

* ``ste`` (default): full-precision latent weights are kept and updated by SGD; the
  forward pass uses W_Q; the gradient passes straight through the rounding and, as the
  clamp's own derivative, is zero for weights the clamp of Eq. 3 clips (the usual
  straight-through estimator for round-and-clamp). This is the standard
  quantization-aware training that the paper's Algorithm 1 describes (quantize, forward,
  backward, update) and the reading under which "during training" and a usable model
  at 4 bits are both true.

* ``project``: the stored weights themselves are replaced by W_Q after every optimizer
  step (no latent copy); the forward pass uses them as they are.
* ``ptq``: train in full precision, quantize once at the end (post-training).

Quantizers attach to layers with :mod:`torch.nn.utils.parametrize`, so the latent
weight lives in ``layer.parametrizations.weight.original`` and ``layer.weight`` is the
quantized tensor; :func:`export_quantized` removes the parametrization and leaves plain
layers whose stored weights hold only the quantized levels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

QUANTIZERS = ("none", "mia", "dorefa")
MODES = ("ste", "project", "ptq")
FORMULAS = ("literal", "min-anchored", "printed")  # the formulas a QuantSpec.reading names
MIN_BITS, MAX_BITS = 1, 32

# Versions of a quantizer's behaviour, by (method, bits or None for every bitwidth). A change that alters
# the weights one spec trains to bumps its entry here, and only the keys of those specs change
# (:meth:`QuantSpec.key_dict`); version 1 is left out of the key so older keys stay valid.
#   dorefa at 1 bit, v2: the He gain is no longer applied on top of E|W| (it was applied twice).
QUANTIZER_VERSIONS: dict[tuple[str, int | None], int] = {("dorefa", 1): 2}


def check_bits(name: str, bits: object) -> int:
    """``bits`` if it is an integer bitwidth the quantizers take (MIN_BITS..MAX_BITS), else ValueError naming it."""
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
    zero_point: the paper's z (default 2), or 'centred' for z = 2^(b-1) ('literal' only);
        'mia' only; the 'printed' reading has none (stored as 0).
    mode: 'ste' (default), 'project' or 'ptq'; see the module docstring. 'mia' only.
    reading: which quantizer the paper's text means: 'literal' (Algorithm 1, default),
        'min-anchored' or 'printed' (Eq. 2-4); see the module docstring. 'mia' only.
    """

    method: str = "none"
    bits: int | None = None
    act_bits: int | None = None
    layers: str = "all"
    zero_point: int | str = 2
    mode: str = "ste"
    reading: str = "literal"

    def __post_init__(self) -> None:
        if self.method not in QUANTIZERS:
            raise ValueError(f"unknown quantizer {self.method!r}; valid: {', '.join(QUANTIZERS)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown quantization mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.reading not in FORMULAS:
            raise ValueError(f"unknown quantizer reading {self.reading!r}; valid: {', '.join(FORMULAS)}")
        parse_layers(self.layers)
        if self.method != "mia" and self.reading != "literal":
            raise ValueError(
                f"reading={self.reading!r} is a reading of the MIA quantizer; quant={self.method!r} has none"
            )
        if self.method == "none":
            if self.bits is not None or self.act_bits is not None:
                raise ValueError("quant='none' is full precision and takes no bits")
            return
        check_bits("bits", self.bits)
        if self.method == "dorefa":
            if self.act_bits is not None:
                check_bits("act_bits", self.act_bits)
            if self.mode != "ste":
                raise ValueError("DoReFa-Net trains with the straight-through estimator only (mode='ste')")
        elif self.act_bits is not None:
            raise ValueError("the MIA quantizer leaves activations in full precision; act_bits is DoReFa only")
        if self.method == "mia" and self.reading == "printed":
            if self.zero_point not in (0, 2):  # 2 is the field's default, which this reading does not use
                raise ValueError(
                    f"the 'printed' reading (Eq. 2-4) has no zero point; got zero_point={self.zero_point!r}"
                )
            object.__setattr__(self, "zero_point", 0)
        elif self.method == "mia":
            if self.zero_point == "centred" and self.reading != "literal":
                raise ValueError("zero_point='centred' is the centred reading of Algorithm 1 (reading='literal') only")
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
            s = f"mia-{self.bits}b" + {"literal": "", "min-anchored": "-min", "printed": "-eq"}[self.reading]
            if self.zero_point != 2 and self.reading != "printed":
                s += "-zc" if self.zero_point == "centred" else f"-z{self.zero_point}"
            if self.mode != "ste":
                s += f"-{self.mode}"
        k = parse_layers(self.layers)
        return s + (f"-last{k}" if k else "")

    @property
    def reading_name(self) -> str | None:
        """The book's name of this spec's reading (a key of :data:`PAPER_READINGS`), or None for another."""
        if self.method != "mia":
            return None
        for name, kw in PAPER_READINGS.items():
            if self.reading == kw["reading"] and self.zero_point == kw["zero_point"]:
                return name
        return None

    @property
    def curve(self) -> str:
        """The book's name of this quantizer as a curve of its plots: 'none' (full precision), 'dorefa', or the
        reading's name (:attr:`reading_name`, else the raw reading); :func:`curve_spec` inverts it."""
        if self.method != "mia":
            return self.method
        return self.reading_name or self.reading

    def key_dict(self) -> dict:
        """The fields that key cached models: every field, less those at a default that predates them
        (``reading='literal'``), plus the quantizer's version where it is not 1 (:data:`QUANTIZER_VERSIONS`)."""
        d = asdict(self)
        if d["reading"] == "literal":
            del d["reading"]
        version = QUANTIZER_VERSIONS.get((self.method, self.bits), QUANTIZER_VERSIONS.get((self.method, None), 1))
        if version != 1:
            d["version"] = version
        return d


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
    # here, not at the top: both modules check bits with this module's rule (a cycle at import)
    from .dorefa import DoReFaWeight
    from .mia_quantizer import MIAQuantizer

    if spec.method == "mia":
        return MIAQuantizer(spec.bits, spec.resolved_zero_point, spec.reading)
    fan_in = layer.weight[0].numel()  # in_channels/groups x kernel area, or in_features
    return DoReFaWeight(spec.bits, gain=(6 / fan_in) ** 0.5)


def _replace_relus(model: nn.Module, after: str, bits: int) -> int:
    """Replace nn.ReLU modules registered after the module named ``after`` by DoReFa activations."""
    from .dorefa import DoReFaActivation  # here, not at the top: dorefa checks bits with this module's rule

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


def module_shape(spec: QuantSpec) -> QuantSpec:
    """A representative of the specs that attach the same modules to a model as ``spec``: those that differ
    only in numbers the modules hold as buffers (bits, zero point, reading; DoReFa's bits above 1, whose
    1-bit weights take another path). Models whose specs share it can train in one vmapped step."""
    if spec.method == "mia" and spec.mode == "ste":
        return QuantSpec("mia", 2, layers=spec.layers)
    if spec.method == "dorefa":
        return QuantSpec("dorefa", 1 if spec.bits == 1 else 2, layers=spec.layers)
    return spec


@torch.no_grad()
def project_weights(model: nn.Module, spec: QuantSpec) -> None:
    """Mode 'project': overwrite the stored weights of the selected layers with W_Q."""
    from .mia_quantizer import mia_quantize  # here, not at the top: it checks bits with this module's rule

    for _, layer in selected_layers(model, spec):
        layer.weight.copy_(mia_quantize(layer.weight, spec.bits, spec.resolved_zero_point, spec.reading))


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


def reading_spec(reading: str, bits: int, **kw) -> QuantSpec:
    """The MIA quantizer at ``bits`` under one of the book's readings ('literal', 'centred', ...)."""
    if reading not in PAPER_READINGS:
        raise ValueError(f"unknown reading {reading!r}; valid: {', '.join(PAPER_READINGS)}")
    return QuantSpec("mia", bits, **PAPER_READINGS[reading], **kw)


def curve_spec(curve: str, bits: int) -> QuantSpec:
    """The quantizer of a curve (:attr:`QuantSpec.curve`: 'dorefa' or one of the book's readings) at ``bits``."""
    return QuantSpec("dorefa", bits) if curve == "dorefa" else reading_spec(curve, bits)


# The book's readings of Section 3.3 (QuantSpec keyword arguments for method 'mia').
PAPER_READINGS: dict[str, dict] = {
    "literal": {"reading": "literal", "zero_point": 2},
    "centred": {"reading": "literal", "zero_point": "centred"},
    "min-anchored": {"reading": "min-anchored", "zero_point": 2},
    "printed": {"reading": "printed", "zero_point": 0},
}
