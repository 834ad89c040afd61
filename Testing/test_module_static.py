"""The module file against its .ui file (module_static_check.py), and proof that the check fails
on the mistakes it is for: a renamed widget, a widget of the wrong class, an unknown signal, a
mistyped parameter name, an undeclared import, a Qt property a widget does not have, a lambda
connected in a loop that reads the loop variable late; and the Lib's module-level imports."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from module_static_check import check_module, lib_import_problems, ui_widgets
from support import MODULE_DIR

MODULE_NAME = "ProgressiveDicomFetch"
MODULE_FILE = MODULE_DIR / f"{MODULE_NAME}.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / f"{MODULE_NAME}.ui"
LIB = f"{MODULE_NAME}Lib"


def test_the_module_and_its_ui_file_agree():
    assert check_module(MODULE_FILE, UI_FILE, LIB) == []
    classes, parameters = ui_widgets(UI_FILE)
    assert classes[MODULE_NAME] == "qMRMLWidget" and ET.parse(UI_FILE).getroot().findtext("class") == MODULE_NAME
    assert set(parameters) == {"patientName", "patientID", "accessionNumber", "studyDatePreset", "modality",
                               "studyDescription", "strategy", "connections", "boostFocus"}
    declared = {c.findtext("class") for c in ET.parse(UI_FILE).getroot().iter("customwidget")}
    custom = {cls for cls in classes.values() if not cls.startswith("Q")}
    assert custom <= declared, f"custom widget classes not declared in <customwidgets>: {custom - declared}"
    sections = [name for name, cls in classes.items() if cls == "ctkCollapsibleButton"]
    assert sections == ["serverCollapsibleButton", "searchCollapsibleButton", "loadCollapsibleButton",
                        "progressCollapsibleButton"]


def broken_copy(tmp_path: Path, path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    copy = tmp_path / path.name
    copy.write_text(text.replace(old, new, 1))
    return copy


@pytest.mark.parametrize("old, new, problem", [
    ('name="loadButton"', 'name="loadSeriesButton"', "uses ui.loadButton, which the .ui file does not have"),
    ('class="QComboBox" name="authKindComboBox"', 'class="QLineEdit" name="authKindComboBox"',
     "ui.authKindComboBox is a QLineEdit in the .ui file; its name says QComboBox"),
    ('<string>boostFocus</string>', '<string>boostFocusView</string>', "'boostFocusView', which is not a parameter node field"),
    ('class="QSpinBox" name="connectionsSpinBox"', 'class="QLineEdit" name="connectionsSpinBox"',
     "cannot be bound to parameter connections (int)"),
])
def test_a_broken_ui_file_is_caught(tmp_path, old, new, problem):
    problems = check_module(MODULE_FILE, broken_copy(tmp_path, UI_FILE, old, new), LIB)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize("old, new, problem", [
    ('self.ui.searchButton.connect("clicked(bool)"', 'self.ui.searchButton.connect("clicked(int)"',
     "ui.searchButton (QPushButton) has no signal clicked(int)"),
    ("import qt\n", "import qt\nimport pandas\n", "imports pandas, which Slicer does not bundle"),
    ("    boostFocus: bool = True\n", "    boostFocus: bool = True\n    maxRetries: int = 3\n",
     "parameter maxRetries has no widget"),
    ("self.ui.searchStatusLabel.text = ", "self.ui.searchStatusLabel.plainText = ",
     "ui.searchStatusLabel (QLabel) has no property or method plainText"),
    ("self.ui.serverUrlComboBox.setEditText(settings.url)", "self.ui.serverUrlComboBox.setText(settings.url)",
     "ui.serverUrlComboBox (QComboBox) has no property or method setText"),
    ("lambda checked, row=row: self.onCancelRow(row)", "lambda checked: self.onCancelRow(row)",
     "a lambda connected in a loop reads row late"),
])
def test_a_broken_module_file_is_caught(tmp_path, old, new, problem):
    problems = check_module(broken_copy(tmp_path, MODULE_FILE, old, new), UI_FILE, LIB)
    assert any(problem in p for p in problems), problems


def test_logic_methods_call_the_tested_session():
    """The Logic is the console API: its session calls must name FetchSession methods (tested in
    test_fetch_session.py), and every widget action goes through a Logic method that exists."""
    import ast

    from ProgressiveDicomFetchLib.scene.fetch_session import FetchSession

    tree = ast.parse(MODULE_FILE.read_text())
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    logic = classes[f"{MODULE_NAME}Logic"]
    logic_methods = {f.name for f in logic.body if isinstance(f, ast.FunctionDef)}
    session_calls = {node.attr for node in ast.walk(logic) if isinstance(node, ast.Attribute)
                     and isinstance(node.value, ast.Attribute) and node.value.attr == "session"}
    assert session_calls and all(hasattr(FetchSession, name) for name in session_calls), session_calls
    widget_calls = {node.attr for node in ast.walk(classes[f"{MODULE_NAME}Widget"]) if isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Attribute) and node.value.attr == "logic"}
    assert widget_calls - {"getParameterNode"} <= logic_methods, widget_calls - logic_methods


def test_the_lib_imports_at_module_level_only_what_slicer_bundles(tmp_path):
    lib = MODULE_DIR / LIB
    assert lib_import_problems(lib) == []
    copy = tmp_path / LIB
    copy.mkdir()
    (copy / "writer.py").write_text("from __future__ import annotations\nimport nrrd\n\n\ndef f():\n    import imagecodecs\n")
    (problem,) = lib_import_problems(copy)
    assert "writer.py:2 imports nrrd at module level" in problem
