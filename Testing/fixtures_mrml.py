"""pytest plugin: a fresh real MRML scene from the slicer-core wheel (no Qt) for each test."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from support import missing


@pytest.fixture()
def slicer_module() -> Iterator[Any]:
    """The `slicer` module with `slicer.mrmlScene` set to a new scene; skipped (failed under CI) without slicer-core."""
    try:
        import slicer
    except ImportError:
        missing("slicer-core (PyPI wheel, real MRML)")
    if not hasattr(slicer, "vtkMRMLScene"):
        missing("slicer-core with MRML classes")
    slicer.mrmlScene = slicer.vtkMRMLScene()
    yield slicer
    slicer.mrmlScene.Clear(True)
