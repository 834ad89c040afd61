"""pytest plugin: a fault-injection relay and a latency relay (a far link) in front of the real
Orthanc, and an Orthanc of one's own that a test may restart mid-load (the session Orthanc is
shared, so it is never restarted)."""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterator, List, Optional

import pytest
from fixtures_servers import SHIM_CACHE, require_orthanc
from servers.fault_relay import FaultRelay
from servers.latency_relay import LatencyRelay
from servers.orthanc import OrthancServer

logger = logging.getLogger(__name__)

RESTART_SERIES = ("ct_thin", "ct_thick")


@pytest.fixture
def orthanc_relay(orthanc) -> Iterator[FaultRelay]:
    """A relay to the session Orthanc with no fault yet (`relay.add(Fault(...))` scripts them)."""
    with FaultRelay(orthanc.port) as relay:
        yield relay
    logger.info("relay counters: %s", dict(relay.counters))


@pytest.fixture
def latency_relay(orthanc) -> Iterator[Callable[..., LatencyRelay]]:
    """`latency_relay(rtt_s, rate_bps=None)`: a started far link to the session Orthanc (stopped after the test)."""
    started: List[LatencyRelay] = []

    def make(rtt_s: float, rate_bps: Optional[float] = None) -> LatencyRelay:
        relay = LatencyRelay(orthanc.port, rtt_s, rate_bps, lifetime_s=300.0).start()
        started.append(relay)
        return relay

    yield make
    for relay in started:
        relay.stop()


@pytest.fixture
def restartable_orthanc(sample_small) -> Iterator[OrthancServer]:
    """A function-scoped Orthanc holding two series of `sample_small`, for `server.restart()`."""
    require_orthanc()
    server = OrthancServer(shim_cache=SHIM_CACHE)
    try:
        server.start()
        started = time.monotonic()
        server.upload([path for key in RESTART_SERIES for path in sample_small.files(key)])
        logger.info("restartable Orthanc: %d files uploaded in %.2f s", server.uploaded, time.monotonic() - started)
        yield server
    finally:
        server.stop()
