"""The progressive volume writing straight into a real MRML volume node's buffer (slicer-core).

Kept apart from test_volume.py because that module also runs on Slicer 5.8's stack, where the
slicer-core wheel is absent (under CI=true a missing wheel fails, never skips).
"""
from __future__ import annotations

import numpy as np

from ProgressiveDicomFetchLib.volume import ProgressiveVolume, Quality


def test_refines_a_volume_node_in_place(slicer_module):
    slicer = slicer_module
    rng = np.random.default_rng(1)
    truth = rng.integers(-1024, 3071, size=(9, 6, 5)).astype(np.int16)
    node = slicer.util.addVolumeFromArray(np.zeros(truth.shape, np.int16), name="progressive")
    scalars_before = node.GetImageData().GetPointData().GetScalars()
    view = slicer.util.arrayFromVolume(node)
    volume = ProgressiveVolume(view.shape, view.dtype, buffer=view)
    assert np.shares_memory(volume.array, slicer.util.arrayFromVolume(node))

    volume.write_slice(0, truth[0])
    volume.write_slice(8, truth[8])
    image = node.GetImageData()
    # VTK index order is (I, J, K): voxel [k, j, i] of the array.
    assert image.GetScalarComponentAsDouble(4, 5, 8, 0) == truth[8, 5, 4]
    expected_middle = np.rint((truth[0].astype(np.float32) + truth[8]) / 2)
    assert image.GetScalarComponentAsDouble(2, 3, 4, 0) == expected_middle[3, 2]
    assert volume.quality(4) is Quality.FILLED

    for k in range(9):
        volume.write_slice(k, truth[k])
    slicer.util.arrayFromVolumeModified(node)
    assert volume.complete
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), truth)
    assert node.GetImageData().GetPointData().GetScalars() is scalars_before  # never reallocated
