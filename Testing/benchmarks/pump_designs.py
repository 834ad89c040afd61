"""Main-thread pump designs for Slicer, measured in the GIL-holding main-loop emulation: the lag
between an event posted to the main loop and its handling (what a user feels), and the download
throughput, each beside a free-threaded main loop (one that never holds the GIL) in the same run.

    .venv/bin/python Testing/benchmarks/pump_designs.py [--profile small|full] [--repeat N]

Slicer's embedded Python keeps the GIL while Qt idles, so workers run only while the main thread
sleeps in Python. The emulation: between timer ticks and posted events the main thread waits in
`usleep` through ctypes.PyDLL (the GIL held); events are posted every EVENT_EVERY_MS and handled
when the loop next gets control (immediately while idle, after the tick while in one). Designs:
  fixed-8ms   the tick yields 8 ms whenever the engine is not finished (paused included)
  none        no yield: workers run only while the tick itself runs Python
  fixed-2ms   a 2 ms yield each tick
  sized       a yield sized to the work in flight (2 ms a job, at most 8), none when idle/paused
The worker-process design (a process writing into shared memory the volume wraps, no GIL at all)
is not measured here: it needs the engine split across processes.
Prints a table (lag median/p95/max over the load and while paused; throughput and its ratio to
the free-threaded loop). Not a test: figures depend on the machine.
"""
from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # Testing/: servers, fixtures_data

from fixtures_data import cached_sample  # noqa: E402
from servers.orthanc import OrthancServer  # noqa: E402

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer  # noqa: E402
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine  # noqa: E402
from ProgressiveDicomFetchLib.engine.wait_loop import pump_yield_ms  # noqa: E402

SERIES = ("ct_thin", "ct_thick", "ct_sagittal")
INTERVAL_MS = 2.0  # the QTimer interval
BUDGET_MS = 5.0  # process_events budget per tick
EVENT_EVERY_MS = 7.0  # a user event (mouse move, paint) posted this often
PAUSED_S = 1.0  # measured while paused

Design = Callable[[ProgressiveFetchEngine, bool], float]  # (engine, paused) -> yield ms this tick


def fixed(ms: float) -> Design:
    return lambda engine, paused: 0.0 if engine.finished() else ms


def sized(engine: ProgressiveFetchEngine, paused: bool) -> float:
    return pump_yield_ms(engine.in_flight(), paused, 8.0)  # what engine.pump does (the chosen design)


DESIGNS: Dict[str, Design] = {"fixed-8ms": fixed(8.0), "none": fixed(0.0), "fixed-2ms": fixed(2.0), "sized": sized}


@dataclass
class Run:
    design: str
    seconds: float = 0.0
    bytes: int = 0
    lags_ms: List[float] = field(default_factory=list)
    paused_lags_ms: List[float] = field(default_factory=list)


class Loop:
    """The main loop: ticks every INTERVAL_MS, events every EVENT_EVERY_MS, waiting in between
    with the GIL held (gil=True, Slicer) or released (gil=False, free-threaded reference)."""

    def __init__(self, gil: bool) -> None:
        self.usleep = ctypes.PyDLL(None).usleep if gil else None
        self.next_event = time.perf_counter()

    def wait_until(self, deadline: float) -> None:
        delay = deadline - time.perf_counter()
        if delay <= 0:
            return
        if self.usleep is not None:
            self.usleep(int(delay * 1e6))
        else:
            time.sleep(delay)

    def handle_events(self, lags: List[float]) -> None:
        now = time.perf_counter()
        while self.next_event <= now:
            lags.append(1000 * (now - self.next_event))
            self.next_event += EVENT_EVERY_MS / 1000

    def run(self, engine: ProgressiveFetchEngine, design: Design, lags: List[float], until: Callable[[], bool],
            paused: bool = False) -> None:
        next_tick = time.perf_counter()
        while True:
            self.handle_events(lags)
            now = time.perf_counter()
            if now >= next_tick:
                engine.process_events(BUDGET_MS)
                pause_ms = design(engine, paused)
                if pause_ms > 0:
                    time.sleep(pause_ms / 1000)  # the GIL released: workers run
                if until():
                    return
                next_tick = time.perf_counter() + INTERVAL_MS / 1000
                continue
            self.wait_until(min(next_tick, self.next_event))


def run_design(url: str, sample, name: str, gil: bool, connections: int) -> Run:
    run = Run(name if gil else "free-threaded")
    engine = ProgressiveFetchEngine(DicomwebServer(url), connections=connections)
    loop = Loop(gil)
    design = DESIGNS[name] if gil else fixed(0.0)
    started = time.perf_counter()
    try:
        for key in SERIES:
            engine.add_series(sample.series(key).study_uid, sample.series(key).series_uid)
        loop.run(engine, design, run.lags_ms, lambda: time.perf_counter() - started > 0.3)
        engine.pause()  # a paused engine: nothing to fetch, the GUI must stay quick
        paused_at = time.perf_counter()
        loop.run(engine, design, run.paused_lags_ms, lambda: time.perf_counter() - paused_at > PAUSED_S, paused=True)
        engine.resume()
        paused_s = time.perf_counter() - paused_at
        loop.run(engine, design, run.lags_ms, engine.finished)
        run.seconds = time.perf_counter() - started - paused_s
        run.bytes = sum(p.bytes for p in engine.progress())
        assert all(p.state == "complete" for p in engine.progress()), engine.progress()
    finally:
        engine.close()
    return run


def quantiles(values: List[float]) -> str:
    if not values:
        return "      -"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):6.1f} {p95:6.1f} {ordered[-1]:6.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="small", choices=("small", "full"))
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    sample = cached_sample(args.profile)
    files = [f for key in SERIES for f in sample.files(key)]
    print(f"{len(SERIES)} series, {len(files)} files, {sum(f.stat().st_size for f in files) / 1e6:.0f} MB on Orthanc, "
          f"{args.connections} connections; tick {INTERVAL_MS:g} ms, event every {EVENT_EVERY_MS:g} ms")
    runs: List[Run] = []
    with OrthancServer() as orthanc:
        orthanc.upload(files)
        for _ in range(args.repeat):
            runs.append(run_design(orthanc.dicomweb_url, sample, "none", False, args.connections))
            for name in DESIGNS:
                runs.append(run_design(orthanc.dicomweb_url, sample, name, True, args.connections))
    reference = statistics.median(r.bytes / r.seconds for r in runs if r.design == "free-threaded")
    print(f"{'design':14s} {'lag ms med    p95    max':>24s} {'paused med    p95    max':>25s}   MB/s  x free")
    for name in ["free-threaded", *DESIGNS]:
        mine = [r for r in runs if r.design == name]
        rate = statistics.median(r.bytes / r.seconds for r in mine)
        print(f"{name:14s} {quantiles([x for r in mine for x in r.lags_ms]):>24s} "
              f"{quantiles([x for r in mine for x in r.paused_lags_ms]):>25s} {rate / 1e6:6.1f} {rate / reference:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
