"""How much a model's test accuracy varies from one training to the next, measured on the stored rows.

Two stored models that differ in one setting (say a full-precision shadow and a 4-bit one) are each one training.
Their test accuracies differ by the setting's effect, by which test examples were drawn, and by the training itself
(initialisation, batch order, non-deterministic kernels): ResNet-20's full-precision target scored 72.2, 72.0 and
71.6 % over seeds 0-2, and one key trained twice on the GPU gave 72.9 and 72.6 %. The interval of a difference of
two proportions holds only the test examples' part. :func:`measure` pools, over every configuration stored with two
or more trainings (seeds, or repeated trainings of one key), the seed-to-seed variance of test accuracy; the statement
rules (:func:`qmia.beyond_noise.accuracy_gap`) give each single training at least that variance. Configurations whose
models lost their utility (mean test accuracy more than :data:`qmia.claims.MAX_UTILITY_DROP` below the
architecture's full-precision mean) are left out: a collapse varies in its own way.

The same holds for an attack's metrics (attack accuracy, AUC, member precision ...): ResNet-20's 4-bit min-anchored
targets gave shadow-attack accuracies of 72.3, 72.7 and 69.1 % over seeds 0-2 on the CPU (seed 0's superseded
H200 row: 79.1 %; the pooled SDs fell by half when the readings were re-derived). ``measure(rows, arch, metric)``
pools a metric of the shadow attack the same way, one value per (target instance, shadow instance); the drop rules
(:func:`qmia.beyond_noise.attack_gap`) widen a comparison of two single trainings with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pandas as pd

from .claims import MAX_UTILITY_DROP
from .evidence import row_instance
from .vocabulary import ARCH_NAMES

TEST_ACC = "target_test_acc"

CONFIG_COLUMNS = (
    "arch",
    "dataset",
    "method",
    "bits",
    "zero_point",
    "layers",
    "mode",
    "reading",
    "act_bits",
    "defence",
    "precision",
    "epochs",
    "augment",
    "n_per_split",
)  # every setting of a trained target a row records, the seed left out


@dataclass(frozen=True)
class TrainingNoise:
    """The pooled seed-to-seed standard deviation of test accuracy (a fraction: 0.01 = 1 point), from ``trainings``
    models in ``configs`` configurations of ``measured_on`` (an architecture name); ``borrowed`` when the compared
    architecture has no repeated trainings stored and this is the largest measured on another."""

    sd: float
    configs: int
    trainings: int
    measured_on: str
    borrowed: bool = False
    metric: str = TEST_ACC

    def __str__(self) -> str:
        arch = ARCH_NAMES.get(self.measured_on, self.measured_on)
        source = f"{arch}'s, none repeated here" if self.borrowed else arch
        of = "" if self.metric == TEST_ACC else f" of the attack's {self.metric.replace('_', ' ')}"
        return f"training SD{of} {100 * self.sd:.2f} points ({self.trainings} trainings of {source})"


def trainings(rows: pd.DataFrame, metric: str = TEST_ACC) -> pd.DataFrame:
    """One row per trained instance (a key trained twice counts twice): its settings, seed, test accuracy and
    ``metric``. For test accuracy an instance is the target's; for an attack's metric it is the pair (target,
    shadow) of the shadow attack's rows."""
    cols = [c for c in CONFIG_COLUMNS if c in rows.columns]
    values = list(dict.fromkeys([TEST_ACC, metric]))
    roles = ("target",) if metric == TEST_ACC else ("target", "shadow")
    if metric != TEST_ACC:
        rows = rows[rows["attack"] == "shadow"] if "attack" in rows.columns else rows
    df = rows[[*cols, "seed", *values]].copy()
    ids = []
    for role in roles:
        key = rows[f"{role}_key"] if f"{role}_key" in rows.columns else pd.Series("", index=rows.index)
        inst = [row_instance(r, role) for _, r in rows.iterrows()]
        df[f"{role}_id"] = key.astype(str).str.cat(pd.Series(inst, index=rows.index), sep="@")
        ids.append(f"{role}_id")
    df = df.drop_duplicates(ids).drop(columns=ids)
    for c in cols:  # a setting a row does not record (NaN, None) groups with 'none' (older rows left it out)
        df[c] = df[c].map(lambda v: "none" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return df.dropna(subset=values)


def measure(rows: pd.DataFrame, arch: str, metric: str = TEST_ACC) -> TrainingNoise | None:
    """The pooled training SD of ``metric`` (the target's test accuracy, or a column of the shadow attack's rows)
    for ``arch`` on the stored ``rows``, or None when no configuration that keeps utility was trained twice. Pooled
    variance over :func:`by_config`'s pooled configurations: sum of (n_i - 1) s_i^2 / sum of (n_i - 1)."""
    if not {"arch", "seed", "target_key", TEST_ACC, metric} <= set(rows.columns):
        return None  # rows that do not say which model they are (hand-built ones), or lack the metric
    t = by_config(rows, arch, (metric,))
    t = t[t["pooled"]] if not t.empty else t
    if t.empty:
        return None
    dof = t["trainings"] - 1
    sd = math.sqrt(float((dof * t[metric] ** 2).sum() / dof.sum()))
    return TrainingNoise(sd, len(t), int(t["trainings"].sum()), arch, metric=metric)


def by_config(rows: pd.DataFrame, arch: str, metrics: tuple[str, ...]) -> pd.DataFrame:
    """Where :func:`measure`'s pooled SDs come from: one row per configuration of ``arch`` trained two or more times,
    its settings (method, reading, bits, layers), its trainings, whether it keeps utility (and so is pooled), and
    the seed-to-seed SD of each of ``metrics`` (fractions). Empty when none was trained twice."""
    cols = [c for c in CONFIG_COLUMNS if c in rows.columns]
    arch_rows = rows[rows["arch"] == arch] if "arch" in rows.columns else rows.iloc[:0]
    out: dict[tuple, dict] = {}
    for metric in metrics:
        if metric not in rows.columns or arch_rows.empty:
            continue
        df = trainings(arch_rows, metric)
        full = df[df["method"] == "none"] if "method" in df.columns else df.iloc[:0]
        floor = (full[TEST_ACC].mean() if len(full) else df[TEST_ACC].max()) - MAX_UTILITY_DROP
        for key, g in df.groupby(cols, dropna=False):
            if len(g) < 2:
                continue
            row = out.setdefault(key, {**dict(zip(cols, key)), "trainings": len(g)})
            row["pooled"] = bool(g[TEST_ACC].astype(float).mean() >= floor)
            row[metric] = float(g[metric].astype(float).std(ddof=1))
    return pd.DataFrame(list(out.values()))


def for_arch(rows: pd.DataFrame, arch: str, metric: str = TEST_ACC) -> TrainingNoise | None:
    """``arch``'s measured training SD of ``metric``; where it has no repeated trainings, the largest measured on
    another architecture (marked borrowed); None when the rows hold no repeated trainings at all."""
    own = measure(rows, arch, metric)
    if own is not None:
        return own
    others = [m for a in sorted(set(rows.get("arch", []))) if a != arch and (m := measure(rows, a, metric)) is not None]
    if not others:
        return None
    worst = max(others, key=lambda m: m.sd)
    return replace(worst, borrowed=True)
