"""Defences other than quantization-aware training, as options of a target configuration:
magnitude pruning with fine-tuning, DP-SGD, post-training quantization.

A :class:`Defence` names one defence and its settings; its :meth:`Defence.key_dict` holds only
the fields its kind uses, so that it can key cached models. The three mechanisms:

* ``prune``: L1 (magnitude) unstructured pruning of every convolution and fully connected weight
  with :mod:`torch.nn.utils.prune`, over all of them at once ("global") or layer by layer
  ("layer"), then fine-tuning with the masks in place (:func:`prune_model`, :func:`make_permanent`).
* ``dp``: DP-SGD (Abadi et al. 2016) with Opacus: per-example clipping to ``max_grad_norm``,
  Gaussian noise calibrated by the RDP accountant to (epsilon, delta = 1/n) over the whole run,
  Poisson sampling of batches (:mod:`qmia.dp`).
* ``ptq``: post-training, round-to-nearest, symmetric quantization of the same weights, per tensor
  or per output channel; biases and normalisation layers stay in full precision (:func:`ptq_model`).

This module holds the settings and the pruning and PTQ mechanisms; DP-SGD's training is :mod:`qmia.dp`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize, prune

from .vocabulary import NO_DEFENCE

DEFENCE_KINDS = ("none", "prune", "dp", "ptq")
PRUNE_SCOPES = ("global", "layer")
PTQ_GRANULARITIES = ("tensor", "channel")
PTQ_MIN_BITS, PTQ_MAX_BITS = 2, 16

# The fields each kind reads; any other field must stay at its default.
_FIELDS: dict[str, tuple[str, ...]] = {
    "none": (),
    "prune": ("sparsity", "scope", "finetune_epochs"),
    "dp": ("epsilon", "max_grad_norm"),
    "ptq": ("bits", "granularity"),
}
_DEFAULTS = {
    "sparsity": None,
    "scope": "global",
    "finetune_epochs": None,
    "epsilon": None,
    "max_grad_norm": 1.0,
    "bits": None,
    "granularity": "tensor",
}


def is_real(v: object) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_int(v: object) -> bool:
    """An int, not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: float) -> str:
    """A number as short as it reads: 4.0 -> '4', 0.5 -> '0.5', 87.5 -> '87.5'."""
    return f"{round(float(v), 6):g}"


