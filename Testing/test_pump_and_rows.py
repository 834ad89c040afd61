"""The main-thread tick stays quick: the pump sleeps for the workers only as long as there is work
in flight (none when idle or paused; the design chosen by Testing/benchmarks/pump_designs.py),
and the panel updates only the progress rows that changed."""
from __future__ import annotations

import time

import pytest

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine
from ProgressiveDicomFetchLib.engine.wait_loop import YIELD_PER_JOB_MS, pump_yield_ms
from ProgressiveDicomFetchLib.panel import changed_rows, progress_row


@pytest.mark.compat
def test_the_yield_follows_the_work_in_flight_and_is_none_when_idle_or_paused():
    assert pump_yield_ms(0, False, 8.0) == 0.0
    assert pump_yield_ms(3, True, 8.0) == 0.0
    assert pump_yield_ms(2, False, 8.0) == 2 * YIELD_PER_JOB_MS
    assert pump_yield_ms(50, False, 8.0) == 8.0 and pump_yield_ms(2, False, 0.0) == 0.0


def test_a_paused_engine_has_nothing_in_flight_and_only_changed_rows_are_redrawn(orthanc, sample_small):
    thin, thick = sample_small.series("ct_thin"), sample_small.series("ct_thick")
    engine = ProgressiveFetchEngine(DicomwebServer(orthanc.dicomweb_url), connections=2)
    try:
        engine.add_series(thin.study_uid, thin.series_uid)
        engine.add_series(thick.study_uid, thick.series_uid)
        busy, limit = 0, time.monotonic() + 30
        while busy == 0:
            assert time.monotonic() < limit
            engine.pump(yield_ms=8.0)
            busy = engine.in_flight()
        engine.pause()
        while engine.in_flight():  # the requests in flight land, then the workers wait
            assert time.monotonic() < limit
            engine.pump(yield_ms=8.0)
        shown = [progress_row(s) for s in engine.progress()]
        assert changed_rows([], shown) == [0, 1]
        engine.pump(yield_ms=8.0)
        assert changed_rows(shown, [progress_row(s) for s in engine.progress()]) == [], "paused: nothing to redraw"
        engine.cancel(thick.series_uid)
        engine.pump(yield_ms=8.0)
        assert changed_rows(shown, [progress_row(s) for s in engine.progress()]) == [1]
        engine.resume()
        assert engine.run_until_finished(timeout=60)
    finally:
        engine.close()


@pytest.mark.compat
def test_offers_are_collected_in_ticks_and_shown_once_per_cause():
    from ProgressiveDicomFetchLib.panel.notices import DECODERS, PREVIEWS, Notices

    notices = Notices()
    notices.add(DECODERS, ["pyjpegls"], "1.2.1")
    notices.add(DECODERS, ["pyjpegls"], "1.2.2")  # a second failing series: the same offer
    notices.add(PREVIEWS, [], "1.2.3")  # nothing to offer
    (offer,) = notices.take()
    assert (offer.kind, offer.packages, offer.series_uids) == (DECODERS, ("pyjpegls",), ("1.2.1", "1.2.2"))
    notices.add(DECODERS, ["pyjpegls"], "1.2.4")  # declined or accepted: not asked again this session
    assert not notices.pending() and notices.take() == []
    notices.add(PREVIEWS, ["imagecodecs"], "1.2.5")
    assert [n.kind for n in notices.take()] == [PREVIEWS]
