"""The real test servers: Orthanc variants and nginx over a static DICOMweb tree, over real HTTP."""
from __future__ import annotations

import gzip
import json
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Dict, List

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import encaps

from fixtures_servers import SHIM_CACHE, require_nginx, require_orthanc
from servers.nginx import NginxStaticServer
from servers.orthanc import OrthancServer, UploadError
from servers.ports import ListeningSocket, _decode_address, assert_loopback_only, listening_sockets
from servers.process import pid_alive

from ProgressiveDicomFetchLib.sampledata.static_tree import (
    MULTIPART_BOUNDARY, frame_bytes_from_body, write_static_tree)

DICOM_JSON = "application/dicom+json"
IDENTITY = {"Accept-Encoding": "identity"}


def uids(records: List[Dict], tag: str) -> List[str]:
    return sorted(r[tag]["Value"][0] for r in records)


def port_refuses(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def original_frames(path: Path) -> List[bytes]:
    """Frames of a DICOM file, from pydicom directly (decoded values for native data)."""
    ds = pydicom.dcmread(str(path))
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return list(encaps.generate_frames(ds.PixelData, number_of_frames=count))
    pixels = ds.pixel_array.reshape((count, int(ds.Rows), -1))
    return [frame.astype(pixels.dtype.newbyteorder("<")).tobytes() for frame in pixels]


# ---------------------------------------------------------------- socket check (can it fail?)

def test_proc_net_addresses_decode_and_wildcards_are_not_loopback():
    assert _decode_address("0100007F") == "127.0.0.1"
    assert _decode_address("00000000000000000000000001000000") == "::1"
    assert not ListeningSocket("tcp", _decode_address("00000000"), 80, 1).loopback
    assert not ListeningSocket("tcp6", _decode_address("0" * 32), 80, 1).loopback


# ---------------------------------------------------------------- Orthanc

def test_orthanc_answers_system_and_listens_on_loopback_only(orthanc):
    reply = requests.get(f"{orthanc.url}/system", timeout=10)
    assert reply.status_code == 200 and "Version" in reply.json()
    sockets = assert_loopback_only(orthanc.pid, orthanc.port)
    assert [s.address for s in sockets if s.port == orthanc.port] == ["127.0.0.1"]


def test_orthanc_qido_studies_are_the_generated_ones(orthanc, sample_small):
    reply = requests.get(f"{orthanc.dicomweb_url}/studies", timeout=10)
    assert reply.status_code == 200
    assert uids(reply.json(), "0020000D") == sorted(s.study_uid for s in sample_small.studies)


def test_orthanc_series_search_and_metadata(orthanc, sample_small):
    client = DICOMwebClient(orthanc.dicomweb_url)
    for study in sample_small.studies:
        found = client.search_for_series(study_instance_uid=study.study_uid)
        expected = [s for s in sample_small.series_list if s.study_uid == study.study_uid]
        assert uids(found, "0020000E") == sorted(s.series_uid for s in expected)
    for series in sample_small.series_list:
        metadata = client.retrieve_series_metadata(series.study_uid, series.series_uid)
        assert uids(metadata, "00080018") == sorted(series.sop_instance_uids)
        assert all(pydicom.Dataset.from_json(m, lambda *_: b"").SeriesInstanceUID == series.series_uid for m in metadata)


def test_orthanc_upload_counts_reports_bad_files_and_stops_by_pid(sample_small, tmp_path):
    require_orthanc()
    bad = tmp_path / "not-dicom.dcm"
    bad.write_bytes(b"this is not a DICOM file" * 10)
    files = sample_small.files(sample_small.keys()[0])
    with OrthancServer(shim_cache=SHIM_CACHE) as server:
        pid, port, work_dir = server.pid, server.port, server.work_dir
        assert server.upload(files) == len(files)
        with pytest.raises(UploadError, match="not-dicom.dcm") as error:
            server.upload([bad])
        assert "HTTP 400" in str(error.value)
        stored = requests.get(f"{server.url}/instances", timeout=10).json()
        assert len(stored) == len(files)
    assert not pid_alive(pid)
    assert port_refuses(port)
    assert not work_dir.exists()


def test_orthanc_basic_auth(orthanc_auth):
    url = f"{orthanc_auth.dicomweb_url}/studies"
    user, password = orthanc_auth.auth
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, auth=(user, password), timeout=10).status_code == 200
    assert requests.get(url, auth=(user, password + "x"), timeout=10).status_code == 401
    assert requests.get(url, auth=("nobody", password), timeout=10).status_code == 401


