"""Cache invalidation that cannot be forgotten: a fingerprint of each cached thing's behaviour, tied to its version.

Cached models are keyed by TRAIN_VERSION, DATA_VERSION and the quantizers' versions; result rows by
ATTACK_VERSION. Each guard below runs the code it guards on fixed inputs and hashes what comes out. When
the code's behaviour changes and its version does not, the test fails and names the version to bump;
when a version is bumped, it fails until the new fingerprint is recorded:

    python tests/test_versions.py --record

(say in the commit message which stored models or rows the bump invalidates). Only code whose output is
fixed by its inputs and seeds is fingerprinted (no sklearn model fitting, no float training loops), so a
library upgrade does not trip it.

A fingerprint holds on any CPU: integer outputs (splits, permutations, draws, sizes) are hashed exactly; a
floating-point output, whose last digits depend on the CPU's kernels (AVX-512, AVX2 or none), is recorded as a
sketch (its NaN count, mean, spread and two fixed random projections) and compared within a tolerance far below
any change of behaviour. The test runs under the machine's kernels and again under ``ATEN_CPU_CAPABILITY=default``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "tests" / "fingerprints.json"


SKETCH_TOLERANCE = 1e-4  # absolute, on sketch values of order 1; kernels differ by < 1e-5 in any output here


def _digest(values) -> dict:
    """{'exact': sha256 prefix of the integer-valued outputs, 'sketch': per float output [NaNs, mean, std, two
    fixed random projections] (over its finite values, rounded to 8 decimals)}."""
    h, sketch = hashlib.sha256(), []
    for v in values:
        a = v.detach().cpu().double().numpy() if isinstance(v, torch.Tensor) else np.asarray(v, dtype=np.float64)
        a = a.reshape(-1)
        finite = a[np.isfinite(a)]
        if len(finite) == len(a) and np.array_equal(finite, np.round(finite)):
            h.update(a.astype(np.int64).tobytes())
            continue
        w = np.random.default_rng(len(a)).uniform(-1, 1, size=(2, len(a)))[:, np.isfinite(a)]
        stats = [
            float(len(a) - len(finite)),
            finite.mean() if len(finite) else 0.0,
            finite.std() if len(finite) else 0.0,
            *(w @ finite / max(len(finite), 1)),
        ]
        sketch.append([round(float(x), 8) for x in stats])
    return {"exact": h.hexdigest()[:16], "sketch": sketch}


def _same(recorded: dict, computed: dict) -> bool:
    if recorded.get("exact") != computed["exact"] or len(recorded.get("sketch", [])) != len(computed["sketch"]):
        return False
    return all(np.allclose(r, c, rtol=0, atol=SKETCH_TOLERANCE) for r, c in zip(recorded["sketch"], computed["sketch"]))


def _quantizers() -> tuple[dict, str]:
    from qmia.dorefa import DoReFaActivation, DoReFaWeight
    from qmia.mia_quantizer import mia_quantize
    from qmia.quantizers import PAPER_READINGS, QUANTIZER_VERSIONS, QuantSpec

    w = torch.linspace(-1.3, 0.9, 211).reshape(1, 211) * torch.linspace(0.5, 1.5, 3).reshape(3, 1)
    out = []
    for b in (1, 2, 4, 8, 16):
        for kw in PAPER_READINGS.values():
            spec = QuantSpec("mia", b, **kw)
            out.append(mia_quantize(w, b, spec.resolved_zero_point, spec.reading))
        out += [DoReFaWeight(b, gain=0.37)(w), DoReFaActivation(b)(w)]
    return {"versions": {f"{m}:{b}": v for (m, b), v in QUANTIZER_VERSIONS.items()}}, _digest(out)


def _attacks() -> tuple[dict, str]:
    from qmia.attacks import metric_scores
    from qmia.experiment import ATTACK_VERSION
    from qmia.metrics import attack_metrics, bootstrap_intervals, roc_points
    from qmia.reference_attacks import lira, scaled_confidence

    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(60, 10, generator=g) * 3, torch.randint(0, 10, (60,), generator=g)
    out = [metric_scores(logits, labels, m) for m in ("confidence", "loss", "entropy", "mentropy")]
    out.append(scaled_confidence(logits, labels))
    rng = np.random.default_rng(0)
    ref_in = np.stack([rng.permutation(20) < 10 for _ in range(6)])
    ref_obs, target = rng.normal(size=(6, 20, 2)) + ref_in[..., None], rng.normal(size=(20, 2))
    out += [lira(target, ref_obs, ref_in, online=o, scoring=s) for o in (True, False) for s in ("qmia", "reference")]
    y = np.r_[np.ones(1000), np.zeros(1000)].astype(int)
    scores = rng.normal(size=2000) + 0.5 * y
    m = attack_metrics(scores, y, (scores > 0.3).astype(int))
    ci = bootstrap_intervals(scores, y, (scores > 0.3).astype(int), n_boot=20)
    out += [[m[k] for k in sorted(m)], [ci[k] for k in sorted(ci)], *roc_points(scores, y, max_points=50)]
    return {"version": ATTACK_VERSION}, _digest(out)


def _training() -> tuple[dict, str]:
    from qmia.augment import apply_augment, augment_draws
    from qmia.config import TRAIN_VERSION, TrainConfig
    from qmia.data import DATA_VERSION, dataset_info
    from qmia.loop import epoch_plan, make_optimizer
    from qmia.models import build_model
    from qmia.splits import half_subset, make_splits

    out = [t for t in make_splits(2000, 100, 3).values()] + [half_subset(torch.arange(200), i, 4, 1) for i in range(4)]
    for name in ("cifar10", "fashion_mnist"):
        info = dataset_info(name)
        x = torch.linspace(0, 1, 4 * info.channels * 28 * 28).reshape(4, info.channels, 28, 28)
        draws = augment_draws(4, info, torch.Generator().manual_seed(5))
        out += [*draws.values(), apply_augment(x, info, draws)]
    cfg = TrainConfig("digits", "lenet", 50, 3, batch_size=10)
    perm, draws = epoch_plan(50, cfg, dataset_info("digits"), torch.Generator().manual_seed(1), torch.device("cpu"))
    model = build_model("lenet", 1, 10, 16)
    opt, sched = make_optimizer(model.parameters(), cfg, 15, torch.device("cpu"))
    lrs = []
    for _ in range(15):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    out += [perm, *draws.values(), lrs, [p.numel() for p in model.parameters()]]
    return {"train_version": TRAIN_VERSION, "data_version": DATA_VERSION}, _digest(out)


GUARDS = {
    "quantizers": (
        _quantizers,
        "QUANTIZER_VERSIONS in qmia/quantizers.py (for the specs whose weights change)",
        "the cached models of those quantizers",
    ),
    "attacks": (_attacks, "ATTACK_VERSION in qmia/experiment.py", "every stored result row"),
    "training": (
        _training,
        "TRAIN_VERSION in qmia/config.py (or DATA_VERSION in qmia/data.py for the splits)",
        "every cached model",
    ),
}


def _record() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.exists() else {}


@pytest.mark.parametrize("guard", list(GUARDS))
def test_behaviour_changes_only_with_a_version_bump(guard):
    compute, version_name, invalidates = GUARDS[guard]
    versions, digest = compute()
    recorded = _record().get(guard)
    assert recorded is not None, f"no fingerprint recorded for {guard}: run `python tests/test_versions.py --record`"
    if recorded["versions"] == versions:
        assert _same(recorded["fingerprint"], digest), (
            f"the behaviour of the {guard} changed but its version did not: bump {version_name} (this invalidates "
            f"{invalidates}; say so in the commit message), then run `python tests/test_versions.py --record`"
        )
    else:
        assert not _same(recorded["fingerprint"], digest) or recorded["versions"] == versions, (
            f"{version_name} was bumped but the {guard} behave as before: undo the bump (it would invalidate "
            f"{invalidates} for nothing)"
        )
        pytest.fail(
            f"{guard}: versions {recorded['versions']} -> {versions}: record the new fingerprint with "
            "`python tests/test_versions.py --record`"
        )


def test_fingerprints_hold_under_the_default_kernels():
    """The same fingerprints under ATEN_CPU_CAPABILITY=default (no vector kernels), where float outputs differ in their
    last digits from this machine's: what any CPU computes passes."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    run = subprocess.run(
        [sys.executable, str(Path(__file__)), "--check"], env=env, capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        for guard in GUARDS:
            test_behaviour_changes_only_with_a_version_bump(guard)
        print(f"fingerprints hold under ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '(native)')}")
        sys.exit(0)
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: python tests/test_versions.py --record | --check")
    record = {name: dict(zip(("versions", "fingerprint"), fn())) for name, (fn, _, _) in GUARDS.items()}
    RECORD.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"recorded {RECORD}: {record}")
