"""ARCHITECTURE.md stays true: every module of the package is named in its module list, under
its own package, and nothing listed is gone."""

from __future__ import annotations

import re
from pathlib import Path

import tiervec

ROOT = Path(tiervec.__file__).parent


def _listed() -> set[str]:
    text = (ROOT.parents[1] / "ARCHITECTURE.md").read_text().split("## Every module", 1)[1]
    out, package = set(), ""
    for line in text.splitlines():
        header = re.fullmatch(r"\*\*(.+)/\*\*", line.strip())
        if header:
            package = "" if header.group(1) == "tiervec" else header.group(1) + "/"
        item = re.match(r"- `([\w.]+\.py)`", line)
        if item:
            out.add(package + item.group(1))
    return out


def test_every_module_is_named_in_architecture():
    modules = {str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")}
    listed = _listed()
    assert not sorted(modules - listed), "modules missing from ARCHITECTURE.md's list"
    assert not sorted(listed - modules), "ARCHITECTURE.md lists modules that are gone"
