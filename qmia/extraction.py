"""Model extraction (Tramèr et al. 2016; the threat of the DivQAT paper): an attacker queries the target with its
own images and trains a surrogate on the answers.

* Access (:data:`ACCESS`): ``probs`` (the full probability vector), ``top3`` (the three largest probabilities,
  rounded to two decimals, renormalised: what a thrifty API returns) or ``label`` (the top-1 label only).
* The pool: the attacker's own data, the shadow split (shadow_in then shadow_out, in an order seeded by the target's
  seed); a budget of B queries takes its first B images (:data:`BUDGETS` at paper scale).
* The surrogate: an untrained model of ``arch`` (by default the target's), trained in the shared loop with the
  target's recipe (epochs, batch size, learning rate, augmentation) against the answers as probability targets
  (cross-entropy; ``label``: one-hot). The surrogates of one seed's targets at one budget share their random numbers
  (initialisation, batch order, augmentation draws), so that two targets' fidelities differ by the answers only.
* Reported on the target's held-out split (``target_out``, which neither saw): the surrogate's test accuracy and
  its fidelity, the share of examples on which it predicts the target's label, each with a 95 % Wilson interval.

A result is a sealed JSON record in ``<results>/extraction/<key>.json``, keyed by the target's key, the access,
the budget and the surrogate's architecture (:func:`extraction_key`); a rerun reads it (:func:`stored_extraction`).
It keeps, bit-packed, which test examples the surrogate agrees with the target on (:func:`agreement`), so that two
targets' fidelities are compared example by example (:func:`compare_fidelity`).
"""

from __future__ import annotations

import base64
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .augment import apply_augment, augment_draws, standardize
from .compute import default_device
from .config import TrainConfig
from .data import data_source, dataset_info, load_dataset
from .loop import StepResult, descend, run_epochs, sgd_one_cycle
from .models import ARCHS, build_model
from .settings import results_root
from .store import DamagedEntry, atomic_write_json, move_aside, read_sealed, seal, stable_hash
from .train import TrainedModel, git_commit, predict
from .uncertainty import Z95

ACCESS = ("probs", "top3", "label")
BUDGETS = (1_000, 5_000, 15_000)  # queries at paper scale (the pool holds 2 x n_per_split images)
# 2: the record keeps the per-example agreement with the target (``agree``, bit-packed).
# 3: the surrogates of one seed's targets share their random numbers (initialisation, batch order, augmentation).
EXTRACTION_VERSION = 3
POOL_SEED = 30_000  # the pool's order: torch.Generator().manual_seed(POOL_SEED + target seed)


PAPER_POOL = 30_000  # the attacker's pool at paper scale (2 x 15,000), for which BUDGETS are given


def scaled_budgets(pool: int) -> tuple[int, ...]:
    """:data:`BUDGETS` scaled to an attacker's pool of ``pool`` images (the same shares of it as at paper scale:
    1/30, 1/6, 1/2), each at least 10 and at most ``pool``, distinct."""
    return tuple(dict.fromkeys(min(pool, max(10, round(b * pool / PAPER_POOL))) for b in BUDGETS))


def answers(logits: torch.Tensor, access: str) -> torch.Tensor:
    """What the target returns for each query (float32 n x classes, rows summing to 1) under ``access``."""
    if access not in ACCESS:
        raise ValueError(f"unknown access level {access!r}; valid: {', '.join(ACCESS)}")
    p = torch.softmax(logits.float(), dim=1)
    if access == "probs":
        return p
    if access == "label":
        return F.one_hot(p.argmax(1), p.shape[1]).float()
    top, idx = p.topk(min(3, p.shape[1]), dim=1)
    kept = torch.zeros_like(p).scatter(1, idx, torch.round(top * 100) / 100)
    empty = kept.sum(1) == 0  # every kept probability rounded to 0: the label is what is left
    kept[empty] = F.one_hot(p[empty].argmax(1), p.shape[1]).float()
    return kept / kept.sum(1, keepdim=True)


