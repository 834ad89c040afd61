"""Where a rendered preview's CPU goes (issue 25): the server's CPU per rendering and per raw frame
(Orthanc's own process time over every slice of the full profile's ct_thin, 4 requests in
flight), and the client's per step (one thread, thread CPU time: the request, the JPEG decode,
grey -> stored values at full size, the volume write with its refills), then the least time the
preview phase can take on this machine's cores, beside the whole load's time at a given rate.
Prints figures; not a test.

    .venv/bin/python Testing/benchmarks/preview_cpu.py [--rate-mbit 100]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # Testing/: servers, fixtures_data

IN_FLIGHT = 4


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu_per_request(pid: int, pool: ThreadPoolExecutor, calls: Sequence[Callable[[], object]]) -> float:
    """The server's CPU seconds per call, run on `pool` (`IN_FLIGHT` threads, each with its session)."""
    before = process_cpu_s(pid)
    list(pool.map(lambda call: call(), calls))
    return (process_cpu_s(pid) - before) / len(calls)


def bisection(items: List) -> List:
    """`items` in the engine's order within a stage (scheduler.bisection_ranks)."""
    from ProgressiveDicomFetchLib.engine.scheduler import bisection_ranks

    ranks = bisection_ranks(len(items))
    return [items[i] for i in sorted(range(len(items)), key=ranks.__getitem__)]


def client_steps(source, fetcher, load, tasks) -> Dict[str, float]:
    """Thread CPU seconds per preview of each client step, every slice once: every 4th first,
    each stage in bisection order, as the engine asks them; the buffer's pages mapped in first
    (the engine does that on its own thread while the probe waits)."""
    totals = {"request (HTTP)": 0.0, "JPEG decode": 0.0, "grey -> stored, full size": 0.0,
              "volume write and refills": 0.0}
    from ProgressiveDicomFetchLib.previews import rendered

    decode = rendered.decode_rendered
    decoded: List[float] = []

    def timed_decode(*args):
        started = time.thread_time()
        try:
            return decode(*args)
        finally:
            decoded.append(time.thread_time() - started)

    rendered.decode_rendered = timed_decode
    load.volume.touch_memory()
    try:
        ordered = bisection([t for t in tasks if t.k % 4 == 0]) + bisection([t for t in tasks if t.k % 4])
        for task in ordered:
            started = time.thread_time()
            grey, _ = source.fetch_grey(fetcher, task)
            fetched = time.thread_time()
            stored = source.to_stored(grey, load.geometry.pixels)
            mapped = time.thread_time()
            load.write_stored(task.k, stored, source.quality, 2)
            written = time.thread_time()
            totals["request (HTTP)"] += fetched - started - decoded[-1]
            totals["JPEG decode"] += decoded[-1]
            totals["grey -> stored, full size"] += mapped - fetched
            totals["volume write and refills"] += written - mapped
    finally:
        rendered.decode_rendered = decode
    return {step: seconds / len(tasks) for step, seconds in totals.items()}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", default="ct_thin")
    parser.add_argument("--rate-mbit", type=float, default=100.0, help="the link the whole load is judged at")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from fixtures_data import cached_sample
    from servers.orthanc import OrthancServer

    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.loading import SliceTask
    from ProgressiveDicomFetchLib.previews.rendered import Rendered, calibrate, narrowed_window, value_window, viewport
    from ProgressiveDicomFetchLib.retrieve import fetcher_for, prepare_series

    sample = cached_sample("full")
    info = sample.series(args.key)
    truth = sample.load_truth(args.key)
    with OrthancServer(threads=50) as orthanc:
        orthanc.upload(sample.files(args.key))
        local = threading.local()

        def fetcher_here():  # one session (connection) per thread, as the engine's workers have
            if not hasattr(local, "fetcher"):
                server = DicomwebServer(orthanc.dicomweb_url)
                local.load = prepare_series(server, info.study_uid, info.series_uid, "linear")[0]
                local.fetcher = fetcher_for(server, local.load, None)
            return local.fetcher

        fetcher = fetcher_here()
        load = local.load
        geometry = load.geometry
        slope, intercept = geometry.slices[0].slope, geometry.slices[0].intercept
        tasks = [SliceTask(k, s.sop_instance_uid, s.frame_number) for k, s in enumerate(geometry.slices)]
        middle = len(tasks) // 2
        window = narrowed_window(value_window(geometry.pixels, slope, intercept), truth[middle])
        source = Rendered(window, slope, intercept, viewport(geometry.pixels, 256), 90)
        source.calibration = calibrate(source.fetch_grey(fetcher, tasks[middle])[0], truth[middle], window)
        frame_bytes = len(fetcher.fetch([tasks[0]])[0].data)
        for task in tasks:  # warm the server's file cache: both kinds then read the same way
            fetcher.fetch([task])
        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            ready = threading.Barrier(IN_FLIGHT)

            def set_up(_):  # each thread's session and metadata, before anything is measured
                fetcher_here()
                ready.wait()

            list(pool.map(set_up, range(IN_FLIGHT)))
            frame_cpu = server_cpu_per_request(orthanc.pid, pool, [lambda t=t: fetcher_here().fetch([t]) for t in tasks])
            render_cpu = server_cpu_per_request(orthanc.pid, pool,
                                                [lambda t=t: source.fetch_grey(fetcher_here(), t) for t in tasks])
        steps = client_steps(source, fetcher, load, tasks)
    client = sum(steps.values())
    cores = os.cpu_count() or 1
    n = len(tasks)
    floor_s = n * (render_cpu + client) / cores
    complete_s = n * frame_bytes * 8 / (args.rate_mbit * 1e6)
    print(f"rendered preview CPU, {args.key} ({n} x {info.rows}x{info.columns}), Orthanc, loopback, "
          f"{source.describe().split(', window')[0]}, {cores} cores")
    print(f"  server CPU per raw frame      {frame_cpu * 1e3:6.2f} ms")
    print(f"  server CPU per rendering     {render_cpu * 1e3:6.2f} ms")
    for step, seconds in steps.items():
        print(f"  client: {step:26} {seconds * 1e3:6.2f} ms")
    print(f"  client, all steps            {client * 1e3:6.2f} ms")
    print(f"  least preview phase: {n} x ({render_cpu * 1e3:.2f} + {client * 1e3:.2f}) ms / {cores} cores = "
          f"{floor_s:.2f} s, beside the frames alone at {args.rate_mbit:g} Mbit/s {complete_s:.1f} s: "
          f"{floor_s / complete_s:.3f} of it (metadata and probe not counted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
