"""Generated series of the new kinds (sampledata/image_kinds.py) against their ground truth: geometry
from metadata alone (also on Slicer 5.8's stack), through Orthanc and `fetch` (NRRD), and as MRML
nodes (slicer-core): DX views, CR MONOCHROME1, US RGB cine, NM tomo, RT dose, parametric map."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ProgressiveDicomFetchLib.geometry import series_geometry
from ProgressiveDicomFetchLib.sampledata.image_kinds import STUDY_UID, all_kinds, write_kinds
from ProgressiveDicomFetchLib.volume import ProgressiveVolume, Quality

KINDS = {series.key: series for series in all_kinds()}


@pytest.mark.compat
@pytest.mark.parametrize("key", sorted(KINDS))
def test_geometry_of_each_kind(key):
    series = KINDS[key]
    geometry = series_geometry(series.datasets, series.series_uid)
    assert len(geometry.volumes) == len(series.truth)
    for volume, truth, matrix in zip(geometry.volumes, series.truth, series.ijk_to_lps):
        assert volume.buffer_shape == truth.shape
        np.testing.assert_allclose(volume.ijk_to_lps_exact, matrix, atol=1e-9)
        assert volume.kind == series.expect["kind"]
        assert volume.dtype == truth.dtype or (truth.dtype == np.int16 and volume.dtype == np.int16)
    if "labels" in series.expect:
        assert [v.label for v in geometry.volumes] == series.expect["labels"]
    if "warning" in series.expect:
        assert any(series.expect["warning"] in m for m in geometry.volumes[0].messages)
    else:
        assert not any("assumed" in m for v in geometry.volumes for m in v.messages)
    if "frame_times" in series.expect:
        np.testing.assert_allclose(geometry.volumes[0].frame_times_ms, series.expect["frame_times"])
    else:
        assert geometry.volumes[0].frame_times_ms is None


@pytest.mark.compat
def test_colour_fill_works_per_channel():
    volume = ProgressiveVolume((5, 2, 2, 3), np.uint8)
    low = np.zeros((2, 2, 3), np.uint8)
    high = np.array([40, 200, 100], np.uint8) * np.ones((2, 2, 1), np.uint8)
    volume.write_slice(0, low)
    volume.write_slice(4, high)
    assert volume.quality(2) is Quality.FILLED
    np.testing.assert_array_equal(volume.array[2], np.array([20, 100, 50]) * np.ones((2, 2, 1)))
    with pytest.raises(ValueError, match="shape"):
        volume.write_slice(1, low[..., 0])


# Orthanc 1.10 answers 400 to frames of FloatPixelData: the parametric map is served by nginx.
NOT_ON_ORTHANC = {"pmap"}


@pytest.fixture(scope="module")
def kinds_on_orthanc(orthanc_empty, tmp_path_factory):
    series, paths = write_kinds(tmp_path_factory.mktemp("kinds"))
    orthanc_empty.upload([p for p in paths if p.parent.name not in NOT_ON_ORTHANC])
    return [s for s in series if s.key not in NOT_ON_ORTHANC]


@pytest.fixture(scope="module")
def kinds_on_nginx(_server_reaper, tmp_path_factory):
    from fixtures_servers import require_nginx
    from servers.nginx import NginxStaticServer

    from ProgressiveDicomFetchLib.sampledata.static_tree import write_static_tree

    require_nginx()
    series, paths = write_kinds(tmp_path_factory.mktemp("kinds_static"))
    tree = tmp_path_factory.mktemp("kinds_tree")
    write_static_tree(paths, tree)
    server = NginxStaticServer(tree)
    _server_reaper.append(server)
    server.start()
    yield server, series
    server.stop()


def _fetch(url, study, out, series=()):
    command = [sys.executable, "-m", "ProgressiveDicomFetchLib", "fetch", "--url", url, "--study", study,
               "--out", str(out), "--timeline", str(out / "timeline.json")] + \
        [a for uid in series for a in ("--series", uid)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("where", ["orthanc", "nginx"])
def test_fetch_writes_each_kind_exactly(request, where, tmp_path):
    if where == "orthanc":
        server, series_list = request.getfixturevalue("orthanc_empty"), request.getfixturevalue("kinds_on_orthanc")
        result = _fetch(server.dicomweb_url, STUDY_UID, tmp_path)
    else:
        server, series_list = request.getfixturevalue("kinds_on_nginx")
        series_list = [s for s in series_list if s.key in NOT_ON_ORTHANC or s.key == "us_cine"]
        result = _fetch(server.dicomweb_url, STUDY_UID, tmp_path, [s.series_uid for s in series_list])
    assert result.returncode == 0, result.stderr[-3000:]
    _check_outputs(series_list, tmp_path)
    import json
    timeline = json.loads((tmp_path / "timeline.json").read_text())["series"]
    for series in series_list:  # the contract extended: a cine's record carries its frame times
        record = timeline[series.series_uid]
        assert record.get("frame_times_ms") == series.expect.get("frame_times"), series.key
        assert record["complete_s"] >= record["covered_s"] >= record["first_slice_s"] > 0


def _check_outputs(series_list, tmp_path):
    import nrrd
    for series in series_list:
        names = [f"{series.series_uid}.nrrd"] if len(series.truth) == 1 else \
            [f"{series.series_uid}_{n}.nrrd" for n in range(1, len(series.truth) + 1)]
        for name, truth, matrix in zip(names, series.truth, series.ijk_to_lps):
            data, header = nrrd.read(str(tmp_path / name), index_order="C")
            np.testing.assert_array_equal(data, truth, err_msg=series.key)
            directions = np.asarray(header["space directions"], float)
            if truth.ndim == 4:
                assert header["kinds"] == ["RGB-color", "domain", "domain", "domain"]
                assert np.isnan(directions[0]).all()
                directions = directions[1:]
            np.testing.assert_allclose(directions, matrix[:3, :3].T, atol=1e-9, err_msg=series.key)
            np.testing.assert_allclose(header["space origin"], matrix[:3, 3], atol=1e-9, err_msg=series.key)
            assert header["VolumeKind"] == series.expect["kind"]
        if "frame_times" in series.expect:
            times = [float(t) for t in header["FrameTimesMs"].split()]
            np.testing.assert_allclose(times, series.expect["frame_times"], atol=1e-6)
        if "photometric" in series.expect:
            assert header["PhotometricInterpretation"] == "MONOCHROME1"


def test_scene_nodes_of_each_kind(orthanc_empty, kinds_on_orthanc, slicer_module):
    from ProgressiveDicomFetchLib.dicomweb.server import DicomwebServer
    from ProgressiveDicomFetchLib.retrieve import load_series
    from ProgressiveDicomFetchLib.scene.volume_node import INVERTED_GREY, create_volume_node

    slicer = slicer_module
    server = DicomwebServer(orthanc_empty.dicomweb_url)
    by_key = {s.key: s for s in kinds_on_orthanc}
    for key in ("us_cine", "cr_mono1", "dx_views", "dose_relative"):
        series = by_key[key]
        loads = load_series(server, STUDY_UID, series.series_uid)
        for index, (load, truth) in enumerate(zip(loads, series.truth)):
            node = create_volume_node(slicer.mrmlScene, load, f"{key} {index}")
            image = node.GetImageData()
            assert image.GetDimensions() == (truth.shape[2], truth.shape[1], truth.shape[0])
            np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), truth)
            assert node.GetAttribute("ProgressiveDicomFetch.kind") == series.expect["kind"]
            if truth.ndim == 4:
                assert node.IsA("vtkMRMLVectorVolumeNode") and image.GetNumberOfScalarComponents() == 3
                assert node.GetDisplayNode().IsA("vtkMRMLVectorVolumeDisplayNode")
                assert node.GetAttribute("DICOM.frameTimesMs").split()[:2] == ["0", "33.3"]
            else:
                assert not node.IsA("vtkMRMLVectorVolumeNode")
            display = node.GetDisplayNode()
            if key == "cr_mono1":
                assert display.GetColorNodeID() == INVERTED_GREY
                assert "1 mm pixels assumed" in node.GetAttribute("ProgressiveDicomFetch.warnings")
            elif truth.ndim == 3:
                assert display.GetColorNodeID() != INVERTED_GREY


def test_colour_series_are_not_probed_with_the_servers_default_frame(orthanc_empty, kinds_on_orthanc):
    """Orthanc's default answer is a frame transcoded to little endian, whose colour it may already
    have converted: a colour series takes no probe frame (its frames come as stored, `*`)."""
    from ProgressiveDicomFetchLib.dicomweb.server import DicomwebServer
    from ProgressiveDicomFetchLib.previews.probe import find_preview_source
    from ProgressiveDicomFetchLib.retrieve import fetcher_for, prepare_series

    server = DicomwebServer(orthanc_empty.dicomweb_url)
    cine = next(s for s in kinds_on_orthanc if s.key == "us_cine")
    (load,) = prepare_series(server, STUDY_UID, cine.series_uid)
    probe = find_preview_source(fetcher_for(server, load), load)
    assert probe.source is None and probe.frame is None and probe.bytes == 0, probe.reason
    assert "colour" in probe.reason


@pytest.mark.compat
def test_the_series_table_says_what_each_series_is():
    from ProgressiveDicomFetchLib.dicomweb.records import SeriesRecord
    from ProgressiveDicomFetchLib.panel import SERIES_COLUMNS, table_rows

    records = [SeriesRecord("1.2", f"1.2.{n}", modality, n, "", "", None, None, 1)
               for n, modality in enumerate(("CT", "DX", "US", "RTDOSE", "SR"))]
    kinds = [row[-1] for row in table_rows(records, SERIES_COLUMNS)]
    assert SERIES_COLUMNS[-1].title == "Kind"
    assert kinds == ["volume", "image", "image or cine (colour)", "dose", "not an image (SR)"]


def test_console_api_loads_each_kind_progressively(orthanc_empty, kinds_on_orthanc, slicer_module):
    """SceneLoader (the console API): nodes first, voxels refined in place until equal to the truth."""
    from ProgressiveDicomFetchLib.dicomweb.server import DicomwebServer
    from ProgressiveDicomFetchLib.scene import SceneLoader
    from ProgressiveDicomFetchLib.scene.volume_node import INVERTED_GREY

    slicer = slicer_module
    loader = SceneLoader(DicomwebServer(orthanc_empty.dicomweb_url), watch_focus=False)
    try:
        wanted = [s for s in kinds_on_orthanc if s.key in ("us_cine", "cr_mono1", "dose_absolute", "nm_tomo")]
        nodes = loader.load(STUDY_UID, [s.series_uid for s in wanted])
        assert len(nodes) == len(wanted)
        assert loader.wait(timeout=120)
        for series, node in zip(wanted, nodes):
            np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), series.truth[0], err_msg=series.key)
            assert node.IsA("vtkMRMLVectorVolumeNode") == (series.truth[0].ndim == 4)
            assert (node.GetDisplayNode().GetColorNodeID() == INVERTED_GREY) == (series.key == "cr_mono1")
    finally:
        loader.close()


@pytest.mark.compat
def test_a_modality_lut_sequence_is_refused_not_ignored():
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from ProgressiveDicomFetchLib.geometry import GeometryError

    cr = KINDS["cr_mono1"].datasets[0].copy()
    lut = Dataset()
    lut.LUTDescriptor, lut.LUTData = [1024, 0, 16], list(range(1024))
    cr.ModalityLUTSequence = Sequence([lut])
    with pytest.raises(GeometryError, match="Modality LUT Sequence"):
        series_geometry([cr], cr.SeriesInstanceUID)


@pytest.mark.compat
def test_frame_time_vector_gives_each_frames_time():
    cine = KINDS["us_cine"].datasets[0].copy()
    del cine.FrameTime
    increments = [0.0] + [20.0 + (k % 3) for k in range(1, int(cine.NumberOfFrames))]
    cine.FrameTimeVector = increments
    volume = series_geometry([cine], cine.SeriesInstanceUID).volumes[0]
    np.testing.assert_allclose(volume.frame_times_ms, np.cumsum(increments))
    assert volume.kind == "colour" and volume.buffer_shape == KINDS["us_cine"].truth[0].shape
