"""Static checks of the Slicer module file against its .ui file, for what Slicer's GUI would only
find at run time (this project's machines cannot run it):

- every `self.ui.<name>` the code uses exists in the .ui, with a class that fits its name
  (Slicer's convention: `...ComboBox` is a QComboBox) and the signals the code connects to;
- every `SlicerParameterName` in the .ui names a field of the @parameterNodeWrapper class, on a
  widget that Slicer's GUI connectors can bind to the field's type;
- every property or method the code uses on a `self.ui.<name>` is one its Qt class has
  (QWIDGET_NAMES and CLASS_NAMES, from the Qt 5 documentation);
- a `.connect(..., lambda ...)` inside a loop binds the loop's variables as default arguments
  (a lambda that reads them late sees the last iteration's values);
- the module file imports only the standard library, what Slicer bundles, and the project's Lib;
  the Lib's files import at module level only the standard library, numpy, pydicom and requests
  (codecs, pynrrd, matplotlib, Slicer, Qt and VTK only inside functions).

`check_module()` returns the problems as sentences; the tests also feed it broken copies.
"""
from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Set, Tuple

# Widget name suffix -> classes it may be (the longest matching suffix wins).
NAME_CLASSES: Dict[str, Tuple[str, ...]] = {
    "ComboBox": ("QComboBox", "ctkComboBox"), "LineEdit": ("QLineEdit",), "Button": ("QPushButton", "QToolButton"),
    "CollapsibleButton": ("ctkCollapsibleButton",), "CheckBox": ("QCheckBox", "ctkCheckBox"),
    "SpinBox": ("QSpinBox",), "Label": ("QLabel",), "TableWidget": ("QTableWidget",), "Edit": ("QDateEdit",),
    "ProgressBar": ("QProgressBar",), "Widget": ("QWidget", "qMRMLWidget"),
}
_BUTTON = {"clicked(bool)", "clicked()", "toggled(bool)", "pressed()", "released()"}
_COMBO = {"currentIndexChanged(int)", "currentTextChanged(QString)", "activated(int)", "editTextChanged(QString)"}
SIGNALS: Dict[str, Set[str]] = {
    "QPushButton": _BUTTON, "QToolButton": _BUTTON, "QCheckBox": _BUTTON | {"stateChanged(int)"},
    "ctkCheckBox": _BUTTON | {"stateChanged(int)"}, "QComboBox": _COMBO, "ctkComboBox": _COMBO,
    "QLineEdit": {"returnPressed()", "textChanged(QString)", "editingFinished()", "textEdited(QString)"},
    "QSpinBox": {"valueChanged(int)", "editingFinished()"},
    "QDateEdit": {"dateChanged(QDate)", "editingFinished()"},
    "QTableWidget": {"itemSelectionChanged()", "cellClicked(int,int)", "cellDoubleClicked(int,int)",
                     "itemDoubleClicked(QTableWidgetItem*)"},
    "ctkCollapsibleButton": _BUTTON | {"contentsCollapsed(bool)"},
}
# Field type -> widget classes Slicer's parameterNodeWrapper GUI connectors bind it to
# (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py).
CONNECTORS: Dict[str, Tuple[str, ...]] = {
    "bool": ("QCheckBox", "ctkCheckBox", "QPushButton"), "int": ("QSpinBox", "QSlider"),
    "float": ("QDoubleSpinBox", "ctkSliderWidget", "ctkDoubleSpinBox"), "str": ("QLineEdit", "QLabel", "QTextEdit"),
}
CHOICE_WIDGETS = ("QComboBox", "ctkComboBox")
# Properties and methods of QWidget (and QObject) that PythonQt exposes on every widget.
QWIDGET_NAMES = {"connect", "enabled", "visible", "toolTip", "setToolTip", "setEnabled", "setVisible", "show", "hide",
                 "styleSheet", "setStyleSheet", "setFocus", "objectName", "parent", "layout", "setMRMLScene"}
