"""Training with a cache: one readable loop, data resident on the device, checkpoints keyed by config.

``train(config)`` returns a :class:`TrainedModel` from ``<cache>/models/<key>/`` if it is
there, else trains it and writes, each atomically, ``model.pt`` (the exported state dict:
quantized weights as plain tensors), ``outputs.pt`` (logits on all four splits, split
indices and labels) and last ``meta.json`` (which marks the entry complete, records the
sha256 of the other two and is sealed with its own, :func:`qmia.store.seal`). An interrupted run
loses at most the model in flight; a rerun resumes with the next missing one. An entry whose files
are missing, truncated or changed is reported, moved aside and retrained (:func:`is_cached`); two
processes asked for one model train it once (a lock per key).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from . import defences, dp
from .augment import apply_augment, augment_draws, normalize, standardize
from .compute import autocast, compute_record, default_device, layout
from .config import TRAIN_VERSION, TrainConfig
from .data import dataset_info, load_dataset
from .loop import fit
from .model_entries import ENTRY_FILES, edited, has_weights, is_cached, model_dir, split_accuracy
from .models import build_model
from .quantizers import export_quantized, quantize_model
from .settings import commit_override, progress_default
from .splits import SPLITS, make_splits, training_indices
from .store import (
    DamagedEntry,
    atomic_save,
    atomic_write_json,
    checksums,
    lock,
    read_json,
    remove_stale_parts_once,
    seal,
    seal_damage,
    unsealed,
)


@lru_cache(maxsize=1)
def git_commit() -> str:
    """``$QMIA_COMMIT`` when set, else the repository's short commit, with '-dirty' when tracked files outside
    ``results/`` differ from it ('unknown' outside git)."""
    root = Path(__file__).resolve().parent.parent
    if commit_override():  # set where the checkout's .git is absent or stale (a GPU lease's copy)
        return commit_override()
    try:

        def run(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()

        commit = run("rev-parse", "--short", "HEAD")
        # results/ holds outputs (the paper profile's rows are tracked): a run that changed them is still this code
        return commit + (
            "-dirty" if run("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results") else ""
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return progress_default()


def build_exported(config: TrainConfig) -> nn.Module:
    """An untrained model with the structure of ``config``'s exported checkpoint (DP-SGD: BatchNorm as GroupNorm)."""
    info = dataset_info(config.dataset)
    model = build_model(config.arch, info.channels, info.num_classes, info.image_size)
    if config.defence.kind == "dp":
        return dp.dp_compatible(model)
    return export_quantized(quantize_model(model, config.quant, training=True), config.quant)


class TrainedModel:
    """A cached, trained model: its config, checkpoint and outputs."""

    def __init__(self, config: TrainConfig) -> None:
        self.config, self.path = config, model_dir(config)
        meta = read_json(self.path / "meta.json")
        if edited(meta):
            raise DamagedEntry(f"{self.path / 'meta.json'}: {seal_damage(meta)}")
        self.meta = unsealed(meta)
        self.trained_here = False  # set by train() when this call trained it
        self._outputs: dict | None = None

    def load(self, device: torch.device | str = "cpu") -> nn.Module:
        """The exported model, weights loaded without executing code (``weights_only=True``)."""
        if self.meta.get("carried") == "outputs":
            raise FileNotFoundError(
                f"only the outputs of {self.config.label} were carried to this machine ({self.path}), "
                "not its weights; delete that folder to train it again here"
            )
        model = build_exported(self.config)
        model.load_state_dict(torch.load(self.path / "model.pt", map_location=device, weights_only=True))
        return model.to(device).eval()

    @property
    def outputs(self) -> dict:
        """{'logits': {split: float32 n x classes}, 'logits_flip': {...} or {}, 'indices': {...}, 'labels': {...}}."""
        if self._outputs is None:
            self._outputs = torch.load(self.path / "outputs.pt", map_location="cpu", weights_only=True)
        return self._outputs

    def __repr__(self) -> str:
        return f"TrainedModel({self.config.label}, {self.path})"


@torch.no_grad()
def predict(
    model: nn.Module,
    x_u8: torch.Tensor,
    info,
    batch_size: int | None = None,
    flip: bool = False,
    draws: dict[str, torch.Tensor] | None = None,
    precision: str = "fp32",
) -> torch.Tensor:
    """Logits (float32, n x classes) of uint8 images, in eval mode, in large batches
    (default 8192 images on CUDA, 2048 on a CPU), computed at ``precision`` (a config's: 'bf16' autocast or
    'fp32'). ``draws``: augment each image first with these choices of the training augmentation
    (:func:`qmia.data.apply_augment`, each of length n)."""
    model.eval()
    dev = next(model.parameters()).device
    batch_size = batch_size or (8192 if dev.type == "cuda" else 2048)
    out = []
    for i in range(0, len(x_u8), batch_size):
        if draws is None:
            xb = normalize(x_u8[i : i + batch_size].to(dev, non_blocking=True), info)
        else:
            xb = x_u8[i : i + batch_size].to(dev, non_blocking=True).float() / 255
            xb = standardize(
                apply_augment(xb, info, {k: v[i : i + batch_size].to(dev) for k, v in draws.items()}), info
            )
        if flip:
            xb = xb.flip(-1)
        with autocast(dev, precision):
            out.append(model(layout(xb, dev, precision)).float().cpu())
    return torch.cat(out)


