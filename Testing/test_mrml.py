"""Real MRML through the slicer-core wheel: what the scene layer will rely on, checked for real.

These pin the facts of Slicer's MRML that the scene layer builds on: geometry goes on the node,
LPS->RAS, `arrayFromVolume` is a view of the node's buffer, and `arrayFromVolumeModified`
fires the ModifiedEvent that makes slice views redraw.
"""
from __future__ import annotations

import numpy as np
import pydicom


LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _matrix(vtk_matrix) -> np.ndarray:
    return np.array([[vtk_matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def test_generated_ct_series_as_a_volume_node_has_dicom_geometry(slicer_module, sample_small):
    import slicer
    import vtk

    series = sample_small.series("ct_thin")
    truth = sample_small.load_truth("ct_thin")
    ijk_to_ras = LPS_TO_RAS @ np.array(series.ijk_to_lps)
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, ijk_to_ras[r, c])
    node = slicer.util.addVolumeFromArray(truth, ijkToRAS=matrix, name=series.description)

    assert node.GetClassName() == "vtkMRMLScalarVolumeNode"
    assert node.GetImageData().GetDimensions() == (series.columns, series.rows, series.num_slices)
    node_matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(node_matrix)
    np.testing.assert_allclose(_matrix(node_matrix), ijk_to_ras, atol=1e-9)
    # Image data carries no geometry: origin 0, spacing 1 (geometry lives on the node).
    assert node.GetImageData().GetOrigin() == (0.0, 0.0, 0.0)
    assert node.GetImageData().GetSpacing() == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), truth)

    # Voxel (0, 0, k) of the node sits at ImagePositionPatient of the k-th file along the normal, in RAS.
    first = min(
        (pydicom.dcmread(str(path), stop_before_pixels=True) for path in sample_small.files("ct_thin")),
        key=lambda ds: float(np.dot(np.array(ds.ImagePositionPatient, float), np.array(series.ijk_to_lps)[:3, 2])),
    )
    origin_ras = LPS_TO_RAS[:3, :3] @ np.array(first.ImagePositionPatient, float)
    np.testing.assert_allclose(node.GetOrigin(), origin_ras, atol=1e-4)


def test_in_place_refinement_is_a_view_and_fires_modified(slicer_module):
    import slicer

    volume = np.zeros((8, 16, 12), np.int16)
    node = slicer.util.addVolumeFromArray(volume, name="refined")
    events = []
    node.AddObserver("ModifiedEvent", lambda caller, event: events.append(event))

    view = slicer.util.arrayFromVolume(node)
    buffer_before = node.GetImageData().GetPointData().GetScalars()
    view[3] = 700
    # The write went into the node's own VTK buffer: no copy.
    assert node.GetImageData().GetScalarComponentAsDouble(5, 7, 3, 0) == 700
    assert node.GetImageData().GetScalarComponentAsDouble(5, 7, 2, 0) == 0
    assert not events, "writing through the view alone does not notify observers"
    slicer.util.arrayFromVolumeModified(node)
    assert events.count("ModifiedEvent") >= 1
    assert node.GetImageData().GetPointData().GetScalars() is buffer_before


def test_subject_hierarchy_places_a_dicom_series_under_patient_and_study(slicer_module):
    """As DICOMPlugin.py does it. slicer-core has no plugin that adds data nodes by itself (real
    Slicer does), so the scene layer must create the series item; patient/study come out unnamed."""
    import slicer

    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer_module.mrmlScene)
    node = slicer.util.addVolumeFromArray(np.zeros((2, 3, 4), np.int16), name="series")
    item = sh.GetItemByDataNode(node)
    if item == sh.GetInvalidItemID():
        item = sh.CreateItem(sh.GetSceneItemID(), node)
    assert sh.GetItemDataNode(item) is node
    sh.SetItemUID(item, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMUIDName(), "1.2.3.3")
    returned = slicer.vtkSlicerSubjectHierarchyModuleLogic.InsertDicomSeriesInHierarchy(sh, "PID-1", "1.2.3", "1.2.3.3")
    assert returned == item
    study = sh.GetItemParent(item)
    patient = sh.GetItemParent(study)
    assert sh.GetItemName(study) == "NewStudy" and sh.GetItemName(patient) == "NewPatient"  # to be renamed
    assert sh.GetItemUID(study, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMUIDName()) == "1.2.3"
    # A second series of the same study reuses the patient and study items.
    other = sh.CreateItem(sh.GetSceneItemID(), slicer.util.addVolumeFromArray(np.zeros((2, 3, 4), np.int16)))
    sh.SetItemUID(other, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMUIDName(), "1.2.3.4")
    slicer.vtkSlicerSubjectHierarchyModuleLogic.InsertDicomSeriesInHierarchy(sh, "PID-1", "1.2.3", "1.2.3.4")
    assert sh.GetItemParent(other) == study