_ABSTRACT_BUTTON = {"text", "checked", "checkable", "setText", "setChecked", "click", "toggle", "icon"}
_ITEM_VIEW = {"selectedItems", "selectionModel", "clearSelection", "selectRow", "setSortingEnabled", "sortingEnabled",
              "horizontalHeader", "verticalHeader", "resizeColumnsToContents", "resizeRowsToContents", "scrollToTop"}
CLASS_NAMES: Dict[str, Set[str]] = {
    "QPushButton": _ABSTRACT_BUTTON, "QToolButton": _ABSTRACT_BUTTON, "QCheckBox": _ABSTRACT_BUTTON,
    "ctkCheckBox": _ABSTRACT_BUTTON, "ctkCollapsibleButton": _ABSTRACT_BUTTON | {"collapsed"},
    "QComboBox": {"currentText", "currentData", "currentIndex", "addItem", "addItems", "clear", "count", "findData",
                  "findText", "itemText", "itemData", "setEditText", "setCurrentIndex", "setCurrentText", "editable",
                  "removeItem", "insertItem"},
    "QLineEdit": {"text", "setText", "clear", "placeholderText", "readOnly", "echoMode"},
    "QLabel": {"text", "setText", "clear", "wordWrap"},
    "QSpinBox": {"value", "setValue", "minimum", "maximum"},
    "QDateEdit": {"date", "setDate", "minimumDate", "maximumDate"},
    "QProgressBar": {"value", "setValue", "format", "setFormat", "minimum", "maximum", "setRange"},
    "QTableWidget": _ITEM_VIEW | {"rowCount", "columnCount", "setRowCount", "setColumnCount", "item", "setItem",
                                  "cellWidget", "setCellWidget", "clearContents", "clear", "currentRow",
                                  "setHorizontalHeaderLabels", "removeRow", "insertRow", "sortItems"},
}
# What the Lib may import at module level; anything else only inside functions (optional packages).
LIB_MODULE_LEVEL = {"numpy", "pydicom", "requests"}
SLICER_BUNDLED = {"qt", "ctk", "vtk", "slicer", "numpy", "pydicom", "requests", "dicomweb_client", "SimpleITK"}


def ui_widgets(ui_path: Path) -> Tuple[Dict[str, str], Dict[str, str]]:
    """(widget name -> class, SlicerParameterName -> widget name) from a .ui file."""
    root = ET.parse(ui_path).getroot()
    classes, parameters = {}, {}
    for widget in root.iter("widget"):
        classes[widget.get("name")] = widget.get("class")
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                parameters[prop.findtext("string") or ""] = widget.get("name")
    return classes, parameters


def _expected_classes(name: str) -> Tuple[str, ...]:
    suffixes = [s for s in NAME_CLASSES if name.endswith(s)]
    return NAME_CLASSES[max(suffixes, key=len)] if suffixes else ()


def _ui_uses(tree: ast.AST) -> Dict[str, Set[str]]:
    """ui name -> signals connected on it (`self.ui.x.connect("sig(...)", ...)`)."""
    uses: Dict[str, Set[str]] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui"
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"):
            uses.setdefault(node.attr, set())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect"
                and isinstance(node.func.value, ast.Attribute) and node.func.value.attr in uses and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            uses[node.func.value.attr].add(node.args[0].value.replace(" ", ""))
    return uses


def _ui_attributes(tree: ast.AST) -> Dict[str, Set[str]]:
    """ui name -> attributes read, set or called on it (`self.ui.x.attr`)."""
    found: Dict[str, Set[str]] = {}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and isinstance(node.value.value, ast.Attribute) and node.value.value.attr == "ui"
                and isinstance(node.value.value.value, ast.Name) and node.value.value.value.id == "self"):
            found.setdefault(node.value.attr, set()).add(node.attr)
    return found