def test_orthanc_gzip_only_when_asked(orthanc_gzip, orthanc, sample_small):
    url = f"{orthanc_gzip.dicomweb_url}/studies"
    zipped = requests.get(url, headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert zipped.headers.get("Content-Encoding") == "gzip"
    plain = requests.get(url, headers=IDENTITY, timeout=10)
    assert plain.headers.get("Content-Encoding", "identity") == "identity"
    assert uids(zipped.json(), "0020000D") == uids(plain.json(), "0020000D") == sorted(
        s.study_uid for s in sample_small.studies)
    # The plain variant never compresses.
    reply = requests.get(f"{orthanc.dicomweb_url}/studies", headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert "Content-Encoding" not in reply.headers


# ---------------------------------------------------------------- nginx over a static tree

def test_static_qido_ignores_every_filter(static_server, sample_small):
    base = static_server.dicomweb_url
    reply = requests.get(f"{base}/studies?PatientName=NOBODY&limit=1&offset=5", timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == DICOM_JSON
    assert uids(reply.json(), "0020000D") == sorted(s.study_uid for s in sample_small.studies)
    for study in sample_small.studies:
        reply = requests.get(f"{base}/studies/{study.study_uid}/series?Modality=XX", timeout=10)
        expected = [s.series_uid for s in sample_small.series_list if s.study_uid == study.study_uid]
        assert uids(reply.json(), "0020000E") == sorted(expected)
        record = reply.json()[0]
        assert record["00201209"]["vr"] == "IS"


def test_static_unknown_uids_give_404(static_server, sample_small):
    base = static_server.dicomweb_url
    series = sample_small.series_list[0]
    unknown = "1.2.3.4.5.6.7.8.9"
    for path in (f"/studies/{unknown}/series", f"/studies/{series.study_uid}/series/{unknown}/metadata",
                 f"/studies/{series.study_uid}/series/{series.series_uid}/instances/{unknown}/frames/1",
                 f"/studies/{series.study_uid}/series/{series.series_uid}/instances/"
                 f"{series.sop_instance_uids[0]}/frames/99999", "/nothing-here"):
        assert requests.get(base + path, timeout=10).status_code == 404, path


def test_static_bulkdata_uri_resolves_to_the_original_frames(static_server, sample_small):
    session = requests.Session()
    for series in sample_small.series_list:
        series_url = f"{static_server.dicomweb_url}/studies/{series.study_uid}/series/{series.series_uid}"
        metadata = session.get(f"{series_url}/metadata", timeout=10).json()
        by_sop = {m["00080018"]["Value"][0]: m for m in metadata}
        assert sorted(by_sop) == sorted(series.sop_instance_uids)
        path = sample_small.files(series.key)[0]  # one instance a series; multi-frame: first and last
        sop = str(pydicom.dcmread(str(path), stop_before_pixels=True).SOPInstanceUID)
        uri = by_sop[sop]["7FE00010"]["BulkDataURI"]
        assert uri == f"instances/{sop}/frames"
        assert "InlineBinary" not in json.dumps(by_sop[sop])
        frames = original_frames(path)
        for number in sorted({1, len(frames)}):
            reply = session.get(f"{series_url}/{uri}/{number}", headers=IDENTITY, timeout=10)
            assert reply.status_code == 200
            assert reply.content == frames[number - 1], f"{path} frame {number}"


def test_static_range_if_range_and_conditional_get(static_server):
    tree = static_server.tree
    instance = next(i for i in tree.instances if i.frames)
    url = f"{static_server.dicomweb_url}/{instance.frames_dir}/1"
    whole = tree.frame_path(instance, 1).read_bytes()
    size = len(whole)
    full = requests.get(url, headers=IDENTITY, timeout=10)
    assert full.status_code == 200 and full.content == whole
    assert full.headers["Content-Type"] == instance.content_type
    etag, modified = full.headers["ETag"], full.headers["Last-Modified"]
    ranged = requests.get(url, headers={"Range": "bytes=10-109"}, timeout=10)
    assert ranged.status_code == 206
    assert ranged.headers["Content-Range"] == f"bytes 10-109/{size}"
    assert ranged.content == whole[10:110]
    suffix = requests.get(url, headers={"Range": "bytes=-16"}, timeout=10)
    assert suffix.status_code == 206 and suffix.content == whole[-16:]
    for validator in (etag, modified):
        current = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": validator}, timeout=10)
        assert current.status_code == 206 and current.content == whole[:10]
    stale = requests.get(url, headers={"Range": "bytes=0-9", "If-Range": '"stale-etag"'}, timeout=10)
    assert stale.status_code == 200 and stale.content == whole
    assert requests.get(url, headers={"If-None-Match": etag}, timeout=10).status_code == 304
    beyond = requests.get(url, headers={"Range": f"bytes={size}-"}, timeout=10)
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{size}"


def test_static_json_is_gzip_static(static_server):
    url = f"{static_server.dicomweb_url}/studies"
    zipped = requests.get(url, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=10)
    raw = zipped.raw.read(decode_content=False)
    assert zipped.headers["Content-Encoding"] == "gzip"
    plain = requests.get(url, headers=IDENTITY, timeout=10)
    assert "Content-Encoding" not in plain.headers
    assert gzip.decompress(raw) == plain.content
    assert plain.headers["Content-Type"] == DICOM_JSON and "ETag" in plain.headers


def test_static_multipart_frames_like_the_npm_generator(static_server_multipart, static_server):
    tree = static_server_multipart.tree
    instance = next(i for i in tree.instances if i.frames)
    reply = requests.get(f"{static_server_multipart.dicomweb_url}/{instance.frames_dir}/1", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("multipart/related")
    assert "boundary=" not in reply.headers["Content-Type"]
    assert reply.content.startswith(f"--{MULTIPART_BOUNDARY}\r\nContent-Type: ".encode())
    assert f"transfer-syntax={instance.transfer_syntax}".encode() in reply.content.split(b"\r\n\r\n")[0]
    plain = requests.get(f"{static_server.dicomweb_url}/{instance.frames_dir}/1", timeout=10)
    assert frame_bytes_from_body(reply.content) == plain.content


def test_static_server_loopback_only_and_stops_by_pid(static_server, sample_small):
    assert assert_loopback_only(static_server.pid, static_server.port)
    require_nginx()
    tree_dir = Path(tempfile.mkdtemp(prefix="pdf-test-tree-"))
    try:
        write_static_tree(sample_small.files(sample_small.keys()[0]), tree_dir)
        with NginxStaticServer(tree_dir) as server:
            pid, port, work_dir = server.pid, server.port, server.work_dir
            assert all(s.loopback for s in listening_sockets(pid))
            assert requests.get(f"{server.dicomweb_url}/studies", timeout=10).status_code == 200
        assert not pid_alive(pid)
        assert port_refuses(port)
        assert not work_dir.exists()
    finally:
        shutil.rmtree(tree_dir, ignore_errors=True)


def test_static_tree_splits_multiframe_objects(tmp_path):
    """Enhanced multi-frame objects, native and JPEG-LS: one file per frame, equal to the stored frame."""
    pytest.importorskip("jpeg_ls")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import EnhancedCTImageStorage, ExplicitVRLittleEndian, JPEGLSLossless, generate_uid

    rng = np.random.default_rng(7)
    volume = rng.integers(0, 4096, size=(3, 16, 20), dtype=np.uint16)
    study = generate_uid()
    paths = []
    for index, syntax in enumerate((ExplicitVRLittleEndian, JPEGLSLossless)):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedCTImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", index + 1, 1
        ds.Rows, ds.Columns, ds.NumberOfFrames = 16, 20, 3
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = volume.tobytes()
        if syntax != ExplicitVRLittleEndian:
            ds.compress(syntax, volume, encoding_plugin="pyjpegls")
        paths.append(tmp_path / f"mf{index}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    tree = write_static_tree(paths, tmp_path / "tree")
    native, jls = sorted(tree.instances, key=lambda i: i.transfer_syntax)
    assert (native.frames, jls.frames) == (3, 3)
    assert (native.content_type, jls.content_type) == ("application/octet-stream", "image/jls")
    import imagecodecs

    for k in range(3):
        assert tree.frame_path(native, k + 1).read_bytes() == volume[k].tobytes()
        decoded = imagecodecs.jpegls_decode(tree.frame_path(jls, k + 1).read_bytes())
        assert np.array_equal(decoded, volume[k])
    assert not tree.frame_path(native, 4).exists()
