"""Queries of a trained model beyond the outputs stored at training: its predicted labels under the
training augmentations, which the label-only augmentation attack reads (Choquette-Choo et al. 2021).

``augmented_labels(model, splits, n_queries)`` loads the cached weights and the data, predicts the
label of every example of ``splits`` on ``n_queries`` versions of it (query 0 the image itself, the
others the dataset's training augmentation: random crop and flip on CIFAR-10, random crop and rotation
on Fashion-MNIST and digits; :func:`qmia.data.apply_augment`), and caches the labels beside the model
(``augmented_labels_q<n>.pt``) so that a rerun queries nothing. The draws depend on the example's
dataset index and the query only, so every model sees the same augmented images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from .data import SPLITS, augment_draws, dataset_info, load_dataset
from .store import atomic_save
from .train import TrainedModel, default_device, predict

QUERY_SEED = 7_000  # the draws of query j come from torch.Generator().manual_seed(QUERY_SEED + j)


def _draws(n_images: int, query: int, info) -> dict[str, torch.Tensor]:
    return augment_draws(n_images, info, torch.Generator().manual_seed(QUERY_SEED + query))


def augmented_labels(model: TrainedModel, splits: Sequence[str], n_queries: int, data_root: str | os.PathLike | None = None,
                     device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """{split: n x n_queries predicted labels (int64)} of ``model`` on the examples of ``splits`` (in the
    order of its stored outputs); query 0 is the image itself, queries 1.. its training augmentations.
    Computed once from the cached weights and data, then read from the cache."""
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ValueError(f"unknown split(s) {bad}; valid: {', '.join(SPLITS)}")
    if isinstance(n_queries, bool) or not isinstance(n_queries, int) or n_queries < 1:
        raise ValueError(f"n_queries must be a positive integer (1 = the image itself only); got {n_queries!r}")
    path = model.path / f"augmented_labels_q{n_queries}.pt"
    cached = torch.load(path, map_location="cpu", weights_only=True) if path.exists() else {}
    missing = [s for s in splits if s not in cached]
    if missing:
        if not (model.path / "model.pt").exists():
            raise FileNotFoundError(f"{model.config.label}: the label-only augmentation attack queries the model, and its "
                                    f"weights are not in the cache ({model.path / 'model.pt'}); train it again "
                                    "(python -m qmia run ...) on a machine with the data")
        dev = torch.device(device) if device is not None else default_device()
        info = dataset_info(model.config.dataset)
        x, _ = load_dataset(model.config.dataset, data_root)
        net = model.load(dev)
        draws = [None] + [_draws(len(x), j, info) for j in range(1, n_queries)]
        for s in missing:
            idx = model.outputs["indices"][s]
            cols = [predict(net, x[idx], info, draws=None if d is None else {k: v[idx] for k, v in d.items()},
                            precision=model.config.precision).argmax(1)
                    for d in draws]
            cached[s] = torch.stack(cols, 1)
        atomic_save(cached, path)
    return {s: cached[s] for s in splits}