@dataclass(frozen=True)
class Defence:
    """One defence of a target model, and its settings.

    kind: 'none', 'prune', 'dp' or 'ptq' (:data:`DEFENCE_KINDS`).
    sparsity (prune): share of the prunable weights (:func:`prunable`) set to zero, in [0, 1).
    scope (prune): 'global' (one magnitude threshold over all prunable weights) or 'layer'
        (the same share in every layer).
    finetune_epochs (prune): epochs of fine-tuning after pruning; None: a quarter of the training
        epochs, at least 1 (:func:`finetune_epochs_for`); 0: none.
    epsilon (dp): target epsilon > 0 of the whole training run, at delta = 1/n (n: training-set size).
    max_grad_norm (dp): per-example clipping norm (L2 over all parameters) > 0.
    bits (ptq): 2..16; the grid is symmetric with 2^(bits-1) - 1 levels each side of zero.
    granularity (ptq): one scale per 'tensor' or per output 'channel' (dim 0).
    """

    kind: str = "none"
    sparsity: float | None = None
    scope: str = "global"
    finetune_epochs: int | None = None
    epsilon: float | None = None
    max_grad_norm: float = 1.0
    bits: int | None = None
    granularity: str = "tensor"

    def __post_init__(self) -> None:
        if self.kind not in DEFENCE_KINDS:
            raise ValueError(f"unknown defence kind {self.kind!r}; valid: {', '.join(DEFENCE_KINDS)}")
        unused = [f for f, d in _DEFAULTS.items() if f not in _FIELDS[self.kind] and getattr(self, f) != d]
        if unused:
            uses = ", ".join(_FIELDS[self.kind]) or "no other field"
            raise ValueError(f"defence kind {self.kind!r} does not use {', '.join(unused)}; it uses {uses}")
        if self.kind == "prune":
            if not is_real(self.sparsity) or not 0 <= self.sparsity < 1:
                raise ValueError(f"sparsity must be in [0, 1) for kind 'prune'; got {self.sparsity!r}")
            if self.scope not in PRUNE_SCOPES:
                raise ValueError(f"unknown pruning scope {self.scope!r}; valid: {', '.join(PRUNE_SCOPES)}")
            if self.finetune_epochs is not None and not (is_int(self.finetune_epochs) and self.finetune_epochs >= 0):
                raise ValueError(
                    f"finetune_epochs must be an integer >= 0, or None for a quarter of the training "
                    f"epochs; got {self.finetune_epochs!r}"
                )
        elif self.kind == "dp":
            if not is_real(self.epsilon) or self.epsilon <= 0:
                raise ValueError(f"epsilon must be > 0 for kind 'dp'; got {self.epsilon!r}")
            if not is_real(self.max_grad_norm) or self.max_grad_norm <= 0:
                raise ValueError(f"max_grad_norm must be > 0; got {self.max_grad_norm!r}")
        elif self.kind == "ptq":
            if not is_int(self.bits) or not PTQ_MIN_BITS <= self.bits <= PTQ_MAX_BITS:
                raise ValueError(
                    f"bits must be an integer from {PTQ_MIN_BITS} to {PTQ_MAX_BITS} for kind 'ptq'; got {self.bits!r}"
                )
            if self.granularity not in PTQ_GRANULARITIES:
                raise ValueError(f"unknown PTQ granularity {self.granularity!r}; valid: {', '.join(PTQ_GRANULARITIES)}")

    def key_dict(self) -> dict:
        """The fields this kind uses (numbers as floats, so 4 and 4.0 key alike); {} for 'none'."""
        if self.kind == "none":
            return {}
        d: dict = {"kind": self.kind}
        for f in _FIELDS[self.kind]:
            v = getattr(self, f)
            d[f] = float(v) if f in ("sparsity", "epsilon", "max_grad_norm") else v
        return d

    @property
    def label(self) -> str:
        """Short label: 'none', 'prune-80%-global', 'prune-50%-layer-ft2', 'dp-eps4', 'dp-eps1-c0.5',
        'ptq-4b-channel'."""
        if self.kind == "prune":
            s = f"prune-{_num(100 * self.sparsity)}%-{self.scope}"
            return s + (f"-ft{self.finetune_epochs}" if self.finetune_epochs is not None else "")
        if self.kind == "dp":
            return f"dp-eps{_num(self.epsilon)}" + (
                f"-c{_num(self.max_grad_norm)}" if self.max_grad_norm != 1.0 else ""
            )
        if self.kind == "ptq":
            return f"ptq-{self.bits}b-{self.granularity}"
        return "none"

    @property
    def name(self) -> str:
        """Name for tables: 'no defence', 'pruning 80 % (global)', 'DP-SGD ε = 4', 'PTQ 4-bit per-channel'."""
        if self.kind == "prune":
            scope = "global" if self.scope == "global" else "per layer"
            ft = f", {self.finetune_epochs} fine-tuning epochs" if self.finetune_epochs is not None else ""
            return f"pruning {_num(100 * self.sparsity)} % ({scope}{ft})"
        if self.kind == "dp":
            return f"DP-SGD ε = {_num(self.epsilon)}" + (
                f", C = {_num(self.max_grad_norm)}" if self.max_grad_norm != 1.0 else ""
            )
        if self.kind == "ptq":
            return f"PTQ {self.bits}-bit per-{self.granularity}"
        return NO_DEFENCE


