"""Packages a command needs for its output (pynrrd, matplotlib), checked before any download so a
missing one never costs a whole series' transfer. Outside Slicer `pip install .` brings pynrrd
(pyproject.toml); Slicer writes its own files and never needs it."""
from __future__ import annotations

import importlib
from typing import Any


class MissingPackageError(RuntimeError):
    """A package an output needs is not installed; the message names it and how to install it."""


def require(module: str, package: str, purpose: str) -> Any:
    """The imported module, or MissingPackageError naming `package`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingPackageError(f"{purpose} needs the package {package} (pip install {package})") from None


def require_nrrd() -> Any:
    return require("nrrd", "pynrrd", "writing NRRD files")
