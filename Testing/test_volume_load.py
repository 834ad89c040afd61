"""Metadata -> geometry -> frames -> decode -> progressive volume, end to end against the real
servers: for every generated series and transfer syntax, slices arriving in random order give
exactly the volume pydicom reads from the same files (and the generator's truth)."""
from __future__ import annotations

import random

import numpy as np
import pydicom
import pytest

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
from ProgressiveDicomFetchLib.dicomweb.server_traits import ServerTraits
from ProgressiveDicomFetchLib.dicomweb.metadata import series_metadata
from ProgressiveDicomFetchLib.geometry import series_geometry
from ProgressiveDicomFetchLib.loading import VolumeLoad
from ProgressiveDicomFetchLib.retrieve import fetcher_for, load_series, load_slices
from ProgressiveDicomFetchLib.volume import Quality

SMALL_KEYS = ["ct_thin", "ct_thick", "ct_sagittal", "enhanced_ct", "ct_thick_implicit", "ct_thick_rle",
              "ct_thick_jpegll", "ct_thick_jpegls", "ct_thick_j2k", "ct_thick_htj2k", "mr_t1", "edge_oblique",
              "edge_instance_order", "edge_gap", "edge_localizer", "edge_rescale_float", "edge_signed",
              "edge_unsigned16", "edge_padding", "edge_nonsquare", "edge_tilt", "edge_multiphase", "edge_irregular"]


@pytest.fixture(params=["orthanc", "static_server"])
def server(request):
    return DicomwebServer(request.getfixturevalue(request.param).dicomweb_url)


def shuffled(key):
    def order(tasks):
        tasks = list(tasks)
        random.Random(key).shuffle(tasks)
        return tasks
    return order


def pydicom_volume(paths, skip_sop=()):
    """The independent reference: pydicom's pixel_array, rescaled, sorted along the slice normal."""
    datasets = [pydicom.dcmread(str(p)) for p in paths]
    datasets = [ds for ds in datasets if ds.SOPInstanceUID not in skip_sop]
    normal = np.cross(np.array(datasets[0].ImageOrientationPatient[:3], float),
                      np.array(datasets[0].ImageOrientationPatient[3:], float))
    datasets.sort(key=lambda ds: float(np.dot(np.array(ds.ImagePositionPatient, float), normal)))
    return [ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
            for ds in datasets]


def test_every_series_and_syntax_is_bit_exact_in_any_arrival_order(server, sample_small):
    traits = ServerTraits()
    assert set(SMALL_KEYS) == set(sample_small.keys()), "a generated series is not covered by this test"
    for key in SMALL_KEYS:
        info = sample_small.series(key)
        loads = load_series(server, info.study_uid, info.series_uid, order=shuffled(key), traits=traits)
        truth = sample_small.load_truth(key)
        if key == "edge_multiphase":
            assert len(loads) == truth.shape[0]
            for phase, load in enumerate(loads):
                np.testing.assert_array_equal(load.volume.array, truth[phase], err_msg=key)
            continue
        assert len(loads) == 1, key
        load = loads[0]
        volume = load.volume
        assert volume.dtype == np.dtype(info.dtype), key
        present = [k for k, f in enumerate(load.geometry.slices) if f is not None]
        if key == "edge_irregular":  # a finer grid: each file's slice sits at its own index
            np.testing.assert_array_equal(volume.array[present], truth, err_msg=key)
        else:
            np.testing.assert_array_equal(volume.array[present], truth[present], err_msg=key)
        assert all(volume.quality(k) == Quality.FULL for k in present)
        assert all(volume.quality(k) == Quality.FILLED for k in load.geometry.missing)
        assert volume.covered and volume.complete == (not load.geometry.missing)
        if info.num_frames == info.num_instances:  # single-frame: compare with pydicom's own reading
            aside = {info.expect["localizer_sop_uid"]} if key == "edge_localizer" else set()
            reference = pydicom_volume(sample_small.files(key), aside)
            np.testing.assert_array_equal(volume.array[present], np.array(reference).astype(volume.dtype),
                                          err_msg=f"{key} differs from pydicom's reading")


def test_gap_is_filled_by_interpolation_between_its_neighbours(orthanc, sample_small):
    info = sample_small.series("edge_gap")
    load = load_series(DicomwebServer(orthanc.dicomweb_url), info.study_uid, info.series_uid)[0]
    k = info.expect["missing_indices"][0]
    expected = (load.volume.array[k - 1].astype(np.float32) + load.volume.array[k + 1]) / 2
    np.testing.assert_array_equal(load.volume.array[k], np.round(expected).astype(np.int16))


def test_coarse_to_fine_previews_improve_stage_by_stage(orthanc, sample_small):
    """Every 8th, 4th, 2nd, then the rest: covered from the first stage, closer to the truth each time."""
    info = sample_small.series("ct_thin")
    truth = sample_small.load_truth("ct_thin").astype(np.float64)
    server = DicomwebServer(orthanc.dicomweb_url)
    instances = series_metadata(server, info.study_uid, info.series_uid)
    load = VolumeLoad(series_geometry(instances).volumes[0], info.study_uid, instances)
    fetcher = fetcher_for(server, load)
    errors = []
    for step in (8, 4, 2, 1):
        for task in load.tasks():
            if task.k % step == 0 and load.volume.quality(task.k) != Quality.FULL:
                load_slices(load, fetcher, [task])
        assert load.volume.covered
        errors.append(float(np.abs(load.volume.array - truth).mean()))
    assert errors == sorted(errors, reverse=True) and errors[-1] == 0.0
    assert errors[0] < 0.25 * float(np.abs(truth - truth.mean()).mean()), "the first stage is no useful preview"
