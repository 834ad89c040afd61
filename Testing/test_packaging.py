"""Static checks that catch real packaging bugs before a Slicer build does.

Slicer's Qt GUI cannot run here, so what can be checked without it is checked here:
the CMake file lists, Python 3.9 syntax, no Slicer/Qt/VTK imports at module level in the core,
the .ui file against the widget code, the icons, and the extension metadata.
"""
from __future__ import annotations

import ast
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from support import LIB_DIR, MODULE_DIR, REPO

MODULE_NAME = "ProgressiveDicomFetch"
MODULE_FILE = MODULE_DIR / f"{MODULE_NAME}.py"

GUI_MODULES = {"slicer", "qt", "ctk", "vtk", "vtkmodules", "mrml", "PythonQt", "ctkQt"}


def _cmake_list(name: str) -> list[str]:
    text = (MODULE_DIR / "CMakeLists.txt").read_text()
    match = re.search(rf"set\(\s*{re.escape(name)}\s+(.*?)\)", text, re.S)
    assert match, f"{name} not found in ProgressiveDicomFetch/CMakeLists.txt"
    entries = [line.split("#")[0].strip() for line in match.group(1).splitlines()]
    return [e.replace("${MODULE_NAME}", MODULE_NAME) for e in entries if e]


def _lib_files() -> list[str]:
    return sorted(
        p.relative_to(MODULE_DIR).as_posix()
        for p in LIB_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def _python_sources() -> list[Path]:
    return [MODULE_FILE] + sorted(LIB_DIR.rglob("*.py"))


def test_every_lib_file_is_listed_in_cmake_and_every_listed_file_exists():
    scripts = _cmake_list("MODULE_PYTHON_SCRIPTS")
    resources = _cmake_list("MODULE_PYTHON_RESOURCES")
    unlisted = [f for f in _lib_files() if f not in scripts]
    assert not unlisted, f"files of the Lib package missing from MODULE_PYTHON_SCRIPTS: {unlisted}"
    absent = [f for f in scripts + resources if not (MODULE_DIR / f).is_file()]
    assert not absent, f"CMakeLists.txt lists files that do not exist: {absent}"
    assert f"{MODULE_NAME}.py" in scripts
    on_disk = sorted(
        p.relative_to(MODULE_DIR).as_posix() for p in (MODULE_DIR / "Resources").rglob("*") if p.is_file()
    )
    assert sorted(resources) == on_disk, "MODULE_PYTHON_RESOURCES must list exactly the files in Resources/"
    # Any other .py directly in the module folder would be loaded by Slicer as a module of its own.
    stray = [p.name for p in MODULE_DIR.glob("*.py") if p != MODULE_FILE]
    assert not stray, f"helpers belong in {MODULE_NAME}Lib/, not beside the module file: {stray}"


def test_module_cmake_registers_module_and_self_test():
    text = (MODULE_DIR / "CMakeLists.txt").read_text()
    assert "slicerMacroBuildScriptedModule(" in text and "WITH_GENERIC_TESTS" in text
    assert re.search(r"slicer_add_python_unittest\(\s*SCRIPT\s+\$\{MODULE_NAME\}\.py\s*\)", text)


def test_extension_cmake_metadata():
    text = (REPO / "CMakeLists.txt").read_text()
    for variable in ("HOMEPAGE", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS"):
        assert re.search(rf'set\(EXTENSION_{variable} "', text), f"EXTENSION_{variable} missing"
    assert 'set(EXTENSION_CATEGORY "Informatics")' in text
    assert 'set(EXTENSION_DEPENDS "NA")' in text
    assert "find_package(Slicer REQUIRED)" in text and "include(${Slicer_USE_FILE})" in text
    assert f"add_subdirectory({MODULE_NAME})" in text
    assert "include(${Slicer_EXTENSION_GENERATE_CONFIG})" in text and "include(${Slicer_EXTENSION_CPACK})" in text
    # SlicerExtensionCPack.cmake calls it itself; calling it twice breaks packaging.
    assert "slicerMacroExtractRepositoryInfo" not in text


def test_python_39_syntax_with_vermin():
    vermin = Path(sys.executable).with_name("vermin")
    assert vermin.exists(), "vermin is a test dependency (pyproject [test])"
    sources = [str(p) for p in _python_sources()]
    result = subprocess.run(
        [str(vermin), "--target=3.9-", "--no-tips", "--violations", "--no-parse-comments", *sources],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, f"code newer than Python 3.9:\n{result.stdout}{result.stderr}"


def test_ruff_finds_no_bugs():
    """Unused imports and names, undefined names, likely bugs (rules in pyproject.toml)."""
    ruff = Path(sys.executable).with_name("ruff")
    assert ruff.exists(), "ruff is a test dependency (pyproject [test])"
    result = subprocess.run([str(ruff), "check", "--no-cache", str(MODULE_DIR), str(REPO / "Testing")],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def _uses_union_annotation(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            every = args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]
            annotations = [a.annotation for a in every if a is not None and a.annotation is not None]
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        for annotation in annotations:
            if annotation is not None and any(
                isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(annotation)
            ):
                lines.append(annotation.lineno)
    return lines


def test_union_annotations_only_with_future_import():
    """`X | None` in an annotation raises TypeError on Python 3.9 unless annotations are postponed."""
    offenders = []
    for path in _python_sources():
        tree = ast.parse(path.read_text(), str(path))
        future = any(
            isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
            for n in tree.body
        )
        if not future:
            offenders += [f"{path.relative_to(REPO)}:{line}" for line in _uses_union_annotation(tree)]
    assert not offenders, f"X | Y annotations need `from __future__ import annotations`: {offenders}"


def _module_level_imports(tree: ast.Module) -> list[tuple[str, int]]:
    """Imports executed at import time: top level, including inside top-level if/try blocks."""
    found = []
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []) or []:
                    pending += child.body if isinstance(child, ast.ExceptHandler) else [child]
    return found


def test_core_imports_no_gui_modules_at_module_level():
    offenders = []
    for path in sorted(LIB_DIR.rglob("*.py")):
        for name, line in _module_level_imports(ast.parse(path.read_text(), str(path))):
            if name.split(".")[0] in GUI_MODULES:
                offenders.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not offenders, "the core must import without Slicer: " + "; ".join(offenders)


def test_core_imports_without_slicer_in_a_clean_interpreter():
    """Import every core module for real and check nothing pulled in slicer/qt/vtk."""
    modules = sorted(
        ".".join(p.relative_to(MODULE_DIR).with_suffix("").parts).replace(".__init__", "")
        for p in LIB_DIR.rglob("*.py")
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(GUI_MODULES)!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=MODULE_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"importing the core loaded: {result.stdout.strip()}"


def test_module_file_structure_and_lib_names_resolve():
    tree = ast.parse(MODULE_FILE.read_text())
    classes = {n.name: [ast.unparse(b) for b in n.bases] for n in tree.body if isinstance(n, ast.ClassDef)}
    assert classes[MODULE_NAME] == ["ScriptedLoadableModule"]
    assert classes[f"{MODULE_NAME}Widget"][0] == "ScriptedLoadableModuleWidget"
    assert classes[f"{MODULE_NAME}Logic"] == ["ScriptedLoadableModuleLogic"]
    assert classes[f"{MODULE_NAME}Test"] == ["ScriptedLoadableModuleTest"]
    sys.path.insert(0, str(MODULE_DIR))
    try:
        import importlib

        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{MODULE_NAME}Lib"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
    finally:
        sys.path.remove(str(MODULE_DIR))
    source = MODULE_FILE.read_text()
    assert 'translate("qSlicerAbstractCoreModule", "Informatics")' in source
    assert '_("Progressive DICOM Fetch")' in source


@pytest.mark.parametrize("icon", ["Resources/ProgressiveDicomFetch.png", f"{MODULE_NAME}/Resources/Icons/{MODULE_NAME}.png"])
def test_icons_are_real_128px_pngs(icon):
    data = (REPO / icon).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (128, 128)


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    match = re.search(r"```(?:sh|bash)?\n(make test)\n```", readme)
    assert match, "README must show the test command in its own code block"
    assert re.search(r"^\s*(exec\s+)?make test\s*$", ci, re.M), ".ci/run must run the README's test command"


def test_extensions_index_entry_follows_slicers_schema():
    import json

    import jsonschema

    schema = json.loads((REPO / "Testing" / "data" / "slicer-extension-catalog-entry-schema-v1.0.1.json").read_text())
    entry = json.loads((REPO / "ExtensionsIndex" / f"{MODULE_NAME}.json").read_text())
    jsonschema.validate(entry, schema)
    assert entry["$schema"] == schema["$id"]
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert f'set(EXTENSION_CATEGORY "{entry["category"]}")' in cmake
    with pytest.raises(jsonschema.ValidationError):  # the check is real: a bad tier is refused
        jsonschema.validate({**entry, "tier": 9}, schema)
