"""pytest plugin: a fault-injection relay in front of the real Orthanc, and an Orthanc of one's own
that a test may restart mid-load (the session Orthanc is shared, so it is never restarted)."""
from __future__ import annotations

import logging
import time
from typing import Iterator

import pytest
from fixtures_servers import SHIM_CACHE, require_orthanc
from servers.fault_relay import FaultRelay
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
