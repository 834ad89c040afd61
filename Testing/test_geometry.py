"""Geometry from series metadata against the generator's ground truth, Slicer's corner formula
(DICOMScalarVolumePlugin.sliceCornersFromDICOM) and a real MRML volume node (slicer-core)."""
from __future__ import annotations

import copy

import numpy as np
import pydicom
import pytest

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer, series_metadata
from ProgressiveDicomFetchLib.geometry import GeometryError, series_geometry

pytestmark = pytest.mark.compat  # also run on Slicer 5.8's stack (Makefile)

# Series whose generated matrix is the plain Slicer one (tilt and irregular spacing are checked apart).
REGULAR = ["ct_thin", "ct_thick", "ct_sagittal", "enhanced_ct", "ct_thick_htj2k", "edge_oblique",
           "edge_instance_order", "edge_gap", "edge_localizer", "edge_rescale_float", "edge_nonsquare", "edge_signed"]


def headers(sample, key):
    return [pydicom.dcmread(str(path), stop_before_pixels=True) for path in sample.files(key)]


def slicer_corners(ds_list):
    """DICOMScalarVolumePlugin.sliceCornersFromDICOM, transcribed: RAS corners of each slice, sorted
    like the plugin sorts (distance along the normal)."""
    corners = []
    for ds in ds_list:
        position = np.array(ds.ImagePositionPatient, float) * [-1, -1, 1]
        row = np.array(ds.ImageOrientationPatient[:3], float) * [-1, -1, 1]
        column = np.array(ds.ImageOrientationPatient[3:], float) * [-1, -1, 1]
        spacing = np.array(ds.PixelSpacing, float)
        row_vector = ds.Columns * spacing[1] * row
        column_vector = ds.Rows * spacing[0] * column
        corners.append([position, position + row_vector, position + column_vector,
                        position + row_vector + column_vector])
    normal = np.cross(np.array(ds_list[0].ImageOrientationPatient[:3], float),
                      np.array(ds_list[0].ImageOrientationPatient[3:], float))
    order = np.argsort([np.dot(np.array(ds.ImagePositionPatient, float), normal) for ds in ds_list])
    return [corners[i] for i in order]


@pytest.mark.parametrize("key", REGULAR)
def test_geometry_matches_the_generator_and_slicers_formula(sample_small, key):
    info = sample_small.series(key)
    result = series_geometry(headers(sample_small, key))
    volume = result.volumes[0]
    assert list(volume.shape) == info.truth_shape
    np.testing.assert_allclose(volume.ijk_to_lps, info.ijk_to_lps, atol=1e-4)
    assert np.linalg.det(volume.ijk_to_ras[:3, :3]) > 0, "IJK must be right-handed (Slicer reverses it otherwise)"
    if info.num_frames == info.num_instances:  # single-frame: compare with the plugin's corners
        frames = [ds for ds in headers(sample_small, key) if "LOCALIZER" not in list(ds.ImageType)]
        for k, (c00, c10, c01, c11) in zip([k for k, f in enumerate(volume.slices) if f], slicer_corners(frames)):
            rows, columns = volume.shape[1:]
            for (i, j), expected in zip([(0, 0), (columns, 0), (0, rows), (columns, rows)], (c00, c10, c01, c11)):
                np.testing.assert_allclose((volume.ijk_to_ras @ [i, j, k, 1])[:3], expected, atol=1e-3)


def test_same_geometry_from_orthanc_and_static_metadata(orthanc, static_server, sample_small):
    for running in (orthanc, static_server):
        server = DicomwebServer(running.dicomweb_url)
        for key in ("ct_thin", "enhanced_ct", "edge_oblique"):
            info = sample_small.series(key)
            volume = series_geometry(series_metadata(server, info.study_uid, info.series_uid)).volumes[0]
            np.testing.assert_allclose(volume.ijk_to_lps, info.ijk_to_lps, atol=1e-4)
            assert list(volume.shape) == info.truth_shape


def test_sorted_by_position_not_instance_number(sample_small):
    datasets = headers(sample_small, "edge_instance_order")
    volume = series_geometry(datasets).volumes[0]
    normal = np.array(sample_small.series("edge_instance_order").ijk_to_lps)[:3, 2]
    along = [np.dot(f.position, normal) for f in volume.frames]
    assert along == sorted(along)
    numbers = [f.instance_number for f in volume.frames]
    assert numbers != sorted(numbers) and numbers != sorted(numbers, reverse=True)


