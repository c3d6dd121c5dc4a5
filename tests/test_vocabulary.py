"""Every name the book displays is defined once, in qmia/vocabulary.py: no other module defines a table of display
names, and no other module spells a model's, data set's or quantizer's display name as a string of its own."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from qmia import vocabulary

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(p for p in (ROOT / "qmia").rglob("*.py") if p.name != "vocabulary.py")
TABLE = re.compile(r"(^|_)(NAMES|LABELS|FAMILIES|MARK)$|^READING_INFO$")


def _display_tables(tree: ast.Module) -> list[str]:
    """Module-level dicts whose name says they hold display names."""
    out = []
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for t in targets:
            if isinstance(t, ast.Name) and TABLE.search(t.id) and isinstance(node.value, ast.Dict):
                out.append(t.id)
    return out


def test_display_tables_live_only_in_the_vocabulary():
    found = {p.relative_to(ROOT).as_posix(): _display_tables(ast.parse(p.read_text())) for p in MODULES}
    assert {k: v for k, v in found.items() if v} == {}
    assert {
        "ARCH_NAMES",
        "DATA_NAMES",
        "READING_NAMES",
        "LABELS",
        "CURVE_NAMES",
        "ATTACK_NAMES",
        "FAMILIES",
        "READING_INFO",
        "MARK",
    } <= set(_display_tables(ast.parse((ROOT / "qmia" / "vocabulary.py").read_text())))


def test_no_module_spells_a_display_name_of_its_own():
    names = {
        *vocabulary.ARCH_NAMES.values(),
        *vocabulary.DATA_NAMES.values(),
        *vocabulary.READING_NAMES.values(),
        *vocabulary.CURVE_NAMES.values(),
        *vocabulary.FAMILIES.values(),
    } - {"digits"}
    spelled = {}
    for p in MODULES:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                spelled.setdefault(p.relative_to(ROOT).as_posix(), set()).add(node.value)
    assert spelled == {}
