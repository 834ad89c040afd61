"""The DIMSE transport against Orthanc's own DICOM server (loopback): C-FIND search equal to QIDO
on the same data, geometry from image-level C-FIND equal to WADO-RS metadata's, C-GET frames
bit-exact, and refusals (wrong called AE, nobody listening, bad addresses) as clear errors."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from servers.ports import free_port
from support import missing

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
from ProgressiveDicomFetchLib.dicomweb import search as qido
from ProgressiveDicomFetchLib.dicomweb.metadata import series_metadata
from ProgressiveDicomFetchLib.dimse import (AssociationRejected, DimseAddress, DimseFailed, DimseServer, PeerUnreachable,
                                           PeerVanished, find)
from ProgressiveDicomFetchLib.geometry import series_geometry
from ProgressiveDicomFetchLib.retrieve import fetcher_for, load_slices, prepare_series

pytestmark = pytest.mark.compat  # pynetdicom 2.0 + pydicom 2.4 on Slicer 5.8's stack

STUDY_FILTERS = [
    {}, {"PatientName": "DOE*"}, {"PatientName": "DOE^JANE*"}, {"ModalitiesInStudy": "MR"},
    {"StudyDate": "20240101-20240131"}, {"StudyDate": "-20231231"}, {"PatientID": "PDF-CT-0001"},
    {"StudyDescription": "*CHEST*"}, {"PatientSex": "F", "ModalitiesInStudy": "CT"},
]


@pytest.fixture(scope="module")
def peers(orthanc_dimse):
    try:
        import pynetdicom  # noqa: F401
    except ImportError:
        missing("pynetdicom (the 'dimse' extra)")
    return DimseServer(orthanc_dimse.dimse_address, "PDFTEST"), DicomwebServer(orthanc_dimse.dicomweb_url)


def by_uid(result):
    return sorted(result.records, key=lambda r: r.uid)


@pytest.mark.parametrize("filters", STUDY_FILTERS, ids=lambda f: ",".join(f"{k}={v}" for k, v in f.items()) or "all")
def test_study_search_equals_qido(peers, filters):
    dimse, web = peers
    ours, theirs = find.search_studies(dimse, filters), qido.search_studies(web, filters)
    assert by_uid(ours) == by_uid(theirs)
    assert ours.records or filters.get("StudyDate") == "-20231231"  # the filters are not all vacuous
    assert ours.notes() == []


def test_series_and_instance_search_equal_qido(peers, sample_small):
    dimse, web = peers
    info = sample_small.series("ct_thick")
    for filters in ({}, {"Modality": "CT"}, {"SeriesDescription": "*RLE*"}, {"SeriesNumber": str(info.series_number)}):
        ours = find.search_series(dimse, info.study_uid, filters)
        assert by_uid(ours) == by_uid(qido.search_series(web, info.study_uid, filters)), filters
        assert ours.records
    ours = find.search_instances(dimse, info.study_uid, info.series_uid)
    assert by_uid(ours) == by_uid(qido.search_instances(web, info.study_uid, info.series_uid))
    assert {r.sop_instance_uid for r in ours} == set(info.sop_instance_uids)


def test_no_paging_in_dimse_so_the_cap_says_how_many_were_dropped(peers, sample_small):
    dimse, _ = peers
    info = sample_small.series("ct_thin")
    result = find.search_instances(dimse, info.study_uid, info.series_uid, limit=5)
    assert len(result) == 5 and result.dropped == len(info.sop_instance_uids) - 5 and result.truncated
    assert f"{result.dropped} results beyond the limit were dropped" in " ".join(result.notes())


def test_unknown_study_is_not_found(peers):
    dimse, _ = peers
    with pytest.raises(qido.NotFound, match="study 1.2.3.4 not found on dimse://"):
        find.search_series(dimse, "1.2.3.4")


def geometry_of(instances, uid):
    return [(v.shape, v.dtype, v.pixels, v.padding_value, v.spacing, np.round(v.ijk_to_ras, 6).tolist(),
             [f and (f.sop_instance_uid, f.frame_number, f.slope, f.intercept) for f in v.slices])
            for v in series_geometry(instances, uid).volumes]


@pytest.mark.parametrize("key", ["ct_thin", "ct_sagittal", "enhanced_ct", "edge_oblique", "edge_gap",
                                 "edge_rescale_float", "edge_multiphase", "edge_localizer", "mr_t1"])
def test_geometry_before_pixels_equals_the_wado_metadata(peers, sample_small, key):
    """Single-frame series: from the C-FIND answers alone; the enhanced CT (its per-frame groups
    are not in any C-FIND answer): from its retrieved header, its frames held for the slices."""
    dimse, web = peers
    if key not in {s.key for s in sample_small.series_list}:
        pytest.skip(f"{key} is not in this sample set")
    info = sample_small.series(key)
    ours = dimse.series_metadata(info.study_uid, info.series_uid)
    assert geometry_of(ours, info.series_uid) == geometry_of(series_metadata(web, info.study_uid, info.series_uid),
                                                             info.series_uid)
    assert bool(dimse._held) == (key == "enhanced_ct")
    dimse._held.clear()


def one_volume(server, sample_small, key):
    """The series' volume (metadata by C-FIND) and its C-GET (or C-MOVE) fetcher."""
    info = sample_small.series(key)
    (load,) = prepare_series(server, info.study_uid, info.series_uid)
    return load, fetcher_for(server, load)