def test_gap_keeps_the_grid_and_every_slice_at_its_position(sample_small):
    info = sample_small.series("edge_gap")
    volume = series_geometry(headers(sample_small, "edge_gap")).volumes[0]
    assert volume.missing == info.expect["missing_indices"]
    assert volume.slices[info.expect["missing_indices"][0]] is None
    for k, frame in enumerate(volume.slices):
        if frame is not None:
            np.testing.assert_allclose((volume.ijk_to_lps @ [0, 0, k, 1])[:3], frame.position, atol=1e-3)
    normal = volume.ijk_to_lps[:3, 2] / np.linalg.norm(volume.ijk_to_lps[:3, 2])
    along = float(np.dot(info.expect["missing_position"], normal))  # where the missing slice should be
    assert f"1 missing slice(s) at {along:.2f} mm along the normal (indices 9): filled from neighbours" in volume.messages


def test_irregular_spacing_is_reported_and_slices_keep_their_true_positions(sample_small):
    info = sample_small.series("edge_irregular")
    volume = series_geometry(headers(sample_small, "edge_irregular")).volumes[0]
    assert any("irregular slice spacing" in m for m in volume.messages)
    placed = [(k, f) for k, f in enumerate(volume.slices) if f is not None]
    assert len(placed) == info.num_instances
    for (k, frame), truth_position in zip(placed, info.slice_positions):
        np.testing.assert_allclose(frame.position, truth_position, atol=1e-3)
        np.testing.assert_allclose((volume.ijk_to_lps @ [0, 0, k, 1])[:3], truth_position, atol=1e-3)


def test_gantry_tilt_is_detected_and_the_exact_matrix_kept(sample_small):
    info = sample_small.series("edge_tilt")
    volume = series_geometry(headers(sample_small, "edge_tilt")).volumes[0]
    assert volume.tilt_deg == pytest.approx(info.expect["tilt_deg"], abs=0.05)
    assert any("gantry tilt" in m for m in volume.messages)
    np.testing.assert_allclose(volume.ijk_to_lps_exact, info.ijk_to_lps, atol=1e-3)
    # The volume grid itself is orthogonal, as Slicer builds it.
    columns = volume.ijk_to_lps[:3, :3] / np.linalg.norm(volume.ijk_to_lps[:3, :3], axis=0)
    np.testing.assert_allclose(columns.T @ columns, np.eye(3), atol=1e-9)


def test_localizer_is_set_aside_with_a_reason(sample_small):
    info = sample_small.series("edge_localizer")
    result = series_geometry(headers(sample_small, "edge_localizer"))
    assert len(result.volumes) == 1 and list(result.volumes[0].shape) == info.truth_shape
    assert [sop for sop, _ in result.set_aside] == [info.expect["localizer_sop_uid"]]
    assert "localizer" in result.set_aside[0][1]


def test_phases_are_split_not_interleaved(sample_small):
    info = sample_small.series("edge_multiphase")
    result = series_geometry(headers(sample_small, "edge_multiphase"))
    assert len(result.volumes) == info.expect["phases"]
    for volume in result.volumes:
        assert volume.shape[0] == info.expect["slices_per_phase"]
        assert "TemporalPositionIdentifier" in volume.label
        assert len({dict(f.phase_keys)["TemporalPositionIdentifier"] for f in volume.frames}) == 1
        np.testing.assert_allclose(volume.ijk_to_lps, info.ijk_to_lps, atol=1e-4)
    assert {f.sop_instance_uid for v in result.volumes for f in v.frames} == set(info.sop_instance_uids)


def test_enhanced_multiframe_slices_come_from_functional_groups(sample_small):
    volume = series_geometry(headers(sample_small, "enhanced_ct")).volumes[0]
    numbers = [f.frame_number for f in volume.frames]
    assert sorted(numbers) == list(range(1, len(numbers) + 1))
    assert numbers != sorted(numbers)  # written head first: sorted order reverses the frame order


@pytest.mark.parametrize("keyword, words", [("ImagePositionPatient", "ImagePositionPatient is missing"),
                                            ("ImageOrientationPatient", "ImageOrientationPatient is missing"),
                                            ("PixelSpacing", "PixelSpacing is missing")])
def test_missing_geometry_is_a_clear_error(sample_small, keyword, words):
    datasets = headers(sample_small, "ct_thick")
    broken = copy.deepcopy(datasets[3])
    del broken[keyword]
    with pytest.raises(GeometryError, match=words) as error:
        series_geometry(datasets[:3] + [broken] + datasets[4:])
    assert broken.SOPInstanceUID in str(error.value)


def test_non_image_series_and_unsplittable_repeats_are_errors(sample_small):
    report = pydicom.Dataset()
    report.SOPInstanceUID, report.Modality, report.SeriesInstanceUID = "1.2.3.4", "SR", "1.2.3"
    with pytest.raises(GeometryError, match="holds no images"):
        series_geometry([report])
    datasets = headers(sample_small, "ct_thick")
    twin = copy.deepcopy(datasets[0])
    twin.SOPInstanceUID = "1.2.3.99"
    with pytest.raises(GeometryError, match="repeat positions"):
        series_geometry(datasets + [twin])
