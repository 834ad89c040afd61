"""The concurrency controller, fed synthetic samples from a modelled link (closed loop: `limit`
requests in flight, each answered after max(round trip + its bytes / rate, queue of all in flight)):
deterministic, no server needed; the engine under a real far link is in test_links.py."""
from __future__ import annotations

import random
import statistics
from typing import Dict, List

import pytest

from ProgressiveDicomFetchLib.engine.concurrency import ConcurrencyController

FRAME = 2 * 256 * 256  # a 256^2 CT frame
CLOCKS: Dict[int, float] = {}  # each controller's modelled time


def drive(controller: ConcurrencyController, rate: float, rtt: float, size: int = FRAME, requests: int = 400,
          server_s: float = 0.0) -> List[float]:
    """Feed `requests` answers of a link of `rate` bytes/s and `rtt` s (its clock goes on from the
    controller's last drive); the throughput of each round of requests."""
    now, rates = CLOCKS.get(id(controller), 0.0), []
    while requests > 0:
        limit = controller.limit
        latency = max(rtt + size / rate, limit * size / rate) + server_s * limit
        for n in range(limit):
            controller.sample(now + latency * (n + 1) / limit, size, latency)
        now += latency
        rates.append(limit * size / latency)
        requests -= limit
    CLOCKS[id(controller)] = now
    return rates


@pytest.mark.compat
def test_a_far_link_grows_the_limit_until_the_link_is_full():
    rate, rtt = 100e6 / 8, 0.1
    needed = rate * rtt / FRAME + 1  # ~10.5: bandwidth x delay / frame, plus the one on the wire
    controller = ConcurrencyController(start=4)
    rates = drive(controller, rate, rtt)
    assert needed <= controller.limit <= 2 * needed, controller.limit
    assert min(rates[-10:]) >= 0.95 * rate  # full at the end
    assert rates.index(next(r for r in rates if r >= 0.95 * rate)) <= 5  # within a few round trips


@pytest.mark.compat
def test_a_fast_near_link_keeps_few_requests_in_flight():
    controller = ConcurrencyController(start=4)
    drive(controller, 1e9 / 8, 0.0005)
    assert controller.limit <= 5  # more would only queue


def drive_cpu_bound(controller: ConcurrencyController, per_s: float, requests: int, seed: int,
                    queued: bool = False) -> List[int]:
    """A near link where our process is the bottleneck (loopback): `per_s` answers a second whatever
    the limit, each gap off by up to +-40 % (threads contending for the GIL); each answer took
    limit / per_s, or with `queued` anything from one service time (1 / per_s: it found our process
    free) to twice that minus one (it queued behind the others). The limit each round."""
    rng, now, limits = random.Random(seed), 0.0, []
    while requests > 0:
        limit = controller.limit
        for _ in range(limit):
            now += (1 + 0.8 * (rng.random() - 0.5)) / per_s
            latency = (1 + rng.random() * (2 * limit - 2)) / per_s if queued else limit / per_s
            controller.sample(now, FRAME, latency)
            requests -= 1
        limits.append(controller.limit)
    return limits


@pytest.mark.compat
def test_a_noisy_cpu_bound_near_link_stays_near_its_start():
    """Windows of a few ms would judge noise (a window is at least 0.1 s): more requests in flight
    only queue in our process, so the limit stays about where it started."""
    means = [statistics.mean(drive_cpu_bound(ConcurrencyController(start=4), 130.0, 600, seed)) for seed in range(20)]
    assert statistics.mean(means) <= 4.7, means


@pytest.mark.compat
def test_requests_that_only_queue_in_our_process_do_not_grow_the_limit():
    """Some answers take one service time: a request or two fill that pipe (answers a second x the
    quickest answer), so the 4 in flight are already more than it holds and the limit stays there
    (a window's quickest answer is sometimes slower, so a step up now and then, at once undone)."""
    means = [statistics.mean(drive_cpu_bound(ConcurrencyController(start=4), 130.0, 600, seed, queued=True))
             for seed in range(20)]
    assert statistics.mean(means) <= 4.1, means  # without the pipe check: 4.33


@pytest.mark.compat
def test_a_server_that_leaves_a_new_connection_unanswered_caps_the_limit():
    """The engine calls cap(n) when the server leaves connection n + 1 unanswered; the limit stays
    there but for probes one above (each refused again), and grows again once a probe is served."""
    controller = ConcurrencyController(start=4)
    drive(controller, 100e6 / 8, 0.1, requests=60)
    assert controller.limit > 6
    assert controller.cap(6) == 6 and controller.ceiling == 6
    highest = 0
    for _ in range(60):  # a far link behind a server serving 6 connections
        drive(controller, 100e6 / 8, 0.1, requests=10)
        highest = max(highest, controller.limit)
        if controller.limit > 6:
            controller.cap(6)
    assert highest == 7  # probes, one above
    assert controller.cap(8) == 6  # a later, higher count does not raise it
    drive(controller, 100e6 / 8, 0.1, requests=1500)  # the server serves more now
    assert controller.limit > 8


@pytest.mark.compat
def test_the_limit_follows_a_link_that_gets_farther():
    controller = ConcurrencyController(start=4)
    drive(controller, 30e6 / 8, 0.001)
    near = controller.limit
    rates = drive(controller, 30e6 / 8, 0.2, requests=600)
    assert near <= 5 and controller.limit > 2 * near
    assert min(rates[-10:]) >= 0.9 * 30e6 / 8


@pytest.mark.compat
def test_push_back_and_an_overloaded_server_shrink_the_limit():
    controller = ConcurrencyController(start=16, minimum=2)
    assert controller.push_back() == 12
    for _ in range(10):
        controller.push_back()
    assert controller.limit == 2
    overloaded = ConcurrencyController(start=4)
    drive(overloaded, 100e6 / 8, 0.1, requests=200)
    grown = overloaded.limit
    drive(overloaded, 100e6 / 8, 0.1, requests=300, server_s=0.05)  # each request in flight slows the server
    assert overloaded.limit < grown
    floored = ConcurrencyController(start=4, floor=grown)  # the engine's fixed pool as the floor
    drive(floored, 100e6 / 8, 0.1, requests=200)
    drive(floored, 100e6 / 8, 0.1, requests=300, server_s=0.05)  # slower answers alone: not below the floor
    assert floored.limit >= grown
    assert floored.push_back() < grown  # the server's word is


@pytest.mark.compat
def test_bounds():
    assert ConcurrencyController(start=100, maximum=8).limit == 8
    controller = ConcurrencyController(start=4, maximum=6)
    drive(controller, 100e6 / 8, 0.2)
    assert controller.limit == 6
    with pytest.raises(ValueError, match="minimum"):
        ConcurrencyController(minimum=0)
