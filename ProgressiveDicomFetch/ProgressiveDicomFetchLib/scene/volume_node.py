"""A scalar volume node (a vector volume node with 3 components for colour, as Slicer's DICOM plugin
loads colour) whose voxels ARE the engine's buffer (no second copy), with its final geometry before
the first pixel, refreshed by events the views listen to. MONOCHROME1 keeps its values and is shown
with the inverted grey colour table, like DICOMScalarVolumePlugin.

Main thread only (MRML). `slicer` and `vtk` are imported inside functions: the core must import
without Slicer.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..loading import VolumeLoad
from .window_level import apply_dicom_presets

logger = logging.getLogger(__name__)

INVERTED_GREY = "vtkMRMLColorTableNodeInvertedGrey"


def series_node_name(load: VolumeLoad, index: int, count: int) -> str:
    """As Slicer's DICOM plugins name series (DICOMPlugin.defaultSeriesNodeName): "<SeriesNumber>:
    <SeriesDescription>", "Unnamed Series" without a description; stacks add their label."""
    ds = load.geometry.dataset
    number, description = str(ds.get("SeriesNumber", "") or ""), str(ds.get("SeriesDescription", "") or "")
    name = f"{number}: {description or 'Unnamed Series'}" if number else (description or "Unnamed Series")
    if count > 1:
        name += f" [{load.geometry.label or index + 1}]"
    return name


def _vtk_matrix(matrix: np.ndarray) -> Any:
    import vtk

    result = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            result.SetElement(row, column, float(matrix[row, column]))
    return result


def create_volume_node(scene: Any, load: VolumeLoad, name: str) -> Any:
    """A vtkMRMLScalarVolumeNode (vtkMRMLVectorVolumeNode for colour) sharing `load.volume.array`
    (K, J, I[, 3]) as its scalars."""
    import vtk
    from vtkmodules.util.numpy_support import numpy_to_vtk

    array = load.volume.array
    if not array.flags["C_CONTIGUOUS"]:
        raise ValueError("the volume buffer must be C-contiguous to be shared with VTK")
    image = vtk.vtkImageData()
    kk, jj, ii = array.shape[:3]
    components = load.volume.components
    image.SetDimensions(ii, jj, kk)  # geometry lives on the node: image origin 0, spacing 1
    flat = array.reshape(-1, components) if components > 1 else array.reshape(-1)
    scalars = numpy_to_vtk(flat, deep=False)  # keeps a reference to the numpy buffer
    scalars.SetName("ImageScalars")
    image.GetPointData().SetScalars(scalars)
    node_class = "vtkMRMLVectorVolumeNode" if components > 1 else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(node_class, scene.GenerateUniqueName(name))  # unique, as Slicer does
    node.SetIJKToRASMatrix(_vtk_matrix(load.geometry.ijk_to_ras))
    node.SetAndObserveImageData(image)
    # DICOM.instanceUIDs only once the voxels are exact (scene/partial_marking.py)
    uids = load.geometry.instance_uids
    numbers = {f.sop_instance_uid: f.instance_number for f in load.geometry.frames}  # as DICOMScalarVolumePlugin
    node.SetAttribute("DICOM.instanceNumbers", " ".join("?" if numbers[u] is None else str(numbers[u]) for u in uids))
    node.SetAttribute("DICOM.seriesInstanceUID", load.geometry.series_uid)
    _describe(node, load)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    if display is not None and components == 1:
        display.SetAutoWindowLevel(0)  # refinement must not make the contrast jump
        apply_dicom_presets(display, load.geometry.dataset)
        if load.geometry.pixels.photometric_interpretation == "MONOCHROME1":
            display.SetAndObserveColorNodeID(INVERTED_GREY)
    return node


def _describe(node: Any, load: VolumeLoad) -> None:
    """What the volume is, cine frame times (ms), and warnings (e.g. 1 mm pixels assumed) as attributes."""
    geometry = load.geometry
    node.SetAttribute("ProgressiveDicomFetch.kind", geometry.kind)
    if geometry.frame_times_ms:
        node.SetAttribute("DICOM.frameTimesMs", " ".join(f"{t:g}" for t in geometry.frame_times_ms))
    if geometry.messages:
        node.SetAttribute("ProgressiveDicomFetch.warnings", "; ".join(geometry.messages))


def refresh(node: Any) -> None:
    """After slices changed in place: slice views redraw on the node's Modified, volume rendering
    and other consumers on ImageDataModifiedEvent, which the node raises itself when its observed
    image data is Modified (measured on slicer-core: invoking it too would fire it twice)."""
    image = node.GetImageData()
    if image is None:
        return
    image.GetPointData().GetScalars().Modified()
    image.Modified()
    node.Modified()
