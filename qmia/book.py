"""The book's presentation: one setup call per notebook, parameters checked, tables styled, values glued.

A result notebook holds its papermill parameters, ``page = book.setup(...)``, one call per table or
figure (:mod:`qmia.pages`) and prose. :func:`setup` validates the parameters (clear messages naming
what is valid), says on the page when they differ from the profile's defaults, and returns a
:class:`Page` that runs configurations through :func:`qmia.experiment.evaluate` and glues values
for the prose (``myst_nb.glue``).
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field

import pandas as pd

from .claims import not_recovered_note
from .config import PROFILES, SEED_MAX, Profile, TrainConfig, get_profile
from .data import DATASETS
from .evidence import collect
from .experiment import evaluate
from .models import ARCHS
from .preflight import check_folders
from .quantizers import MAX_BITS, MIN_BITS
from .reading_choice import most_consistent
from .settings import (
    STORED_PROFILES,
    quiet_progress,
    train_requested,
    use_stored_results,
)
from .settings import check as check_environment
from .statements import readings_table
from .vocabulary import ARCH_NAMES, DATA_NAMES, FULL_PRECISION, LABELS, NOT_MEASURABLE_TEXT, READING_NAMES  # noqa: F401 (the pages import them from here)

PCT = "{:.1%}"
NUM = "{:.3f}"
INT = "{:.0f}"


# How the prose prints each glued number (Python format specs): the value is glued as this text, so that a number
# not computed yet reads "pending" in the sentence instead of breaking the build.
GLUE_FORMATS = {
    "beyond_paper_adaptive_gain": "+.3f",
    "beyond_paper_lira_ours_auc": ".3f",
    "beyond_paper_lira_ref_auc": ".3f",
    "defences_alpha": ".1%",
    "defences_best_acc": ".1%",
    "defences_best_tpr": ".2%",
    "defences_fp_acc": ".1%",
    "defences_fp_tpr": ".2%",
    "defences_useful_share": ".0%",
    "exposure_best_auc": ".3f",
    "exposure_fp_auc": ".3f",
    "exposure_fp_fidelity": ".1%",
    "quantizer_clipping_centred_test_acc": ".1%",
    "quantizer_clipping_literal_test_acc": ".1%",
    "quantizer_clipping_min_anchored_test_acc": ".1%",
    "quantizer_clipping_share_hi": ".1%",
    "quantizer_clipping_share_lo": ".1%",
    "ranking_lira_first_acc": ".1%",
    "ranking_lira_offline_auc": ".3f",
    "ranking_lira_offline_tpr": ".2%",
    "ranking_lira_online_auc": ".3f",
    "ranking_lira_online_tpr": ".2%",
    "ranking_lira_useful_mis": ".3f",
    "ranking_rmia_offline_auc": ".3f",
    "ranking_rmia_offline_tpr": ".2%",
    "ranking_rmia_online_auc": ".3f",
    "ranking_rmia_online_tpr": ".2%",
    "ranking_stronger_alpha": ".1%",
    "ranking_sweep_first_acc": ".1%",
    "ranking_sweep_first_share": ".0%",
    "ranking_sweep_useful_acc": ".1%",
    "ranking_sweep_useful_mis": ".3f",
    "ranking_sweep_w": ".2f",
    "ranking_useful_share": ".0%",
    "readings_fp_lenet_auc": ".3f",
    "readings_fp_lenet_test": ".1%",
    "readings_fp_lenet_train": ".1%",
    "readings_fp_resnet20_auc": ".3f",
    "readings_fp_resnet20_test": ".1%",
    "readings_fp_resnet20_train": ".1%",
    "report_answer_alpha": ".1%",
}
PENDING_TEXT = "pending"  # a glued value whose rows are not computed yet


def glue_text(name: str, value):
    """What :meth:`Page.keep` glues under ``name``: numbers formatted by :data:`GLUE_FORMATS` (NaN or None: 'pending',
    the rows behind it not computed yet), anything else as it is."""
    value = plain(value)
    if name not in GLUE_FORMATS:
        return PENDING_TEXT if value is None else value
    if value is None or isinstance(value, str) or (isinstance(value, float) and value != value):
        return PENDING_TEXT if value is None or not isinstance(value, str) else value
    return format(float(value), GLUE_FORMATS[name])


def model_name(arch: str, dataset: str) -> str:
    return f"{ARCH_NAMES.get(arch, arch)} / {DATA_NAMES.get(dataset, dataset)}"


def bitwidth(row) -> str:
    """'full precision' or 'b-bit' for a results row."""
    return FULL_PRECISION if row["method"] == "none" else f"{int(row['bits'])}-bit"


def as_list(value, name: str = "parameter") -> list | None:
    """A notebook parameter given as a list, or as its text: ``papermill -p bits "[2, 3, 6]"`` passes
    the string '[2, 3, 6]' (``-y`` passes a list); "2,3,6" works too. None stays None."""
    if value is None or isinstance(value, (list, tuple)):
        return None if value is None else list(value)
    if not isinstance(value, str):
        return [value]
    text = value.strip()
    try:
        parsed = ast.literal_eval(text if text.startswith(("[", "(")) else f"[{text}]")
    except (ValueError, SyntaxError):
        raise ValueError(f"{name} must be a list such as [2, 3, 6]; got {value!r}") from None
    return list(parsed) if isinstance(parsed, (list, tuple)) else [parsed]


def _int_list(value, name: str, lo: int, hi: int | None) -> list[int]:
    items = as_list(value, name)
    if not items:
        raise ValueError(f"{name} must be a non-empty list of integers; got {value!r}")
    bad = [v for v in items if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi)]
    if bad:
        span = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be integers {span}; got {', '.join(map(repr, bad))} in {value!r}")
    return items


def _models(value, p: Profile) -> list[tuple[str, str]]:
    if value is None:
        return list(p.models)
    items = as_list(value, "models")
    pairs = []
    for m in items:
        if not (isinstance(m, (list, tuple)) and len(m) == 2 and m[0] in ARCHS and m[1] in DATASETS):
            raise ValueError(
                f"models must be [arch, dataset] pairs with arch in {', '.join(ARCHS)} and dataset in "
                f"{', '.join(DATASETS)}; got {m!r}"
            )
        if m[1] not in p.n_per_split:
            raise ValueError(f"profile {p.name!r} has no dataset {m[1]!r}; it uses {', '.join(p.n_per_split)}")
        pairs.append((m[0], m[1]))
    return pairs


@dataclass
class Page:
    """One notebook's settings and helpers (see :func:`setup`)."""

    name: str
    profile: Profile
    models: list[tuple[str, str]]
    bits: list[int]
    seeds: list[int]
    data_root: str | None
    defaults: dict = field(default_factory=dict)
    stored_only: bool = False  # read the stored rows only (the paper book unless TRAIN=1): missing rows are pending
    _evidence: object = None
    _shown: list | None = None

    def run(self, configs: list[TrainConfig], attacks: tuple[str, ...] = ("shadow",)) -> pd.DataFrame:
        """evaluate() each target configuration (models and attack results are cached and reused); with
        :attr:`stored_only`, the rows not stored come back pending (column ``pending`` names their part)."""
        if not configs:
            return pd.DataFrame({"pending": pd.Series(dtype=str)})
        return pd.concat(
            [
                evaluate(c, attacks, profile=self.profile, data_root=self.data_root, stored_only=self.stored_only)
                for c in configs
            ],
            ignore_index=True,
        )

    def evidence(self):
        """The readings plan's rows (:func:`qmia.evidence.collect`), computed once per page."""
        if self._evidence is None:
            self._evidence = collect(self.profile, self.data_root, stored_only=self.stored_only)
        return self._evidence

    def shown_readings(self) -> list[str]:
        """The literal reading and the reading(s) most consistent with the paper (by the readings rule: the chosen
        one, or every reading it could not separate)."""
        if self._shown is None:
            best = most_consistent(readings_table(self.evidence()))
            self._shown = ["literal"] + [r for r in best if r != "literal"]
        return list(self._shown)

    @property
    def changed(self) -> dict:
        """Parameters that differ from the profile's defaults: {name: (given, default)}."""
        given = {"models": self.models, "bits": self.bits, "seeds": self.seeds}
        return {k: (v, self.defaults[k]) for k, v in given.items() if k in self.defaults and v != self.defaults[k]}

    def glue_key(self, name: str) -> str:
        """The glue key of a value this page keeps: the page's name, then ``name`` (``fig5_roc`` + ``bits``:
        ``fig5_roc_bits``); the prose cites it as ``{glue:text}`fig5_roc_bits```."""
        return f"{self.name}_{name}"

    def keep(self, name: str, value) -> None:
        """glue() a number or text under :meth:`glue_key` for the prose (numpy scalars as plain Python values;
        numbers formatted as :data:`GLUE_FORMATS` says, 'pending' where their rows are not stored yet)."""
        key = self.glue_key(name)
        self.glue_object(key, glue_text(key, value))

    def glue_object(self, key: str, obj) -> None:
        """glue() a figure or table under its own id ``key`` (the figure names the site checks)."""
        from myst_nb import glue  # the book's extra (notebooks); the rest of qmia runs without it

        glue(key, obj, display=False)

    def header(self):
        """The page's first output: profile, models, bitwidths, seeds; and a warning when rerun with other values."""
        from IPython.display import Markdown  # the book's extra (notebooks); the rest of qmia runs without it

        p = self.profile
        text = (
            f"Profile **{p.name}**: {p.description}. Models: "
            + ", ".join(model_name(a, d) for a, d in self.models)
            + f"; bitwidths {self.bits}; seeds {self.seeds}; the abstract's claims over seeds {list(p.claim_seeds)}; "
            f"training recipe *{p.recipe}*."
        )
        if self.stored_only:
            text += (
                f" Built from the results stored in `results/{p.name}/` (computed at the paper's scale, nothing "
                "trained here); a cell marked *not computed yet* names the part of the plan that computes it and "
                "its estimated cost."
            )
        if self.changed:
            what = "; ".join(f"{k} = {v} (the profile's: {d})" for k, (v, d) in self.changed.items())
            text += (
                '\n\n<div class="admonition warning"><p class="admonition-title">Rerun with other parameters</p>'
                f"<p>This page was executed with {what}. Other pages and the report use the profile's values.</p>"
                "</div>"
            )
        return Markdown(text)


