"""The paper's splits of the pooled data: four disjoint subsets (target/shadow x in/out), the training set of
each role, and the seeded halves LiRA's reference models train on.

Every split is a seeded permutation of the pooled data's indices, so a model's training set and its members are
known from its configuration alone (the attacks read the indices from the model's outputs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # config imports data for DATA_VERSION; splits need only the config's fields
    from .config import TrainConfig

SPLITS = ("target_in", "target_out", "shadow_in", "shadow_out")


def make_splits(n_total: int, n_per_split: int, seed: int) -> dict[str, torch.Tensor]:
    """The paper's four disjoint subsets of the pooled data: target/shadow x in/out.

    Returns int64 index tensors of length ``n_per_split`` each, from one seeded permutation.
    """
    if 4 * n_per_split > n_total:
        raise ValueError(f"4 splits of {n_per_split} need {4 * n_per_split} images; the dataset has {n_total}")
    g = torch.Generator().manual_seed(10_000 + seed)
    perm = torch.randperm(n_total, generator=g)
    return {s: perm[i * n_per_split : (i + 1) * n_per_split].clone() for i, s in enumerate(SPLITS)}


def half_subset(candidates: torch.Tensor, index: int, count: int, seed: int) -> torch.Tensor:
    """Training set of LiRA reference model ``index`` of ``count``: a seeded random half of ``candidates``.

    Reference models come in complementary pairs (2k, 2k + 1): one random permutation of the
    candidates per pair, the first half for model 2k and the rest for 2k + 1. So every model
    trains on exactly half of the candidates (models of one size can train together, see
    :mod:`qmia.multitrain`), and with an even ``count`` every candidate is IN exactly
    ``count / 2`` models and OUT of the others, the balance of Carlini et al.'s code.
    """
    if not 0 <= index < count:
        raise ValueError(f"reference index {index} out of range for {count} reference models")
    g = torch.Generator().manual_seed(20_000 + 1_000 * seed + index // 2)
    order = torch.randperm(len(candidates), generator=g)
    half = len(candidates) // 2
    return candidates[order[:half] if index % 2 == 0 else order[half:]].sort().values


def training_indices(config: TrainConfig, splits: dict[str, torch.Tensor]) -> torch.Tensor:
    """Indices (into the pooled dataset) a model of this role trains on."""
    if config.role == "target":
        return splits["target_in"]
    if config.role == "shadow":
        return splits["shadow_in"]
    return half_subset(
        torch.cat([splits["target_in"], splits["target_out"]]), config.ref_index, config.ref_count, config.seed
    )
