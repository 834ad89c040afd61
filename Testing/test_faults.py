"""The fault matrix: the engine loads real series from the real Orthanc through the fault relay.

Each recoverable fault must end in bit-exact volumes; a series whose requests keep failing must
end with a clear error naming the cause, keep the exact slices it already had, and leave the
other series to complete. Every run ends with no worker thread left and within a pytest-timeout.
Run with `-o log_cli=true --log-cli-level=WARNING` to see the time-to-recover figures.
"""
from __future__ import annotations

import logging
import re
import time

import numpy as np
import pytest
from servers.fault_relay import (
    DRIP, LONG_LENGTH, RESET, SHORT_LENGTH, STALL, STATUS, TRUNCATE, Fault, FaultRelay,
)

from test_engine import no_worker_threads

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer, RetryPolicy
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine
from ProgressiveDicomFetchLib.volume import Quality

logger = logging.getLogger(__name__)

SERIES = ("ct_thick", "ct_sagittal")  # 40 + 48 slices
READ_TIMEOUT = 1.0
FAST_RETRY = RetryPolicy(attempts=4, backoff_s=0.1, max_wait_s=2.0)
FRAMES = r"/frames/"


def engine_server(url: str, retry: RetryPolicy = FAST_RETRY) -> DicomwebServer:
    return DicomwebServer(url, timeout=(2.0, READ_TIMEOUT), retry=retry)


def run(url, sample_small, keys=SERIES, connections=3, retry=FAST_RETRY, on_update=None, timeout=90):
    """Load `keys` with the engine; returns (engine, events, seconds). Asserts no worker survives."""
    engine = ProgressiveFetchEngine(engine_server(url, retry), connections=connections)
    events = []

    def collect(update):
        events.extend(update.events)
        if on_update is not None:
            on_update(engine, events)

    started = time.monotonic()
    try:
        for key in keys:
            info = sample_small.series(key)
            engine.add_series(info.study_uid, info.series_uid)
        assert engine.run_until_finished(collect, timeout=timeout), "the engine did not finish"
    finally:
        assert engine.close(timeout=READ_TIMEOUT + 2.0), "a worker outlived close()"
    assert no_worker_threads(engine)
    return engine, events, time.monotonic() - started


def assert_exact(engine, sample_small, keys=SERIES):
    for key in keys:
        (load,) = engine.loads(sample_small.series(key).series_uid)
        np.testing.assert_array_equal(load.volume.array, sample_small.load_truth(key), err_msg=key)


def state_of(engine, sample_small, key):
    uid = sample_small.series(key).series_uid
    return next(p for p in engine.progress() if p.series_uid == uid)


@pytest.fixture(scope="module")
def clean_seconds(orthanc, sample_small):
    """The same load without faults, through a relay: the baseline for the recovery figures."""
    with FaultRelay(orthanc.port) as relay:
        engine, _, seconds = run(relay.dicomweb_url, sample_small)
    assert_exact(engine, sample_small)
    logger.warning("fault figure: clean load of %s through the relay: %.2f s", "+".join(SERIES), seconds)
    return seconds


RECOVERABLE = {
    "reset mid-body x3": Fault(RESET, FRAMES, times=3),
    "truncated body x3": Fault(TRUNCATE, FRAMES, times=3, fraction=0.3),
    "Content-Length too long x3": Fault(LONG_LENGTH, FRAMES, times=3),
    "Content-Length too short x2": Fault(SHORT_LENGTH, FRAMES, times=2, fraction=0.6),
    "HTTP 500 burst x3": Fault(STATUS, FRAMES, times=3, skip=2, status=500),
    "HTTP 502 burst x3": Fault(STATUS, FRAMES, times=3, status=502),
    "HTTP 503 burst x3, Retry-After 1": Fault(STATUS, FRAMES, times=3, status=503, retry_after="1"),
    "HTTP 429 burst x3, Retry-After 0": Fault(STATUS, FRAMES, times=3, status=429, retry_after="0"),
    "metadata HTTP 503 x2": Fault(STATUS, r"/metadata", times=2, status=503),
    "metadata reset x2": Fault(RESET, r"/metadata", times=2, fraction=0.2),
    "stall beyond the read timeout x2": Fault(STALL, FRAMES, times=2, stall_s=3 * READ_TIMEOUT, fraction=0.0),
    "stall mid-body x2": Fault(STALL, FRAMES, times=2, stall_s=3 * READ_TIMEOUT, fraction=0.5),
    "slow drip 40 kB/s x4": Fault(DRIP, FRAMES, times=4, rate=40_000),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(RECOVERABLE))
