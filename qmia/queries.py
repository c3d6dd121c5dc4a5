"""Queries of a trained model beyond the outputs stored at training: its predicted labels under the
training augmentations, which the label-only augmentation attack reads (Choquette-Choo et al. 2021), and
its per-example loss gradients, which the white-box attack reads (Nasr et al. 2019, :func:`whitebox_features`).

``augmented_labels(model, splits, n_queries)`` loads the cached weights and the data, predicts the
label of every example of ``splits`` on ``n_queries`` versions of it (query 0 the image itself, the
others the dataset's training augmentation: random crop and flip on CIFAR-10, random crop and rotation
on Fashion-MNIST and digits; :func:`qmia.data.apply_augment`), and caches the labels beside the model
(``augmented_labels_q<n>.pt``) so that a rerun queries nothing. The cached file holds, with the labels, the
instance of the model they came from (:func:`qmia.train.model_instance`) and the sha256 of the labels; a file
that does not load, came from another model or was changed is reported, moved aside and queried again. The
draws depend on the example's dataset index and the query only, so every model sees the same augmented images.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from .augment import augment_draws, normalize
from .compute import default_device
from .data import dataset_info, load_dataset
from .model_entries import model_instance
from .quantizers import weight_layers
from .splits import SPLITS
from .store import DamagedEntry, atomic_save, move_aside
from .train import TrainedModel, predict

QUERY_SEED = 7_000  # the draws of query j come from torch.Generator().manual_seed(QUERY_SEED + j)


def _draws(n_images: int, query: int, info) -> dict[str, torch.Tensor]:
    return augment_draws(n_images, info, torch.Generator().manual_seed(QUERY_SEED + query))


def labels_digest(labels: dict[str, torch.Tensor], dtype: torch.dtype = torch.int64) -> str:
    """sha256 (hex) of {split: tensor} as ``dtype`` (int64 labels; float32 white-box features), split names in order
    with each tensor's shape and bytes."""
    h = hashlib.sha256()
    for split in sorted(labels):
        t = labels[split].to(dtype).contiguous()
        h.update(f"{split}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _read_cache(path: Path, model: TrainedModel, dtype: torch.dtype = torch.int64) -> dict[str, torch.Tensor]:
    """The labels cached at ``path`` for this model instance; {} when there is none, or when the file does not load,
    was written before it recorded its model (an older cache), belongs to another model or was changed (reported
    and moved aside: it is queried again)."""
    if not path.exists():
        return {}
    try:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise DamagedEntry(f"it cannot be loaded ({type(e).__name__})") from None
        if not isinstance(blob, dict) or not {"labels", "model", "sha256"} <= set(blob):
            raise DamagedEntry("it records neither its model nor its checksum (an older cache)")
        if blob["model"] != model_instance(model):
            raise DamagedEntry(f"its labels are of model instance {blob['model']!r}, not {model_instance(model)!r}")
        if blob["sha256"] != labels_digest(blob["labels"], dtype):
            raise DamagedEntry("its labels do not match their sha256")
    except DamagedEntry as e:
        move_aside(path, str(e))
        return {}
    return dict(blob["labels"])


def _cached_query(
    model: TrainedModel,
    splits: Sequence[str],
    filename: str,
    dtype: torch.dtype,
    what: str,
    compute: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, object, torch.device], torch.Tensor],
    data_root: str | os.PathLike | None,
    device: torch.device | str | None,
) -> dict[str, torch.Tensor]:
    """{split: tensor} of a query of ``model``'s weights, cached beside it in ``filename`` (with the model instance
    and the sha256 of the tensors as ``dtype``): a split not cached is computed by ``compute(net, x_u8, y, idx,
    info, dev)`` from the data set's images and labels and the split's indices into them (the order of the model's
    stored outputs). ``what`` names the attack in the error for a model whose weights are not here."""
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ValueError(f"unknown split(s) {bad}; valid: {', '.join(SPLITS)}")
    path = model.path / filename
    cached = _read_cache(path, model, dtype)
    missing = [s for s in splits if s not in cached]
    if missing:
        if not (model.path / "model.pt").exists():
            raise FileNotFoundError(
                f"{model.config.label}: {what} queries the model, and its weights are not in the cache "
                f"({model.path / 'model.pt'}); carry them, or train it again (python -m qmia run ...) on a machine "
                "with the data"
            )
        dev = torch.device(device) if device is not None else default_device()
        info = dataset_info(model.config.dataset)
        x, y = load_dataset(model.config.dataset, data_root)
        net = model.load(dev)
        for s in missing:
            cached[s] = compute(net, x, y, model.outputs["indices"][s], info, dev)
        atomic_save({"labels": cached, "model": model_instance(model), "sha256": labels_digest(cached, dtype)}, path)
    return {s: cached[s] for s in splits}