def wilson(k: int, n: int) -> tuple[float, float, float]:
    """The share k / n with its 95 % Wilson score interval (lo, hi)."""
    if n < 1:
        return float("nan"), float("nan"), float("nan")
    p = k / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def fit_surrogate(
    model: nn.Module,
    inputs,
    targets: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    seed: int = 0,
    progress: bool = False,
) -> float:
    """Train ``model`` in place against ``targets`` (n x classes, probability rows) in the shared loop: cross-entropy
    with probability targets, SGD with Nesterov momentum and a one-cycle learning rate. ``inputs``: a tensor
    (n x ...) fed as it is, or a function of a batch's indices that returns the model's input (images
    standardised and augmented). Returns the mean loss of the last epoch."""
    n = len(targets)
    bs = min(batch_size, n)
    steps = max(n // bs, 1)
    opt, sched = sgd_one_cycle(model.parameters(), lr, momentum, weight_decay, epochs * steps)
    gen = torch.Generator().manual_seed(seed)
    batch = inputs if callable(inputs) else (lambda idx: inputs[idx])
    model.train()

    def step(perm: torch.Tensor, i: int) -> StepResult:
        idx = perm[i * bs : (i + 1) * bs]
        loss = F.cross_entropy(model(batch(idx)), targets[idx])
        descend(opt, sched, loss)
        return loss.detach(), 1

    (last,) = run_epochs(epochs, steps, lambda: torch.randperm(n, generator=gen), step, "surrogate", progress)
    return last


def check_request(access: str, budget: int, pool_size: int, arch: str | None = None) -> None:
    """ValueError naming the valid values for an unknown access level or architecture, or a budget outside
    1..pool_size."""
    if access not in ACCESS:
        raise ValueError(f"unknown access level {access!r}; valid: {', '.join(ACCESS)}")
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= pool_size:
        raise ValueError(
            f"query budget must be an integer from 1 to {pool_size} (the attacker's pool: the shadow split); "
            f"got {budget!r}"
        )
    if arch is not None and arch not in ARCHS:
        raise ValueError(f"unknown surrogate architecture {arch!r}; valid: {', '.join(ARCHS)}")


def extraction_key(target: TrainConfig, access: str, budget: int, arch: str | None = None) -> str:
    """The key of an extraction record: the target's key, the access, the budget and the surrogate's architecture
    (default: the target's)."""
    return stable_hash(
        {"target": target.key, "access": access, "budget": budget, "arch": arch or target.arch, "v": EXTRACTION_VERSION}
    )


def extraction_path(target: TrainConfig, access: str, budget: int, arch: str | None = None):
    return results_root() / "extraction" / f"{extraction_key(target, access, budget, arch)}.json"


def stored_extraction(target: TrainConfig, access: str, budget: int, arch: str | None = None) -> dict | None:
    """The stored record of an extraction (None when none is stored; a damaged one is moved aside)."""
    path = extraction_path(target, access, budget, arch)
    if not path.exists():
        return None
    try:
        return read_sealed(path)
    except DamagedEntry as e:
        move_aside(path, str(e))
        return None


def _pack(bits: torch.Tensor) -> str:
    return base64.b64encode(np.packbits(bits.numpy().astype(np.uint8)).tobytes()).decode()


def agreement(record: dict) -> np.ndarray:
    """n_test 0/1: on which of the target's held-out examples (in ``target_out`` order) the surrogate predicts the
    target's label."""
    packed = np.frombuffer(base64.b64decode(record["agree"]), dtype=np.uint8)
    return np.unpackbits(packed)[: record["n_test"]].astype(np.int8)


@dataclass(frozen=True)
class FidelityDrop:
    """``before``'s fidelity minus ``after``'s on the same test examples, with the paired bootstrap's 95 % interval
    and one-sided p-value (1 + #{resampled drop <= 0}) / (1 + n_boot)."""

    before: float
    after: float
    drop: float
    lo: float
    hi: float
    p_value: float


def compare_fidelity(before: dict, after: dict, n_boot: int = 2000, seed: int = 0) -> FidelityDrop:
    """Does ``after``'s surrogate agree less with its target than ``before``'s? Paired by test example (the two
    targets must share their held-out split: the same data set, size and seed)."""
    a, b = agreement(before), agreement(after)
    if len(a) != len(b) or before.get("test_index_sha") != after.get("test_index_sha"):
        raise ValueError("the two extractions were not measured on the same test examples; cannot pair them")
    d = (a - b).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = np.array([d[rng.integers(0, len(d), len(d))].mean() for _ in range(n_boot)])
    lo, hi = np.quantile(draws, [0.025, 0.975])
    return FidelityDrop(
        float(a.mean()),
        float(b.mean()),
        float(d.mean()),
        float(lo),
        float(hi),
        float((1 + (draws <= 0).sum()) / (1 + n_boot)),
    )


def extract(
    target: TrainedModel,
    access: str,
    budget: int,
    arch: str | None = None,
    data_root: str | os.PathLike | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> dict:
    """Query ``target`` with the first ``budget`` images of the attacker's pool under ``access``, train a surrogate
    on the answers and return (and store) its test accuracy and fidelity with their intervals."""
    cfg = target.config
    arch = arch or cfg.arch
    pool_idx = torch.cat([target.outputs["indices"][s] for s in ("shadow_in", "shadow_out")])
    check_request(access, budget, len(pool_idx), arch)
    key = extraction_key(cfg, access, budget, arch)
    path = extraction_path(cfg, access, budget, arch)
    done = stored_extraction(cfg, access, budget, arch)
    if done is not None:
        return done
    start = time.perf_counter()
    dev = torch.device(device) if device is not None else default_device()
    info = dataset_info(cfg.dataset)
    x, _ = load_dataset(cfg.dataset, data_root)
    order = torch.randperm(len(pool_idx), generator=torch.Generator().manual_seed(POOL_SEED + cfg.seed))
    queried = pool_idx[order[:budget]]
    net = target.load(dev)
    asked = answers(predict(net, x[queried], info, precision=cfg.precision), access).to(dev)
    x_pool = x[queried].to(dev)
    # common random numbers: every target of one seed gets a surrogate with the same initialisation, batch order and
    # augmentation draws, so that two targets' fidelities differ by their answers, not by the surrogate's luck
    base = POOL_SEED + 100_000 * cfg.seed + budget
    gen = torch.Generator().manual_seed(base + 1)

    def batch(idx: torch.Tensor) -> torch.Tensor:
        xb = x_pool[idx].float() / 255
        if cfg.augment:
            xb = apply_augment(xb, info, augment_draws(len(idx), info, gen, dev))
        return standardize(xb, info)

    torch.manual_seed(base + 2)
    surrogate = build_model(arch, info.channels, info.num_classes, info.image_size).to(dev)
    fit_surrogate(
        surrogate,
        batch,
        asked,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        seed=base + 3,
        progress=progress,
    )
    test_idx = target.outputs["indices"]["target_out"]
    labels = target.outputs["labels"]["target_out"]
    mine = predict(surrogate, x[test_idx].to(dev), info).argmax(1).cpu()
    theirs = target.outputs["logits"]["target_out"].argmax(1)
    acc, acc_lo, acc_hi = wilson(int((mine == labels).sum()), len(labels))
    fid, fid_lo, fid_hi = wilson(int((mine == theirs).sum()), len(labels))
    row = {
        "key": key,
        "target": cfg.key,
        "target_label": cfg.label,
        "access": access,
        "budget": budget,
        "surrogate_arch": arch,
        "test_acc": acc,
        "test_acc_lo": acc_lo,
        "test_acc_hi": acc_hi,
        "fidelity": fid,
        "fidelity_lo": fid_lo,
        "fidelity_hi": fid_hi,
        "target_test_acc": float((theirs == labels).float().mean()),
        "n_test": len(labels),
        "agree": _pack(mine == theirs),
        "test_index_sha": stable_hash(test_idx.tolist()),
        "seed": cfg.seed,
        "data": f"{cfg.dataset} ({cfg.n_per_split}/split)",
        "data_source": data_source(cfg.dataset, data_root),
        "precision": cfg.precision,
        "seconds": time.perf_counter() - start,
        "device": str(dev),
        "commit": git_commit(),
        "version": EXTRACTION_VERSION,
    }
    atomic_write_json(seal(row), path)
    return read_sealed(path)