def _late_bound_loop_lambdas(tree: ast.AST) -> List[str]:
    """`x.connect(signal, lambda: ... loopvar ...)` in a loop, where the lambda does not bind the
    loop variable as a default argument: every connection would see the last value."""
    problems = []
    for loop in ast.walk(tree):
        if not isinstance(loop, (ast.For, ast.While)):
            continue
        targets = {n.id for n in ast.walk(loop.target) if isinstance(n, ast.Name)} if isinstance(loop, ast.For) else set()
        for node in ast.walk(loop):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "connect"):
                continue
            for argument in node.args:
                if isinstance(argument, ast.Lambda):
                    bound = {a.arg for a in argument.args.args + argument.args.kwonlyargs}
                    read = {n.id for n in ast.walk(argument.body) if isinstance(n, ast.Name)}
                    for name in sorted((read & targets) - bound):
                        problems.append(f"line {node.lineno}: a lambda connected in a loop reads {name} late "
                                        f"(bind it: lambda ..., {name}={name}: ...)")
    return problems


def lib_import_problems(lib_root: Path) -> List[str]:
    """Module-level imports in the Lib beyond the standard library, numpy, pydicom and requests."""
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    problems = []
    for path in sorted(lib_root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: imports inside functions are optional/lazy
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module.split(".")[0]]
            for name in names:
                if name not in stdlib and name not in LIB_MODULE_LEVEL and name != "__future__":
                    problems.append(f"{path.relative_to(lib_root.parent)}:{node.lineno} imports {name} at module "
                                    "level; Slicer does not bundle it (import it inside the function that needs it)")
    return problems


def _parameter_fields(tree: ast.Module) -> Dict[str, Tuple[str, bool]]:
    """Fields of the @parameterNodeWrapper class: name -> (base type, has a Choice annotation)."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(ast.unparse(d) == "parameterNodeWrapper" for d in node.decorator_list):
            fields = {}
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    text = ast.unparse(item.annotation)
                    match = re.match(r"Annotated\[(\w+),", text)
                    fields[item.target.id] = (match.group(1) if match else text, "Choice(" in text)
            return fields
    return {}


def _imports(tree: ast.Module) -> Set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def check_module(module_path: Path, ui_path: Path, lib_name: str) -> List[str]:
    tree = ast.parse(module_path.read_text())
    classes, parameters = ui_widgets(ui_path)
    problems = []
    for name, signals in sorted(_ui_uses(tree).items()):
        if name not in classes:
            problems.append(f"the code uses ui.{name}, which the .ui file does not have")
            continue
        expected = _expected_classes(name)
        if expected and classes[name] not in expected:
            problems.append(f"ui.{name} is a {classes[name]} in the .ui file; its name says {' or '.join(expected)}")
        for signal in sorted(signals - SIGNALS.get(classes[name], set())):
            problems.append(f"ui.{name} ({classes[name]}) has no signal {signal} that this check knows")
    for name, attributes in sorted(_ui_attributes(tree).items()):
        known = CLASS_NAMES.get(classes.get(name, ""))
        if known is None:
            continue
        for attribute in sorted(attributes - known - QWIDGET_NAMES):
            problems.append(f"ui.{name} ({classes[name]}) has no property or method {attribute} that this check knows")
    problems += _late_bound_loop_lambdas(tree)
    fields = _parameter_fields(tree)
    for parameter, widget in sorted(parameters.items()):
        if parameter not in fields:
            problems.append(f"{widget} has SlicerParameterName {parameter!r}, which is not a parameter node field")
            continue
        base, choice = fields[parameter]
        allowed = CHOICE_WIDGETS if choice else CONNECTORS.get(base, ())
        if classes[widget] not in allowed:
            problems.append(f"{widget} ({classes[widget]}) cannot be bound to parameter {parameter} ({base}"
                            f"{' with Choice' if choice else ''}): use {' or '.join(allowed) or 'another type'}")
    for field in sorted(set(fields) - set(parameters)):
        problems.append(f"parameter {field} has no widget in the .ui file")
    stdlib = set(getattr(sys, "stdlib_module_names", ()))
    for name in sorted(_imports(tree) - stdlib - SLICER_BUNDLED - {lib_name, "__future__"}):
        problems.append(f"the module imports {name}, which Slicer does not bundle and the extension does not declare")
    return problems
