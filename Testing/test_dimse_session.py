"""DIMSE through the console API and the panel's server settings: `setServer("dimse://AET@host:port",
callingAET=...)`, C-ECHO as the connection check, the panel's search form, and a load into a real
MRML scene (slicer-core) that ends bit-exact, all against Orthanc's DICOM server."""
from __future__ import annotations

import time

import numpy as np
import pytest
from support import missing

from ProgressiveDicomFetchLib.panel import SearchForm, ServerSettings
from ProgressiveDicomFetchLib.panel.server_settings import DIMSE, RecentServers
from ProgressiveDicomFetchLib.scene.fetch_session import FetchSession


@pytest.fixture()
def peer(orthanc_dimse):
    try:
        import pynetdicom  # noqa: F401
    except ImportError:
        missing("pynetdicom (the 'dimse' extra)")
    return orthanc_dimse


@pytest.mark.compat
def test_panel_settings_for_a_dimse_peer():
    settings = ServerSettings(url=" PACS@10.0.0.5:104 ", kind=DIMSE, calling_aet="SLICER1", auth_kind="basic")
    assert settings.base_url() == "dimse://PACS@10.0.0.5:104" and settings.calling_ae_title() == "SLICER1"
    assert settings.auth() is None  # HTTP fields do not apply
    stored = settings.to_store()
    assert ServerSettings.from_store(stored).kind == DIMSE and ServerSettings.from_store(stored).calling_aet == "SLICER1"
    with pytest.raises(ValueError, match="must look like AET@host:port"):
        ServerSettings(url="http://pacs:8042/dicom-web", kind=DIMSE).base_url()
    with pytest.raises(ValueError, match="calling AE title"):
        ServerSettings(url="PACS@h:104", kind=DIMSE, calling_aet="WAY_TOO_LONG_A_TITLE").calling_ae_title()
    recent = RecentServers(["http://a/dicom-web"])
    recent.add(settings.base_url())
    assert recent.urls == ["dimse://PACS@10.0.0.5:104", "http://a/dicom-web"]
    assert ServerSettings.kind_of(recent.urls[0]) == DIMSE and ServerSettings.kind_of(recent.urls[1]) == "dicomweb"


@pytest.mark.compat
def test_set_server_check_and_search_through_the_session(peer, sample_small):
    session = FetchSession(None)
    session.set_server(f"dimse://{peer.dimse_address}", calling_aet="SLICERTEST")
    check = session.check_server()
    assert check.ok and "answers C-ECHO" in check.message
    ct = sample_small.study("ct")
    (study,) = session.search_studies(SearchForm(patient_name="doe").filters())
    assert study.study_uid == ct.study_uid
    assert {s.series_uid for s in session.search_series(ct.study_uid)} == {
        sample_small.series(k).series_uid for k in ct.series_keys}
    session.set_server(f"dimse://WRONG@127.0.0.1:{peer.dicom_port}")
    check = session.check_server()
    assert not check.ok and "rejected the association" in check.message
    with pytest.raises(ValueError, match="no HTTP authentication"):
        session.set_server(f"dimse://{peer.dimse_address}", headers={"X-Api-Key": "k"})
    with pytest.raises(ValueError, match="callingAET goes with"):
        session.set_server(peer.dicomweb_url, calling_aet="ME")


def test_a_load_over_dimse_fills_the_scene_node_bit_exact(peer, slicer_module, sample_small):
    session = FetchSession(slicer_module.mrmlScene)
    session.set_server(f"dimse://{peer.dimse_address}", calling_aet="SLICERTEST")
    info = sample_small.series("ct_thin")
    try:
        (node,) = session.load(info.study_uid, [info.series_uid])
        limit = time.monotonic() + 120
        while session.busy():
            assert time.monotonic() < limit
            session.process()
            time.sleep(0.005)
        session.process()
        np.testing.assert_array_equal(slicer_module.util.arrayFromVolume(node), sample_small.load_truth("ct_thin"))
        assert [p.state for p in session.progress()] == ["complete"]
        assert node.GetAttribute("DICOM.instanceUIDs")  # set only once the node is complete
    finally:
        session.close()
    assert session.server.peer.live() == 0
