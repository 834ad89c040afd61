"""`demo`: progressive loading seen within a minute of cloning, with nothing to configure.

Makes (or reuses) a generated CT study, serves it from the embedded sample server on loopback,
paced to a link rate so the stages can be watched, and fetches it with the `fetch` command's own
code (progress bars, timeline, NRRD files, focus changes, exit codes). Adds a progress record,
its plot, and a picture of the largest series refining (one plane at each level, and exact). Default rate 30 Mbit/s: the default sample (~38 MB) then takes ~10 s, long enough
to see anchors and decimated passes cover every series well before they are complete.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..engine import DEFAULT_CONNECTIONS, STRATEGIES
from ..engine.events import SeriesProgress
from ..files import atomic_write
from ..output.progress_plot import ProgressRecorder, plot_progress
from ..output.refinement_picture import plot_refinement
from ..volume.refinement import refinement_planes
from ..sampledata import PROFILES
from ..sampledata.manifest import SampleManifest
from ..sampledata.sample_cache import DEFAULT_PROFILE, SampleSet, default_sample_dir, ensure_sample
from ..sampledata.sample_server import SampleServer
from ..sampledata.throttle import format_rate, parse_rate
from . import fetch_command

DEFAULT_RATE = "30mbit"
DEFAULT_OUT = Path("demo-output")
TIMELINE_NAME = "timeline.json"
PROGRESS_NAME = "progress.json"
PLOT_NAME = "timeline.png"
PICTURE_NAME = "refinement.png"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "demo", help="fetch a generated sample study from an embedded local server (no set-up)",
        description="Generates a CT study once (cached), serves it on 127.0.0.1 at a limited rate and "
                    "loads it progressively: NRRD volumes, timeline JSON and a PNG plot of the progress.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"folder for the outputs (default ./{DEFAULT_OUT}; created if needed)")
    parser.add_argument("--rate", default=DEFAULT_RATE,
                        help=f"link rate in bits/s: 30mbit, 500kbit, 1gbit, 8000000 or 'off' (default {DEFAULT_RATE}: "
                             "the default sample then takes ~10 s, so the stages are visible)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="breadth-first")
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS)
    parser.add_argument("--focus", action="append", default=[], metavar="SECONDS:SERIES[:SLICE]",
                        help="move the focus as in `fetch`; SERIES is a SeriesInstanceUID or a sample key "
                             "(ct_thin, ct_thick, ct_sagittal), e.g. 2:ct_sagittal:30")
    parser.add_argument("--cache", type=Path, metavar="DIR",
                        help=f"where the sample study is kept (default {default_sample_dir()})")
    parser.add_argument("--sample", choices=sorted(PROFILES), default=DEFAULT_PROFILE,
                        help=f"sample size (default {DEFAULT_PROFILE}: 256x256, 200 thin slices; small: 128x128, 80)")


def run(args: argparse.Namespace) -> int:
    try:
        rate = parse_rate(args.rate)
    except ValueError as error:
        raise ValueError(f"--rate: {error}") from None
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} exists and is not a folder")
    sample = ensure_sample(args.cache, args.sample)
    focus = [_focus_with_uid(text, sample.manifest) for text in args.focus]
    study_bytes = _study_bytes(sample)
    made = "reused" if sample.generated_s is None else f"generated in {sample.generated_s:.1f} s"
    print(f"sample study: {len(sample.manifest.series_list)} series, {study_bytes / 1e6:.1f} MB "
          f"in {sample.manifest.root.parent} ({made})")
    recorder = ProgressRecorder()
    last: List[Tuple[float, Sequence[SeriesProgress]]] = []

    def record(t: float, snapshots: Sequence[SeriesProgress]) -> None:
        recorder.sample(t, snapshots)
        last[:] = [(t, snapshots)]

    with SampleServer(sample.tree.root, rate_bps=rate) as server:
        expected = "" if rate is None else f", ~{study_bytes * 8 / rate:.0f} s at that rate"
        print(f"serving it at {server.url} ({format_rate(rate)}{expected})", flush=True)
        code = fetch_command.run(_fetch_args(server.url, sample.study_uid, args, focus), on_progress=record)
    if last:
        recorder.sample(last[0][0], last[0][1], final=True)
    _write_progress(args.out / PROGRESS_NAME, recorder)
    timeline = json.loads((args.out / TIMELINE_NAME).read_text())
    labels = _labels(recorder, timeline)
    plotted = _plot(args, recorder, timeline, labels, study_bytes, rate)
    pictured = _picture(args.out, timeline, labels)
    _print_figures(timeline, labels)
    _print_outputs(args.out, plotted, pictured)
    return code


def _fetch_args(url: str, study_uid: str, args: argparse.Namespace, focus: List[str]) -> argparse.Namespace:
    """The `fetch` command's own options, parsed by its own parser (so its defaults and checks hold)."""
    parser = argparse.ArgumentParser(prog="demo")
    fetch_command.add_parser(parser.add_subparsers(dest="command"))
    argv = ["fetch", "--url", url, "--study", study_uid, "--out", str(args.out),
            "--timeline", str(args.out / TIMELINE_NAME), "--strategy", args.strategy,
            "--connections", str(args.connections)]
    for text in focus:
        argv += ["--focus", text]
    return parser.parse_args(argv)


