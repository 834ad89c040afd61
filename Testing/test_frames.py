"""WADO-RS frames against real servers (Orthanc 1.10, nginx over static trees) and the multipart
parser on bodies captured from them. Native data only here, so the module runs on Slicer 5.8's
stack without codec plugins (compressed syntaxes: test_decode.py).
"""
from __future__ import annotations

import pydicom
import pytest
import requests

from ProgressiveDicomFetchLib import transfer_syntax as ts
from ProgressiveDicomFetchLib.dicomweb import (
    BadResponse, DicomwebServer, NotFound, RetryPolicy, ServerTraits, fetch_frames, frame_accept, parse_multipart,
    series_metadata,
)
from ProgressiveDicomFetchLib.dicomweb.frames import ANY_SYNTAX, body_parts, split_media_type, syntax_of
from ProgressiveDicomFetchLib.pixels import DecodeError, PixelDescription, decode_frame
from ProgressiveDicomFetchLib.sampledata.static_tree import split_frames

pytestmark = pytest.mark.compat  # also run on Slicer 5.8's stack (Makefile)

FAST_RETRY = RetryPolicy(attempts=2, backoff_s=0.05)
SERVERS = ["orthanc", "static_server", "static_server_multipart"]


def client(running) -> DicomwebServer:
    return DicomwebServer(running.dicomweb_url, retry=FAST_RETRY, timeout=(2.0, 20.0))


@pytest.fixture(params=SERVERS)
def server(request):
    return client(request.getfixturevalue(request.param))


def stored(path, frame_index=0):
    """Stored values as pydicom reads them from the file (the reference)."""
    ds = pydicom.dcmread(str(path))
    array = ds.pixel_array
    return array[frame_index] if int(ds.get("NumberOfFrames", 1) or 1) > 1 else array


def description(path) -> PixelDescription:
    return PixelDescription.from_dataset(pydicom.dcmread(str(path), stop_before_pixels=True))


