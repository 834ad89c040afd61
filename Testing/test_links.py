"""The engine through a far link (the latency relay in front of the real Orthanc): the requests in
flight follow the link while breadth-first and focus keep their meaning. Speed itself is the
benchmark's business (Testing/benchmarks/latency_links.py); these check behaviour."""
from __future__ import annotations

import threading
import time
from typing import Dict, Optional

from servers.latency_relay import LatencyRelay
from test_engine import STUDY_SERIES, assert_bit_exact, no_worker_threads, run_engine, times

from ProgressiveDicomFetchLib.engine import ADAPTIVE_MAX_CONNECTIONS, DEFAULT_CONNECTIONS, DEPTH_FIRST, ProgressiveFetchEngine
from ProgressiveDicomFetchLib.engine.events import SeriesStatus

RTT_S = 0.2
RATE_BPS = 40e6


def load(relay, sample_small, strategy: str = "breadth-first", on_update=None):
    """The three-series study through `relay`, requests in flight following the link."""
    return run_engine(relay, sample_small, strategy, DEFAULT_CONNECTIONS, on_update, max_connections=ADAPTIVE_MAX_CONNECTIONS)


def test_a_far_link_gets_more_requests_in_flight_and_breadth_first_holds(latency_relay, sample_small):
    relay = latency_relay(RTT_S, RATE_BPS)
    engine, events = load(relay, sample_small)
    server = engine.server
    covered, complete = times(events, "covered"), times(events, "complete")
    assert set(covered) == set(complete) == {sample_small.series(k).series_uid for k in STUDY_SERIES}
    assert max(covered.values()) <= min(complete.values())  # every series covered before any completes
    assert_bit_exact(engine, sample_small)
    assert no_worker_threads(engine)
    learnt = server.traits.concurrency(server)
    assert learnt is not None and learnt > DEFAULT_CONNECTIONS, f"the limit stayed at {learnt}"
    assert relay.counters["connections"] > DEFAULT_CONNECTIONS  # on the wire: more connections than before
    again = ProgressiveFetchEngine(server, connections=DEFAULT_CONNECTIONS, max_connections=ADAPTIVE_MAX_CONNECTIONS)
    try:
        assert again.scheduler.connections == learnt  # the next load starts from what paid
    finally:
        again.close()


def test_a_focus_change_takes_effect_within_about_a_round_trip_and_a_frame(latency_relay, sample_small):
    """Depth-first leaves the last series for later; focused while many requests are in flight (the
    first series has a slice) and its own slices wait (its probe is over), a slice asked for after
    the focus lands about one round trip and one frame later (a freed worker takes it at once:
    in-flight requests are not cut short)."""
    relay = latency_relay(RTT_S, RATE_BPS)
    target = sample_small.series(STUDY_SERIES[-1]).series_uid
    first = sample_small.series(STUDY_SERIES[0]).series_uid
    seen: Dict[str, Optional[float]] = {"focus": None, "landed": None, "before": None}

    def exact(engine) -> int:
        return next(p.counts["FULL"] for p in engine.progress() if p.series_uid == target)

    def watch(engine, update, events):
        # the target's probe (a few round trips) must be over: only then are its slices asked at all
        waiting = next(p.state for p in engine.progress() if p.series_uid == target) == SeriesStatus.LOADING \
            and engine.scheduler.queued(target) > 0
        if seen["focus"] is None and waiting and any(e.event == "first_slice" and e.series_uid == first for e in events):
            engine.set_focus(target)
            seen["focus"] = engine.elapsed()
            # what it had and had asked for before the focus does not count
            seen["before"] = exact(engine) + engine.scheduler.in_flight(target)
        elif seen["focus"] is not None and seen["landed"] is None and exact(engine) > seen["before"]:
            seen["landed"] = engine.elapsed()

    engine, events = load(relay, sample_small, DEPTH_FIRST, watch)
    assert seen["focus"] is not None, "the target's slices never waited while the first series loaded"
    frame_s = sample_small.series(STUDY_SERIES[-1]).rows ** 2 * 2 * 8 / RATE_BPS
    delay = seen["landed"] - seen["focus"]
    assert delay <= 1.5 * (RTT_S + frame_s) + 0.15, f"the focused series' first slice came {delay:.2f} s after the focus"
    complete = times(events, "complete")
    assert complete[target] == min(complete.values())


def test_a_studys_probes_wait_for_one_answer_about_range_not_for_whole_probes(latency_relay, sample_small):
    """Until a server's Range support is known one probe asks it; the other series' probes wait for
    that answer only (ServerTraits.asking_ranges), then go on together: on a far link the three
    probes of a study end well before three probes one after another would (each is ~3 round
    trips on Orthanc: the frame asked with Range, then two alternates)."""
    from test_in_plane_previews import prepared_loads

    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.previews import find_preview_source
    from ProgressiveDicomFetchLib.retrieve import fetcher_for

    relay = latency_relay(RTT_S, RATE_BPS)
    loads = {key: prepared_loads(DicomwebServer(relay.dicomweb_url), sample_small.series(key))[0] for key in STUDY_SERIES}

    def probed_at_once(keys):
        server = DicomwebServer(relay.dicomweb_url)  # its traits know nothing of the server yet
        probes, ends = {}, []
        start = time.monotonic()

        def probe(key):
            probes[key] = find_preview_source(fetcher_for(server, loads[key], None), loads[key])
            ends.append(time.monotonic() - start)

        threads = [threading.Thread(target=probe, args=(key,)) for key in keys]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return max(ends), probes

    alone, _ = probed_at_once(STUDY_SERIES[:1])
    together, probes = probed_at_once(STUDY_SERIES)
    assert len(probes) == len(STUDY_SERIES)
    assert all(p.source is None and "ignores Range" in p.reason for p in probes.values()), [p.reason for p in probes.values()]
    asked = [p for p in probes.values() if "(it answered 200)" in p.reason]
    assert len(asked) == 1  # one probe asked the server; the others were told
    # measured: 1.6-1.7x one probe alone; one after another (the lock around whole probes) ~3x
    assert together < 2.5 * alone, f"three probes at once took {together:.2f} s, one alone {alone:.2f} s"


def test_a_server_that_serves_few_connections_caps_the_limit_before_a_slice_waits(orthanc_few_threads, sample_small):
    """Orthanc gives each keep-alive connection a thread (5 here): a request on a 6th connection
    would wait unanswered until one idles. The far link asks for more requests in flight than
    that; a worker on a new (or idle) connection gives its job back and asks the server first, so
    the limit stops at what the server serves (a probe one above now and then) and no slice is
    sent on a connection the server left unanswered."""
    threads = 5
    with LatencyRelay(orthanc_few_threads.port, 0.1, lifetime_s=120.0) as relay:
        engine, events = load(relay, sample_small)
    assert set(times(events, "complete")) == {sample_small.series(k).series_uid for k in STUDY_SERIES}
    assert_bit_exact(engine, sample_small)
    assert DEFAULT_CONNECTIONS <= engine.controller.ceiling <= threads + 1, engine.controller.ceiling  # +1: a probe
    assert engine.scheduler.connections <= threads + 1
    assert relay.counters["connections"] > threads  # it did try more connections than the server serves