def _focus_with_uid(text: str, manifest: SampleManifest) -> str:
    """`2:ct_sagittal:30` -> `2:<its SeriesInstanceUID>:30`; anything else goes to fetch as it is."""
    parts = text.split(":")
    if len(parts) in (2, 3) and manifest.has(parts[1]):
        parts[1] = manifest.series(parts[1]).series_uid
    return ":".join(parts)


def _study_bytes(sample: SampleSet) -> int:
    return sum(sample.tree.frame_path(i, n).stat().st_size
               for i in sample.tree.instances for n in range(1, i.frames + 1))


def _labels(recorder: ProgressRecorder, timeline: Dict[str, Any]) -> Dict[str, str]:
    """Series UID -> "2: AXIAL 1.5mm STANDARD (200 sl.)" for the plot and the figures."""
    labels = {}
    for uid, record in timeline["series"].items():
        name = recorder.labels.get(uid) or uid
        labels[uid] = f"{name} ({record['slices']} sl.)"
    return labels


def _write_progress(path: Path, recorder: ProgressRecorder) -> None:
    with atomic_write(path, text=True) as handle:
        json.dump(recorder.to_json(), handle, indent=None, separators=(",", ":"))
        handle.write("\n")


def _plot(args: argparse.Namespace, recorder: ProgressRecorder, timeline: Dict[str, Any],
          labels: Dict[str, str], study_bytes: int, rate: Optional[float]) -> Optional[Path]:
    panel = f"{args.strategy}, {args.connections} connections, {format_rate(rate)}"
    marks = [(event["t"], f"focus: {labels.get(event['series'], event['series']).split(' (')[0]}")
             for event in timeline["events"] if event["event"] == "focus"]
    marks += _stage_marks(timeline)
    try:
        return plot_progress({panel: recorder.samples}, args.out / PLOT_NAME,
                             title=f"ProgressiveDicomFetch demo: {study_bytes / 1e6:.1f} MB sample study "
                                   "(dashed: within 1/8 of an exact slice, solid: full quality, dots: levels)",
                             labels=labels, events={panel: sorted(marks)})
    except RuntimeError as error:  # matplotlib missing: the rest of the demo still stands
        print(f"plot skipped: {error}", file=sys.stderr)
        return None


def _picture(out: Path, timeline: Dict[str, Any], labels: Dict[str, str]) -> Optional[Path]:
    """The refinement picture of the series with the most slices, from its exact NRRD file."""
    records = {uid: r for uid, r in timeline["series"].items() if r["complete_s"] is not None and (out / f"{uid}.nrrd").is_file()}
    if not records:
        return None
    uid = max(records, key=lambda u: records[u]["slices"])
    try:
        import nrrd  # the demo's own extra, as for the NRRD files
        data, header = nrrd.read(str(out / f"{uid}.nrrd"), index_order="C")
        directions = np.asarray(header["space directions"], dtype=float)
        spacing = (float(np.linalg.norm(directions[0])), float(np.linalg.norm(directions[2])))
        return plot_refinement(refinement_planes(data), out / PICTURE_NAME, spacing, title=f"{labels.get(uid, uid)}: the plane through "
                               "the middle row as the buffer shows it at each level (missing slices filled linearly)")
    except (ImportError, RuntimeError) as error:  # pynrrd or matplotlib missing: the rest of the demo still stands
        print(f"refinement picture skipped: {error}", file=sys.stderr)
        return None


def _stage_marks(timeline: Dict[str, Any]) -> List[Tuple[float, str]]:
    """When every series had finished each stage but the last (the coarse-to-fine steps)."""
    records = list(timeline["series"].values())
    stages = [stage for stage in (records[0]["stages"] if records else {}) if stage != "rest"]
    marks = []
    for stage in stages:
        times = [record["stages"].get(stage) for record in records]
        if times and all(t is not None for t in times):
            marks.append((max(times), f"{stage} done"))
    return marks


def _print_figures(timeline: Dict[str, Any], labels: Dict[str, str]) -> None:
    def seconds(value: Optional[float]) -> str:
        return "never" if value is None else f"{value:.2f} s"

    columns = ("first slice", "1/8 exact", "1/4 exact", "1/2 exact", "complete")
    print("\n" + f"{'series':<40}" + "".join(f"{name:>12}" for name in columns) + f"{'MB':>10}")
    for uid, record in timeline["series"].items():
        times = [record["first_slice_s"]] + [record["coarse_s"][level] for level in ("8", "4", "2")] + [record["complete_s"]]
        print(f"{labels.get(uid, uid)[:40]:<40}" + "".join(f"{seconds(t):>12}" for t in times)
              + f"{record['bytes'] / 1e6:10.1f}")
    print(f"{'total':<40}{'':>48}{seconds(timeline['total_s']):>12}{timeline['bytes'] / 1e6:10.1f}")


def _print_outputs(out: Path, plotted: Optional[Path], pictured: Optional[Path]) -> None:
    volumes = sorted(out.glob("*.nrrd"))
    print(f"\nNRRD volumes ({len(volumes)}): {out}/*.nrrd")
    print(f"timeline:  {out / TIMELINE_NAME}")
    print(f"progress:  {out / PROGRESS_NAME}")
    if plotted is not None:
        print(f"plot:      {plotted}")
    if pictured is not None:
        print(f"picture:   {pictured}")