def test_recoverable_fault_ends_bit_exact(name, orthanc_relay, sample_small, clean_seconds):
    fault = orthanc_relay.add(RECOVERABLE[name])
    engine, events, seconds = run(orthanc_relay.dicomweb_url, sample_small)
    assert fault.fired == fault.times, f"the relay injected {fault.fired} of {fault.times} faults"
    assert not [e for e in events if e.event == "error"]
    assert_exact(engine, sample_small)
    assert all(p.state == "complete" for p in engine.progress())
    logger.warning("fault figure: %s: %.2f s (+%.2f s over the clean load)", name, seconds, seconds - clean_seconds)


FATAL = {
    "frames always HTTP 503": (Fault(STATUS, "", status=503, times=None), "503"),
    "frames always reset": (Fault(RESET, "", times=None, fraction=0.5), "broke off|closed the connection"),
    "frames always stall": (Fault(STALL, "", times=None, stall_s=3 * READ_TIMEOUT, fraction=0.0), "timeout"),
    "metadata always HTTP 500": (Fault(STATUS, "", status=500, times=None), "500"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(FATAL))
def test_a_series_that_keeps_failing_keeps_its_slices_and_the_others_complete(name, orthanc_relay, sample_small):
    """The fault hits one series only (after its first slices, for frames): a clear error for it,
    its loaded slices stay exact and never lose quality, the other series completes."""
    broken, good = sample_small.series("ct_sagittal"), "ct_thick"
    template, words = FATAL[name]
    where = "/metadata" if "metadata" in name else "/frames/"
    fault = orthanc_relay.add(Fault(template.kind, f"{broken.series_uid}/.*{where}" if where == "/frames/"
                                    else f"{broken.series_uid}{where}", times=None, skip=0 if where == "/metadata" else 6,
                                    status=template.status, fraction=template.fraction, stall_s=template.stall_s))
    seen = {}

    def watch(engine, events):  # the qualities each time something changes: they may never go down
        for load in engine.loads(broken.series_uid):
            now = load.volume.qualities().copy()
            before = seen.get("q")
            assert before is None or (now >= before).all(), "a slice lost quality"
            seen["q"] = now

    engine, events, seconds = run(orthanc_relay.dicomweb_url, sample_small, retry=RetryPolicy(attempts=2, backoff_s=0.05),
                                  on_update=watch)
    assert fault.fired > 0
    errors = [e for e in events if e.event == "error"]
    assert [e.series_uid for e in errors] == [broken.series_uid]
    assert re.search(words, errors[0].message) and broken.series_uid in errors[0].message
    failed = state_of(engine, sample_small, "ct_sagittal")
    assert failed.state == "failed" and failed.error == errors[0].message
    assert state_of(engine, sample_small, good).state == "complete"
    assert_exact(engine, sample_small, keys=(good,))
    if where == "/frames/":
        (load,) = engine.loads(broken.series_uid)
        full = [k for k in range(load.volume.num_slices) if load.volume.quality(k) == Quality.FULL]
        assert 0 < len(full) < load.volume.num_slices
        truth = sample_small.load_truth("ct_sagittal")
        for k in full:
            np.testing.assert_array_equal(load.volume.array[k], truth[k], err_msg=f"slice {k}")
    logger.warning("fault figure: %s: series failed, the other complete, in %.2f s", name, seconds)


@pytest.mark.timeout(180)
def test_orthanc_restart_mid_load_ends_bit_exact(restartable_orthanc, sample_small):
    """Orthanc stops and starts again (same port, same storage) while the engine loads through the
    relay, slowed by a drip so the restart lands mid-load; the load resumes and ends exact."""
    keys = ("ct_thin", "ct_thick")
    restart = {}
    with FaultRelay(restartable_orthanc.port) as relay:
        relay.add(Fault(DRIP, FRAMES, times=None, rate=400_000))

        def restart_once(engine, events):
            # In the main thread: Orthanc dies with the thread that started it (PR_SET_PDEATHSIG).
            if "down_s" not in restart and any(e.event == "first_slice" for e in events):
                restart["loaded_before"] = sum(p.counts["FULL"] for p in engine.progress())
                restart["down_s"] = restartable_orthanc.restart()

        retry = RetryPolicy(attempts=5, backoff_s=0.25, max_wait_s=2.0)
        _, _, clean = run(relay.dicomweb_url, sample_small, keys=keys, connections=3, retry=retry)
        engine, events, seconds = run(relay.dicomweb_url, sample_small, keys=keys, connections=3, retry=retry,
                                      on_update=restart_once, timeout=150)
    total = sum(sample_small.series(k).num_slices for k in keys)
    assert restart["loaded_before"] < total, "the load finished before the restart"
    assert relay.counters["upstream_down"] > 0, "no request met the stopped Orthanc"
    assert not [e for e in events if e.event == "error"]
    assert_exact(engine, sample_small, keys=keys)
    logger.warning("fault figure: Orthanc restart mid-load (down %.2f s): load %.2f s (+%.2f s over the clean "
                   "load), %d requests met it down", restart["down_s"], seconds, seconds - clean,
                   relay.counters["upstream_down"])