def finetune_epochs_for(defence: Defence, train_epochs: int) -> int:
    """Fine-tuning epochs after pruning: ``defence.finetune_epochs``, or max(1, train_epochs // 4) when None."""
    if defence.kind != "prune":
        raise ValueError(f"fine-tuning epochs are for kind 'prune'; got kind {defence.kind!r}")
    if defence.finetune_epochs is not None:
        return defence.finetune_epochs
    return max(1, train_epochs // 4)


# ----------------------------------------------------------------------------- pruning

PRUNABLE = (nn.Conv2d, nn.Linear)


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, 'weight') of every nn.Conv2d and nn.Linear, in registration order (no biases, no norm layers)."""
    return [(m, "weight") for m in model.modules() if isinstance(m, PRUNABLE)]


def prune_model(model: nn.Module, sparsity: float, scope: str = "global") -> nn.Module:
    """L1 magnitude pruning of the prunable weights, in place; returns ``model``.

    'global': the round(sparsity * total) smallest |w| over all prunable weights together;
    'layer': round(sparsity * size) in each layer. The masks stay (``weight = weight_orig * weight_mask``,
    recomputed before each forward), so fine-tuning keeps pruned weights at zero; see :func:`make_permanent`.
    """
    if not is_real(sparsity) or not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1); got {sparsity!r}")
    pairs = prunable(model)
    if not pairs:
        raise ValueError("the model has no nn.Conv2d or nn.Linear weights to prune")
    if scope == "global":
        prune.global_unstructured(pairs, pruning_method=prune.L1Unstructured, amount=float(sparsity))
    elif scope == "layer":
        for m, name in pairs:
            prune.l1_unstructured(m, name, amount=float(sparsity))
    else:
        raise ValueError(f"unknown pruning scope {scope!r}; valid: {', '.join(PRUNE_SCOPES)}")
    return model


def make_permanent(model: nn.Module) -> nn.Module:
    """Fold the pruning masks into plain ``weight`` parameters (``prune.remove``), in place; returns ``model``."""
    for m, name in prunable(model):
        if prune.is_pruned(m) and hasattr(m, f"{name}_mask"):
            prune.remove(m, name)
    return model


@torch.no_grad()
def sparsity_of(model: nn.Module) -> float:
    """Share of exactly-zero values among the effective prunable weights (masked or not)."""
    pairs = prunable(model)
    zeros = sum(int((_effective(m, n) == 0).sum()) for m, n in pairs)
    total = sum(_effective(m, n).numel() for m, n in pairs)
    return zeros / total if total else 0.0


def _effective(m: nn.Module, name: str) -> torch.Tensor:
    """The weight the forward pass uses: with a pruning mask in place, weight_orig * mask (``m.weight``
    is recomputed only at the next forward)."""
    if hasattr(m, f"{name}_mask"):
        return getattr(m, f"{name}_orig") * getattr(m, f"{name}_mask")
    return getattr(m, name)


# ----------------------------------------------------------------------------- post-training quantization


def ptq_weight(w: torch.Tensor, bits: int, granularity: str = "tensor") -> torch.Tensor:
    """Round-to-nearest symmetric quantization of a weight tensor; returns a new tensor of w's shape and dtype.

    With q = 2^(bits-1) - 1 and m = max|w| over the tensor ('tensor') or over each output channel
    (dim 0, 'channel'): scale s = m / q, codes c = clamp(round(w / s), -q, q), w_q = (c / q) * m
    (= c * s, written so that the largest magnitude m is kept exactly and quantizing twice equals
    quantizing once). At most 2^bits - 1 values per tensor or channel; 2 bits is ternary {-s, 0, s}.
    A zero tensor or channel stays zero.
    """
    if not is_int(bits) or not PTQ_MIN_BITS <= bits <= PTQ_MAX_BITS:
        raise ValueError(f"bits must be an integer from {PTQ_MIN_BITS} to {PTQ_MAX_BITS}; got {bits!r}")
    if granularity == "tensor" or w.ndim < 2:
        m = w.detach().abs().amax()
    elif granularity == "channel":
        m = w.detach().abs().amax(dim=tuple(range(1, w.ndim)), keepdim=True)
    else:
        raise ValueError(f"unknown PTQ granularity {granularity!r}; valid: {', '.join(PTQ_GRANULARITIES)}")
    q = 2 ** (bits - 1) - 1
    safe = torch.where(m > 0, m, torch.ones_like(m))
    codes = torch.clamp(torch.round(w / (safe / q)), -q, q)
    return torch.where(m > 0, codes / q * safe, torch.zeros_like(w))


@torch.no_grad()
def ptq_model(model: nn.Module, bits: int, granularity: str = "tensor") -> nn.Module:
    """Replace every prunable weight by :func:`ptq_weight` of it, in place; returns ``model``.

    Biases and normalisation layers stay in full precision. A pruned layer with its mask in place
    has ``weight_orig`` overwritten (zeros stay zero). Layers with a quantization-aware parametrization
    are refused: export them first (:func:`qmia.quantizers.export_quantized`).
    """
    for m, name in prunable(model):
        if parametrize.is_parametrized(m, name):
            raise ValueError(f"{type(m).__name__} has a parametrized {name}; export the quantized model before PTQ")
        target = getattr(m, f"{name}_orig") if hasattr(m, f"{name}_mask") else getattr(m, name)
        target.copy_(ptq_weight(_effective(m, name), bits, granularity))
    return model
