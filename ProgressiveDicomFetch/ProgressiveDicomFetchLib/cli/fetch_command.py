"""`fetch`: load series progressively with the engine, write one NRRD per volume, and a timeline.

Contract (docs/architecture.md): NRRD files named `<SeriesInstanceUID>.nrrd` (`_<n>` for a series that
splits into several volumes) with exact geometry and modality values; `--focus SECONDS:UID[:SLICE]`
moves the focus during the run (`SECONDS:UID_A,UID_B[:SLICE]`: both on screen, A touched last, the
slice A's); `--timeline FILE.json` records what happened when.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

from ..cache import DEFAULT_MAX_BYTES, FrameCache
from ..dicomweb.filters import check_single_uid
from ..engine import ADAPTIVE_MAX_CONNECTIONS, DEFAULT_CONNECTIONS, STRATEGIES, ProgressiveFetchEngine, Shown, StagePlan
from ..engine.events import SeriesProgress
from ..engine.timeline import Timeline
from ..geometry.series_geometry import NON_IMAGE_MODALITIES
from ..output import require_nrrd, write_series_nrrd
from ..transport import search_functions
from .connection_options import add_connection_options, server_from_args
from .dicom_files import add_dicom_options, check_dicom_options, write_dicom_files
from .progress_display import ProgressDisplay

logger = logging.getLogger(__name__)

# Called with (seconds from the command's start, progress snapshots) at every display update (demo's plot).
ProgressHook = Callable[[float, Sequence[SeriesProgress]], None]


@dataclass(frozen=True)
class FocusChange:
    """A scripted view change: the series on screen from `at_s` on, the first touched last."""

    at_s: float
    series_uids: Tuple[str, ...]
    slice: Optional[int]  # the slice in view in the first series

    @property
    def series_uid(self) -> str:
        return self.series_uids[0]

    @classmethod
    def parse(cls, text: str) -> "FocusChange":
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"--focus {text!r} must be SECONDS:SERIES_UID[,SERIES_UID...][:SLICE]")
        try:
            at = float(parts[0])
            slice_index = int(parts[2]) if len(parts) == 3 else None
        except ValueError:
            raise ValueError(f"--focus {text!r}: SECONDS is a number and SLICE an integer") from None
        if at < 0 or (slice_index is not None and slice_index < 0):
            raise ValueError(f"--focus {text!r}: times and slices cannot be negative")
        uids = tuple(parts[1].split(","))
        if not all(uids):
            raise ValueError(f"--focus {text!r}: an empty series UID")
        for uid in uids:
            check_single_uid("SeriesInstanceUID", uid)
        if len(set(uids)) != len(uids):
            raise ValueError(f"--focus {text!r} names a series twice")
        return cls(at, uids, slice_index)

    def shown(self) -> List[Shown]:
        viewed = () if self.slice is None else ((0, float(self.slice)),)
        return [Shown(self.series_uids[0], viewed)] + [Shown(uid) for uid in self.series_uids[1:]]


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("fetch", help="load series progressively and write NRRD volumes",
                                 description="Every series appears coarse first and is refined until exact.")
    add_connection_options(parser)
    parser.add_argument("--study", required=True, help="StudyInstanceUID")
    parser.add_argument("--series", action="append", default=[], metavar="UID",
                        help="SeriesInstanceUID (repeat; default: every image series of the study)")
    parser.add_argument("--out", type=Path, help="folder for the NRRD files (created if needed)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="breadth-first")
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS,
                        help="requests in flight at the start (default %(default)s)")
    parser.add_argument("--max-connections", type=int, default=ADAPTIVE_MAX_CONNECTIONS,
                        help="the requests in flight follow the link, up to this many (default %(default)s; "
                             "--connections or less: a fixed pool of --connections, e.g. --max-connections 4)")
    parser.add_argument("--focus", action="append", default=[], metavar="SECONDS:SERIES_UID[,SERIES_UID...][:SLICE]",
                        help="move the focus to a series (and slice) this many seconds after the start; several "
                             "series: all on screen, the first touched last (it gets the largest share)")
    parser.add_argument("--stages", default=str(StagePlan()),
                        help=f"stage plan (default: {StagePlan()}; preview-N: in-plane previews of every Nth "
                             "slice, then of the rest, where the server offers them; 'anchors,8,4,2': none)")
    parser.add_argument("--rendered-previews", nargs="?", const="on", default="off", choices=("off", "auto", "on"),
                        help="previews from the server's /rendered JPEGs, calibrated back to modality values on "
                             "one exact frame, where a series has no other preview source (e.g. Orthanc): 'on' "
                             "(the flag alone) always, 'auto' where the link makes them pay, 'off' (default) never")
    parser.add_argument("--timeline", type=Path, metavar="FILE.json", help="write the timeline JSON here")
    parser.add_argument("--cache", type=Path, metavar="DIR",
                        help="on-disk frame cache: frames found there are not downloaded again (resume)")
    parser.add_argument("--cache-size", type=float, default=DEFAULT_MAX_BYTES / 1e6, metavar="MB",
                        help=f"cap of the cache; least recently used frames go first (default {DEFAULT_MAX_BYTES / 1e6:g})")
    parser.add_argument("--gzip", action="store_true", help="gzip-compress the NRRD voxels (slower)")
    add_dicom_options(parser)


def run(args: argparse.Namespace, on_progress: Optional[ProgressHook] = None) -> int:
    started = time.monotonic()
    if not args.no_nrrd:
        require_nrrd()  # before the first byte: a missing writer must not cost a whole download
    if args.cache_size <= 0:
        raise ValueError("--cache-size must be positive (megabytes)")
    if args.connections < 1:
        raise ValueError("--connections must be at least 1")
    check_single_uid("StudyInstanceUID", args.study)
    for uid in args.series:
        check_single_uid("SeriesInstanceUID", uid)
    focus = sorted((FocusChange.parse(text) for text in args.focus), key=lambda f: f.at_s)
    unknown = {uid for f in focus for uid in f.series_uids} - set(args.series) if args.series else set()
    if unknown:
        raise ValueError(f"--focus names series not requested with --series: {', '.join(sorted(unknown))}")
    check_dicom_options(args)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} exists and is not a folder")
    cache = FrameCache(args.cache, max_bytes=int(args.cache_size * 1e6)) if args.cache is not None else None
    server = server_from_args(args)
    series = list(args.series) or _image_series(server, args.study)
    if not args.no_nrrd:
        args.out.mkdir(parents=True, exist_ok=True)
    engine = ProgressiveFetchEngine(server, connections=args.connections, strategy=args.strategy,
                                    plan=StagePlan.parse(args.stages), cache=cache,
                                    rendered=args.rendered_previews, max_connections=args.max_connections)
    timeline = Timeline(start=started, event_offset_s=engine.started_at - started)  # times from the command's start
    display = ProgressDisplay(sys.stderr)
    try:
        for uid in series:
            timeline.add_series(uid)
            engine.add_series(args.study, uid)
        _pump(engine, timeline, display, focus, started, on_progress)
    except KeyboardInterrupt:
        engine.close()
        display.close()
        raise
    display.close()
    engine.close()
    final = engine.progress()
    timeline.observe(final)
    if on_progress is not None:
        on_progress(time.monotonic() - started, final)
    timeline.finish()
    failed = _write_outputs(engine, series, args)
    for uid in series:  # cine frame times (first volume of the series) extend its timeline record
        times = next((load.geometry.frame_times_ms for load in engine.loads(uid) if load.geometry.frame_times_ms), None)
        if times:
            timeline.add_series(uid).frame_times_ms = times
    failed += write_dicom_files(args, server, [uid for uid in series if uid not in failed], cache)
    if args.timeline is not None:
        timeline.write(args.timeline)
    for line in timeline.summary():
        print(line)
    if cache is not None:
        stats = cache.stats
        print(f"cache {cache.root}: {stats.hits} frames ({stats.hit_bytes / 1e6:.1f} MB) read from it, "
              f"{stats.stores} stored, {stats.evictions} evicted")
    written = ([f"NRRD files in {args.out}"] if not args.no_nrrd else []) + ([f"DICOM files in {args.dicom}"] if args.dicom else [])
    print("; ".join(written + ([f"timeline in {args.timeline}"] if args.timeline else [])))
    return 1 if failed else 0


def _image_series(server, study_uid: str) -> List[str]:
    """Every series of the study that holds images (SR, SEG, ... are left out, and said so)."""
    found = search_functions(server).search_series(server, study_uid)
    images = [s for s in found if s.modality.upper() not in NON_IMAGE_MODALITIES]
    for skipped in (s for s in found if s.modality.upper() in NON_IMAGE_MODALITIES):
        logger.warning("series %s (%s) holds no images: not fetched", skipped.series_uid, skipped.modality)
    if not images:
        raise ValueError(f"study {study_uid} has no image series")
    return [s.series_uid for s in images]


def _pump(engine: ProgressiveFetchEngine, timeline: Timeline, display: ProgressDisplay,
          focus: List[FocusChange], started: float, on_progress: Optional[ProgressHook] = None) -> None:
    """The main loop: events to the timeline, progress to the terminal, scripted focus changes."""
    pending = list(focus)
    while True:
        finished = engine.finished()
        update = engine.process_events()
        timeline.extend(update.events)
        while pending and time.monotonic() - started >= pending[0].at_s:
            change = pending.pop(0)
            engine.set_visible(change.shown(), last_touched=change.series_uid)
        snapshots = engine.progress()
        display.update(snapshots)
        if on_progress is not None:
            on_progress(time.monotonic() - started, snapshots)
        if finished and not pending:
            timeline.extend(engine.process_events().events)
            return
        if finished:  # nothing left to fetch: later focus changes have nothing to boost
            logger.info("all series finished before the focus change at %.1f s", pending[0].at_s)
            pending.clear()
        time.sleep(0.02)


def _write_outputs(engine: ProgressiveFetchEngine, series: List[str], args: argparse.Namespace) -> List[str]:
    """NRRD files for complete series only (never a half-loaded volume on disk); returns the failed ones."""
    failed = []
    for snapshot in engine.progress():
        if snapshot.state != "complete":
            failed.append(snapshot.series_uid)
            print(f"error: series {snapshot.series_uid} not complete ({snapshot.state}): "
                  f"{snapshot.error or 'no file written'}", file=sys.stderr)
            continue
        if not args.no_nrrd:
            write_series_nrrd(args.out, snapshot.series_uid, engine.loads(snapshot.series_uid),
                              encoding="gzip" if args.gzip else "raw")
    return failed