@pytest.mark.parametrize("key", ["ct_thick", "ct_thick_implicit", "ct_thick_rle", "ct_thick_jpegll",
                                 "ct_thick_jpegls", "ct_thick_j2k", "edge_signed", "edge_padding", "enhanced_ct"])
def test_c_get_frames_write_bit_exact_volumes(peers, sample_small, key):
    dimse, _ = peers
    load, fetcher = one_volume(dimse, sample_small, key)
    tasks = load.tasks()
    for start in range(0, len(tasks), 3):  # a few instances per C-GET, as the engine asks
        load_slices(load, fetcher, tasks[start:start + 3])
    np.testing.assert_array_equal(load.volume.array, sample_small.load_truth(key))
    dimse.close()
    assert dimse.peer.live() == 0 and not dimse._held


def test_htj2k_is_refused_by_orthanc_1_10_with_a_clear_error(peers, sample_small):
    """Orthanc 1.10's DICOM server cannot send HTJ2K (its DCMTK lacks the syntax); over DICOMweb it can."""
    dimse, _ = peers
    load, fetcher = one_volume(dimse, sample_small, "ct_thick_htj2k")
    with pytest.raises(DimseFailed, match="without 1 instance.*sub-operations failed.*HTJ2K"):
        load_slices(load, fetcher, load.tasks()[:1])
    assert dimse.peer.live() == 0  # the association it failed on was aborted, not left open


def test_wrong_called_ae_title_is_rejected_with_advice(orthanc_dimse, peers):
    port = orthanc_dimse.dicom_port
    server = DimseServer(f"NOTORTHANC@127.0.0.1:{port}", "PDFTEST")
    with pytest.raises(AssociationRejected) as caught:
        find.search_studies(server)
    message = str(caught.value)
    assert "rejected the association" in message and "'NOTORTHANC'" in message and "'PDFTEST'" in message
    assert "check the AE title" in message and caught.value.url == f"dimse://NOTORTHANC@127.0.0.1:{port}"
    assert server.peer.live() == 0


def test_nobody_listening_is_unreachable():
    server = DimseServer(f"ANY@127.0.0.1:{free_port()}", connect_timeout=2)
    with pytest.raises(PeerUnreachable, match="connection was refused"):
        find.search_studies(server)


@pytest.mark.parametrize("text, wrong", [
    ("ORTHANC@host", "must look like AET@host:port"), ("@host:104", "must look like"),
    ("ORTHANC@host:0", "port 0 is not in 1-65535"), ("A_TITLE_LONGER_THAN_16@h:104", "called AE title"),
    ("OR\\TH@h:104", "no backslash"), ("http://host:8042/dicom-web", "must look like")])
def test_bad_addresses_are_named(text, wrong):
    with pytest.raises(ValueError, match=wrong):
        DimseAddress.parse(text)


