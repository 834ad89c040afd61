"""The contenders of compare_alternatives.py, each fetching the same series from the same server:
our engine under three policies (and under a GIL-holding main loop), and what users would use
instead -- dicomweb-client retrieving series by series (Slicer's DICOM module for DICOMweb) or
instance by instance (the DICOMwebBrowser pattern).

Each contender runs in its own process (`python contenders.py NAME ...`), so its peak RSS is its
own; it writes one JSON record (ContenderRun). Times are seconds from the contender's start.
For dicomweb-client nothing is visible before a series is complete (both tools load a series
once all its files are in), so its first slice, covered and complete are the same moment; the
figures leave out writing the files and Slicer's import, which only add to their times.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from wire_meter import WireMeter

OURS = ("breadth-first", "depth-first", "focus-switch", "breadth-first-gil")
DWC_SERIES = "dwc-series"
DWC_INSTANCES = "dwc-instances"
CONTENDERS = OURS + (DWC_SERIES, DWC_INSTANCES)
SAMPLE_EVERY_S = 0.1  # progress curve resolution (keeps the JSON small)
POLL_S = 0.01  # main-loop tick of the plain (GIL-free) loop, like a 10 ms QTimer


@dataclass
class SeriesTimes:
    """Milestones of one series (None: never reached) and the pixel bytes it brought."""

    first_slice_s: Optional[float] = None
    covered_s: Optional[float] = None
    complete_s: Optional[float] = None
    bytes: int = 0


@dataclass
class ContenderRun:
    """One contender's run: what the session adds (wire bytes) comes on top, outside this process."""

    contender: str
    total_s: float
    series: Dict[str, SeriesTimes]
    body_bytes: int  # pixel data received (frames, or PixelData of whole instances)
    volume_bytes: int  # what the loaded volumes (or datasets' pixel data) occupy in memory
    baseline_rss: int  # VmRSS before fetching (interpreter and imports)
    peak_rss: int  # VmHWM at the end
    pump_ms: Dict[str, float] = field(default_factory=dict)  # process_events(): median, p95, max, calls
    focus: Optional[Dict[str, object]] = None  # t, series, remaining_bytes
    samples: List[Dict[str, object]] = field(default_factory=list)  # ProgressRecorder.to_json()
    wire: List[List[float]] = field(default_factory=list)  # WireMeter samples: [t, loopback bytes]


def memory_status(key: str) -> int:
    """VmRSS / VmHWM of this process, in bytes."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def pump_stats(durations: Sequence[float]) -> Dict[str, float]:
    if not durations:
        return {}
    ordered = sorted(durations)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median": 1000 * statistics.median(ordered), "p95": 1000 * p95, "max": 1000 * ordered[-1],
            "calls": float(len(ordered))}


class MainLoop:
    """The main thread's tick. Plain: a 10 ms poll that releases the GIL. GIL-holding: Slicer's
    embedded Python keeps the GIL while Qt idles (docs/architecture.md); emulated by `usleep` through
    ctypes.PyDLL, which does not release it, after engine.pump's GIL-free yield."""

    def __init__(self, gil: bool, idle_ms: float = 2.0, yield_ms: float = 8.0) -> None:
        self.usleep = ctypes.PyDLL(None).usleep if gil else None
        self.idle_ms = idle_ms
        self.yield_ms = yield_ms

    def wait(self) -> None:
        if self.usleep is None:
            time.sleep(POLL_S)
            return
        time.sleep(self.yield_ms / 1000.0)  # the GIL is free for the workers
        self.usleep(int(self.idle_ms * 1000))  # "idle" in Qt, holding the GIL


def run_ours(name: str, url: str, study: str, series: Sequence[str], focus_series: str, focus_after: float,
             recorder, connections: int = 4, main_loop: Optional[MainLoop] = None,
             max_connections: Optional[int] = None) -> ContenderRun:
    """Our engine as Slicer drives it: process_events() on each main-loop tick, timed. `name` is
    a policy of OURS; without `main_loop`, "-gil" in it selects the GIL-holding loop. Requests in
    flight follow the link up to `max_connections` (None: the engine's adaptive maximum; at most
    `connections`: fixed)."""
    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.engine import ADAPTIVE_MAX_CONNECTIONS, DEPTH_FIRST, ProgressiveFetchEngine

    policy = name[: -len("-gil")] if name.endswith("-gil") else name
    strategy = DEPTH_FIRST if policy == "depth-first" else "breadth-first"
    main_loop = main_loop or MainLoop(gil=name.endswith("-gil"))
    baseline = memory_status("VmRSS")
    started = time.monotonic()
    engine = ProgressiveFetchEngine(DicomwebServer(url), connections=connections, strategy=strategy,
                                    max_connections=max_connections or ADAPTIVE_MAX_CONNECTIONS)
    offset = engine.started_at - started  # event times are relative to the engine's start
    events, pumps = [], []
    focus: Optional[Dict[str, object]] = None
    next_sample = 0.0
    for uid in series:
        engine.add_series(study, uid)
    try:
        while True:
            done = engine.finished()
            t0 = time.perf_counter()
            update = engine.process_events()
            pumps.append(time.perf_counter() - t0)
            events += update.events
            now = time.monotonic() - started
            if now >= next_sample or done:
                recorder.sample(now, engine.progress(), final=done)
                next_sample = now + SAMPLE_EVERY_S
            if policy == "focus-switch" and focus is None and now >= focus_after:
                before = {p.series_uid: p for p in engine.progress()}[focus_series]
                engine.set_focus(focus_series)
                focus = {"t": now, "series": focus_series, "bytes_before": before.bytes,
                         "already_complete": before.full_fraction >= 1.0}
            if done:
                break
            main_loop.wait()
    finally:
        engine.close()
    total = time.monotonic() - started
    progress = {p.series_uid: p for p in engine.progress()}
    times = {uid: SeriesTimes(bytes=progress[uid].bytes) for uid in series}
    attribute = {"first_slice": "first_slice_s", "covered": "covered_s", "complete": "complete_s"}
    for event in events:
        if event.event in attribute and getattr(times[event.series_uid], attribute[event.event]) is None:
            setattr(times[event.series_uid], attribute[event.event], event.t + offset)
    if focus is not None:
        focus["remaining_bytes"] = progress[focus_series].bytes - int(focus.pop("bytes_before"))
    volume_bytes = sum(load.volume.nbytes for uid in series for load in engine.loads(uid))
    return ContenderRun(name, total, times,
                        sum(t.bytes for t in times.values()), volume_bytes, baseline, memory_status("VmHWM"),
                        pump_stats(pumps), focus, recorder.to_json())


