"""A profile's stored rows looked up by configuration and attack, with per-example outcomes, for the claims'
verdicts (:mod:`qmia.claims`) and the statements' rules (:mod:`qmia.statements`): paired comparisons and estimates,
computed once per evidence, never across two trained instances of one key."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from .config import Profile, TrainConfig
from .experiment import PENDING, evaluate
from .plan import readings_plan
from .quantizers import QuantSpec
from .results import load_outcome
from .uncertainty import AttackOutcome, Comparison, Estimate, compare, estimate


class MissingRow(LookupError):
    """A configuration's row is not among the evidence. ``pending``: the plan computes it and this says where
    (:func:`qmia.estimates.pending_text`); '' when no plan holds it."""

    def __init__(self, message: str, pending: str = "") -> None:
        super().__init__(message)
        self.pending = pending


class MixedInstances(MissingRow):
    """Rows to be compared name one model key with two trained instances (two trainings of one configuration):
    comparing them would mix training noise into the comparison (:meth:`Evidence.paired_rows`). The comparison is
    not measurable, as for a row no plan computes."""


ROLES = ("target", "shadow")


def row_instance(row: pd.Series | dict, role: str) -> str:
    """Which trained instance of its ``role`` model ('target' or 'shadow') a row was computed from: the instance it
    records (:func:`qmia.train.model_instance`), or, for rows stored before rows recorded it, the model's train and
    test accuracies as the row gives them (two trainings of one key differ there; equal accuracies may still hide
    two instances)."""
    recorded = row.get(f"{role}_instance")
    if isinstance(recorded, str) and recorded:
        return recorded
    acc = [row.get(f"{role}_{split}_acc") for split in ("train", "test")]
    return "accuracy " + "/".join("?" if a is None or pd.isna(a) else f"{float(a):.6f}" for a in acc)


class Evidence:
    """A profile's stored rows, looked up by target configuration and attack, with per-example outcomes.

    ``recipe``: the training recipe the lookups build configurations with (default: the profile's).
    """

    def __init__(
        self, p: Profile, rows: pd.DataFrame, recipe: str | None = None, n_boot: int = 1000, _memo: dict | None = None
    ) -> None:
        if PENDING not in rows.columns:
            rows = rows.assign(**{PENDING: ""})
        pending = rows[PENDING].fillna("") != ""
        self.p, self.recipe, self.n_boot = p, recipe or p.recipe, n_boot
        self.rows = rows[~pending].reset_index(drop=True)  # stored rows only; pending ones say which part computes them
        self.pending = {
            (k, a): t
            for k, a, t in zip(rows.loc[pending, "target_key"], rows.loc[pending, "attack"], rows.loc[pending, PENDING])
        }
        self._all = rows
        self._at = {(k, a): i for i, (k, a) in enumerate(zip(self.rows["target_key"], self.rows["attack"]))}
        self._memo = {} if _memo is None else _memo  # outcomes and estimates, shared by the views of one evidence

    def with_recipe(self, recipe: str) -> Evidence:
        return Evidence(self.p, self._all, recipe, self.n_boot, self._memo)

    def view(self, p: Profile) -> Evidence:
        """The same rows seen through another profile (e.g. fewer claim seeds)."""
        return Evidence(p, self._all, self.recipe, self.n_boot, self._memo)

    def has(self, arch: str, dataset: str) -> bool:
        return (arch, dataset) in self.p.models or (arch, dataset) == self.p.resnet

    def config(self, arch: str, dataset: str, quant: QuantSpec | None = None, seed: int = 0) -> TrainConfig:
        return self.p.config(arch, dataset, quant or QuantSpec(), recipe=self.recipe, seed=seed)

    def row(self, config: TrainConfig, attack: str = "shadow") -> pd.Series:
        i = self._at.get((config.key, attack))
        if i is None:
            pending = self.pending.get((config.key, attack), "")
            raise MissingRow(
                f"{config.label} / {attack}: {pending or 'no stored row; the plan does not compute it'}", pending
            )
        return self.rows.iloc[i]

    def frame(self, configs: Sequence[TrainConfig], attack: str = "shadow") -> pd.DataFrame:
        """The rows of ``configs`` for ``attack``: stored ones, and pending ones (no numbers; ``pending`` names the
        part) where the plan computes them; raises :class:`MissingRow` for a row no plan computes."""
        index = {(k, a): i for i, (k, a) in enumerate(zip(self._all["target_key"], self._all["attack"]))}
        picked = []
        for c in configs:
            if (c.key, attack) not in index:
                self.row(c, attack)  # raises, saying why
            picked.append(index[(c.key, attack)])
        return self._all.iloc[picked].reset_index(drop=True)

    def outcomes(self, configs: Sequence[TrainConfig], attack: str = "shadow") -> list[AttackOutcome]:
        out = []
        for c in configs:
            if ("outcome", c.key, attack) not in self._memo:
                self._memo[("outcome", c.key, attack)] = load_outcome(self.row(c, attack))
            out.append(self._memo[("outcome", c.key, attack)])
        return out

    def paired_rows(self, lookups: Sequence[tuple[TrainConfig, str]]) -> list[pd.Series]:
        """The rows of (config, attack) pairs to be compared with each other; :class:`MixedInstances` when two of them
        name one model key (as target or shadow) with different trained instances (:func:`row_instance`)."""
        rows = [self.row(c, a) for c, a in lookups]
        seen: dict[str, tuple[str, str]] = {}
        for row in rows:
            for role in ROLES:
                key = row.get(f"{role}_key")
                if not isinstance(key, str) or not key:  # rows that do not name the model (synthetic ones)
                    continue
                inst = row_instance(row, role)
                if key in seen and seen[key][0] != inst:
                    raise MixedInstances(
                        f"model {key} is {seen[key][0]} in row {seen[key][1]} and {inst} in row {row['row_key']}"
                    )
                seen.setdefault(key, (inst, row["row_key"]))
        return rows

    def compare(
        self,
        before: TrainConfig,
        after: TrainConfig,
        metric: str,
        *,
        chance: float | None = None,
        attack_before: str = "shadow",
        attack_after: str = "shadow",
    ) -> Comparison:
        """:func:`qmia.uncertainty.compare` of one attack on two targets (paired; never across two instances of one
        key: :meth:`paired_rows`), computed once per evidence."""
        return self.compare_many(
            [before], [after], metric, chance=chance, attack_before=attack_before, attack_after=attack_after
        )

    def compare_many(
        self,
        before: Sequence[TrainConfig],
        after: Sequence[TrainConfig],
        metric: str,
        *,
        chance: float | None = None,
        attack_before: str = "shadow",
        attack_after: str = "shadow",
    ) -> Comparison:
        """As :meth:`compare`, over several seeds (``before[i]`` and ``after[i]`` share a seed)."""
        key = (
            "compare",
            tuple(c.key for c in before),
            tuple(c.key for c in after),
            metric,
            chance,
            attack_before,
            attack_after,
        )
        if key not in self._memo:
            for b, a in zip(before, after):
                self.paired_rows([(b, attack_before), (a, attack_after)])
            self._memo[key] = compare(
                self.outcomes(before, attack_before),
                self.outcomes(after, attack_after),
                metric,
                chance=chance,
                n_boot=self.n_boot,
            )
        return self._memo[key]

    def training_noise(self, arch: str, metric: str = "target_test_acc"):
        """How much ``arch``'s test accuracy (or the shadow attack's ``metric``) varies between trainings, on these
        rows: a :class:`qmia.training_noise.TrainingNoise`, or None where none was trained twice."""
        from . import training_noise  # it reads the utility tolerance from qmia.claims, which imports this module

        key = ("training_noise", arch, metric)
        if key not in self._memo:
            self._memo[key] = training_noise.for_arch(self.rows, arch, metric)
        return self._memo[key]

    def estimate(self, configs: Sequence[TrainConfig], metric: str = "auc", attack: str = "shadow") -> Estimate:
        """:func:`qmia.uncertainty.estimate` of the configurations' outcomes, computed once per evidence."""
        key = ("estimate", tuple(c.key for c in configs), metric, attack)
        if key not in self._memo:
            self._memo[key] = estimate(self.outcomes(configs, attack), metric, n_boot=self.n_boot)
        return self._memo[key]


def collect(
    p: Profile, data_root: str | os.PathLike | None = None, n_boot: int = 1000, stored_only: bool = False
) -> Evidence:
    """Evaluate (or read from the store) everything the statements and verdicts need under ``p``; ``stored_only``:
    read only, the rows not stored kept as pending (:func:`qmia.experiment.evaluate`)."""
    frames = [
        evaluate(c, attacks, profile=p, data_root=data_root, stored_only=stored_only) for c, attacks in readings_plan(p)
    ]
    return Evidence(p, pd.concat(frames, ignore_index=True), n_boot=n_boot)  # readings_plan lists each target once