@pytest.mark.parametrize("key", ["ct_thick", "ct_thick_implicit", "edge_signed", "edge_unsigned16", "edge_padding"])
def test_native_frames_equal_the_files(server, sample_small, key):
    info = sample_small.series(key)
    traits = ServerTraits()
    for index in (0, len(info.files) // 2, len(info.files) - 1):
        path = sample_small.files(key)[index]
        frames = fetch_frames(server, info.study_uid, info.series_uid, info.sop_instance_uids[index], [1], traits=traits)
        assert len(frames) == 1 and frames[0].frame_number == 1
        pixels = description(path)
        assert len(frames[0].data) == pixels.native_frame_bytes
        decoded = decode_frame(frames[0].data, frames[0].transfer_syntax_uid, pixels, frames[0].content_type)
        expected = stored(path)
        assert decoded.dtype == pixels.stored_dtype and decoded.shape == (info.rows, info.columns)
        assert (decoded == expected).all()


def test_multiframe_batch_equals_single_requests(server, sample_small):
    info = sample_small.series("enhanced_ct")
    path = sample_small.files("enhanced_ct")[0]
    pixels = description(path)
    reference = pydicom.dcmread(str(path)).pixel_array
    numbers = [1, 7, 20, info.num_frames]
    traits = ServerTraits()
    batch = fetch_frames(server, info.study_uid, info.series_uid, info.sop_instance_uids[0], numbers, traits=traits)
    assert [f.frame_number for f in batch] == numbers
    for number, frame in zip(numbers, batch):
        single = fetch_frames(server, info.study_uid, info.series_uid, info.sop_instance_uids[0], [number], traits=traits)
        assert single[0].data == frame.data
        assert (decode_frame(frame.data, frame.transfer_syntax_uid, pixels, frame.content_type)
                == reference[number - 1]).all()


def test_static_tree_needs_one_request_per_frame_and_remembers(static_server, sample_small):
    api = client(static_server)
    info = sample_small.series("enhanced_ct")
    traits = ServerTraits()
    fetch_frames(api, info.study_uid, info.series_uid, info.sop_instance_uids[0], [2, 3], traits=traits)
    route = traits.route(api, info.series_uid)
    assert route is not None and route.one_per_request and route.syntax == ANY_SYNTAX


def test_bulk_data_uri_from_static_metadata(static_server_multipart, sample_small):
    api = client(static_server_multipart)
    info = sample_small.series("ct_thick")
    instance = next(i for i in series_metadata(api, info.study_uid, info.series_uid)
                    if i.sop_instance_uid == info.sop_instance_uids[3])
    uri = instance.bulk_data["7FE00010"]
    assert uri == f"instances/{instance.sop_instance_uid}/frames"
    frame = fetch_frames(api, info.study_uid, info.series_uid, instance.sop_instance_uid, [1],
                         bulk_data_uri=uri, traits=ServerTraits())[0]
    assert frame.transfer_syntax_uid == ts.EXPLICIT_VR_LITTLE_ENDIAN  # from the part's header
    path = sample_small.files("ct_thick")[3]
    assert (decode_frame(frame.data, frame.transfer_syntax_uid, description(path)) == stored(path)).all()


def test_orthanc_htj2k_negotiation_falls_back_and_is_remembered(orthanc, sample_small, caplog):
    """Orthanc 1.10: `*` on stored HTJ2K is HTTP 500; explicit LE brings the codestream mislabelled."""
    api = client(orthanc)
    info = sample_small.series("ct_thick_htj2k")
    traits = ServerTraits()
    caplog.set_level("INFO", logger="ProgressiveDicomFetchLib.dicomweb.frames")
    frame = fetch_frames(api, info.study_uid, info.series_uid, info.sop_instance_uids[0], [1], traits=traits)[0]
    assert traits.route(api, info.series_uid).syntax == ts.EXPLICIT_VR_LITTLE_ENDIAN
    assert frame.transfer_syntax_uid == ts.EXPLICIT_VR_LITTLE_ENDIAN and frame.data[:4] == b"\xff\x4f\xff\x51"
    assert any("HTTP 500" in r.getMessage() for r in caplog.records)
    caplog.clear()
    fetch_frames(api, info.study_uid, info.series_uid, info.sop_instance_uids[1], [1], traits=traits)
    assert not any("refused" in r.getMessage() for r in caplog.records)  # asked once per series


@pytest.mark.parametrize("key, expected", [
    ("ct_thick", ts.EXPLICIT_VR_LITTLE_ENDIAN), ("ct_thick_implicit", ts.IMPLICIT_VR_LITTLE_ENDIAN),
    ("ct_thick_rle", ts.RLE_LOSSLESS), ("ct_thick_jpegll", ts.JPEG_LOSSLESS_SV1),
    ("ct_thick_jpegls", ts.JPEG_LS_LOSSLESS), ("ct_thick_j2k", ts.JPEG2000_LOSSLESS)])
def test_orthanc_sends_stored_syntax_for_any(orthanc, sample_small, key, expected):
    info = sample_small.series(key)
    frame = fetch_frames(client(orthanc), info.study_uid, info.series_uid, info.sop_instance_uids[0], [1],
                         transfer_syntax=ANY_SYNTAX, traits=ServerTraits())[0]
    assert frame.transfer_syntax_uid == expected


@pytest.mark.parametrize("key, accept, status", [
    ("ct_thick_j2k", None, 500),                     # J2K needs transfer-syntax=*
    ("ct_thick_j2k", ts.EXPLICIT_VR_LITTLE_ENDIAN, 500),
    ("ct_thick_htj2k", ANY_SYNTAX, 500),             # stored HTJ2K only without transfer-syntax=*
    ("ct_thick", 'multipart/related; type="*/*"', 400)])  # dicomweb-client's default frame media type
def test_orthanc_refusals(orthanc, sample_small, key, accept, status):
    info = sample_small.series(key)
    url = (f"{orthanc.dicomweb_url}/studies/{info.study_uid}/series/{info.series_uid}/instances/"
           f"{info.sop_instance_uids[0]}/frames/1")
    header = accept if accept and "*/*" in accept else frame_accept(accept)
    reply = requests.get(url, headers={"Accept": header, "Accept-Encoding": "identity"}, timeout=20)
    assert reply.status_code == status


def test_orthanc_gzip_server_answers_identity(orthanc_gzip, sample_small):
    info = sample_small.series("ct_thick")
    api = client(orthanc_gzip)
    frame = fetch_frames(api, info.study_uid, info.series_uid, info.sop_instance_uids[0], [1], traits=ServerTraits())[0]
    path = sample_small.files("ct_thick")[0]
    assert (decode_frame(frame.data, frame.transfer_syntax_uid, description(path)) == stored(path)).all()


def test_unknown_instance_is_not_found(server, sample_small):
    info = sample_small.series("ct_thick")
    with pytest.raises(NotFound):
        fetch_frames(server, info.study_uid, info.series_uid, "1.2.3.4.5.6.7", [1], traits=ServerTraits())


def test_bad_frame_numbers_and_uids(orthanc, sample_small):
    info = sample_small.series("ct_thick")
    api = client(orthanc)
    with pytest.raises(ValueError):
        fetch_frames(api, info.study_uid, info.series_uid, info.sop_instance_uids[0], [0])
    with pytest.raises(ValueError, match="SOPInstanceUID"):
        fetch_frames(api, info.study_uid, info.series_uid, "1.2,3.4", [1])


# -- the multipart parser on real bodies -----------------------------------------------------------
def _raw(url: str, accept: str):
    reply = requests.get(url, headers={"Accept": accept, "Accept-Encoding": "identity"}, timeout=20)
    reply.raise_for_status()
    return reply.content, reply.headers.get("Content-Type", "")


def test_parse_orthanc_multipart_body(orthanc, sample_small):
    info = sample_small.series("enhanced_ct")
    frames = split_frames(pydicom.dcmread(str(sample_small.files("enhanced_ct")[0])))
    url = (f"{orthanc.dicomweb_url}/studies/{info.study_uid}/series/{info.series_uid}/instances/"
           f"{info.sop_instance_uids[0]}/frames/3,1,2")
    body, content_type = _raw(url, frame_accept(ANY_SYNTAX))
    assert split_media_type(content_type)[1]["boundary"]
    parts = parse_multipart(body, content_type)
    assert [p.data for p in parts] == [frames[2], frames[0], frames[1]]
    assert all(syntax_of(p.content_type) == ts.EXPLICIT_VR_LITTLE_ENDIAN for p in parts)


def test_parse_static_multipart_without_boundary_parameter(static_server_multipart, sample_small):
    info = sample_small.series("ct_thick_htj2k")
    url = (f"{static_server_multipart.dicomweb_url}/studies/{info.study_uid}/series/{info.series_uid}/"
           f"instances/{info.sop_instance_uids[0]}/frames/1")
    body, content_type = _raw(url, "*/*")
    assert "boundary" not in content_type and content_type.startswith("multipart/related")
    (part,) = body_parts(body, content_type)
    assert part.data == split_frames(pydicom.dcmread(str(sample_small.files("ct_thick_htj2k")[0])))[0]
    assert part.content_type.startswith("image/jphc") and syntax_of(part.content_type) == info.transfer_syntax_uid


def test_parser_edge_cases():
    body = (b"preamble\r\n--b1\r\nContent-Type: image/jls\r\n\r\nAB\r\nC\r\n--b1\r\n\r\n\r\n--b1--\r\nepilogue")
    parts = parse_multipart(body, 'multipart/related; type="application/octet-stream"; boundary="b1"')
    assert [(p.content_type, p.data) for p in parts] == [("image/jls", b"AB\r\nC"), ("application/octet-stream", b"")]
    assert [p.data for p in parse_multipart(b"--x\nContent-Type: a/b\n\nXY\n--x--", None)] == [b"XY"]
    with pytest.raises(BadResponse, match="truncated"):
        parse_multipart(b"--b1\r\nContent-Type: a/b\r\n\r\nAB", "multipart/related; boundary=b1")
    with pytest.raises(BadResponse, match="boundary"):
        parse_multipart(b"no boundary here", "multipart/related")
    assert [p.data for p in body_parts(b"\x00\x01", "image/jphc")] == [b"\x00\x01"]
    assert syntax_of('multipart/related; type="application/octet-stream; transfer-syntax=1.2.3"; boundary=x') == "1.2.3"


def test_wrong_size_native_frame_is_an_error():
    pixels = PixelDescription(4, 4, 16, 12, 11, 0)
    with pytest.raises(DecodeError, match="Explicit VR Little Endian.*32 bytes"):
        decode_frame(b"\0" * 30, ts.EXPLICIT_VR_LITTLE_ENDIAN, pixels)


def test_each_server_keeps_what_it_learnt_in_its_own_traits(orthanc, sample_small):
    """Without `traits`, the route is learnt into `server.traits` (not a module global): the same
    server object asks once, a new one starts afresh."""
    api, fresh = client(orthanc), client(orthanc)
    info = sample_small.series("ct_thick_htj2k")
    fetch_frames(api, info.study_uid, info.series_uid, info.sop_instance_uids[0], [1])
    assert api.traits.route(api, info.series_uid).syntax == ts.EXPLICIT_VR_LITTLE_ENDIAN
    assert fresh.traits.route(fresh, info.series_uid) is None
