"""Which reading of the quantizer (and which training recipe) the paper's statements choose, counting only the
cells decided beyond noise (:mod:`qmia.statements`).

:func:`choose_reading` takes the reading with the best net count (agrees - disagrees) and, when another is within
what the undecided cells could change, names both ("undecided between A and B"); :func:`pick_recipe` does the
same for the recipes of the abstract's statements.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from .claims import AGREES, DISAGREES, PENDING, UNMEASURABLE
from .evidence import Evidence, MissingRow
from .statements import STATEMENTS, check_statement

NOISE = "within noise"


NET = "net (agrees - disagrees)"


def consistency_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per reading: the statements it agrees with, disagrees with, cannot measure (of which ``within noise``: more
    data could decide them), pending, and the net count of decided ones (agrees - disagrees)."""
    out = pd.DataFrame(
        {
            status: [sum(c.status == status for c in table[r]) for r in table.columns]
            for status in (AGREES, DISAGREES, UNMEASURABLE, PENDING)
        },
        index=table.columns,
    )
    out.insert(3, NOISE, [sum(c.status == UNMEASURABLE and c.noise for c in table[r]) for r in table.columns])
    out[NET] = out[AGREES] - out[DISAGREES]
    return out


@dataclass(frozen=True)
class ReadingChoice:
    """The reading the statements choose: ``chosen`` (one reading) or ``undecided`` (the readings it cannot separate,
    best net first), the ``margin`` (the chosen reading's worst net minus the others' best; <= 0 when undecided),
    and each reading's net count with its range [net - open, net + open] over its within-noise cells."""

    readings: tuple[str, ...]
    margin: int
    net: dict[str, int]
    bounds: dict[str, tuple[int, int]]

    @property
    def decided(self) -> bool:
        return len(self.readings) == 1

    @property
    def shown(self) -> str:
        """The reading the book's pages show: the chosen one, or the best net of those undecided."""
        return self.readings[0]

    def __str__(self) -> str:
        if self.decided:
            return f"{self.readings[0]} (by a margin of {self.margin} decided statement(s))"
        return f"undecided between {', '.join(self.readings)}"


def choose_reading(table: pd.DataFrame) -> ReadingChoice:
    """The rule: count only decided statements (net = agrees - disagrees); a statement within noise could go either
    way with more data, so a reading's net lies in [net - k, net + k] (k: its within-noise cells). A reading is chosen
    when its worst case beats every other reading's best case; otherwise the readings whose ranges overlap the
    best one's are undecided between. Flipping any within-noise cell only narrows the ranges, so a chosen reading
    stays chosen."""
    counts = consistency_counts(table)
    net = {r: int(counts.loc[r, NET]) for r in table.columns}
    bounds = {r: (net[r] - int(counts.loc[r, NOISE]), net[r] + int(counts.loc[r, NOISE])) for r in table.columns}
    order = sorted(table.columns, key=lambda r: (-net[r], list(table.columns).index(r)))
    top = order[0]
    others = [r for r in order if r != top]
    margin = bounds[top][0] - max((bounds[r][1] for r in others), default=bounds[top][0] - 1)
    if margin > 0:
        return ReadingChoice((top,), margin, net, bounds)
    tied = [top] + [r for r in others if bounds[r][1] >= bounds[top][0]]
    return ReadingChoice(tuple(tied), margin, net, bounds)


def most_consistent(table: pd.DataFrame) -> list[str]:
    """The readings :func:`choose_reading` returns (one when decided)."""
    return list(choose_reading(table).readings)


RECIPE_STATEMENTS = ("abstract-attack-acc", "abstract-tpr", "abstract-f1")


def recipe_table(ev: Evidence) -> pd.DataFrame:
    """Per recipe: the full-precision ResNet's fit and leakage, and the abstract's statements under each reading
    (the subset the recipe comparison trains: full precision and the lowest bitwidth, seed 0)."""
    rows, seen = [], set()
    for recipe in ev.p.recipes:
        e = ev.with_recipe(recipe)
        if e.config(*ev.p.resnet).key in seen:  # the same models as a recipe already listed (e.g. no CIFAR-10 here)
            continue
        seen.add(e.config(*ev.p.resnet).key)
        sub = e.view(replace(e.p, claim_seeds=(0,)))
        try:
            fp = sub.row(sub.config(*ev.p.resnet))
        except MissingRow as err:
            if not err.pending:
                raise
            rows.append({"recipe": recipe, "augment": sub.config(*ev.p.resnet).augment, "status": err.pending})
            continue
        auc = sub.estimate([sub.config(*ev.p.resnet)])
        agree = {
            r: sum(check_statement(s, sub, r).status == AGREES for s in STATEMENTS if s.key in RECIPE_STATEMENTS)
            for r in ev.p.readings
        }
        best = max(agree.values())
        rows.append(
            {
                "recipe": recipe,
                "augment": bool(fp["augment"]),
                "fp train acc": fp["target_train_acc"],
                "fp test acc": fp["target_test_acc"],
                "fp attack AUC": auc.value,
                "AUC lo": auc.lo,
                "AUC hi": auc.hi,
                "agreeing statements (best reading)": best,
                "best reading(s)": ", ".join(r for r, v in agree.items() if v == best),
                "status": "",
            }
        )
    out = pd.DataFrame(rows)
    return out.drop(columns="status") if not (out["status"] != "").any() else out


def pick_recipe(table: pd.DataFrame, stated: str = "paper-stated") -> str:
    """The same rule as for readings: most agreeing statements; ties go to the recipe the paper states (also while
    another recipe's rows are pending: it cannot win unmeasured)."""
    if "status" in table.columns:
        table = table[table["status"] == ""]
    if not len(table):
        return stated
    top = table[table["agreeing statements (best reading)"] == table["agreeing statements (best reading)"].max()]
    return stated if stated in set(top["recipe"]) else str(top["recipe"].iloc[0])
