"""Many small models trained at once: one vmapped step for N models of the same shape.

LiRA's reference models, the shadow models and repeated seeds are many copies of one small
network (LeNet-5, ResNet-20) that alone leave a GPU mostly idle; so are the sweep's and the readings'
models, whose quantizers differ only in numbers the quantizer modules hold as buffers, and the reference models
of a DP-SGD target (:func:`fit_many_dp`, Opacus' step vmapped). :func:`fit_many` stacks N such
models (``torch.func.stack_module_state``) and runs their forward and backward passes as one
``vmap``-ed call, so each kernel does N models' work. Each model keeps its own data, order,
augmentation draws and BatchNorm statistics, and the summed loss gives every model exactly its
own gradient, so the result is the same as N runs of :func:`qmia.loop.fit` (up to float
rounding). :func:`train_many` groups the missing configs that can share steps and writes each
model's cache entry as :func:`qmia.train.train` does.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from . import dp
from .augment import augment_draws
from .compute import autocast, default_device, graphed
from .config import TrainConfig
from .data import dataset_info
from .loop import StepResult, descend, epoch_plan, make_batch, make_optimizer, run_epochs, unstack
from .model_entries import is_cached
from .quantizers import module_shape
from .settings import group_size_override
from .store import lock
from .train import (
    TrainedModel,
    _progress_enabled,
    finish,
    prepare,
    restore_outputs,
    starting_model,
    train_defended,
    train_job,
)


def default_group_size(device: torch.device | str | None = None) -> int:
    """Models per group: ``$QMIA_GROUP`` if set, else 16 on CUDA and 1 (one after another) on a CPU,
    where stacking brings nothing (the CPU is busy with one model already)."""
    value = group_size_override()
    if value is not None:
        return value
    dev = torch.device(device) if device is not None else default_device()
    return 16 if dev.type == "cuda" else 1


# Most models of an architecture trained together by default. ResNet-50 trains alone until a GPU benchmark shows that
# its groups pay (benchmarks/bench_train.py --group50): one ResNet-50 already fills much more of a GPU than a ResNet-20.
GROUP_LIMITS = {"resnet50": 1}


def group_size_for(arch: str, size: int) -> int:
    """Models of ``arch`` per group, given the group size asked for: capped by :data:`GROUP_LIMITS` unless
    ``$QMIA_GROUP`` sets the size."""
    return size if group_size_override() is not None else min(size, GROUP_LIMITS.get(arch, size))


def group_key(config: TrainConfig) -> TrainConfig:
    """Configs with equal group keys can train together: they differ only in seed, role and the quantizer's
    numbers (bitwidth, zero point, reading: per-model buffers of the quantizer modules), not in the model's
    modules (:func:`qmia.quantizers.module_shape`) or the training recipe."""
    return config.with_(seed=0, role="target", ref_index=0, ref_count=0, quant=module_shape(config.quant))


def fit_many(
    models: Sequence[nn.Module],
    configs: Sequence[TrainConfig],
    xs: Sequence[torch.Tensor],
    ys: Sequence[torch.Tensor],
    progress: bool = True,
) -> list[float]:
    """Train ``models`` in place, model j on uint8 images ``xs[j]`` (n x C x H x W) with labels ``ys[j]``.

    All configs must share a :func:`group_key` and all ``xs`` a length n. Same loop as
    :func:`qmia.loop.fit`; returns each model's mean loss over the last epoch.
    """
    if not (len(models) == len(configs) == len(xs) == len(ys)) or not models:
        raise ValueError("fit_many needs as many models, configs, image sets and label sets, at least one")
    if len({group_key(c) for c in configs}) != 1:
        raise ValueError(
            "fit_many trains models that differ only in seed, role and quantizer bits or reading; "
            "got different settings"
        )
    if len({len(x) for x in xs}) != 1:
        raise ValueError(f"fit_many needs training sets of one size; got {sorted({len(x) for x in xs})}")
    config = configs[0]
    if config.quant.mode == "project":
        raise ValueError("mode 'project' rewrites each model's weights after a step; train those with qmia.loop.fit")
    info = dataset_info(config.dataset)
    dev = xs[0].device
    count, n = len(models), len(xs[0])
    bs = min(config.batch_size, n)
    steps = max(n // bs, 1)

    params, buffers = stack_module_state(list(models))  # leaves of shape N x ...
    base = copy.deepcopy(models[0]).to("meta")
    opt, sched = make_optimizer(list(params.values()), config, config.epochs * steps, dev)
    gens = [torch.Generator().manual_seed(int(c.key[:8], 16)) for c in configs]
    x_all, y_all = torch.stack(list(xs)), torch.stack(list(ys))  # N x n x C x H x W, N x n
    x_flat = x_all.flatten(0, 1)  # N*n x C x H x W: model j's image i is row j * n + i
    rows = torch.arange(count, device=dev)[:, None]

    def loss_of_one(p: dict, b: dict, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

    names = list(params)

    def losses_of_all(xb: torch.Tensor, yb: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        return vmap(loss_of_one, randomness="different")(dict(zip(names, tensors)), buffers, xb, yb)

    sample_idx = torch.arange(bs, device=dev).repeat(count)
    sample = make_batch(x_flat, sample_idx, None, info).view(count, bs, *x_all.shape[2:])
    losses_of = graphed(losses_of_all, (sample, y_all[:, :bs].clone(), *params.values()), dev, config.precision)

    def start_epoch():
        plans = [epoch_plan(n, c, info, g, dev) for c, g in zip(configs, gens)]
        perms = torch.stack([p for p, _ in plans])  # N x n
        draws = None if plans[0][1] is None else {k: torch.stack([d[k] for _, d in plans]) for k in plans[0][1]}
        return perms, draws

    def step(plan, i: int) -> StepResult:
        perms, draws = plan
        sl = slice(i * bs, (i + 1) * bs)
        idx = perms[:, sl]  # N x bs
        flat_draws = None if draws is None else {k: v[:, sl].reshape(-1) for k, v in draws.items()}
        xb = make_batch(x_flat, (rows * n + idx).reshape(-1), flat_draws, info)
        xb = xb.view(count, -1, *xb.shape[1:])
        with autocast(dev, config.precision):
            losses = losses_of(xb, y_all[rows, idx], *params.values())
        descend(opt, sched, losses.sum())  # model j's loss depends only on model j's parameters
        return losses.detach().float(), 1

    last = run_epochs(config.epochs, steps, start_epoch, step, f"{config.label} x{count}", progress)
    unstack(models, params, buffers)
    return last


def fit_many_dp(
    models: Sequence[nn.Module],
    configs: Sequence[TrainConfig],
    xs: Sequence[torch.Tensor],
    ys: Sequence[torch.Tensor],
    progress: bool = True,
) -> tuple[list[float], float]:
    """DP-SGD for N models at once: train ``models`` (:func:`qmia.dp.dp_compatible`, float32) in place, model j
    on uint8 images ``xs[j]`` (n x C x H x W) with labels ``ys[j]``; all configs share a :func:`group_key` with a
    ``dp`` defence. Returns each model's mean loss over the last epoch and the epsilon spent (delta = 1/n).

    The step of Opacus' ``DPOptimizer`` (what :func:`qmia.dp.dp_fit` runs for one model), vmapped over the
    models: Poisson sampling at rate q = 1 / ceil(n / batch) (each model its own draws), per-example gradients
    (``torch.func``: ``vmap`` of ``grad`` over examples, then over models), each example's gradient scaled to norm
    at most C = ``max_grad_norm`` (factor min(1, C / (||g|| + 1e-6))), summed, plus Gaussian noise of std sigma * C
    (sigma from Opacus' RDP accountant for the target epsilon), divided by the expected batch int(n q); SGD with
    momentum at a constant learning rate, the recipe's augmentation. A batch is padded to a common size with
    examples of weight 0.
    """
    if not (len(models) == len(configs) == len(xs) == len(ys)) or not models:
        raise ValueError("fit_many_dp needs as many models, configs, image sets and label sets, at least one")
    if len({group_key(c) for c in configs}) != 1 or configs[0].defence.kind != "dp":
        raise ValueError("fit_many_dp trains DP-SGD models that differ only in seed and role; got other settings")
    if len({len(x) for x in xs}) != 1:
        raise ValueError(f"fit_many_dp needs training sets of one size; got {sorted({len(x) for x in xs})}")
    config, d = configs[0], configs[0].defence
    info = dataset_info(config.dataset)
    dev = xs[0].device
    count, n = len(models), len(xs[0])
    steps = math.ceil(n / min(config.batch_size, n))
    rate, delta = 1 / steps, 1 / n
    expected = int(n * rate)
    sigma = dp.noise_multiplier(d.epsilon, delta, rate, config.epochs)
    clip = float(d.max_grad_norm)

    params, buffers = stack_module_state(list(models))
    base = copy.deepcopy(models[0]).to("meta")
    names = list(params)
    opt = torch.optim.SGD(list(params.values()), lr=config.lr, momentum=config.momentum)
    samplers = [torch.Generator().manual_seed(int(c.key[8:16], 16)) for c in configs]
    augmenters = [torch.Generator().manual_seed(int(c.key[:8], 16)) for c in configs]
    noises = [torch.Generator(device=dev).manual_seed(int(c.key[8:16], 16) + 1) for c in configs]
    sizes = [p[0].numel() for p in params.values()]
    x_flat = torch.stack(list(xs)).flatten(0, 1)  # model j's image i is row j * n + i
    y_all = torch.stack(list(ys))
    rows = torch.arange(count, device=dev)[:, None]

    def loss_of_example(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(base, (p, b), (x[None],)), y[None])

    per_example = vmap(grad_and_value(loss_of_example), in_dims=(None, None, 0, 0))  # over one model's batch
    per_model = vmap(per_example, in_dims=(0, 0, 0, 0), randomness="different")

    def start_epoch():
        # each model's Poisson batches of this epoch, padded to one size (a multiple of 16) with weight-0 examples
        picked = [[torch.nonzero(torch.rand(n, generator=g) < rate).flatten() for _ in range(steps)] for g in samplers]
        width = max(16, -(-max(len(i) for ms in picked for i in ms) // 16) * 16)
        idx = torch.zeros(count, steps, width, dtype=torch.long)
        weight = torch.zeros(count, steps, width)
        for j, ms in enumerate(picked):
            for s, i in enumerate(ms):
                idx[j, s, : len(i)], weight[j, s, : len(i)] = i, 1.0
        draws = None
        if config.augment:
            per = [augment_draws(steps * width, info, g) for g in augmenters]
            draws = {k: torch.stack([p[k] for p in per]).view(count, steps, width).to(dev) for k in per[0]}
        return idx.to(dev), weight.to(dev), draws, width

    def step(plan, s: int) -> StepResult:
        idx, weight, draws, width = plan
        i, w = idx[:, s], weight[:, s]  # N x width
        flat_draws = None if draws is None else {k: v[:, s].reshape(-1) for k, v in draws.items()}
        xb = make_batch(x_flat, (rows * n + i).reshape(-1), flat_draws, info).view(count, width, *x_flat.shape[1:])
        grads, losses = per_model({k: v.detach() for k, v in params.items()}, buffers, xb, y_all[rows, i])
        norms = torch.stack([grads[k].flatten(2).norm(2, dim=-1) for k in names], dim=-1).norm(2, dim=-1)
        factor = (clip / (norms + 1e-6)).clamp(max=1.0) * w  # N x width; padding gets 0
        noise = torch.stack([torch.randn(sum(sizes), generator=g, device=dev) for g in noises]) * (sigma * clip)
        for k, z in zip(names, noise.split(sizes, dim=1)):
            summed = torch.einsum("nb,nb...->n...", factor, grads[k])
            params[k].grad = (summed + z.view_as(summed)) / expected
        descend(opt, None)  # the gradients set above; a constant learning rate
        return (losses * w).sum(1).detach(), w.sum(1)

    last = run_epochs(config.epochs, steps, start_epoch, step, f"{config.label} x{count}", progress)
    unstack(models, params)
    return last, dp.epsilon_spent(sigma, rate, config.epochs * steps, delta)


def train_many(
    configs: Sequence[TrainConfig],
    data_root: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
    progress: bool | None = None,
    group_size: int | None = None,
    may_start: Callable[[list[TrainConfig]], bool] | None = None,
) -> list[TrainedModel]:
    """Train the configs not yet cached, ``group_size`` at a time where they can share steps
    (default :func:`default_group_size`), and return every config's :class:`TrainedModel`.

    ``may_start(group)``, when given, is asked before each group (or defended model) starts to train; once it says
    False no further model starts (a time budget: :func:`qmia.part_runs.run_part`), and the models cached by then are
    returned."""
    dev = torch.device(device) if device is not None else default_device()
    size = group_size or default_group_size(dev)
    for c in dict.fromkeys(configs):  # carried weights: compute their outputs instead of training them
        restore_outputs(c, data_root, dev)
    missing = [c for c in dict.fromkeys(configs) if not is_cached(c)]
    stopped = False

    def go(chunk: list[TrainConfig]) -> bool:
        nonlocal stopped
        stopped = stopped or (may_start is not None and not may_start(chunk))
        return not stopped

    defended = [c for c in missing if c.defence.kind != "none"]  # one at a time, after the models they start from
    bases = [b for c in defended if (b := starting_model(c)) is not None]
    groups: dict[TrainConfig, list[TrainConfig]] = defaultdict(list)
    for c in dict.fromkeys([c for c in missing if c.defence.kind == "none"] + [b for b in bases if not is_cached(b)]):
        groups[group_key(c)].append(c)
    show = _progress_enabled(progress)
    for members in groups.values():
        step = group_size_for(members[0].arch, size)
        for start in range(0, len(members), step):
            with _uncached_locked(members[start : start + step]) as chunk:
                if chunk and go(chunk):
                    _train_chunk(chunk, data_root, dev, show)
    dp_groups: dict[TrainConfig, list[TrainConfig]] = defaultdict(list)
    for c in defended:
        if c.defence.kind == "dp" and group_size_for(c.arch, size) > 1:
            dp_groups[group_key(c)].append(c)
        elif go([c]):
            train_defended(c, data_root, dev, progress)
    for members in dp_groups.values():  # DP-SGD models together where models train in groups (CUDA)
        for part in dp_chunks(len(members), group_size_for(members[0].arch, size)):
            with _uncached_locked([members[i] for i in part]) as chunk:
                if chunk and go(chunk):
                    _train_dp_chunk(chunk, data_root, dev, show)
    if may_start is not None:
        return [TrainedModel(c) for c in configs if is_cached(c)]
    return [TrainedModel(c) for c in configs]


@contextlib.contextmanager
def _uncached_locked(chunk: list[TrainConfig]):
    """Hold one lock per model of ``chunk``, in key order (another process waits, then reuses), and yield those
    not cached by then."""
    with contextlib.ExitStack() as held:
        for c in sorted(chunk, key=lambda c: c.key):
            held.enter_context(lock(c.key))
        yield [c for c in chunk if not is_cached(c)]


def dp_chunks(count: int, size: int) -> list[range]:
    """DP-SGD groups of at most ``size`` models, as even as possible (17 by 16: 9 and 8), so that no model is
    left to train alone with Opacus, many times slower than a group."""
    k = -(-count // size) if count else 0
    bounds = [round(i * count / k) for i in range(k + 1)] if k else [0]
    return [range(a, b) for a, b in zip(bounds, bounds[1:])]


def _train_dp_chunk(chunk: list[TrainConfig], data_root, dev: torch.device, show: bool) -> None:
    if len(chunk) == 1:  # alone: Opacus itself
        train_defended(chunk[0], data_root, dev, show)
        return
    jobs = [prepare(c, data_root, dev) for c in chunk]
    if len({len(j.train_idx) for j in jobs}) != 1:  # training sets of different sizes cannot share steps
        for c in chunk:
            train_defended(c, data_root, dev, show)
        return
    for job in jobs:
        job.model = dp.dp_compatible(job.model).to(dev)
    t0 = time.perf_counter()
    losses, eps = fit_many_dp(
        [j.model for j in jobs], chunk, [j.x_train for j in jobs], [j.y_train for j in jobs], show
    )
    seconds = time.perf_counter() - t0
    for job, loss in zip(jobs, losses):
        finish(
            job,
            loss,
            seconds,
            trained_with=len(chunk),
            extra={"dp_epsilon": eps, "dp_delta": 1 / len(job.x_train), "dp_trainer": "qmia.multitrain.fit_many_dp"},
        )


def _train_chunk(chunk: list[TrainConfig], data_root, dev: torch.device, show: bool) -> None:
    jobs = [prepare(c, data_root, dev) for c in chunk]
    if len(chunk) == 1 or chunk[0].quant.mode == "project" or len({len(j.train_idx) for j in jobs}) != 1:
        for job in jobs:
            train_job(job, show)
        return
    t0 = time.perf_counter()
    losses = fit_many([j.model for j in jobs], chunk, [j.x_train for j in jobs], [j.y_train for j in jobs], show)
    seconds = time.perf_counter() - t0
    for job, loss in zip(jobs, losses):
        finish(job, loss, seconds, trained_with=len(chunk))
