"""Training-to-training variation, measured on stored rows, widens comparisons of single trainings' accuracies."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import test_statements  # its synthetic profile (tests/ is on the path under pytest)

from qmia import beyond_noise, evidence, training_noise

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