def setup(
    name: str,
    profile: str = "smoke",
    models=None,
    bits=None,
    seeds=None,
    data_root=None,
    default_bits: list[int] | None = None,
):
    """Validate a notebook's parameters and return its :class:`Page` (display its :meth:`Page.header`).

    name: the notebook's name (prefix of its glued keys); default_bits: the notebook's own default
    bitwidths when they are not the profile's (Table 6: [4, 8]; Figure 6: [4]).
    """
    quiet_progress()  # no progress bars in the book
    check_environment()
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    use_stored_results(profile)
    p = get_profile(profile)
    if data_root is not None and not isinstance(data_root, (str, os.PathLike)):
        raise ValueError(f"data_root must be a folder path or None; got {data_root!r}")
    check_folders(data_root)
    defaults = {"models": list(p.models), "bits": list(default_bits or p.bits), "seeds": list(p.seeds)}
    page = Page(
        name=name,
        profile=p,
        models=_models(models, p),
        bits=_int_list(defaults["bits"] if bits is None else bits, "bits", MIN_BITS, MAX_BITS),
        seeds=_int_list(defaults["seeds"] if seeds is None else seeds, "seeds", 0, SEED_MAX),
        data_root=None if data_root is None else str(data_root),
        defaults=defaults,
        stored_only=profile in STORED_PROFILES and not train_requested(),
    )
    return page


