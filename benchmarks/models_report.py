"""List the trained models of a cache (default: $QMIA_CACHE or cache/) as JSON lines:
label, dataset, arch, models trained together, training seconds, images/s per model, accuracy.

    python benchmarks/models_report.py [CACHE] > models.jsonl
"""

import json
import os
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("QMIA_CACHE", "cache")) / "models"
metas = [json.loads(p.read_text()) for p in sorted(root.glob("*/meta.json"), key=lambda p: p.stat().st_mtime)]
for m in metas:
    c = m["config"]
    print(
        json.dumps(
            {
                "label": m["label"],
                "dataset": c["dataset"],
                "arch": c["arch"],
                "epochs": c["epochs"],
                "n_train": round(m["images_per_second"] * m["train_seconds"] / c["epochs"]),
                "trained_with": m.get("trained_with", 1),
                "train_seconds": round(m["train_seconds"], 2),
                "images_per_second": round(m["images_per_second"]),
                "device": m["device"],
                "test_acc": m["accuracy"].get("target_out"),
                "train_acc": m["accuracy"].get("target_in"),
            }
        )
    )
print(f"{len(metas)} models in {root}", file=sys.stderr)
