"""Where and in what numerics a model computes: the device, bf16 autocast or float32 (the configuration's
``precision``), channels_last, CUDA graphs of a training step, and what a model's record says it computed."""

from __future__ import annotations

import contextlib
import warnings
from functools import lru_cache
from pathlib import Path

import torch

from .config import TrainConfig
from .settings import cuda_graphs_default


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_label(device: str) -> str:
    """A device as results name it: 'cuda (NVIDIA H200)' where this process sees the card, else as given."""
    if device.startswith("cuda") and "(" not in device and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return device


def compute_record(config: TrainConfig, dev: torch.device) -> str:
    """What a model's forward pass computed, as its meta.json and rows record it: 'bf16 autocast' (with ', emulated'
    on a CPU without native bf16) or 'fp32'; DP-SGD steps are float32 whatever the config says."""
    if config.precision != "bf16":
        return config.precision
    if config.defence.kind == "dp":
        return "fp32 training (DP-SGD), bf16 autocast outputs"
    return "bf16 autocast" + (", emulated" if dev.type == "cpu" and not cpu_native_bf16() else "")


def autocast(dev: torch.device, precision: str, cache_enabled: bool | None = None):
    """bf16 autocast on ``dev`` (CUDA or CPU) for precision 'bf16'; nothing for 'fp32'."""
    if precision != "bf16":
        return contextlib.nullcontext()
    if cache_enabled is None:  # graphed steps need the cast cache off, at capture and at replay
        cache_enabled = not cuda_graphs_enabled(dev)
    if dev.type == "cpu":
        warn_if_emulated_bf16()
    return torch.autocast(dev.type, dtype=torch.bfloat16, cache_enabled=cache_enabled)


def layout(x: torch.Tensor, dev: torch.device, precision: str) -> torch.Tensor:
    """channels_last on CUDA and wherever bf16 computes (faster there), else as it is."""
    return x.contiguous(memory_format=torch.channels_last) if dev.type == "cuda" or precision == "bf16" else x


@lru_cache(maxsize=1)
def cpu_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX-512 BF16 in /proc/cpuinfo's flags): where it does not, a
    bf16 model still trains in bf16 (its numbers are the config's), through slower emulated kernels."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


@lru_cache(maxsize=1)
def warn_if_emulated_bf16() -> None:
    if not cpu_native_bf16():
        warnings.warn(
            "this CPU has no native bf16 (AMX or AVX-512 BF16): bf16 models train with emulated kernels, "
            "several times slower; --precision fp32 trains (different) fp32 models instead",
            stacklevel=2,
        )


def cuda_graphs_enabled(dev: torch.device) -> bool:
    """CUDA graphs for the training step: on CUDA unless ``QMIA_CUDA_GRAPHS=0``."""
    return dev.type == "cuda" and cuda_graphs_default()


def graphed(fn, sample_args: tuple, dev: torch.device, precision: str):
    """``fn`` (a module or a function of tensors) with its forward and backward captured as CUDA
    graphs (``torch.cuda.make_graphed_callables``), so a step replays hundreds of small kernels
    without Python or launch overhead; ``fn`` itself where graphs are off or capture fails.
    Call the result under :func:`autocast` at the same ``precision``, with inputs of the sample's shapes."""
    if not cuda_graphs_enabled(dev):
        return fn
    quiet = getattr(torch.autograd.graph, "set_warn_on_accumulate_grad_stream_mismatch", None)
    if quiet is not None:  # capture runs its warm-up on a side stream; the replays are on the main one
        quiet(False)
    try:
        with autocast(dev, precision, cache_enabled=False):
            return torch.cuda.make_graphed_callables(fn, sample_args)
    except Exception as e:  # an op that cannot be captured: run eagerly, and say so once
        warnings.warn(f"CUDA graph capture failed ({type(e).__name__}: {e}); training eagerly", stacklevel=2)
        return fn
