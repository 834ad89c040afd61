"""pytest plugin: a fresh real MRML scene from the slicer-core wheel (no Qt) for each test, and the
console API's session on it (pointed at the shared Orthanc)."""
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


@pytest.fixture()
def slice_views(slicer_module) -> Iterator[Any]:
    """Red and Yellow slice views as Slicer makes them, without Qt: application logic (orientation
    presets), layout logic (slice nodes), one slice logic per view (composite nodes), a crosshair."""
    from types import SimpleNamespace

    slicer, scene = slicer_module, slicer_module.mrmlScene
    app_logic = slicer.vtkMRMLApplicationLogic()
    app_logic.SetMRMLScene(scene)
    layout_logic = slicer.vtkMRMLLayoutLogic()
    layout_logic.SetMRMLScene(scene)
    logics = []
    for name in ("Red", "Yellow"):
        logic = slicer.vtkMRMLSliceLogic()
        logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(app_logic)
        logic.SetSliceNode(scene.GetNodeByID(f"vtkMRMLSliceNode{name}"))
        logics.append(logic)
    crosshair = slicer.vtkMRMLCrosshairNode()
    crosshair.SetCrosshairName("default")
    scene.AddNode(crosshair)
    yield SimpleNamespace(
        slicer=slicer, scene=scene, app_logic=app_logic, layout_logic=layout_logic, logics=logics, crosshair=crosshair,
        red=logics[0].GetSliceNode(), red_composite=logics[0].GetSliceCompositeNode(),
        yellow=logics[1].GetSliceNode(), yellow_composite=logics[1].GetSliceCompositeNode())
    # Detach the logics first: Clear(True) under a live vtkMRMLLayoutLogic segfaults (slicer-core).
    for logic in (*logics, layout_logic, app_logic):
        logic.SetMRMLScene(None)


@pytest.fixture()
def session(slicer_module, orthanc) -> Iterator[Any]:
    """A FetchSession on the test's scene with the shared Orthanc as its server; closed after."""
    from ProgressiveDicomFetchLib.scene.fetch_session import FetchSession

    fetch_session = FetchSession(slicer_module.mrmlScene)
    fetch_session.set_server(orthanc.dicomweb_url)
    yield fetch_session
    fetch_session.close()
