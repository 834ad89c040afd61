"""Connections that fetch whole frames beside a series' previews (docs/architecture.md, "Frames beside").

While the previews come (small answers, bound by the server's and our CPU), the link would idle;
where the probe measured so (previews/rendered_link.py: frames_beside), a few extra connections,
each with a small TCP receive window, fetch whole parts in the plan's order, any whose preview is
not in flight (Scheduler.next_beside: a preview not asked yet is dropped). They start with the first series that asks for them and end, closing their
connections, once no series is in its preview stages; the engine's own workers do the rest.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, List, Optional

from ..previews.rendered_link import FramesBeside
from .scheduler import Assignment, Scheduler

logger = logging.getLogger(__name__)


class BesideWorkers:
    """`may_work()` (called with `wake`'s lock held): None once the engine is closed, False while
    paused; `run(batch)` fetches and writes one assignment as the engine's workers do."""

    def __init__(self, server, scheduler: Scheduler, wake: threading.Condition,
                 may_work: Callable[[], Optional[bool]], run: Callable[[List[Assignment]], None]) -> None:
        self.server = server
        self.scheduler = scheduler
        self._wake = wake
        self._may_work = may_work
        self._run = run
        self.threads: List[threading.Thread] = []

    def start(self, beside: FramesBeside) -> None:
        """Start them unless they run already (a later series shares them); `wake`'s lock held."""
        if any(thread.is_alive() for thread in self.threads):
            return
        logger.info("%s", beside.describe())
        started = [threading.Thread(target=self._work, args=(beside.window,), name=f"pdf-beside-{n}", daemon=True)
                   for n in range(beside.connections)]
        self.threads = started
        for thread in started:
            thread.start()

    def _work(self, window: int) -> None:
        self.server.set_receive_window(window)  # this thread's connections only
        try:
            while True:
                job = self._next_job()
                if job is None:
                    return
                self._run([job])
        finally:
            self.server.close()

    def _next_job(self) -> Optional[Assignment]:
        with self._wake:
            while True:
                gate = self._may_work()
                if gate is None or not self.scheduler.wants_beside():
                    return None
                job = self.scheduler.next_beside() if gate else None
                if job is not None:
                    return job
                self._wake.wait(0.5)