def train(
    config: TrainConfig,
    data_root: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
    progress: bool | None = None,
    force: bool = False,
) -> TrainedModel:
    """Train ``config`` (or reuse its cache entry) and return it with its outputs on all splits."""
    remove_stale_parts_once()
    if is_cached(config) and not force:
        return TrainedModel(config)
    if not force and (restored := restore_outputs(config, data_root, device)) is not None:
        return restored
    if config.defence.kind != "none":
        return train_defended(config, data_root, device, progress, force)
    with lock(config.key):  # another process may be training it: wait, then reuse its entry
        if is_cached(config) and not force:
            return TrainedModel(config)
        return train_job(prepare(config, data_root, device), progress)


def starting_model(config: TrainConfig) -> TrainConfig | None:
    """The undefended model a pruned or post-training-quantized ``config`` starts from (trained, or reused, first);
    None for any other (DP-SGD trains from scratch)."""
    return config.with_(defence=defences.Defence()) if config.defence.kind in ("prune", "ptq") else None


def train_defended(
    config: TrainConfig,
    data_root: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
    progress: bool | None = None,
    force: bool = False,
) -> TrainedModel:
    """Train (or reuse) a model with a defence (:class:`qmia.defences.Defence`) and cache it like any other.

    prune: the cached undefended model of the same settings, magnitude-pruned, then fine-tuned with the masks in
        place for :func:`qmia.defences.finetune_epochs_for` epochs (this loop, one-cycle over those epochs).
    ptq: the cached undefended model, its weights rounded to ``bits`` (post-training quantization; no training).
    dp: trained from scratch with DP-SGD (:func:`qmia.dp.dp_fit`: Opacus, delta = 1/n, the same augmentation,
        batch size, learning rate and epochs); the epsilon spent is recorded in meta.json as ``dp_epsilon``.
    """
    if is_cached(config) and not force:
        return TrainedModel(config)
    d, start_from = config.defence, starting_model(config)
    base = train(start_from, data_root, device, progress) if start_from is not None else None
    with lock(config.key):
        if is_cached(config) and not force:
            return TrainedModel(config)
        job = prepare(config, data_root, device)
        start = time.perf_counter()
        loss, extra = float("nan"), {}
        if base is not None:
            job.model.load_state_dict(base.load(job.dev).state_dict())
        if d.kind == "prune":
            defences.prune_model(job.model, d.sparsity, d.scope)
            tune = config.with_(epochs=defences.finetune_epochs_for(d, config.epochs))
            loss = fit(job.model, tune, job.x_train, job.y_train, _progress_enabled(progress))
            defences.make_permanent(job.model)
            extra = {"sparsity": defences.sparsity_of(job.model), "finetune_epochs": tune.epochs}
        elif d.kind == "ptq":
            defences.ptq_model(job.model, d.bits, d.granularity)
        else:  # dp: images in [0, 1], augmented (when the recipe says so) and standardised batch by batch
            info = dataset_info(config.dataset)
            gen = torch.Generator().manual_seed(int(config.key[:8], 16))

            def prepare_batch(xb: torch.Tensor) -> torch.Tensor:
                if config.augment:
                    xb = apply_augment(xb, info, augment_draws(len(xb), info, gen, xb.device))
                return layout(standardize(xb, info), job.dev, config.precision)

            job.model, eps = dp.dp_fit(
                job.model,
                job.x_train.float() / 255,
                job.y_train,
                epochs=config.epochs,
                batch_size=config.batch_size,
                lr=config.lr,
                epsilon=d.epsilon,
                max_grad_norm=d.max_grad_norm,
                augment_fn=prepare_batch,
                seed=int(config.key[8:16], 16),
                momentum=config.momentum,
            )
            extra = {"dp_epsilon": eps, "dp_delta": 1 / len(job.x_train)}
        m = finish(job, loss, time.perf_counter() - start, extra=extra)
        m.trained_here = True
        return m


def train_job(job: TrainingJob, progress: bool | None = None) -> TrainedModel:
    """Train a prepared job alone (:func:`fit`), then export it and write its cache entry (:func:`finish`)."""
    start = time.perf_counter()
    loss = fit(job.model, job.config, job.x_train, job.y_train, _progress_enabled(progress))
    m = finish(job, loss, time.perf_counter() - start)
    m.trained_here = True
    return m


class TrainingJob:
    """One model about to train: its config, device, data and splits (see :func:`prepare`)."""

    def __init__(
        self,
        config: TrainConfig,
        dev: torch.device,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        splits: dict[str, torch.Tensor],
        train_idx: torch.Tensor,
    ) -> None:
        self.config, self.dev, self.model, self.x, self.y = config, dev, model, x, y
        self.splits, self.train_idx = splits, train_idx
        self.x_train, self.y_train = x[train_idx].to(dev), y[train_idx].to(dev)


