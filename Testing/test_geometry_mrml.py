"""Our IJK->RAS on a real MRML volume node (slicer-core): what Slicer will show."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from ProgressiveDicomFetchLib.geometry import series_geometry


@pytest.mark.parametrize("key", ["ct_thin", "ct_sagittal", "edge_oblique", "edge_nonsquare", "enhanced_ct", "mr_t1"])
def test_volume_node_takes_our_geometry_unchanged_and_right_handed(slicer_module, sample_small, key):
    slicer = slicer_module
    import vtk

    datasets = [pydicom.dcmread(str(p), stop_before_pixels=True) for p in sample_small.files(key)]
    volume = series_geometry(datasets).volumes[0]
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, volume.ijk_to_ras[r, c])
    node = slicer.util.addVolumeFromArray(np.zeros(volume.shape, np.int16), ijkToRAS=matrix)
    assert slicer.vtkMRMLVolumeNode.IsIJKCoordinateSystemRightHanded(matrix)
    back = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(back)
    np.testing.assert_allclose([[back.GetElement(r, c) for c in range(4)] for r in range(4)], volume.ijk_to_ras, atol=1e-9)
    np.testing.assert_allclose(node.GetSpacing(), volume.spacing, atol=1e-9)
