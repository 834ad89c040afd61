"""The library's layers: data flows down, and no file imports one of a higher floor.

Every import of every Lib file is read (also those inside functions), resolved to the package
or top-level module it names, and checked against FLOORS: a file may import its own package
and anything on a lower floor, nothing on its own floor or above. A new package fails here
until it is given a floor (docs/architecture.md, "Layers").
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

from support import LIB_DIR

LIB = LIB_DIR.name

#: lowest floor first; each entry is a package (folder) or a top-level module of the Lib.
FLOORS: Tuple[Tuple[str, ...], ...] = (
    ("files", "transfer_syntax"),  # ground floor: helpers for everyone
    ("pixels", "volume", "output", "dicomweb"),  # codecs; progressive buffer; reports; DICOMweb client
    ("geometry", "cache", "dimse"),  # frames -> volumes (needs pixels); frames kept on disk (needs dicomweb); DIMSE client
    ("loading", "sampledata", "transport"),  # the volume model; demo data; which protocol a server speaks
    ("retrieve",),  # series made ready, frame fetchers
    ("previews",),  # preview sources
    ("engine",),  # scheduling, workers, events, timeline
    ("scene", "panel", "cli"),  # Slicer scene binding, panel logic, command line
    ("__main__",),
)
FLOOR: Dict[str, int] = {unit: level for level, units in enumerate(FLOORS) for unit in units}


def unit_of(path: Path) -> str:
    """The package or top-level module a Lib file belongs to ('' for the Lib's __init__.py)."""
    parts = path.relative_to(LIB_DIR).with_suffix("").parts
    return "" if parts == ("__init__",) else parts[0]


def imported_units(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, unit) for every import of another Lib unit in the file, at any depth."""
    package = list(path.relative_to(LIB_DIR.parent).with_suffix("").parts)[:-1]  # the file's package
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            else:
                base = node.module.split(".") if node.module else []
            targets = [base + [alias.name] for alias in node.names] if base == [LIB] else [base]
        else:
            continue
        for target in targets:
            if len(target) >= 2 and target[0] == LIB:
                yield node.lineno, target[1]


def upward_imports() -> List[str]:
    wrong = []
    for path in sorted(LIB_DIR.rglob("*.py")):
        own = unit_of(path)
        for line, unit in imported_units(path):
            if unit == own:
                continue
            where = f"{path.relative_to(LIB_DIR)}:{line}"
            if own not in FLOOR or unit not in FLOOR:
                wrong.append(f"{where}: {own or LIB} -> {unit}: give every unit a floor in FLOORS")
            elif FLOOR[unit] >= FLOOR[own]:
                wrong.append(f"{where}: {own} (floor {FLOOR[own]}) imports {unit} (floor {FLOOR[unit]})")
    return wrong


def test_every_unit_has_a_floor():
    units = {unit_of(path) for path in LIB_DIR.rglob("*.py")} - {""}
    assert units <= set(FLOOR), f"units without a floor: {sorted(units - set(FLOOR))}"
    assert set(FLOOR) <= units, f"floors name units that do not exist: {sorted(set(FLOOR) - units)}"


def test_no_import_runs_back_up():
    assert upward_imports() == []


def test_the_checker_sees_relative_and_nested_imports():
    """The walk resolves the import forms the Lib uses (the real tree has none that go up)."""
    sample = LIB_DIR / "engine" / "engine.py"
    units = {unit for _, unit in imported_units(sample)}
    assert {"cache", "dicomweb", "previews", "volume"} <= units
    trs = {unit for _, unit in imported_units(LIB_DIR / "pixels" / "codecs.py")}
    assert "transfer_syntax" in trs  # `from .. import transfer_syntax as ts`


HTTP_CALLS = {"get", "post", "put", "head", "delete", "request", "Session", "session"}


def test_only_the_server_sends_http_requests():
    """Every request goes through DicomwebServer.get (timeouts, retries, redirects without
    credentials to other origins): no other Lib file calls requests itself."""
    callers = []
    for path in sorted(LIB_DIR.rglob("*.py")):
        if path == LIB_DIR / "dicomweb" / "server.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if (isinstance(node, ast.Attribute) and node.attr in HTTP_CALLS and isinstance(node.value, ast.Name)
                    and node.value.id == "requests"):
                callers.append(f"{path.relative_to(LIB_DIR)}:{node.lineno}: requests.{node.attr}")
    assert callers == []