def _sop_uids(client, study: str, series_uid: str) -> List[str]:
    found = client.search_for_instances(study_instance_uid=study, series_instance_uid=series_uid)
    return [item["00080018"]["Value"][0] for item in found]


def run_dicomweb_client(url: str, study: str, series: Sequence[str], per_instance: bool, recorder) -> ContenderRun:
    """dicomweb-client, one series after another; a series is visible once all its instances are in."""
    from dicomweb_client.api import DICOMwebClient

    baseline = memory_status("VmRSS")
    started = time.monotonic()
    client = DICOMwebClient(url=url)
    times: Dict[str, SeriesTimes] = {}
    peak_pixels = 0
    for uid in series:
        recorder.add(time.monotonic() - started, uid, 0.0, 0.0)
    for uid in series:
        if per_instance:
            datasets = [client.retrieve_instance(study, uid, sop) for sop in _sop_uids(client, study, uid)]
        else:
            datasets = client.retrieve_series(study, uid)
        now = time.monotonic() - started
        pixels = sum(len(ds.PixelData) for ds in datasets)
        peak_pixels = max(peak_pixels, pixels)  # the tools write a series out, then drop it
        times[uid] = SeriesTimes(now, now, now, pixels)
        recorder.add(now, uid, 1.0, 1.0)
        del datasets
    total = time.monotonic() - started
    name = DWC_INSTANCES if per_instance else DWC_SERIES
    return ContenderRun(name, total, times, sum(t.bytes for t in times.values()), peak_pixels, baseline,
                        memory_status("VmHWM"), samples=recorder.to_json())


def run(name: str, url: str, study: str, series: Sequence[str], focus_series: str, focus_after: float,
        max_connections: Optional[int] = None) -> ContenderRun:
    """One contender, with the link metered from its start (its imports are done before)."""
    import dicomweb_client.api  # noqa: F401
    import ProgressiveDicomFetchLib.engine  # noqa: F401
    from ProgressiveDicomFetchLib.output.progress_plot import ProgressRecorder

    if name not in CONTENDERS:
        raise ValueError(f"unknown contender {name!r} (have: {', '.join(CONTENDERS)})")
    recorder = ProgressRecorder()
    with WireMeter(time.monotonic()) as meter:
        if name in OURS:
            result = run_ours(name, url, study, series, focus_series, focus_after, recorder,
                              max_connections=max_connections)
        else:
            result = run_dicomweb_client(url, study, series, name == DWC_INSTANCES, recorder)
    result.wire = meter.samples
    return result


def from_json(record: Dict) -> ContenderRun:
    data = dict(record)
    data["series"] = {uid: SeriesTimes(**times) for uid, times in data["series"].items()}
    return ContenderRun(**{key: data[key] for key in ContenderRun.__dataclass_fields__})


def run_in_subprocess(name: str, url: str, study: str, series: Sequence[str], focus_series: str,
                      focus_after: float, out: Path, timeout: float, max_connections: Optional[int] = None) -> ContenderRun:
    """Run one contender in a fresh interpreter (its own peak RSS) and read back its record; it
    dies with the session (Testing/ is on the session's path for servers.process)."""
    from servers.process import die_with_parent

    command = [sys.executable, str(Path(__file__).resolve()), name, "--url", url, "--study", study,
               "--series", ",".join(series), "--focus-series", focus_series, "--focus-after", str(focus_after),
               "--out", str(out)] + (["--max-connections", str(max_connections)] if max_connections else [])
    subprocess.run(command, check=True, timeout=timeout, preexec_fn=die_with_parent)
    return from_json(json.loads(out.read_text()))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="run one benchmark contender and write its JSON record")
    parser.add_argument("contender", choices=CONTENDERS)
    parser.add_argument("--url", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--series", required=True, help="comma-separated SeriesInstanceUIDs, in order")
    parser.add_argument("--focus-series", required=True, help="the series focused by focus-switch")
    parser.add_argument("--focus-after", type=float, default=2.0)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--max-connections", type=int, help="our requests in flight at most (4: fixed, as before)")
    args = parser.parse_args(argv)
    result = run(args.contender, args.url, args.study, args.series.split(","), args.focus_series, args.focus_after,
                 args.max_connections)
    args.out.write_text(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
