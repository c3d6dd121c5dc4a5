"""The book's experiments as data: which target configurations each result needs, and with which attacks.

Notebooks call these functions to build their configurations, and ``python -m qmia sweep``
runs :func:`book_plan` without Jupyter (e.g. on a GPU machine), so both always agree on
what the book shows. Every function takes the profile and optional overrides (bits, seeds)
so a reader can rerun a notebook with other bitwidths.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from .config import Profile, TrainConfig
from .quantizers import QuantSpec

Pair = tuple[str, str]  # (architecture, dataset)


def _seeds(p: Profile, seeds: Sequence[int] | None) -> tuple[int, ...]:
    return tuple(seeds) if seeds is not None else p.seeds


def paper_configs(p: Profile, models: Iterable[Pair] | None = None, bits: Sequence[int] | None = None,
                  seeds: Sequence[int] | None = None) -> list[TrainConfig]:
    """Tables 3-5 and Figure 5: each model at full precision and with the MIA quantizer at each bitwidth."""
    quants = [QuantSpec()] + [QuantSpec("mia", b) for b in (bits or p.bits)]
    return [p.config(a, d, q, seed=s) for a, d in (models or p.models) for q in quants for s in _seeds(p, seeds)]


def dorefa_configs(p: Profile, bits: Sequence[int] = (4, 8), seeds: Sequence[int] | None = None) -> list[TrainConfig]:
    """Table 6: DoReFa-Net against the MIA quantizer on the profile's ResNet at each bitwidth."""
    a, d = p.resnet
    return [p.config(a, d, QuantSpec(m, b), seed=s) for b in bits for m in ("dorefa", "mia") for s in _seeds(p, seeds)]


def partial_configs(p: Profile, bits: Sequence[int] = (4,), last: int = 5, seeds: Sequence[int] | None = None) -> list[TrainConfig]:
    """Figure 6: only the last ``last`` layers quantized, against full precision and all layers."""
    a, d = p.resnet
    quants = [QuantSpec()] + [q for b in bits for q in (QuantSpec("mia", b, layers=f"last:{last}"), QuantSpec("mia", b))]
    return [p.config(a, d, q, seed=s) for q in quants for s in _seeds(p, seeds)]


def zero_point_configs(p: Profile, bits: Sequence[int] | None = None, seeds: Sequence[int] | None = None) -> list[TrainConfig]:
    """The quantizer chapter: z = 2 (the paper's) against a centred zero point z = 2^(b-1)."""
    a, d = p.resnet
    quants = [QuantSpec()] + [QuantSpec("mia", b, zero_point=z) for b in (bits or p.bits) for z in (2, "centred")]
    return [p.config(a, d, q, seed=s) for q in quants for s in _seeds(p, seeds)]


def lira_configs(p: Profile, bits: Sequence[int] = (4,), seeds: Sequence[int] | None = None) -> list[TrainConfig]:
    """LiRA targets: full precision and the MIA quantizer (z = 2 and centred) on the profile's LiRA models."""
    quants = [QuantSpec()] + [QuantSpec("mia", b, zero_point=z) for b in bits for z in (2, "centred")]
    return [p.config(a, d, q, seed=s) for a, d in p.lira_models for q in quants for s in _seeds(p, seeds)]


def sweep_configs(p: Profile, bits: Sequence[int] | None = None, seeds: Sequence[int] | None = None) -> list[TrainConfig]:
    """Privacy-utility sweep: both quantizers over ``sweep_bits`` (and the centred MIA zero point)."""
    a, d = p.sweep
    quants = [QuantSpec()]
    for b in bits or p.sweep_bits:
        quants += [QuantSpec("mia", b), QuantSpec("mia", b, zero_point="centred"), QuantSpec("dorefa", b)]
    return [p.config(a, d, q, seed=s) for q in quants for s in _seeds(p, seeds)]


def book_plan(p: Profile) -> list[tuple[TrainConfig, tuple[str, ...]]]:
    """Every (target config, attack groups) the book's notebooks evaluate under profile ``p``."""
    plan: dict[TrainConfig, set[str]] = {}

    def add(configs: list[TrainConfig], attacks: tuple[str, ...]) -> None:
        for c in configs:
            plan.setdefault(c, set()).update(attacks)

    add(paper_configs(p), ("shadow", "adaptive", "metric"))
    add(dorefa_configs(p), ("shadow", "adaptive"))
    add(partial_configs(p), ("shadow",))
    add(zero_point_configs(p), ("shadow",))
    add(lira_configs(p), ("shadow", "lira"))
    add(sweep_configs(p), ("shadow",))
    order = ("shadow", "adaptive", "metric", "lira")
    return [(c, tuple(a for a in order if a in attacks)) for c, attacks in plan.items()]


def run_plan(p: Profile, data_root=None, device=None, progress: bool | None = None) -> pd.DataFrame:
    """Evaluate the whole book plan; returns all rows. Cached models and rows are reused."""
    from .experiment import attack_variants, evaluate, models_needed
    from .multitrain import train_many

    plan = book_plan(p)
    start = time.perf_counter()
    # every model of the plan first, so that models of one shape train together on a GPU
    needed = [c for config, attacks in plan
              for cs in models_needed(config, attack_variants(attacks), p.lira_refs).values() for c in cs]
    train_many(needed, data_root, device, progress)
    frames = []
    for config, attacks in tqdm(plan, desc=f"{p.name} plan", unit="target", disable=progress is False):
        frames.append(evaluate(config, attacks, profile=p.name, data_root=data_root, device=device, progress=progress))
    df = pd.concat(frames, ignore_index=True)
    df.attrs["seconds"] = time.perf_counter() - start
    return df