def note(item: str):
    """The sentence that stands where the paper's ``item`` (e.g. 'Table 3') would stand beside ours."""
    from IPython.display import Markdown  # the book's extra (notebooks); the rest of qmia runs without it

    return Markdown(not_recovered_note(item))


def plain(value):
    """A numpy scalar as the Python number it holds (so that glued text reads 0.5, not np.float64(0.5))."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return item()
    return value


SEED_STD_COLUMNS = (
    "target_train_acc",
    "target_test_acc",
    "shadow_test_acc",
    "attack_acc",
    "auc",
    "f1_member",
    "tpr",
    "tpr_at_1%fpr",
    "tpr_at_0.1%fpr",
    "advantage",
)


def mean_over_seeds(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean of the numeric columns over seeds (and any other rows sharing ``by``), in first-seen order,
    with ``n_seeds`` and, for the headline metrics, ``<metric>_std`` (sample std over seeds; NaN for one seed)."""
    groups = df.groupby(by, sort=False, dropna=False)
    out = groups.mean(numeric_only=True).reset_index()
    cols = [c for c in SEED_STD_COLUMNS if c in df.columns]
    std = groups[cols].std(ddof=1).reset_index().rename(columns={c: f"{c}_std" for c in cols})
    n = groups.size().reset_index(name="n_seeds")
    return (
        out.drop(columns=[c for c in std.columns if c in out.columns and c not in by]).merge(std, on=by).merge(n, on=by)
    )


