"""The progressive fetch engine: N worker connections fill the volumes of the requested series,
coarse to fine, as the scheduler decides; the main thread collects what changed.

With `max_connections`, that many workers, as many busy as the link pays for (concurrency.py).

Threads: workers fetch (metadata, then one frame per request), decode and write into the
volume buffers, and post events. Only `process_events()` hands things to the main thread, which
alone touches MRML/Qt (docs/architecture.md, "The main-thread tick"). Each worker has its own keep-alive HTTP connection.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple, Union

from ..cache import FrameCache
from ..dicomweb.errors import DicomwebError
from ..dicomweb.frames import FrameData
from ..dicomweb.server import DicomwebServer
from ..loading import SliceTask, VolumeLoad, touch_memory
from ..previews import Probe, RenderedPreviews
from ..retrieve import fetcher_for, load_slices, prepare_series, write_fetched
from ..transport import is_dimse, offers_previews
from ..volume import Quality
from .beside_workers import BesideWorkers
from .concurrency import ConcurrencyController
from .link_follower import LinkFollower
from .events import EngineEvent, EngineUpdate, EventKind, SeriesProgress, SeriesStatus
from .package_advice import PackageAdvice, package_advice
from .focus_policy import FocusPolicy, Shown
from .scheduler import BREADTH_FIRST, DEPTH_FIRST, Assignment, Scheduler
from .series_probe import probe_series
from .series_state import SeriesState
from .slice_parts import load_part
from .stage_plan import StagePlan
from .wait_loop import pump_yield_ms, run_until

logger = logging.getLogger(__name__)

DEFAULT_CONNECTIONS = 4  # best throughput on loopback and LAN in our measurements (docs/benchmarks.md)
ADAPTIVE_MAX_CONNECTIONS = 32  # the most requests in flight the controller may ask for (docs/links.md)
STALE_CONNECTION_S = 0.5  # a connection idle this long may have been closed by the server (Orthanc: after 1 s)
FRAMES_PER_REQUEST = 8  # frames of one multi-frame object per request: 28 -> 1.6 ms a frame, ~12 ms a request (measured)
MAX_CONSECUTIVE_FAILURES = 4  # rounds: with the default retries, a server may be gone ~15 s
MAX_SLICE_ATTEMPTS = 5  # more than the rounds: an outage fails the same slice each round


class ProgressiveFetchEngine:
    def __init__(self, server: DicomwebServer, connections: int = DEFAULT_CONNECTIONS, strategy: str = BREADTH_FIRST,
                 plan: StagePlan = StagePlan(), focus_share: float = 1.0, fill: str = "linear",
                 clock: Callable[[], float] = time.monotonic, cache: Optional[FrameCache] = None,
                 policy: Optional[FocusPolicy] = None, rendered: Union[bool, str, RenderedPreviews] = RenderedPreviews.OFF,
                 max_connections: Optional[int] = None) -> None:
        """`policy`: how the series on screen share the connections (default FocusPolicy(), with
        `focus_share` as its connection cap). `rendered` (off/auto/on, or a bool): previews from
        `/rendered` where a series has no other source; `auto`: where the link makes them pay.
        `max_connections` above `connections`: the requests in flight follow the link between 1
        and it, starting from `connections` or what paid on this server before; None, or a DIMSE
        server (a PACS counts associations): always `connections`."""
        self.server = server
        self.cache = cache  # frames found there are not fetched (resume after a kill or a cancel)
        self.scheduler = Scheduler(connections, strategy, focus_share, plan, policy)
        self.plan = plan
        self.fill = fill
        self.rendered = RenderedPreviews.parse(rendered)
        self._clock = clock
        self.started_at = clock()  # event times are seconds after this
        self._series: Dict[str, SeriesState] = {}
        self._metadata_jobs: Deque[str] = deque()
        self._events: "queue.SimpleQueue[EngineEvent]" = queue.SimpleQueue()
        self._new_volumes: "queue.SimpleQueue[Tuple[str, int, VolumeLoad]]" = queue.SimpleQueue()
        self._join_lock = threading.Lock()  # a worker asking the server on a new connection (_connection_served)
        lock = threading.RLock()
        self._wake = threading.Condition(lock)  # workers within the limit wait here for work
        self._parked = threading.Condition(lock)  # workers above it wait here for it to grow
        self._paused = False
        self._closed = False
        self._busy = 0  # workers between taking a job and finishing it
        self._link = LinkFollower(server, connections, max_connections)
        self.controller: Optional[ConcurrencyController] = self._link.controller
        if self.controller is not None:
            self.scheduler.connections = self.controller.limit
        workers = self._link.workers or connections
        now = time.monotonic()
        self._used = [now if n < connections else 0.0 for n in range(workers)]  # when each worker last had an answer
        self._workers = [threading.Thread(target=self._work, args=(n,), name=f"pdf-worker-{n}", daemon=True)
                         for n in range(workers)]
        for worker in self._workers:
            worker.start()
        self._beside = BesideWorkers(server, self.scheduler, self._wake, self._beside_gate, self._run_job)

    # -- requests from any thread ---------------------------------------------------------------
    def add_series(self, study_uid: str, series_uid: str, loads: Optional[List[VolumeLoad]] = None) -> None:
        """Ask for a series; its metadata comes first, then its slices coarse to fine. `loads`
        (volumes already built from metadata the caller fetched, e.g. for scene nodes) skip that."""
        with self._wake:
            if self._closed:
                raise RuntimeError("the engine is closed")
            if series_uid in self._series:
                raise ValueError(f"series {series_uid} is already requested")
            state = self._series[series_uid] = SeriesState(study_uid, series_uid)
            self.scheduler.expect(series_uid)  # keeps its place in line while its metadata comes
            if loads is not None:
                self._take_loads(state, loads, announce=False)
            if loads is None or self.plan.has_previews:
                self._metadata_jobs.append(series_uid)  # metadata, then the probe for a preview source
            else:
                self._schedule(state, None)
            self._wake.notify_all()

    def set_focus(self, series_uid: Optional[str], slice_index: Optional[float] = None, volume: int = 0) -> None:
        """Boost the one series the user looks at (None: no boost); the next free connection follows."""
        slices = () if slice_index is None else ((volume, float(slice_index)),)
        self.set_visible([Shown(series_uid, slices)] if series_uid is not None else [], series_uid)

    def set_visible(self, shown: Sequence[Shown], last_touched: Optional[str] = None) -> None:
        """Every series on screen with the slices its views show, and the one touched last (it gets
        the largest share; see focus_policy.py). The focus event names them all. Their metadata
        jobs still waiting go first, the last touched first: a study's metadata comes one series
        per free connection, and the one on screen should not wait behind the others."""
        self.scheduler.set_visible(shown, last_touched)
        visible = self.scheduler.visible
        if visible:
            first = visible.series()[0]
            viewed = visible.slices(first)
            self._emit(first, EventKind.FOCUS, slice=int(round(viewed[0][1])) if viewed else None, visible=visible.series())
        place = {series_uid: n for n, series_uid in enumerate(visible.series())}
        with self._wake:
            self._metadata_jobs = deque(sorted(self._metadata_jobs, key=lambda uid: place.get(uid, len(place))))
            self._wake.notify_all()

    def cancel(self, series_uid: str) -> None:
        """Drop the series' queued work; its volumes keep what they have."""
        with self._wake:
            state = self._series[series_uid]
            if state.state.final:
                return
            state.state = SeriesStatus.CANCELLED
            if series_uid in self._metadata_jobs:
                self._metadata_jobs.remove(series_uid)
        dropped = self.scheduler.drop(series_uid)
        self._emit(series_uid, EventKind.CANCELLED, message=f"{dropped} slices not fetched")

    def pause(self) -> None:
        with self._wake:
            self._paused = True

    def resume(self) -> None:
        with self._wake:
            self._paused = False
            self._wake.notify_all()

    def close(self, timeout: float = 1.0) -> bool:
        """Stop all workers (each finishes at most its current request); True if all are gone."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
            self._parked.notify_all()
        if not self.finished() and hasattr(self.server, "abort"):
            self.server.abort()  # DIMSE: A-ABORT the associations, requests in flight end now
        deadline = time.monotonic() + timeout
        workers = self._workers + self._beside.threads
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        alive = [w.name for w in workers if w.is_alive()]
        if alive:
            logger.warning("engine closed; %d workers still finish their request: %s", len(alive), alive)
        return not alive

    # -- main thread ----------------------------------------------------------------------------
    def process_events(self, budget_ms: float = 5.0) -> EngineUpdate:
        """Events, new volumes and changed slices since the last call, within about `budget_ms`."""
        deadline = time.perf_counter() + budget_ms / 1000.0
        update = EngineUpdate()
        while True:
            try:
                update.events.append(self._events.get_nowait())
            except queue.Empty:
                break
        while True:
            try:
                update.new_volumes.append(self._new_volumes.get_nowait())
            except queue.Empty:
                break
        for series_uid, state in list(self._series.items()):
            for index, load in enumerate(list(state.loads)):
                if time.perf_counter() > deadline:
                    return update  # the rest stays dirty for the next call
                changed = load.volume.take_dirty()
                if changed:
                    update.dirty[(series_uid, index)] = changed
        return update

    def pump(self, budget_ms: float = 5.0, yield_ms: float = 8.0) -> EngineUpdate:
        """`process_events()` then sleep with the GIL released, sized to the work in flight
        (`pump_yield_ms`, at most `yield_ms`; none when idle or paused): the main-thread tick for
        Slicer. Slicer's embedded Python keeps the GIL while its Qt loop idles, so workers run only
        while the main thread sleeps in Python (Testing/benchmarks/pump_designs.py, docs/slicer.md)."""
        update = self.process_events(budget_ms)
        with self._wake:
            pause_ms = pump_yield_ms(self._busy, self._paused, yield_ms)
        if pause_ms > 0:
            time.sleep(pause_ms / 1000.0)
        return update

    def progress(self) -> List[SeriesProgress]:
        return [state.progress() for state in list(self._series.values())]

    def in_flight(self) -> int:
        """Jobs the workers are doing now (0 when idle or paused once their requests landed)."""
        with self._wake:
            return self._busy

    def loads(self, series_uid: str) -> List[VolumeLoad]:
        return list(self._series[series_uid].loads)

    def package_advice(self, series_uid: str) -> PackageAdvice:
        """Packages the series' stored syntaxes call for (nothing for a series not asked for)."""
        state = self._series.get(series_uid)
        return package_advice(state.loads) if state is not None else PackageAdvice()

    def finished(self) -> bool:
        """Nothing left to fetch or in flight (complete, cancelled or failed)."""
        with self._wake:
            return not self._metadata_jobs and self._busy == 0 and self.scheduler.idle()

    def run_until_finished(self, on_update: Optional[Callable[[EngineUpdate], None]] = None,
                           poll_s: float = 0.02, timeout: Optional[float] = None) -> bool:
        """The main-thread loop for scripts and the command line; False on timeout."""
        def tick() -> None:
            update = self.process_events()
            if on_update is not None and update:
                on_update(update)

        return run_until(self.finished, tick, poll_s, timeout)

    def elapsed(self) -> float:
        return self._clock() - self.started_at

    # -- workers --------------------------------------------------------------------------------
    def _work(self, index: int) -> None:
        try:
            while True:
                job = self._next_job(index)
                if job is None:
                    return
                if self._connection_served(index, job):
                    self._run_job(job, index)
        finally:
            self.server.close()  # this thread's HTTP connection

    def _run_job(self, job, index: Optional[int] = None) -> None:
        """Metadata or slices; worker `index` is free again after (None: a connection beside)."""
        try:
            if isinstance(job, str):
                self._load_metadata(job)
            else:
                self._load_slices(job)
        except Exception as error:  # a bug or MemoryError: fail that series, never hang the engine
            logger.exception("worker error")
            self._abandon(job, error)
        finally:
            with self._wake:
                if index is not None:
                    self._busy -= 1
                    self._used[index] = time.monotonic()
                self._wake.notify_all()

    def _beside_gate(self) -> Optional[bool]:
        """For the connections beside the previews (lock held): None once closed, False while paused."""
        return None if self._closed else not self._paused

    def _next_job(self, index: int):
        """Worker `index`'s next job (None once closed). Only workers below the limit work, always
        the same ones (the server sees a steady set of keep-alive connections); one above it parks
        with its connection closed (a server may hold a thread per open connection)."""
        while True:
            with self._wake:
                while not self._closed and index < self.scheduler.connections:
                    if not self._paused and self._busy < self.scheduler.connections:
                        job = self._metadata_jobs.popleft() if self._metadata_jobs else \
                            self.scheduler.next_batch(FRAMES_PER_REQUEST)
                        if job:
                            self._busy += 1
                            return job
                    self._wake.wait(0.5)
                if self._closed:
                    return None
            self.server.close()  # outside the lock: a DIMSE association is released over the network
            with self._wake:
                self._used[index] = 0.0  # no connection any more
                while not self._closed and index >= self.scheduler.connections:
                    self._parked.wait(1.0)

    def _connection_served(self, index: int, job) -> bool:
        """A job on a new or idle connection (the server may have closed it) goes back at once and
        the server is asked on the connection first (link_follower.py); answered, the worker takes
        the next job, else the limit stays at the connections answered lately (the others')."""
        if self.controller is None or time.monotonic() - self._used[index] < STALE_CONNECTION_S:
            return True
        with self._wake:
            self._busy -= 1
            if isinstance(job, str):
                self._metadata_jobs.appendleft(job)
            else:
                for assignment in reversed(job):
                    self.scheduler.retry(assignment)
            self._wake.notify_all()
        with self._join_lock:  # one new connection at a time: a flood of them takes the threads of a server's live ones
            with self._wake:
                if index >= self.scheduler.connections:  # a join before it failed: the limit is lower now
                    return False
            served = self._link.served()
        with self._wake:
            now = time.monotonic()
            if served:
                self._used[index] = now
                return False
            live = sum(1 for n, used in enumerate(self._used) if n != index and now - used < STALE_CONNECTION_S)
            self._follow_limit(self._link.cap(live))
        self.server.close()
        return False

    def _load_metadata(self, series_uid: str) -> None:
        """Metadata (unless the caller gave the volumes), then the preview probe, then the slices."""
        state = self._series[series_uid]
        if not state.loads:
            state.state = SeriesStatus.METADATA
            try:
                loads = prepare_series(self.server, state.study_uid, series_uid, self.fill)
            except (DicomwebError, ValueError, MemoryError) as error:
                self._fail(state, f"cannot load series {series_uid}: {error}")
                return
            with self._wake:
                if state.state == SeriesStatus.CANCELLED or self._closed:
                    return
                self._take_loads(state, loads, announce=True)
        threading.Thread(target=touch_memory, args=(state.loads,), name="pdf-touch", daemon=True).start()
        probe = self._probe(state) if self.plan.has_previews and offers_previews(self.server) else None
        with self._wake:
            if state.state == SeriesStatus.CANCELLED or self._closed:
                return
            self._schedule(state, probe)
            self._wake.notify_all()

    def _probe(self, state: SeriesState) -> Optional[Probe]:
        """Find the series' preview source (series_probe.py); depth-first shows the series in the
        order given, so their probes' frames wait for their turn."""
        def first_view(task: SliceTask, frame: FrameData) -> None:
            self._write_probe_frame(state, task, frame)

        at_once = first_view if self.scheduler.strategy != DEPTH_FIRST else None
        return probe_series(state, self.rendered, at_once)

    def _write_probe_frame(self, state: SeriesState, task: SliceTask, frame: FrameData) -> None:
        """The probe's whole frame (the middle slice), written exact at once: the first view. It is
        still kept for its turn in the plan, which writes it again (no second request)."""
        try:
            write_fetched(state.loads[0], state.fetcher, task, frame)
        except ValueError as error:  # the slice still comes in its turn, which reports it
            logger.info("series %s: the probe's frame of slice %d does not decode (%s)", state.series_uid, task.k, error)
            return
        except Exception:  # noqa: BLE001 -- a bug on this thread: logged; its turn meets it again and fails the series
            logger.exception("series %s: writing the probe's frame of slice %d failed", state.series_uid, task.k)
            return
        with self._wake:
            if state.state not in (SeriesStatus.CANCELLED, SeriesStatus.FAILED):
                self._first_views(state)

    def _take_loads(self, state: SeriesState, loads: List[VolumeLoad], announce: bool) -> None:
        """The series' volumes are known (with the engine's lock held): nodes may be made for them."""
        first = loads[0].geometry.dataset
        state.label = f"{first.get('SeriesNumber', '')}: {first.get('SeriesDescription', '')}".strip(": ")
        state.loads = loads
        state.fetcher = fetcher_for(self.server, loads[0], self.cache)
        state.state = SeriesStatus.LOADING
        if announce:
            for index, load in enumerate(loads):
                self._new_volumes.put((state.series_uid, index, load))

    def _schedule(self, state: SeriesState, probe: Optional[Probe]) -> None:
        """Schedule the series' slices, in two parts each when it has a preview source (lock held)."""
        state.preview = probe.source if probe is not None else None
        loads = state.loads
        previews = state.preview is not None
        self.scheduler.add(state.series_uid, [(load.volume.num_slices, [t.k for t in load.tasks()]) for load in loads],
                           groups=None if previews else [load.multiframe_groups(is_dimse(self.server)) for load in loads],
                           previews=previews, beside=previews and probe.beside is not None)
        if previews and probe.beside is not None:
            self._beside.start(probe.beside)
        current = self.scheduler.current_stage(state.series_uid)
        state.stage = None if current is None else self.plan.stage_ids()[current]
        if probe is not None and probe.frame is not None:
            task, frame, size = probe.frame
            state.prefetched[(0, task.k)] = (frame, size)
        if probe is not None:
            state.bytes += probe.bytes
        if probe is not None and probe.preview is not None and not state.first_slice:
            state.first_slice = True
            self._emit(state.series_uid, EventKind.FIRST_SLICE)

    def _load_slices(self, batch: List[Assignment]) -> None:
        """Fetch one request's frames (one slice, or several frames of one multi-frame object)."""
        state = self._series[batch[0].series]
        load = state.loads[batch[0].volume]
        tasks = []
        for assignment in batch:
            frame = load.geometry.slices[assignment.k]
            tasks.append(SliceTask(assignment.k, frame.sop_instance_uid, frame.frame_number))
        started = time.monotonic()
        try:
            sizes = [self._take_prefetched(state, load, batch[0].volume, task) for task in tasks]
            wanted = [i for i, size in enumerate(sizes) if size is None]
            if state.preview is not None:
                sizes = [load_part(state.preview, load, state.fetcher, tasks[0], batch[0].part)
                         if wanted else sizes[0]]
            else:
                fetched = load_slices(load, state.fetcher, [tasks[i] for i in wanted])
                for index, size in zip(wanted, fetched):
                    sizes[index] = size  # network bytes, 0 if cached
        except (DicomwebError, ValueError) as error:
            self._follow_limit(self._link.answered(started, 0))  # a push-back, if any
            self._slices_failed(state, batch, error, started)
            return
        self._follow_limit(self._link.answered(started, sum(sizes)))
        for assignment, size in zip(batch, sizes):
            self._slice_done(state, assignment, size)

    def _follow_limit(self, limit: Optional[int]) -> None:
        """Work is handed out up to the controller's limit (None: unchanged), remembered per server."""
        with self._wake:
            if limit is not None and limit != self.scheduler.connections:
                logger.info("requests in flight: %d -> %d", self.scheduler.connections, limit)
                self.scheduler.connections = limit
                self._link.remember(limit)
                self._wake.notify_all()
                self._parked.notify_all()

    def _take_prefetched(self, state: SeriesState, load: VolumeLoad, volume: int, task: SliceTask) -> Optional[int]:
        """Write the frame the probe got for this slice, if any; its bytes (None: not prefetched)."""
        with self._wake:
            kept = state.prefetched.pop((volume, task.k), None)
        if kept is None:
            return None
        if load.volume.quality(task.k) < Quality.FULL:  # (the probe's frame may be written already)
            write_fetched(load, state.fetcher, task, kept[0])
        return kept[1]

    def _slices_failed(self, state: SeriesState, batch: List[Assignment], error: Exception, started: float) -> None:
        """Retry the slices first in line, or fail the series: after MAX_CONSECUTIVE_FAILURES failure
        rounds in a row (requests that were in flight together during one outage count once, so four
        connections failing at once is one round), or when one slice failed MAX_SLICE_ATTEMPTS times
        (a frame that never decodes must not be retried forever while the others succeed)."""
        with self._wake:
            if started > state.failed_at:
                state.failures += 1
                state.failed_at = time.monotonic()
            attempts = state.count_attempts([(a.volume, a.k) for a in batch])
            give_up = state.failures >= MAX_CONSECUTIVE_FAILURES or attempts >= MAX_SLICE_ATTEMPTS
        if give_up:
            for assignment in batch:
                self.scheduler.done(assignment)
            self._fail(state, f"slice {batch[0].k} of series {state.series_uid}: {error}")
            return
        logger.info("slice %d of %s failed (%s); retrying", batch[0].k, state.series_uid, error)
        for assignment in reversed(batch):
            self.scheduler.retry(assignment)

    def _slice_done(self, state: SeriesState, assignment: Assignment, size: int) -> None:
        with self._wake:  # one worker at a time decides the series' events
            state.failures = 0
            state.bytes += size
            finished = self.scheduler.done(assignment)
            if state.state in (SeriesStatus.CANCELLED, SeriesStatus.FAILED):
                return
            self._first_views(state)
            for level in state.new_levels():
                self._emit(state.series_uid, EventKind.COARSE, level=level)
            stage_ids = self.plan.stage_ids()
            for stage in finished:
                self._emit(state.series_uid, EventKind.STAGE, stage=stage_ids[stage])
                state.stage = stage_ids[stage + 1] if stage + 1 < len(stage_ids) else None
                if stage == len(stage_ids) - 1:
                    state.complete, state.state = True, SeriesStatus.COMPLETE
                    self._emit(state.series_uid, EventKind.COMPLETE)

    def _first_views(self, state: SeriesState) -> None:
        """After a slice is written (engine lock held): the series' first slice and its being
        covered, each announced once."""
        if not state.first_slice:
            state.first_slice = True
            self._emit(state.series_uid, EventKind.FIRST_SLICE)
        if state.check_covered():
            self._emit(state.series_uid, EventKind.COVERED)

    def _abandon(self, job, error: Exception) -> None:
        """Give back what an unexpected error left in flight and fail its series."""
        series_uid = job if isinstance(job, str) else job[0].series
        if not isinstance(job, str):
            for assignment in job:
                self.scheduler.done(assignment)
        self._fail(self._series[series_uid], f"series {series_uid}: unexpected {type(error).__name__}: {error}")

    def _fail(self, state: SeriesState, message: str) -> None:
        """The series stops (its queued work is dropped, its volumes keep what they have); others go on.
        Once per series: several workers may hit the same failure at the same time."""
        self.scheduler.drop(state.series_uid)
        with self._wake:
            if state.state == SeriesStatus.FAILED:
                return
            state.state, state.error = SeriesStatus.FAILED, message
        logger.warning(message)
        self._emit(state.series_uid, EventKind.ERROR, message=message)

    def _emit(self, series_uid: str, kind: EventKind, **details) -> None:
        self._events.put(EngineEvent(self.elapsed(), series_uid, kind, **details))
