"""NRRD output: real volumes loaded from Orthanc, read back with pynrrd (an independent reader), voxels
and geometry checked against what pydicom reads from the very files; safe names; atomic writes.

Not compat: Slicer 5.8's stack has no pynrrd to read the files back."""
from __future__ import annotations

import os

import numpy as np
import pydicom
import pytest

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
from ProgressiveDicomFetchLib.retrieve import load_series
from support import missing

from ProgressiveDicomFetchLib.output import output_names, validate_uid, write_series_nrrd, write_volume_nrrd



@pytest.fixture(scope="module")
def nrrd():
    """pynrrd, the independent reader (and the writer); `make test` installs it."""
    try:
        import nrrd as module
    except ImportError:
        missing("pynrrd (the `nrrd` extra)")
    return module

KEYS = ["ct_thin", "edge_oblique", "edge_nonsquare", "ct_sagittal"]


def sorted_datasets(paths):
    """The files of a single-stack series, sorted along the slice normal (as the volume's k)."""
    datasets = [pydicom.dcmread(str(p)) for p in paths]
    orientation = np.array(datasets[0].ImageOrientationPatient, float)
    normal = np.cross(orientation[:3], orientation[3:])
    return sorted(datasets, key=lambda ds: float(np.dot(np.array(ds.ImagePositionPatient, float), normal)))


@pytest.fixture(scope="module")
def loaded(orthanc, sample_small):
    server = DicomwebServer(orthanc.dicomweb_url)
    result = {}
    for key in KEYS + ["edge_multiphase"]:
        info = sample_small.series(key)
        result[key] = (info, load_series(server, info.study_uid, info.series_uid))
    return result


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
@pytest.mark.parametrize("key", KEYS)
def test_volume_reads_back_with_the_geometry_of_the_dicom_files(loaded, nrrd, sample_small, tmp_path, key, encoding):
    info, loads = loaded[key]
    assert len(loads) == 1
    load = loads[0]
    path = write_series_nrrd(tmp_path, info.series_uid, loads, encoding=encoding)[0]
    assert path == tmp_path / f"{info.series_uid}.nrrd"
    assert sorted(os.listdir(tmp_path)) == [path.name], "a temp file was left behind"

    data, header = nrrd.read(str(path), index_order="C")
    array = load.volume.array
    assert data.dtype == array.dtype and data.shape == array.shape
    np.testing.assert_array_equal(data, array)
    assert header["space"] == "left-posterior-superior"
    assert list(header["kinds"]) == ["domain"] * 3
    assert header["encoding"] == encoding
    assert list(header["sizes"]) == [array.shape[2], array.shape[1], array.shape[0]]  # i, j, k
    assert header["SeriesInstanceUID"] == info.series_uid

    directions = np.asarray(header["space directions"], float)  # rows: i, j, k
    origin = np.asarray(header["space origin"], float)
    datasets = sorted_datasets(sample_small.files(key))
    assert len(datasets) == array.shape[0]
    for k, ds in enumerate(datasets):
        np.testing.assert_allclose(origin + k * directions[2], np.array(ds.ImagePositionPatient, float), atol=1e-4,
                                   err_msg=f"{key}: slice {k} is not where its file says")
        stored = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        np.testing.assert_array_equal(data[k], stored.astype(data.dtype), err_msg=f"{key}: slice {k} voxels")
    orientation = np.array(datasets[0].ImageOrientationPatient, float)
    row_spacing, column_spacing = (float(v) for v in datasets[0].PixelSpacing)
    np.testing.assert_allclose(directions[0], orientation[:3] * column_spacing, atol=1e-5)  # i: along a row (cosines normalised)
    np.testing.assert_allclose(directions[1], orientation[3:] * row_spacing, atol=1e-5)  # j: down a column
    # the same mapping as the geometry's own matrix: voxel (i, j, k) -> LPS
    ijk = np.array([3.0, 2.0, 1.0])
    np.testing.assert_allclose(origin + directions.T @ ijk, (load.geometry.ijk_to_lps @ np.append(ijk, 1))[:3], atol=1e-6)


