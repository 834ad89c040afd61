"""Whole frames beside rendered previews (issue 25) against the real Orthanc: connections of their own,
with a small TCP receive window, fetch whole frames while the previews come.

Where they go is the probe's decision from the link it measured (rendered_link.frames_beside,
unit-tested in test_rendered_previews.py); here it is forced on the loopback Orthanc, so the engine's
part is tested whatever the machine's timing. The figures on a rate-limited link are the
benchmark's (Testing/benchmarks/rendered_previews.py, docs/rendered-previews.md).
"""
from __future__ import annotations

import socket
import threading

import numpy as np
from test_rendered_previews import FRAME, KEY, RENDERED, load, requested

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
from ProgressiveDicomFetchLib.previews import probe as probe_module
from ProgressiveDicomFetchLib.previews.rendered import Rendered
from ProgressiveDicomFetchLib.previews.rendered_link import FramesBeside
from ProgressiveDicomFetchLib.volume import Quality

WINDOW = 16384


def socket_buffer(server: DicomwebServer) -> int:
    """The receive buffer of this thread's live connection to `server` (after a request)."""
    manager = server.connection().get_adapter(server.url).poolmanager
    pools = [manager.pools[key] for key in manager.pools.keys()]
    live = [c for pool in pools for c in list(pool.pool.queue) if c is not None and c.sock is not None]
    assert len(live) == 1, live
    return live[0].sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def test_a_threads_receive_window_bounds_its_own_connections_only(orthanc):
    server = DicomwebServer(orthanc.dicomweb_url)
    server.get("studies")
    autotuned = socket_buffer(server)
    server.set_receive_window(WINDOW)  # this thread: a new connection with the small buffer
    server.get("studies")
    assert socket_buffer(server) == 2 * WINDOW  # Linux doubles what it is given (its bookkeeping)
    other = {}

    def elsewhere():
        server.get("studies")
        other["buffer"] = socket_buffer(server)
        server.close()

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert other["buffer"] == autotuned != 2 * WINDOW  # another thread's connection keeps the system's
    server.set_receive_window(None)
    server.get("studies")
    assert socket_buffer(server) == autotuned
    server.close()


def test_frames_beside_the_previews_land_early_and_nothing_is_fetched_twice(orthanc_relay, sample_small, monkeypatch):
    monkeypatch.setattr(probe_module, "frames_beside", lambda *measured: FramesBeside(2, WINDOW))
    info = sample_small.series(KEY)
    seen = set()
    original = DicomwebServer.set_receive_window

    def recorded(self, size):
        seen.add((threading.current_thread().name, size))
        original(self, size)

    monkeypatch.setattr(DicomwebServer, "set_receive_window", recorded)
    engine, events, log, volume_load = load(orthanc_relay.dicomweb_url, info)
    state = engine._series[info.series_uid]
    assert isinstance(state.preview, Rendered) and "whole frames beside on 2 connections" in state.preview_note
    assert seen == {("pdf-beside-0", WINDOW), ("pdf-beside-1", WINDOW)}
    assert not any(thread.is_alive() for thread in engine._beside.threads)
    n = volume_load.volume.num_slices
    accepted = log.accepted()
    last_preview = max(i for i, (_, _, q) in enumerate(accepted) if q == Quality.SUBRESOLUTION)
    early = {k for _, k, q in accepted[:last_preview] if q == Quality.FULL}
    assert len(early) > 1, "no whole frame came beside the previews"  # more than the probe's anchor
    previewed = {k for _, k, q in accepted if q == Quality.SUBRESOLUTION}
    assert previewed | early == set(range(n))  # every slice showed a preview or was exact by then
    full_at = {k: i for i, (_, k, q) in enumerate(accepted) if q == Quality.FULL}
    assert all(i < full_at[k] for i, (_, k, q) in enumerate(accepted) if q == Quality.SUBRESOLUTION)  # never over exact
    np.testing.assert_array_equal(volume_load.volume.array, sample_small.load_truth(KEY))
    paths = [r.path for r in orthanc_relay.requests]
    frames, rendered = requested(paths, FRAME), requested(paths, RENDERED)
    assert len(frames) == n and set(frames.values()) == {1}  # every frame once
    assert set(rendered.values()) == {1}  # no slice rendered twice
    assert len(rendered) == len(previewed) + 1 < n  # the probe's calibrating one, and none for the slices that came whole first
