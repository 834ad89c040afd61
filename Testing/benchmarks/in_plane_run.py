"""One run of in_plane_stages.py, in its own process: our engine fetches the HTJ2K RPCL series under
one stage plan, driven like Slicer drives it (process_events() on a 10 ms tick), and copies the
volume at the moments the preview is judged -- the EventKind.COVERED event, the end of every stage but the
last (the end of "preview-rest" is the all-previewed moment; the last one is judged on the final
volume), and optionally a given time (the
other plan's all-previewed moment). The copies are compared
with the truth only after the run, so judging them does not slow the fetch.

    python in_plane_run.py --plan preview-4,anchors,8,4,2 --url URL --study UID --series UID \
        --truth truth.npy --out run.json [--snapshot-at SECONDS]

Times are seconds from the run's start (imports done); bytes are the engine's body bytes; the
per-frame breakdown (step_timers.py) is summed over the run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from step_timers import StepTimers
from wire_meter import WireMeter

POLL_S = 0.01  # main-loop tick, like a 10 ms QTimer
AT_COVERED = "covered"
AT_GIVEN_TIME = "at_time"
AT_STAGE = "stage:"  # + stage id: at the end of that stage
PREVIEW_REST = "preview-rest"  # the stage id that ends the in-plane previews (engine/stage_plan.py)
LAST_STAGE = "rest"  # its end is the complete volume, checked against the truth as a whole
AT_ALL_PREVIEWED = AT_STAGE + PREVIEW_REST


@dataclass
class Snapshot:
    """The preview at one moment, against the truth (modality values, HU for CT)."""

    t: float  # when the copy was done (the event itself is up to one tick earlier)
    counts: Dict[str, int]  # slices per quality level at that moment
    mae: Optional[float] = None  # mean absolute error over all voxels
    psnr_db: Optional[float] = None  # peak = truth max - truth min; inf when exact
    wire_bytes: Optional[int] = None  # loopback bytes so far (both directions, headers included)


@dataclass
class PlanRun:
    """One plan's run; the session adds the namespace's wire bytes (measured outside this process)."""

    plan: str
    first_slice_s: Optional[float] = None
    covered_s: Optional[float] = None
    all_previewed_s: Optional[float] = None  # EventKind.STAGE "preview-rest"; None without in-plane stage
    complete_s: Optional[float] = None
    total_s: float = 0.0
    stages: Dict[str, float] = field(default_factory=dict)  # stage id -> when it finished
    body_bytes: int = 0
    final_exact: bool = False  # the complete volume equals the truth voxel for voxel
    errors: List[str] = field(default_factory=list)
    snapshots: Dict[str, Snapshot] = field(default_factory=dict)
    wire: List[List[float]] = field(default_factory=list)  # WireMeter samples: [t, loopback bytes]
    breakdown: Dict[str, Dict[str, float]] = field(default_factory=dict)  # StepTimers: per step calls, wall, CPU
    preview_note: str = ""  # what the probe found (the preview source, or why none)


def preview_error(volume: np.ndarray, truth: np.ndarray) -> Tuple[float, float]:
    """(mean absolute error, PSNR in dB) slice by slice: no volume-sized float temporary."""
    from ProgressiveDicomFetchLib.volume.preview_quality import psnr_db

    if volume.shape != truth.shape:
        raise ValueError(f"volume {volume.shape} and truth {truth.shape} differ in shape")
    absolute = squared = 0.0
    for k in range(truth.shape[0]):
        diff = volume[k].astype(np.float64) - truth[k]
        absolute += float(np.abs(diff).sum())
        squared += float(np.dot(diff.ravel(), diff.ravel()))
    peak = float(truth.max()) - float(truth.min()) or 1.0
    return absolute / truth.size, psnr_db(squared / truth.size, peak)


def _wire_at(samples: Sequence[Sequence[float]], t: float) -> Optional[int]:
    before = [n for s, n in samples if s <= t]
    return int(before[-1]) if before else None


def run_plan(plan: str, url: str, study: str, series: str, connections: int = 4,
             snapshot_at: Optional[float] = None, rendered: str = "off") -> Tuple[PlanRun, Dict[str, np.ndarray]]:
    """Fetch the series under `plan`; returns the record and the volume copies by moment."""
    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine, StagePlan
    from ProgressiveDicomFetchLib.engine.events import EventKind

    stage_plan = StagePlan.parse(plan)
    record = PlanRun(str(stage_plan))
    copies: Dict[str, np.ndarray] = {}
    timers = StepTimers().install()
    started = time.monotonic()
    with WireMeter(started) as meter:
        engine = ProgressiveFetchEngine(DicomwebServer(url), connections=connections, plan=stage_plan,
                                        rendered=rendered)
        offset = engine.started_at - started  # event times are relative to the engine's start

        def snap(moment: str) -> None:
            loads = engine.loads(series)
            copies[moment] = loads[0].volume.array.copy() if loads else np.zeros(0)  # no geometry yet: all zero
            counts = {q.name: n for q, n in loads[0].volume.counts().items()} if loads else {}
            record.snapshots[moment] = Snapshot(round(time.monotonic() - started, 4), counts)

        engine.add_series(study, series)
        try:
            while True:
                done = engine.finished()
                events = engine.process_events().events
                now = time.monotonic() - started
                for event in events:
                    t = event.t + offset
                    if event.event == EventKind.FIRST_SLICE and record.first_slice_s is None:
                        record.first_slice_s = t
                    elif event.event == EventKind.COVERED and record.covered_s is None:
                        record.covered_s = t
                        snap(AT_COVERED)
                    elif event.event == EventKind.STAGE and event.stage:
                        record.stages[event.stage] = t
                        if event.stage == PREVIEW_REST:
                            record.all_previewed_s = t
                        if event.stage != LAST_STAGE:
                            snap(AT_STAGE + event.stage)
                    elif event.event == EventKind.COMPLETE:
                        record.complete_s = t
                    elif event.event == EventKind.ERROR:
                        record.errors.append(event.message or "error")
                if snapshot_at is not None and AT_GIVEN_TIME not in copies and now >= snapshot_at:
                    snap(AT_GIVEN_TIME)
                if done:
                    break
                time.sleep(POLL_S)
        finally:
            engine.close()
            timers.uninstall()
        record.breakdown = timers.record()
        record.total_s = time.monotonic() - started
        record.body_bytes = sum(p.bytes for p in engine.progress() if p.series_uid == series)
        record.preview_note = engine._series[series].preview_note
        loads = engine.loads(series)
        if len(loads) != 1:
            record.errors.append(f"the series gave {len(loads)} volumes, the benchmark expects one")
        copies["final"] = loads[0].volume.array if loads else np.zeros(0)
        if loads and LAST_STAGE in record.stages:  # the end of the last stage: the volume as it is now
            copies[AT_STAGE + LAST_STAGE] = copies["final"]
            record.snapshots[AT_STAGE + LAST_STAGE] = Snapshot(
                round(record.stages[LAST_STAGE], 4), {q.name: n for q, n in loads[0].volume.counts().items()})
    record.wire = meter.samples
    return record, copies


def judge(record: PlanRun, copies: Dict[str, np.ndarray], truth: np.ndarray) -> None:
    """Fill in each snapshot's error and the wire bytes at its moment; check the final volume."""
    final = copies.pop("final")
    record.final_exact = final.shape == truth.shape and bool(np.array_equal(final, truth))
    for moment, volume in copies.items():
        snapshot = record.snapshots[moment]
        snapshot.mae, snapshot.psnr_db = preview_error(volume if volume.size else np.zeros_like(truth), truth)
        snapshot.wire_bytes = _wire_at(record.wire, snapshot.t)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="one run of the in-plane benchmark; writes its JSON record")
    parser.add_argument("--plan", required=True, help="stage plan, e.g. preview-4,anchors,8,4,2")
    parser.add_argument("--url", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--series", required=True)
    parser.add_argument("--truth", required=True, type=Path, help="the truth volume (.npy, modality values)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--snapshot-at", type=float, help="also copy the volume this many seconds after the start")
    parser.add_argument("--rendered", nargs="?", const="on", default="off", choices=("off", "auto", "on"),
                        help="/rendered previews (previews/rendered.py): the flag alone is 'on'")
    args = parser.parse_args(argv)
    import ProgressiveDicomFetchLib.engine  # noqa: F401  (imports before the clock starts)

    record, copies = run_plan(args.plan, args.url, args.study, args.series, args.connections, args.snapshot_at,
                              args.rendered)
    judge(record, copies, np.load(str(args.truth)))
    args.out.write_text(json.dumps(asdict(record)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
