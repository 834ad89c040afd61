"""The coverage floor and the visible set on a rate-limited link (docs/focus.md): what the floor
costs the boosted series, and how soon every series has its first coarse volume after the switch.
Prints a table; not a test. Needs root (a private network namespace, see netns.py); ~4 minutes.

    .venv/bin/python Testing/benchmarks/focus_floor.py [--rate 100mbit] [--repeat 1] [--switch-at 0,1]

The study of issue 24's measurement: A 240 x 512^2, B 60 x 512^2, C 96 x 240 x 512 (the `full`
sample's ct_thin, ct_thick, ct_sagittal) on one Orthanc, requested breadth-first with their
metadata fetched beforehand (as the console API's load does; Orthanc's metadata time varies a lot
under load and is not what is measured here). A first run warms Orthanc's caches and is not
counted. Runs, each in a fresh engine:
- boost: at each --switch-at time the user points a view at A; with the floor and without it (the
  peer; the order alternates between repeats); stopped once A is complete and every series has
  its coarse volume.
- visible: at the last --switch-at time A (touched last) and B are on screen, C nowhere; to the end.
"Coarse" is the end of the floor's last stage (every-8): anchors and every 8th slice exact.
"others": bytes the other series received between the switch and A's completion, as a share of
A's remaining bytes -- on a link-limited transfer, what the floor costs A in time, independent of
the machine's load (the times are not: the load average is printed).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # Testing/: servers, fixtures_data

from fixtures_data import cached_sample  # noqa: E402
from netns import inside, limit_loopback, rate_bits, run_inside  # noqa: E402
from servers.orthanc import OrthancServer  # noqa: E402

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer  # noqa: E402
from ProgressiveDicomFetchLib.dicomweb.metadata import series_metadata  # noqa: E402
from ProgressiveDicomFetchLib.geometry import series_geometry  # noqa: E402
from ProgressiveDicomFetchLib.loading import VolumeLoad  # noqa: E402
from ProgressiveDicomFetchLib.engine import FocusPolicy, ProgressiveFetchEngine, Shown, StagePlan  # noqa: E402
from ProgressiveDicomFetchLib.engine.focus_policy import floor_stage  # noqa: E402

SERIES = ("ct_thin", "ct_thick", "ct_sagittal")  # A, B, C
SETTLE_S = 1.5  # between runs: Orthanc drops idle keep-alive connections after 1 s; tbf refills
POLL_S = 0.01  # main-loop tick, like a 10 ms QTimer
COARSE = StagePlan().stage_ids()[floor_stage(StagePlan())]


def one_run(url: str, study: str, metadata: Dict[str, list], switch_at: float, floor: bool, visible: bool) -> Dict:
    """Times (s from the switch) of A's completion, each series' coarse volume and completion."""
    uids = list(metadata)
    loads = {uid: [VolumeLoad(volume, study, instances) for volume in series_geometry(instances, uid).volumes]
             for uid, instances in metadata.items()}  # buffers allocated before the clock starts
    engine = ProgressiveFetchEngine(DicomwebServer(url), policy=FocusPolicy(coverage_floor=floor))
    started = engine.started_at
    coarse: Dict[str, float] = {}
    complete: Dict[str, float] = {}
    switched: Optional[float] = None
    before: Dict[str, int] = {}
    at_a_complete: Dict[str, int] = {}
    try:
        for uid in uids:
            engine.add_series(study, uid, loads=loads[uid])
        while True:
            finished = engine.finished()
            for event in engine.process_events().events:
                if event.event == "stage" and event.stage == COARSE:
                    coarse.setdefault(event.series_uid, event.t)
                elif event.event == "complete":
                    complete.setdefault(event.series_uid, event.t)
                    if event.series_uid == uids[0]:  # what each series had when A completed (one tick late)
                        at_a_complete = {p.series_uid: p.bytes for p in engine.progress()}
            now = time.monotonic() - started
            if switched is None and now >= switch_at:
                before = {p.series_uid: p.bytes for p in engine.progress()}
                shown = [Shown(uids[0], ((0, 120.0),))] + ([Shown(uids[1])] if visible else [])
                engine.set_visible(shown, last_touched=uids[0])
                switched = now
            enough = uids[0] in complete and len(coarse) == len(uids) and not visible
            if finished or enough:
                break
            time.sleep(POLL_S)
    finally:
        engine.close()
    assert switched is not None
    others = sum(at_a_complete[uid] - before[uid] for uid in uids[1:])
    return {"floor": floor, "visible": visible, "switch": switched,
            "a_remaining_bytes": at_a_complete[uids[0]] - before[uids[0]], "others_bytes": others,
            "a_complete": complete[uids[0]] - switched,
            "coarse": {uid: coarse[uid] - switched for uid in uids},
            "complete": {uid: complete[uid] - switched for uid in uids if uid in complete}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", default="100mbit", help="tbf rate of the private loopback (root)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--switch-at", default="0,1", help="seconds before the view points at A (comma-separated)")
    args = parser.parse_args()
    try:
        rate = rate_bits(args.rate)
    except ValueError as error:
        parser.error(str(error))
    if rate is None:
        parser.error("a rate limit is needed (the figures are against the link rate)")
    try:
        switches = [float(t) for t in args.switch_at.split(",")]
    except ValueError:
        parser.error(f"--switch-at {args.switch_at!r}: seconds, comma-separated")
    if not inside():
        return run_inside([sys.executable, str(Path(__file__).resolve())] + sys.argv[1:], limited=True)
    sample = cached_sample("full")
    infos = [sample.series(key) for key in SERIES]
    uids = [info.series_uid for info in infos]
    files = [f for key in SERIES for f in sample.files(key)]
    print(f"A/B/C = {', '.join(f'{k} {i.num_slices}x{i.rows}x{i.columns}' for k, i in zip(SERIES, infos))}; "
          f"{sum(f.stat().st_size for f in files) / 1e6:.0f} MB; tbf {args.rate}")
    runs: List[Dict] = []
    with OrthancServer() as orthanc:
        orthanc.upload(files)
        study = infos[0].study_uid
        server = DicomwebServer(orthanc.dicomweb_url)
        metadata = {uid: series_metadata(server, study, uid) for uid in uids}
        one_run(orthanc.dicomweb_url, study, metadata, 0.0, True, True)  # warm-up, not counted
        limit_loopback(args.rate)
        for repeat in range(args.repeat):
            for switch in switches:
                for floor in ((True, False) if repeat % 2 == 0 else (False, True)):
                    time.sleep(SETTLE_S)
                    runs.append(dict(one_run(orthanc.dicomweb_url, study, metadata, switch, floor, False), at=switch))
        time.sleep(SETTLE_S)
        runs.append(dict(one_run(orthanc.dicomweb_url, study, metadata, switches[-1], True, True), at=switches[-1]))
    print(f"machine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    med = statistics.median
    print(f"{'boost A':22s} {'A complete':>11s} {'link limit':>11s} {'ratio':>6s} {'others':>7s}  coarse volume "
          f"after the switch (A / B / C, s)")
    for switch in switches:
        summary = {}
        for floor in (True, False):
            chosen = [r for r in runs if r["floor"] == floor and not r["visible"] and r["at"] == switch]
            ideal = med([r["a_remaining_bytes"] for r in chosen]) / (rate / 8)
            done = med([r["a_complete"] for r in chosen])
            coarse = [med([r["coarse"][uid] for r in chosen]) for uid in uids]
            others = med([r["others_bytes"] / r["a_remaining_bytes"] for r in chosen])
            summary[floor] = done
            label = f"at {med([r['switch'] for r in chosen]):.2f} s, floor {'on' if floor else 'off'}"
            print(f"{label:22s} {done:10.2f}s {ideal:10.2f}s {done / ideal:6.2f} {100 * others:6.1f}%  "
                  + " / ".join(f"{c:.2f}" for c in coarse))
        print(f"{'':22s} cost of the floor on A's completion: {summary[True] / summary[False]:.3f}x in time "
              f"(target <= 1.05)")
    last = runs[-1]
    print(f"visible set at {last['switch']:.2f} s (A touched last, B on screen, C nowhere): complete after the switch "
          + " / ".join(f"{key} {last['complete'][uid]:.2f} s" for key, uid in zip("ABC", uids))
          + "; coarse " + " / ".join(f"{key} {last['coarse'][uid]:.2f} s" for key, uid in zip("ABC", uids)))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
