"""The engine over DIMSE (Orthanc's DICOM server on loopback): the same policies, events and
bit-exact volumes as over DICOMweb; close aborts the associations and leaves no thread; and the
command line's `--dimse` gives the outputs `--url` gives."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from support import missing
from test_engine import STUDY_SERIES, no_worker_threads, run_engine, times

from ProgressiveDicomFetchLib.dimse import DimseServer
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine

# Every test but the NRRD one also runs on Slicer 5.8's stack (which has no pynrrd: not a skip, not selected).
NOT_OVER_ORTHANC_DIMSE = {"ct_thick_htj2k"}  # Orthanc 1.10 cannot send HTJ2K over DIMSE (test_dimse.py)


@pytest.fixture(scope="module")
def peer(orthanc_dimse):
    try:
        import pynetdicom  # noqa: F401
    except ImportError:
        missing("pynetdicom (the 'dimse' extra)")
    return orthanc_dimse


def pynetdicom_threads():
    return [t for t in threading.enumerate() if type(t).__name__ in ("Association", "DULServiceProvider")]


def run(peer, sample_small, keys, on_update=None):
    server = DimseServer(peer.dimse_address, "PDFTEST")
    result = run_engine(peer, sample_small, on_update=on_update, keys=keys, server=server)
    assert server.peer.live() == 0 and not pynetdicom_threads()
    return result


@pytest.mark.compat
def test_every_series_of_the_study_bit_exact_over_c_get(peer, sample_small):
    study = sample_small.series("ct_thin").study_uid
    keys = [s.key for s in sample_small.series_list if s.study_uid == study]
    engine, events = run(peer, sample_small, keys)
    state = {p.series_uid: p for p in engine.progress()}
    for key in keys:
        info = sample_small.series(key)
        if key in NOT_OVER_ORTHANC_DIMSE:
            assert state[info.series_uid].state == "failed" and "HTJ2K" in state[info.series_uid].error
            continue
        assert state[info.series_uid].state == "complete", (key, state[info.series_uid].error)
        (load,) = engine.loads(info.series_uid)
        np.testing.assert_array_equal(load.volume.array, sample_small.load_truth(key), err_msg=key)
    assert len(keys) > 5 and no_worker_threads(engine)


@pytest.mark.compat
def test_breadth_first_covers_every_series_before_any_completes(peer, sample_small):
    engine, events = run(peer, sample_small, STUDY_SERIES)
    covered, complete = times(events, "covered"), times(events, "complete")
    assert set(covered) == set(complete) == {sample_small.series(k).series_uid for k in STUDY_SERIES}
    assert max(covered.values()) <= min(complete.values())
    thin = sample_small.series("ct_thin").series_uid
    assert [e.stage for e in events if e.event == "stage" and e.series_uid == thin] == \
        ["anchors", "every-8", "every-4", "every-2", "rest"]
    assert all(p.bytes > 0 for p in engine.progress())


@pytest.mark.compat
def test_focus_switch_makes_the_focused_series_complete_first(peer, sample_small):
    target = sample_small.series("ct_thick").series_uid

    def switch(engine, update, events):
        if not any(e.event == "focus" for e in events) and any(e.event == "first_slice" for e in events):
            engine.set_focus(target, slice_index=12)

    engine, events = run(peer, sample_small, STUDY_SERIES, on_update=switch)
    focus_at = next(e.t for e in events if e.event == "focus")
    complete = times(events, "complete")
    assert complete[target] == min(complete.values()) and all(t > focus_at for t in complete.values())
    (load,) = engine.loads(target)
    np.testing.assert_array_equal(load.volume.array, sample_small.load_truth("ct_thick"))


@pytest.mark.compat
def test_close_mid_load_aborts_the_associations_and_leaves_no_thread(peer, sample_small):
    server = DimseServer(peer.dimse_address, "PDFTEST")
    engine = ProgressiveFetchEngine(server, connections=4)
    aborted = []
    original = server.abort
    server.abort = lambda: aborted.append(original()) or aborted[-1]
    for key in STUDY_SERIES:
        info = sample_small.series(key)
        engine.add_series(info.study_uid, info.series_uid)
    deadline = time.monotonic() + 60
    while not any(p.counts.get("FULL") for p in engine.progress()) and time.monotonic() < deadline:
        time.sleep(0.005)
    live = server.peer.live()  # associations open mid-load
    # A generous deadline (two shared cores): the speed of close is a benchmark figure, not an assert here;
    # that close aborts rather than waits for the requests in flight is asserted through `aborted` below.
    assert engine.close(timeout=30.0) and live > 0
    assert no_worker_threads(engine)
    assert aborted and aborted[0] >= 1  # A-ABORT, not a wait for the requests in flight
    assert server.peer.live() == 0
    deadline = time.monotonic() + 30  # generous: pynetdicom's threads end after the abort, later on a loaded machine
    while pynetdicom_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not pynetdicom_threads()
    assert any(p.state != "complete" for p in engine.progress())


def cli(*args):
    return subprocess.run([sys.executable, "-m", "ProgressiveDicomFetchLib", *args], capture_output=True, text=True,
                          timeout=180)


@pytest.mark.compat
def test_query_dimse_prints_what_query_url_prints(peer, sample_small):
    info = sample_small.series("ct_thick")
    for level in ([], ["--study", info.study_uid], ["--study", info.study_uid, "--series", info.series_uid]):
        ours = cli("query", "--dimse", peer.dimse_address, "--calling-aet", "PDFCLI", "--json", *level)
        theirs = cli("query", "--url", peer.dicomweb_url, "--json", *level)
        assert ours.returncode == theirs.returncode == 0, ours.stderr
        key = "sop_instance_uid" if "--series" in level else "series_uid" if level else "study_uid"
        assert sorted(json.loads(ours.stdout), key=lambda r: r[key]) == sorted(json.loads(theirs.stdout),
                                                                                key=lambda r: r[key])
    wrong = cli("query", "--dimse", f"WRONG@127.0.0.1:{peer.dicom_port}")
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [wrong.stderr.strip()]  # one line, no pynetdicom log noise
    assert "rejected the association" in wrong.stderr and "check the AE title" in wrong.stderr
    http_only = cli("query", "--dimse", peer.dimse_address, "--user", "someone")
    assert http_only.returncode == 2 and "--user is a DICOMweb option" in http_only.stderr


def test_fetch_dimse_writes_the_volumes_and_timeline_fetch_url_writes(peer, sample_small, tmp_path):
    nrrd = pytest.importorskip("nrrd")
    keys = ("ct_thick", "enhanced_ct")
    series = [a for k in keys for a in ("--series", sample_small.series(k).series_uid)]
    study = sample_small.series("ct_thick").study_uid
    ours = cli("fetch", "--dimse", peer.dimse_address, "--study", study, *series, "--out", str(tmp_path / "d"),
               "--timeline", str(tmp_path / "d.json"), "--focus", f"0.1:{sample_small.series('ct_thick').series_uid}:5")
    theirs = cli("fetch", "--url", peer.dicomweb_url, "--study", study, *series, "--out", str(tmp_path / "w"),
                 "--timeline", str(tmp_path / "w.json"))
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    for key in keys:
        uid = sample_small.series(key).series_uid
        mine, header = nrrd.read(str(tmp_path / "d" / f"{uid}.nrrd"))
        web, web_header = nrrd.read(str(tmp_path / "w" / f"{uid}.nrrd"))
        np.testing.assert_array_equal(mine, web)
        np.testing.assert_array_equal(header["space directions"], web_header["space directions"])
        np.testing.assert_array_equal(header["space origin"], web_header["space origin"])
    timeline, web_timeline = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "dw")
    assert set(timeline) == set(web_timeline) and set(timeline["series"]) == set(web_timeline["series"])
    for uid, entry in timeline["series"].items():
        assert entry["slices"] == web_timeline["series"][uid]["slices"] and entry["complete_s"] > 0
        assert set(entry["stages"]) == set(web_timeline["series"][uid]["stages"])
    assert any(e["event"] == "focus" for e in timeline["events"])
    aet, port = peer.move_destination  # the same over C-MOVE (the fallback for peers without C-GET)
    moved = cli("fetch", "--dimse", peer.dimse_address, "--calling-aet", aet, "--move-port", str(port), "--study", study,
                *series, "--out", str(tmp_path / "m"))
    assert moved.returncode == 0, moved.stderr
    for key in keys:
        uid = sample_small.series(key).series_uid
        np.testing.assert_array_equal(nrrd.read(str(tmp_path / "m" / f"{uid}.nrrd"))[0],
                                      nrrd.read(str(tmp_path / "w" / f"{uid}.nrrd"))[0])