def test_series_of_several_volumes_gets_numbered_files(loaded, nrrd, tmp_path):
    info, loads = loaded["edge_multiphase"]
    assert len(loads) > 1
    paths = write_series_nrrd(tmp_path, info.series_uid, loads)
    assert [p.name for p in paths] == [f"{info.series_uid}_{n}.nrrd" for n in range(1, len(loads) + 1)]
    for path, load in zip(paths, loads):
        data, header = nrrd.read(str(path), index_order="C")
        np.testing.assert_array_equal(data, load.volume.array)
        assert header["StackLabel"] == load.geometry.label


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32])
def test_dtype_is_kept_exactly_and_the_header_is_exact(nrrd, tmp_path, dtype):
    array = (np.arange(4 * 5 * 6).reshape(4, 5, 6) - 60).astype(dtype)
    if dtype == np.float32:
        array = array * np.float32(0.1)
    matrix = np.array([[0.1 + 0.2, 0.0, 0.01, -12.345678901234567], [0.0, 0.7, 0.0, 1e-7],
                       [0.0, 0.0, 2.5, 100.0], [0, 0, 0, 1]])
    path = write_volume_nrrd(tmp_path / "v.nrrd", array, matrix, metadata={"Note": "caf\u00e9"})
    data, header = nrrd.read(str(path), index_order="C")
    assert data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(data, array)
    assert np.array_equal(np.asarray(header["space directions"], float), matrix[:3, :3].T)  # bit-exact floats
    assert np.array_equal(np.asarray(header["space origin"], float), matrix[:3, 3])
    assert header["Note"] == "caf\\xe9"


def test_non_contiguous_array_is_written_in_c_order(nrrd, tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.int16).reshape(4, 3, 2).transpose(2, 1, 0)  # (2, 3, 4), Fortran-ordered
    path = write_volume_nrrd(tmp_path / "t.nrrd", array, np.eye(4))
    np.testing.assert_array_equal(nrrd.read(str(path), index_order="C")[0], array)


def test_output_names_one_and_several_volumes():
    assert output_names("1.2.840.10008.1", 1) == ["1.2.840.10008.1.nrrd"]
    assert output_names("1.2.3", 3) == ["1.2.3_1.nrrd", "1.2.3_2.nrrd", "1.2.3_3.nrrd"]
    with pytest.raises(ValueError):
        output_names("1.2.3", 0)


@pytest.mark.parametrize("uid", ["", ".", "..", "../../etc/passwd", "1.2/3", "1.2.3\\4", "1.2..3", ".1.2", "1.2.",
                                 "1.2.3.nrrd", "1.2.3\n", " 1.2", "1." + "2" * 63, "１.２", None, 123])
def test_unsafe_uids_are_rejected_by_name(uid, tmp_path):
    with pytest.raises(ValueError, match="valid DICOM UID"):
        validate_uid(uid)
    with pytest.raises(ValueError, match="valid DICOM UID"):
        write_series_nrrd(tmp_path, uid, [object()])
    assert os.listdir(tmp_path) == []


def test_uid_of_64_characters_is_accepted():
    uid = "1." + "2" * 62
    assert validate_uid(uid) == uid


def test_failed_write_leaves_no_file_and_keeps_the_old_one(nrrd, tmp_path, monkeypatch):
    array = np.zeros((2, 3, 4), np.int16)
    target = tmp_path / "1.2.3.nrrd"
    target.write_bytes(b"previous")

    def fail_halfway(handle, data, header, **options):  # the disk fills up while pynrrd writes
        handle.write(b"NRRD0004\n" + b"\0" * 10)
        raise OSError("disk full")

    monkeypatch.setattr(nrrd, "write", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        write_volume_nrrd(target, array, np.eye(4))
    assert os.listdir(tmp_path) == [target.name] and target.read_bytes() == b"previous"


@pytest.mark.parametrize("array, matrix, message", [
    (np.zeros((2, 3), np.int16), np.eye(4), "shape"),
    (np.zeros((2, 3, 4), np.complex64), np.eye(4), "dtype"),
    (np.zeros((2, 3, 4), np.int16), np.eye(3), "4x4"),
    (np.zeros((2, 3, 4), np.int16), np.diag([1.0, 1.0, 0.0, 1.0]), "singular"),
    (np.zeros((2, 3, 4), np.int16), np.full((4, 4), np.nan), "finite"),
])
def test_bad_input_is_refused_before_any_file_is_made(tmp_path, array, matrix, message):
    with pytest.raises(ValueError, match=message):
        write_volume_nrrd(tmp_path / "x.nrrd", array, matrix)
    assert os.listdir(tmp_path) == []


def test_bad_encoding_and_metadata_are_refused(tmp_path):
    array = np.zeros((1, 2, 2), np.int16)
    with pytest.raises(ValueError, match="encoding"):
        write_volume_nrrd(tmp_path / "x.nrrd", array, np.eye(4), encoding="bzip2")
    with pytest.raises(ValueError, match="line breaks"):
        write_volume_nrrd(tmp_path / "x.nrrd", array, np.eye(4), metadata={"a": "1\nencoding: raw"})
    with pytest.raises(ValueError, match="line breaks"):
        write_volume_nrrd(tmp_path / "x.nrrd", array, np.eye(4), metadata={"a:b": "1"})
    assert os.listdir(tmp_path) == []
