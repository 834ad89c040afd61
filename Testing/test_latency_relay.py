"""The latency relay adds its round trip and meters its rate, measured on plain HTTP requests to the
real Orthanc (generous bounds: the machine is shared)."""
from __future__ import annotations

import threading
import time

import pytest
import requests

from servers.latency_relay import LatencyRelay

SERIES = "ct_thin"


def timed_get(url: str, session: requests.Session):
    started = time.monotonic()
    response = session.get(url, timeout=60)
    response.raise_for_status()
    return time.monotonic() - started, len(response.content)


def test_relay_adds_its_round_trip(orthanc, latency_relay):
    direct = requests.Session()
    base, _ = min(timed_get(f"http://127.0.0.1:{orthanc.port}/system", direct) for _ in range(3))
    relay = latency_relay(0.2)
    session = requests.Session()
    timed_get(f"http://127.0.0.1:{relay.port}/system", session)  # connect: one more round trip
    elapsed, _ = min(timed_get(f"http://127.0.0.1:{relay.port}/system", session) for _ in range(3))
    assert 0.19 <= elapsed - base <= 0.45, f"added {elapsed - base:.3f} s for a 0.2 s round trip"


def test_relay_rate_is_shared_by_all_connections(orthanc, latency_relay, sample_small):
    """Two parallel series downloads take about twice the bytes / rate of one: one shared link."""
    info = sample_small.series(SERIES)
    rate = 16e6
    relay = latency_relay(0.05, rate)
    url = f"{relay.dicomweb_url}/studies/{info.study_uid}/series/{info.series_uid}"
    results = []

    def get() -> None:
        results.append(timed_get(url, requests.Session()))

    threads = [threading.Thread(target=get) for _ in range(2)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    size = sum(nbytes for _, nbytes in results)
    link = size * 8 / rate
    assert size > 1_000_000
    assert 0.95 * link <= elapsed <= 1.6 * link + 1.0, f"{size} bytes in {elapsed:.2f} s; the link needs {link:.2f} s"


def test_relay_is_loopback_only():
    with pytest.raises(ValueError, match="loopback"):
        LatencyRelay(80, 0.1, upstream_host="10.0.0.1")