STATUS = "status"


def with_status(t: pd.DataFrame, df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``t`` (one row per group of ``df`` by ``by``, e.g. :func:`mean_over_seeds`) with a ``status`` column: '' where
    the group's rows are stored, else why not (the part that computes them, :func:`qmia.estimates.pending_text`)."""
    if "pending" not in df.columns or not (df["pending"].fillna("") != "").any():
        return t
    status = (
        df.assign(pending=df["pending"].fillna(""))
        .groupby(by, sort=False, dropna=False)["pending"]
        .agg(lambda s: next((x for x in s if x), ""))
        .reset_index()
        .rename(columns={"pending": STATUS})
    )
    return t.merge(status, on=by, how="left")


def mean_std(mean: float, std: float, fmt: str = "{:.1%}") -> str:
    """'mean ± std' (just the mean when std is NaN, i.e. one seed)."""
    return fmt.format(mean) if pd.isna(std) else f"{fmt.format(mean)} ± {fmt.format(std)}"


def labelled(df: pd.DataFrame) -> pd.DataFrame:
    """Add 'model', 'bitwidth' and 'reading' columns for display."""
    df = df.copy()
    df.insert(0, "model", [model_name(a, d) for a, d in zip(df["arch"], df["dataset"])])
    df.insert(1, "bitwidth", [bitwidth(r) for _, r in df.iterrows()])
    if "reading" in df.columns:
        readings = [
            "–" if m != "mia" else READING_NAMES.get(r, r) for m, r in zip(df["method"], df["reading"].fillna(""))
        ]
        df = df.drop(columns=["reading"])
        df.insert(2, "reading", readings)
    return df


def styled(
    df: pd.DataFrame,
    table_id: str,
    title: str,
    caption: str,
    formats: dict[str, str] | None = None,
    not_measurable: tuple[str, ...] = (),
):
    """A pandas Styler with a stable HTML id (``T_<table_id>``) and a caption of title + provenance line.

    ``not_measurable``: columns whose missing values mean "too few examples to measure" (low-FPR TPR).
    ``scripts/check_site.py`` finds the book's tables by these ids.
    """
    from pandas.io.formats.style import Styler  # pandas' Styler needs jinja2, the book's extra

    fmt = {c: f for c, f in (formats or {}).items() if c in df.columns}
    st = Styler(df, cell_ids=False).format(fmt, na_rep="–").hide(axis="index")
    for c in (c for c in not_measurable if c in df.columns):
        st = st.format(lambda v, f=fmt.get(c, "{}"): NOT_MEASURABLE_TEXT if pd.isna(v) else f.format(v), subset=[c])
    st = st.set_uuid(table_id).set_caption(f"<b>{title}</b><br><small>{caption}</small>")
    wrapped = [
        {
            "selector": f"td.col{i}, th.col_heading.col{i}",
            "props": "white-space: normal; text-align: left; min-width: 12em; font-style: italic;",
        }
        for i, c in enumerate(df.columns)
        if c == STATUS
    ]
    return st.set_table_attributes('class="qmia-table"').set_table_styles(
        [
            {"selector": "", "props": "font-size: 0.85em; border-collapse: collapse;"},
            {
                "selector": "caption",
                "props": "caption-side: top; text-align: left; padding-bottom: .4em; white-space: normal;",
            },
            {"selector": "td, th", "props": "padding: .2em .6em; text-align: right; white-space: nowrap;"},
            {"selector": "td:first-child, th:first-child", "props": "text-align: left;"},
        ]
        + wrapped
    )
