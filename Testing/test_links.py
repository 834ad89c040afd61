"""The engine through a far link (the latency relay in front of the real Orthanc): the requests in
flight follow the link while breadth-first and focus keep their meaning. Speed itself is the
benchmark's business (Testing/benchmarks/latency_links.py); these check behaviour."""
from __future__ import annotations

from typing import Dict, Optional

from servers.latency_relay import LatencyRelay
from test_engine import STUDY_SERIES, assert_bit_exact, no_worker_threads, run_engine, times

from ProgressiveDicomFetchLib.engine import ADAPTIVE_MAX_CONNECTIONS, DEFAULT_CONNECTIONS, DEPTH_FIRST, ProgressiveFetchEngine

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
    assert no_worker_threads()
    learnt = server.traits.concurrency(server)
    assert learnt is not None and learnt > DEFAULT_CONNECTIONS, f"the limit stayed at {learnt}"
    assert relay.counters["connections"] > DEFAULT_CONNECTIONS  # on the wire: more connections than before
    again = ProgressiveFetchEngine(server, connections=DEFAULT_CONNECTIONS, max_connections=ADAPTIVE_MAX_CONNECTIONS)
    try:
        assert again.scheduler.connections == learnt  # the next load starts from what paid
    finally:
        again.close()


def test_a_focus_change_takes_effect_within_about_a_round_trip_and_a_frame(latency_relay, sample_small):
    """Depth-first leaves the last series for later; focused while many requests are in flight, a
    slice asked for after the focus lands about one round trip and one frame later (a freed
    worker takes it at once: in-flight requests are not cut short)."""
    relay = latency_relay(RTT_S, RATE_BPS)
    target = sample_small.series(STUDY_SERIES[-1]).series_uid
    first = sample_small.series(STUDY_SERIES[0]).series_uid
    seen: Dict[str, Optional[float]] = {"focus": None, "landed": None, "before": None}

    def exact(engine) -> int:
        return next(p.counts["FULL"] for p in engine.progress() if p.series_uid == target)

    def watch(engine, update, events):
        if seen["focus"] is None and any(e.event == "first_slice" and e.series_uid == first for e in events):
            engine.set_focus(target)
            seen["focus"] = engine.elapsed()
            # what it had and had asked for before the focus does not count
            seen["before"] = exact(engine) + engine.scheduler.in_flight(target)
        elif seen["focus"] is not None and seen["landed"] is None and exact(engine) > seen["before"]:
            seen["landed"] = engine.elapsed()

    engine, events = load(relay, sample_small, DEPTH_FIRST, watch)
    frame_s = sample_small.series(STUDY_SERIES[-1]).rows ** 2 * 2 * 8 / RATE_BPS
    delay = seen["landed"] - seen["focus"]
    assert delay <= 1.5 * (RTT_S + frame_s) + 0.15, f"the focused series' first slice came {delay:.2f} s after the focus"
    complete = times(events, "complete")
    assert complete[target] == min(complete.values())


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