def prepare(
    config: TrainConfig, data_root: str | os.PathLike | None = None, device: torch.device | str | None = None
) -> TrainingJob:
    """Load the data and splits of ``config`` and build its (quantized, untrained) model on the device."""
    dev = torch.device(device) if device is not None else default_device()
    info = dataset_info(config.dataset)
    x, y = load_dataset(config.dataset, data_root)
    splits = make_splits(len(x), config.n_per_split, config.seed)
    train_idx = training_indices(config, splits)
    torch.manual_seed(int(config.key[8:16], 16))
    model = build_model(config.arch, info.channels, info.num_classes, info.image_size)
    model = quantize_model(model, config.quant, training=True).to(dev)
    if dev.type == "cuda":  # fastest kernels for the fixed shapes (bitwise reproducible on the CPU only)
        torch.backends.cudnn.benchmark = True
    if dev.type == "cuda" or config.precision == "bf16":
        model = model.to(memory_format=torch.channels_last)
    return TrainingJob(config, dev, model, x, y, splits, train_idx)


def model_outputs(
    model: nn.Module,
    config: TrainConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    splits: dict[str, torch.Tensor],
    train_idx: torch.Tensor,
) -> dict:
    """What a cache entry's ``outputs.pt`` holds (see :attr:`TrainedModel.outputs`): the logits of ``model`` on
    every split (and of the flipped images where the data set is flipped in training), the splits and labels."""
    info = dataset_info(config.dataset)
    flips = info.augment == "crop+flip"
    return {
        "logits": {s: predict(model, x[splits[s]], info, precision=config.precision) for s in SPLITS},
        "logits_flip": (
            {s: predict(model, x[splits[s]], info, flip=True, precision=config.precision) for s in SPLITS}
            if flips
            else {}
        ),
        "indices": splits,
        "labels": {s: y[splits[s]] for s in SPLITS},
        "train_indices": train_idx,
    }


def restore_outputs(
    config: TrainConfig, data_root: str | os.PathLike | None = None, device: torch.device | str | None = None
) -> TrainedModel | None:
    """Complete a weights-only entry (:func:`has_weights`): compute the model's outputs on every split from its
    carried weights, write ``outputs.pt`` and record it in ``meta.json`` (with where it was computed, under
    ``outputs_restored``; the training record stays the original's). None when there is nothing to restore."""
    if not has_weights(config):
        return None
    dev = torch.device(device) if device is not None else default_device()
    path = model_dir(config)
    with lock(config.key):
        if not has_weights(config):
            return TrainedModel(config) if is_cached(config) else None
        x, y = load_dataset(config.dataset, data_root)
        splits = make_splits(len(x), config.n_per_split, config.seed)
        model = TrainedModel(config).load(dev)
        atomic_save(model_outputs(model, config, x, y, splits, training_indices(config, splits)), path / "outputs.pt")
        outputs = torch.load(path / "outputs.pt", map_location="cpu", weights_only=True)
        meta = unsealed(read_json(path / "meta.json"))
        meta["files"] = checksums({name: path / name for name in ENTRY_FILES})
        meta["outputs_restored"] = {"device": str(dev), "torch": torch.__version__, "commit": git_commit()}
        meta["accuracy"] = split_accuracy(outputs)  # of the outputs the attacks read, computed here
        atomic_write_json(seal(meta), path / "meta.json")
    return TrainedModel(config)


def finish(
    job: TrainingJob, loss: float, seconds: float, trained_with: int = 1, extra: dict | None = None
) -> TrainedModel:
    """Export the trained model of ``job``, compute its logits on every split and write the cache entry.

    ``trained_with``: how many models shared the training steps (:mod:`qmia.multitrain`); ``extra``: more fields
    for meta.json (a defence's record, e.g. ``dp_epsilon``), written with the rest at once.
    """
    config, path = job.config, model_dir(job.config)
    model = export_quantized(job.model, config.quant)
    outputs = model_outputs(model, config, job.x, job.y, job.splits, job.train_idx)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    atomic_save(state, path / "model.pt")
    atomic_save(outputs, path / "outputs.pt")
    files = checksums({name: path / name for name in ENTRY_FILES})
    acc = split_accuracy(outputs)
    atomic_write_json(
        seal(
            {
                "config": asdict(config),
                "key": config.key,
                "label": config.label,
                "train_version": TRAIN_VERSION,
                "final_loss": loss,
                "train_seconds": seconds,
                "images_per_second": config.epochs * len(job.train_idx) / seconds,
                "trained_with": trained_with,
                "accuracy": acc,
                "device": str(job.dev),
                "precision": compute_record(config, job.dev),
                "torch": torch.__version__,
                "commit": git_commit(),
                "files": files,
                **(extra or {}),
            }
        ),
        path / "meta.json",
    )
    return TrainedModel(config)
