"""The zero point and clipping."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..book import (
    LABELS,
    NUM,
    PCT,
    READING_NAMES,
    Page,
    labelled,
    mean_over_seeds,
    model_name,
    styled,
)
from ..clipping import clipped_table, weight_stats
from ..plan import paper_configs
from ..results import provenance
from ..vocabulary import READING_INFO
from ._common import BY, _plt, _slug


def _overall_shares(sizes: list[int], shares: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{reading: per-bitwidth share of all weights clipped, each layer weighted by its size}."""
    w = np.asarray(sizes, dtype=np.float64)
    return {r: (s * w[:, None]).sum(0) / w.sum() for r, s in shares.items()}


def clipping(pg: Page):
    """Heat map of the share each reading's clamp moves, per layer of the trained full-precision ResNet,
    and the summary."""
    plt = _plt()
    a, d = pg.profile.resnet
    cfg = pg.profile.config(a, d, seed=pg.seeds[0])
    fp_df = pg.run([cfg])
    stats = weight_stats(cfg, pg.data_root)
    heat_bits = sorted(set(pg.bits) | set(pg.profile.sweep_bits))
    names = stats["layers"]
    prov = provenance(fp_df)
    readings = [r for r in READING_INFO if r in pg.profile.readings]
    fig, axes = plt.subplots(
        1,
        len(readings) + 1,
        figsize=(2.3 * len(readings) + 1.8, 0.2 * len(names) + 1.8),
        gridspec_kw={"width_ratios": [1] * len(readings) + [0.08]},
    )
    cax, axes = axes[-1], axes[:-1]
    summary = {"bitwidth": [f"{b}-bit" for b in heat_bits]}
    shares = clipped_table(stats, readings, heat_bits)
    overall = _overall_shares(stats["sizes"], shares)
    for i, (ax, r) in enumerate(zip(axes, readings)):
        im = ax.imshow(shares[r], aspect="auto", cmap="magma_r", vmin=0, vmax=1)
        ax.set_xticks(range(len(heat_bits)), heat_bits, fontsize=7)
        ax.set_title(READING_NAMES[r], fontsize=8)
        ax.set_xlabel("bits", fontsize=8)
        ax.set_yticks(range(len(names)), names if i == 0 else [""] * len(names), fontsize=6)
        summary[f"clipped share, {READING_NAMES[r]}"] = list(overall[r])
    fig.colorbar(im, cax=cax, label="share of the layer's weights clipped")
    fig.suptitle(f"Weights the clamp moves, trained full-precision {model_name(a, d)}", fontsize=10)
    fig.subplots_adjust(bottom=0.1)
    plt.close(fig)
    pg.glue_object("clip_heatmap", fig)
    lit = summary[f"clipped share, {READING_NAMES['literal']}"]
    for b, v in zip(heat_bits, lit):
        pg.keep(f"share_{b}", v)
    pg.keep("bits_hi", max(pg.bits))
    pg.keep("share_hi", lit[heat_bits.index(max(pg.bits))])
    pg.keep("bits_lo", min(pg.bits))
    pg.keep("share_lo", lit[heat_bits.index(min(pg.bits))])
    pg.keep("provenance", prov)
    pg.keep("model", model_name(a, d))
    df = pd.DataFrame(summary)
    return styled(
        df,
        "clip-summary",
        "Share of all weights clipped (weighted by layer size), by reading",
        prov,
        {c: PCT for c in df.columns if c != "bitwidth"},
    )


def clipping_rerun(pg: Page):
    """The ResNet's rows at every bitwidth under every reading: what the clipping does to the model
    and to the attack."""
    a, d = pg.profile.resnet
    frames = [
        pg.run(
            [
                c
                for c in paper_configs(pg.profile, [(a, d)], pg.bits, pg.seeds, reading=r)
                if r == "literal" or c.quant.method == "mia"
            ]
        )
        for r in pg.profile.readings
    ]
    df = pd.concat(frames, ignore_index=True)
    t = labelled(mean_over_seeds(df, BY))
    cols = ["target_train_acc", "target_test_acc", "attack_acc", "auc"]
    show = t[["model", "bitwidth", "reading"] + cols].rename(columns=LABELS)
    b = max(pg.bits)
    for r in pg.profile.readings:
        row = t[(t["bits"] == b) & (t["reading"] == READING_NAMES[r])]
        if len(row):
            pg.keep(f"{_slug(r)}_test_acc", row.iloc[0]["target_test_acc"])
            pg.keep(f"{_slug(r)}_attack_acc", row.iloc[0]["attack_acc"])
    pg.keep("bits", b)
    return styled(
        show,
        "clip-rerun",
        "Table 3's ResNet rows under every reading of the quantizer",
        provenance(df),
        {LABELS[c]: (PCT if c.endswith("acc") else NUM) for c in cols},
    )
