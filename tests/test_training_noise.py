"""Training-to-training variation, measured on stored rows, widens comparisons of single trainings' accuracies and
of one attack on two single trainings."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import test_statements  # its synthetic profile (tests/ is on the path under pytest)

from qmia import beyond_noise, claims, evidence, training_noise

P = replace(test_statements.P, n_per_split={"cifar10": 15000})  # the paper's split size: 1.3 points resolved


def _rows(models: list[tuple[str, str, float | None, list[float]]]) -> pd.DataFrame:
    """One shadow-attack row per training: (arch, method, bits, test accuracies, one per seed)."""
    rows = []
    for arch, method, bits, accs in models:
        for seed, acc in enumerate(accs):
            rows.append(
                {
                    "arch": arch,
                    "dataset": "cifar10",
                    "method": method,
                    "bits": bits,
                    "defence": None if seed == 0 else "none",  # older rows leave it out
                    "seed": seed,
                    "attack": "shadow",
                    "target_key": f"{arch}-{method}-{bits}-{seed}",
                    "target_instance": f"i{arch}{method}{bits}{seed}",
                    "target_test_acc": acc,
                }
            )
    return pd.DataFrame(rows)


def test_the_pooled_seed_to_seed_sd_leaves_out_single_trainings_and_collapses():
    fp, q = [0.720, 0.718, 0.714], [0.713, 0.719, 0.707]
    rows = _rows(
        [
            ("resnet20", "none", None, fp),
            ("resnet20", "mia", 4.0, q),
            ("resnet20", "mia", 8.0, [0.70]),  # one training: no variation to measure
            ("resnet20", "mia", 16.0, [0.35, 0.28, 0.31]),  # collapsed: varies in its own way
        ]
    )
    n = training_noise.measure(rows, "resnet20")
    pooled = np.sqrt((np.var(fp, ddof=1) * 2 + np.var(q, ddof=1) * 2) / 4)
    assert n.sd == pytest.approx(pooled) and (n.configs, n.trainings, n.borrowed) == (2, 6, False)
    assert "6 trainings of ResNet-20" in str(n)
    table = training_noise.by_config(rows, "resnet20", ("target_test_acc",))  # where the pooled figure comes from
    assert list(table["bits"]) == ["16.0", "4.0", "none"] and list(table["pooled"]) == [False, True, True]
    assert table["target_test_acc"].iloc[1] == pytest.approx(np.std(q, ddof=1)) and set(table["trainings"]) == {3}


def test_a_key_trained_twice_counts_twice_and_other_architectures_borrow_or_say_none():
    rows = _rows([("resnet20", "none", None, [0.72])])
    assert training_noise.measure(rows, "resnet20") is None  # one training of one key
    again = rows.assign(target_instance="another", target_test_acc=0.726)  # the same key, retrained
    both = pd.concat([rows, again], ignore_index=True)
    n = training_noise.measure(both, "resnet20")
    assert n.trainings == 2 and n.sd == pytest.approx(np.std([0.72, 0.726], ddof=1))
    assert training_noise.for_arch(rows, "lenet") is None
    borrowed = training_noise.for_arch(pd.concat([both, _rows([("lenet", "none", None, [0.9])])]), "lenet")
    assert borrowed.borrowed and borrowed.sd == n.sd and "none repeated here" in str(borrowed)


def test_training_variation_widens_the_gap_of_two_single_trainings():
    narrow = beyond_noise.accuracy_gap(0.725, 0.712, 15000, 15000)
    wide = beyond_noise.accuracy_gap(0.725, 0.712, 15000, 15000, 0.008, 0.008)
    assert beyond_noise.sign(narrow) == "yes" and beyond_noise.sign(wide) == "noise"
    assert wide.hi - wide.lo == pytest.approx(2 * 1.959964 * (2 * 0.008**2) ** 0.5)
    # an SD below the test examples' own noise changes nothing
    assert beyond_noise.accuracy_gap(0.725, 0.712, 15000, 15000, 0.001, 0.001) == narrow


def test_rules_read_the_variation_from_the_evidence_and_say_so():
    rows = _rows([("resnet20", "none", None, [0.720, 0.712, 0.728]), ("resnet20", "mia", 4.0, [0.713, 0.722, 0.705])])
    ev = evidence.Evidence(P, rows)
    g = beyond_noise.model_gap(ev, 0.725, 0.712, ("resnet20", "cifar10"))
    assert beyond_noise.sign(g) == "noise" and "training SD" in str(g) and "6 trainings of ResNet-20" in str(g)
    alone = evidence.Evidence(P, rows[rows["seed"] == 0])
    g = beyond_noise.model_gap(alone, 0.725, 0.712, ("resnet20", "cifar10"))
    assert beyond_noise.sign(g) == "yes" and "training variation not measured" in str(g)


def _attack_rows(models: list[tuple[str, float | None, list[float]]], test_acc: float = 0.80) -> pd.DataFrame:
    """Shadow-attack rows of repeated ResNet-20 trainings (one per seed) with the given attack accuracies, each with
    an adaptive-attack row beside it that the measure must not count."""
    rows = _rows([("resnet20", method, bits, [test_acc] * len(accs)) for method, bits, accs in models])
    rows["attack_acc"] = [a for _, _, accs in models for a in accs]
    rows["shadow_key"] = [f"shadow-{s}" for s in rows["seed"]]
    rows["shadow_instance"] = [f"si{s}" for s in rows["seed"]]
    return pd.concat([rows, rows.assign(attack="adaptive", attack_acc=0.5)], ignore_index=True)


def test_an_attack_metric_is_pooled_over_shadow_attack_rows_only():
    fp, q = [0.79, 0.80, 0.78], [0.70, 0.74, 0.72]
    rows = _attack_rows([("none", None, fp), ("mia", 4.0, q)])
    n = training_noise.measure(rows, "resnet20", "attack_acc")
    assert n.sd == pytest.approx(np.sqrt((np.var(fp, ddof=1) * 2 + np.var(q, ddof=1) * 2) / 4))
    assert n.trainings == 6 and "training SD of the attack's attack acc" in str(n)
    assert training_noise.measure(rows, "resnet20", "no_such_metric") is None


def test_a_drop_of_two_single_trainings_holds_the_attacks_training_variation():
    ev, fp, q = test_statements._evidence(0.2, 0.79)  # about 15 points of attack accuracy on 500 + 500 examples
    assert beyond_noise.drop_rule(ev, [("4-bit", fp, q)], ("attack_acc",)).status == claims.AGREES

    def with_repeats(accs: list[float]) -> evidence.Evidence:
        extra = _attack_rows([("none", None, accs)])
        return evidence.Evidence(ev.p, pd.concat([ev.rows, extra], ignore_index=True), n_boot=300)

    steady = beyond_noise.drop_rule(with_repeats([0.800, 0.801, 0.799]), [("4-bit", fp, q)], ("attack_acc",))
    assert steady.status == claims.AGREES and "training SD of the attack's attack acc 0.10 points" in steady.detail
    shaky = beyond_noise.drop_rule(with_repeats([0.85, 0.65, 0.75]), [("4-bit", fp, q)], ("attack_acc",))
    assert shaky.status == claims.UNMEASURABLE and shaky.noise and "10.00 points" in shaky.detail
    g = beyond_noise.attack_gap(with_repeats([0.85, 0.65, 0.75]), fp, q, "attack_acc", chance=0.5)
    assert g.hi - g.lo == pytest.approx(2 * 1.959964 * np.sqrt(2) * 0.10)