def augmented_labels(
    model: TrainedModel,
    splits: Sequence[str],
    n_queries: int,
    data_root: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """{split: n x n_queries predicted labels (int64)} of ``model`` on the examples of ``splits`` (in the
    order of its stored outputs); query 0 is the image itself, queries 1.. its training augmentations.
    Computed once from the cached weights and data, then read from the cache."""
    if isinstance(n_queries, bool) or not isinstance(n_queries, int) or n_queries < 1:
        raise ValueError(f"n_queries must be a positive integer (1 = the image itself only); got {n_queries!r}")
    draws: list = []  # the draws of every image of the data set (by its index), drawn once

    def labels(net: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, info, dev) -> torch.Tensor:
        draws[:] = draws or [None] + [_draws(len(x), j, info) for j in range(1, n_queries)]
        cols = [
            predict(
                net, x[idx], info, draws=None if d is None else {k: v[idx] for k, v in d.items()},
                precision=model.config.precision,
            ).argmax(1)
            for d in draws
        ]  # fmt: skip
        return torch.stack(cols, 1)

    what = "the label-only augmentation attack"
    return _cached_query(
        model, splits, f"augmented_labels_q{n_queries}.pt", torch.int64, what, labels, data_root, device
    )


# ----------------------------------------------------------------------------- white-box: per-example gradients


def gradient_features(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example cross-entropy (float32, n) and the L2 norm of its gradient with respect to the weight of each
    convolution and fully connected layer (float32, n x layers, in forward order), of ``model`` in eval mode on
    standardised inputs ``x`` (n x C x H x W) with int64 labels ``y`` (n).

    ``torch.func``: ``vmap`` of ``grad`` over the examples of a batch, so one pass gives every example's gradient;
    equal to one ``backward()`` per example. The gradient is the deployed network's own at its weights: an exported
    quantized model holds the quantized weights as plain tensors, so it is the gradient with respect to them of the
    forward the device computes (DoReFa-Net's quantized activations pass it straight through their rounding,
    as in training)."""
    model.eval()
    names = [f"{n}.weight" for n, _ in weight_layers(model)]
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    fixed = {k: v for k, v in params.items() if k not in names}

    def loss_of_one(weights: dict, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, ({**fixed, **weights}, buffers), (xi[None],))
        return F.cross_entropy(out.float(), yi[None])

    per_example = vmap(grad_and_value(loss_of_one), in_dims=(None, 0, 0))
    losses, norms = [], []
    for i in range(0, len(x), batch_size):
        grads, loss = per_example({k: params[k] for k in names}, x[i : i + batch_size], y[i : i + batch_size])
        norms.append(torch.stack([grads[k].flatten(1).norm(dim=1) for k in names], dim=1))
        losses.append(loss)
    return torch.cat(losses).detach().float().cpu(), torch.cat(norms).detach().float().cpu()


def whitebox_features(
    model: TrainedModel,
    splits: Sequence[str],
    data_root: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """{split: n x (1 + layers) float32}: each example's loss and its gradient norm per weight layer
    (:func:`gradient_features`) under ``model``'s cached weights, in the order of its stored outputs. Computed once
    from the weights and the data, then read from ``whitebox_features.pt`` beside the model (checked like the
    augmented labels: the instance it came from and its sha256)."""

    def features(net: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, info, dev) -> torch.Tensor:
        loss, norms = gradient_features(net, normalize(x[idx].to(dev), info), y[idx].to(dev))
        return torch.cat([loss[:, None], norms], dim=1)

    what = "the white-box attack"
    return _cached_query(model, splits, "whitebox_features.pt", torch.float32, what, features, data_root, device)