def test_address_forms():
    address = DimseAddress.parse("dimse://ORTHANC@127.0.0.1:4242", "ME")
    assert (address.called_aet, address.host, address.port, address.calling_aet) == ("ORTHANC", "127.0.0.1", 4242, "ME")
    assert DimseAddress.parse("ORTHANC@127.0.0.1:4242", "ME") == address and address.url == "dimse://ORTHANC@127.0.0.1:4242"
    with pytest.raises(ValueError, match="calling AE title"):
        DimseAddress.parse("ORTHANC@h:104", " ")


def test_the_library_never_imports_pynetdicom_until_a_peer_is_asked():
    code = ("import sys; import ProgressiveDicomFetchLib.engine, ProgressiveDicomFetchLib.cli, "
            "ProgressiveDicomFetchLib.dimse, ProgressiveDicomFetchLib.transport, ProgressiveDicomFetchLib.scene; "
            "from ProgressiveDicomFetchLib.dimse import DimseServer; DimseServer('A@127.0.0.1:104'); "
            "print('pynetdicom' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_without_pynetdicom_a_peer_says_how_to_install_it():
    code = ("import sys; sys.modules['pynetdicom'] = None\n"  # as if it were not installed
            "from ProgressiveDicomFetchLib.cli import main\n"
            "sys.exit(main(['query', '--dimse', 'PACS@127.0.0.1:104']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "DIMSE needs pynetdicom, which is not installed: pip install pynetdicom" in result.stderr


def test_c_move_to_our_listener_when_the_peer_has_no_c_get(orthanc_dimse, peers, sample_small):
    aet, port = orthanc_dimse.move_destination
    server = DimseServer(orthanc_dimse.dimse_address, aet, move_port=port)
    try:
        for key in ("ct_thick_jpegls", "enhanced_ct"):
            load, fetcher = one_volume(server, sample_small, key)
            tasks = load.tasks()
            for start in range(0, len(tasks), 4):
                load_slices(load, fetcher, tasks[start:start + 4])
            np.testing.assert_array_equal(load.volume.array, sample_small.load_truth(key), err_msg=key)
        server.close()
        unknown = DimseServer(orthanc_dimse.dimse_address, "NOTKNOWN", move_port=free_port())
        load, fetcher = one_volume(unknown, sample_small, "ct_thick")
        with pytest.raises(PeerVanished, match="C-MOVE from an AE title it does not know.*add NOTKNOWN@"):
            load_slices(load, fetcher, load.tasks()[:1])
        unknown.shutdown()
    finally:
        server.shutdown()
    assert server.peer.live() == 0


def test_an_abort_during_a_release_leaves_that_release_to_end_at_once(orthanc_dimse, peers):
    """Cancel while a worker releases its association (e.g. the metadata's C-FIND just ended): the
    abort must leave that association to its A-RELEASE. Aborting it kills the association's
    reader, and pynetdicom then waits its whole ACSE timeout for a release answer that never comes
    (seen as a worker alive 30 s after close)."""
    from ProgressiveDicomFetchLib.dimse.association import Peer
    from ProgressiveDicomFetchLib.dimse.server import EXPLICIT_LE, IMPLICIT_LE, VERIFICATION

    peer = Peer(DimseAddress.parse(orthanc_dimse.dimse_address, "PDFTEST"), timeout=5.0)
    link = peer.open([(VERIFICATION, [EXPLICIT_LE, IMPLICIT_LE])])
    releasing, aborted = threading.Event(), threading.Event()
    original = link.assoc.acse.negotiate_release  # inside pynetdicom's release, past its own checks

    def release_once_the_abort_came():
        releasing.set()
        aborted.wait(10)
        original()

    link.assoc.acse.negotiate_release = release_once_the_abort_came
    took = []

    def worker():
        started = time.monotonic()
        peer.release(link)
        took.append(time.monotonic() - started)

    thread = threading.Thread(target=worker)
    thread.start()
    assert releasing.wait(10)
    peer.abort_all()  # the cancel, from another thread, while that release is under way
    aborted.set()
    thread.join(15)
    assert took and took[0] < 2.0, f"the release took {took} s after the abort (its ACSE timeout is 5 s)"
    assert peer.live() == 0
