"""The training loop every path shares: one epoch loop (:func:`run_epochs`), one step (:func:`descend`).

A path says only what differs: how an epoch's batches are drawn and how a step's gradients are made.
:func:`fit` trains one model (this module); :func:`qmia.multitrain.fit_many` trains N models of one shape
with one ``vmap``-ed forward and backward; :func:`qmia.dp.fit_many_dp` makes each of N models' gradients
from clipped per-example gradients and Gaussian noise; :func:`qmia.dp.dp_fit` lets Opacus' optimizer do it
for one model. Batches are drawn on the CPU once per epoch (:func:`epoch_plan`), so no step waits for the host.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .augment import apply_augment, augment_draws, standardize
from .compute import autocast, graphed, layout
from .data import dataset_info
from .quantizers import project_weights

if TYPE_CHECKING:  # config imports defences, which the DP-SGD path (qmia.dp) builds on
    from .config import TrainConfig

StepResult = tuple[torch.Tensor, torch.Tensor | int]


def sgd_one_cycle(params, lr: float, momentum: float, weight_decay: float, total_steps: int, fused: bool = False):
    """SGD with Nesterov momentum and weight decay, and a one-cycle schedule peaking at ``lr`` over ``total_steps``."""
    opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay, fused=fused)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=0.15)
    return opt, sched


def make_optimizer(params, config: TrainConfig, total_steps: int, dev: torch.device):
    """:func:`sgd_one_cycle` with the config's recipe (fused on CUDA)."""
    return sgd_one_cycle(params, config.lr, config.momentum, config.weight_decay, total_steps, dev.type == "cuda")


def epoch_plan(n: int, config: TrainConfig, info, gen: torch.Generator, dev: torch.device):
    """One epoch's order (a permutation of n, on ``dev``) and augmentation draws (per position, or None).

    Drawn on the CPU from ``gen`` once per epoch and moved in one copy, so the steps never wait
    for the host; identical on every device.
    """
    perm = torch.randperm(n, generator=gen).to(dev, non_blocking=True)
    draws = augment_draws(n, info, gen, dev) if config.augment else None
    return perm, draws


def make_batch(x_u8: torch.Tensor, idx: torch.Tensor, draws: dict | None, info) -> torch.Tensor:
    """uint8 images ``x_u8[idx]`` -> augmented (with ``draws``, one per image) and standardised float32."""
    xb = x_u8[idx].float() / 255
    if draws is not None:
        xb = apply_augment(xb, info, draws)
    return standardize(xb, info)


def descend(opt: torch.optim.Optimizer, sched, loss: torch.Tensor | None = None) -> None:
    """One optimizer step: the gradients of ``loss`` (or, with None, those the caller set in ``.grad``),
    ``opt.step()``, then the schedule's step (``sched``: None for a constant learning rate)."""
    if loss is not None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
    opt.step()
    if sched is not None:
        sched.step()


def run_epochs(
    epochs: int,
    steps: int,
    start_epoch: Callable[[], Any],
    step: Callable[[Any, int], StepResult],
    label: str,
    progress: bool = True,
) -> list[float]:
    """``epochs`` epochs of ``steps`` steps; returns each model's mean loss over the last epoch.

    ``start_epoch()`` draws an epoch's batches; ``step(plan, i)`` takes step i of it and returns the summed loss of
    each model (a tensor of N, or a scalar for one) and what that sum is over (1 for a mean loss, or each model's
    weight of examples), both detached. One bar per call, a tick per epoch, its postfix the mean loss.
    """
    bar = tqdm(range(epochs), desc=label, leave=False, disable=not progress, unit="epoch")
    last = [float("nan")]
    for _ in bar:
        plan = start_epoch()
        total: torch.Tensor | int = 0
        seen: torch.Tensor | int = 0
        for i in range(steps):
            loss_sum, weight = step(plan, i)
            total, seen = total + loss_sum, seen + weight
        mean = torch.as_tensor(total).double() / (seen.clamp(min=1) if torch.is_tensor(seen) else max(seen, 1))
        last = mean.reshape(-1).tolist()
        bar.set_postfix(loss=f"{sum(last) / len(last):.3f}")
    return last


def unstack(models: Sequence[nn.Module], params: dict, buffers: dict | None = None) -> None:
    """Copy stacked leaves (``torch.func.stack_module_state``: N x ...) back into model j's parameters
    (and buffers, where given)."""
    with torch.no_grad():
        for j, model in enumerate(models):
            for name, tensor in model.named_parameters():
                tensor.copy_(params[name][j])
            for name, tensor in model.named_buffers() if buffers is not None else ():
                tensor.copy_(buffers[name][j])


def fit(model: nn.Module, config: TrainConfig, x_u8: torch.Tensor, y: torch.Tensor, progress: bool = True) -> float:
    """Train ``model`` in place on uint8 images ``x_u8`` (N x C x H x W, on the model's device).

    SGD with Nesterov momentum and weight decay, one-cycle learning rate over all steps,
    cross-entropy loss, at the config's precision (bf16: autocast and channels_last, on CUDA and on a CPU);
    a quantizer in mode 'project' rewrites the weights after each step. Returns the mean loss of the last epoch.
    """
    info = dataset_info(config.dataset)
    dev = x_u8.device
    n = len(x_u8)
    bs = min(config.batch_size, n)
    steps = max(n // bs, 1)
    opt, sched = make_optimizer(model.parameters(), config, config.epochs * steps, dev)
    gen = torch.Generator().manual_seed(int(config.key[:8], 16))
    project = config.quant.mode == "project"  # 'mia' only (QuantSpec checks)
    precision = config.precision
    model.train()
    sample = layout(make_batch(x_u8, torch.arange(bs, device=dev), None, info), dev, precision)
    forward = graphed(model, (sample,), dev, precision)

    def step(plan, i: int) -> StepResult:
        perm, draws = plan
        sl = slice(i * bs, (i + 1) * bs)
        idx = perm[sl]
        xb = make_batch(x_u8, idx, None if draws is None else {k: v[sl] for k, v in draws.items()}, info)
        xb = layout(xb, dev, precision)
        with autocast(dev, precision):
            loss = F.cross_entropy(forward(xb), y[idx])
        descend(opt, sched, loss)
        if project:
            project_weights(model, config.quant)
        return loss.detach(), 1

    try:
        (last,) = run_epochs(
            config.epochs, steps, lambda: epoch_plan(n, config, info, gen, dev), step, config.label, progress
        )
    finally:
        model.__dict__.pop("forward", None)  # make_graphed_callables patched the instance's forward
    return last
