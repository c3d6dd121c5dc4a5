"""The book's tables and figures: one function per table or figure, called by the notebooks; one module per page
or family of pages (:mod:`.tables`: Tables 3-5 and the abstract's claims; :mod:`.figures`: Figure 5, Table 6,
Figure 6; :mod:`.readings`, :mod:`.clipping`, :mod:`.beyond`, :mod:`.ranking` (stronger attacks and the ranking),
:mod:`.defences`, :mod:`.exposure` (the white-box attack and model extraction), :mod:`.report`), what they
share in :mod:`._common`.

Each function takes the notebook's :class:`qmia.book.Page`, runs (or reads) what it needs through
:func:`qmia.experiment.evaluate`, glues the numbers its prose cites, and returns what the cell
displays (a styled table or a Markdown block); figures are glued for ``{glue:figure}``. Table ids
and figure names are those ``scripts/check_site.py`` expects.
"""

from __future__ import annotations

from .beyond import beyond_adaptive, beyond_lira, beyond_sweep
from .clipping import clipping, clipping_rerun
from .defences import FAMILIES, defences_frontier
from .exposure import exposure_extraction, exposure_whitebox
from .figures import (
    fig5,
    fig5_verdicts,
    fig6,
    fig6_verdicts,
    table6,
    table6_verdicts,
    verdict_table,
)
from .ranking import (
    ATTACK_NAMES,
    CURVE_NAMES,
    STRONGER_SHOWN,
    USEFUL_SHARE,
    attack_name,
    quantizer_name,
    ranking_lira,
    ranking_sweep,
    row_curve,
    stronger_attacks,
)
from .readings import (
    readings_definitions,
    readings_fit,
    readings_precision,
    readings_recipes,
    readings_statements,
    readings_training_variation,
)
from .report import answer_figure, report_needs, report_status, report_verdicts
from .tables import claim_table, table3, table4, table5

__all__ = [
    "ATTACK_NAMES",
    "CURVE_NAMES",
    "FAMILIES",
    "STRONGER_SHOWN",
    "USEFUL_SHARE",
    "answer_figure",
    "attack_name",
    "beyond_adaptive",
    "beyond_lira",
    "beyond_sweep",
    "claim_table",
    "clipping",
    "clipping_rerun",
    "defences_frontier",
    "exposure_extraction",
    "exposure_whitebox",
    "fig5",
    "fig5_verdicts",
    "fig6",
    "fig6_verdicts",
    "quantizer_name",
    "ranking_lira",
    "ranking_sweep",
    "readings_definitions",
    "readings_fit",
    "readings_precision",
    "readings_recipes",
    "readings_statements",
    "readings_training_variation",
    "report_needs",
    "report_status",
    "report_verdicts",
    "row_curve",
    "stronger_attacks",
    "table3",
    "table4",
    "table5",
    "table6",
    "table6_verdicts",
    "verdict_table",
]
