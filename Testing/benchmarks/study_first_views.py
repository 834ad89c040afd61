"""A whole study through a far link: when does every series show (its first slice), and when is all
of it complete? The small profile's three-series study (the one Testing/test_engine.py loads)
from a real Orthanc behind the latency relay, breadth-first, requests in flight following the
link. Give one `--lib` per checkout to compare (e.g. the commit before a change, unpacked with
`git archive <commit> ProgressiveDicomFetch | tar -x -C /tmp/before`): their runs alternate, each
in its own process, and the medians print side by side. Not a test.

    .venv/bin/python Testing/benchmarks/study_first_views.py --rtt 0.2 \
        --lib /tmp/before/ProgressiveDicomFetch --lib ProgressiveDicomFetch
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # Testing/: servers, fixtures_data

logger = logging.getLogger("study_first_views")

SETTLE_S = 0.5
STUDY_SERIES = ("ct_thin", "ct_sagittal", "ct_thick")  # 80, 48 and 40 slices


def run(url: str, series: List[List[str]], strategy: str) -> Dict:
    """One load (in this process, the Lib first on sys.path): first-slice times and complete."""
    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.engine import ADAPTIVE_MAX_CONNECTIONS, ProgressiveFetchEngine

    engine = ProgressiveFetchEngine(DicomwebServer(url), connections=4, strategy=strategy,
                                    max_connections=ADAPTIVE_MAX_CONNECTIONS)
    first: Dict[str, float] = {}
    complete: Dict[str, float] = {}

    def collect(update) -> None:
        for event in update.events:
            if event.event == "first_slice":
                first.setdefault(event.series_uid, event.t)
            elif event.event == "complete":
                complete[event.series_uid] = event.t

    try:
        for study_uid, series_uid in series:
            engine.add_series(study_uid, series_uid)
        if not engine.run_until_finished(collect, poll_s=0.01, timeout=600):
            raise RuntimeError("the load did not finish within 600 s")
    finally:
        engine.close()
    return {"every_series_shown_s": max(first.values()), "complete_s": max(complete.values())}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt", type=float, default=0.2, help="round trip of the relay, seconds")
    parser.add_argument("--rate-mbit", type=float, default=40.0)
    parser.add_argument("--strategy", default="breadth-first")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lib", action="append", help="a checkout's ProgressiveDicomFetch folder (repeatable)")
    parser.add_argument("--run", nargs=2, metavar=("URL", "SERIES_JSON"), help=argparse.SUPPRESS)  # one load, internal
    args = parser.parse_args(argv)
    if args.run:
        print(json.dumps(run(args.run[0], json.loads(args.run[1]), args.strategy)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from fixtures_data import cached_sample
    from servers.latency_relay import LatencyRelay
    from servers.orthanc import OrthancServer

    libs = [str(Path(lib).resolve()) for lib in (args.lib or [str(HERE.parent.parent / "ProgressiveDicomFetch")])]
    sample = cached_sample("small")
    series = json.dumps([[sample.series(k).study_uid, sample.series(k).series_uid] for k in STUDY_SERIES])
    results: Dict[str, List[Dict]] = {lib: [] for lib in libs}
    with OrthancServer() as orthanc:
        for key in STUDY_SERIES:
            orthanc.upload(sample.files(key))
        for repeat in range(args.repeats):
            for lib in libs:
                with LatencyRelay(orthanc.port, args.rtt, args.rate_mbit * 1e6, lifetime_s=600.0) as relay:
                    time.sleep(SETTLE_S)
                    command = [sys.executable, __file__, "--strategy", args.strategy, "--run", relay.dicomweb_url, series]
                    out = subprocess.run(command, env={"PYTHONPATH": lib, "PATH": "/usr/bin:/bin"}, check=True,
                                         capture_output=True, text=True, timeout=600).stdout
                record = json.loads(out.strip().splitlines()[-1])
                results[lib].append(record)
                logger.info("run %d, %s: %s", repeat, lib, record)
    print(f"study of {len(STUDY_SERIES)} series, {args.strategy}, {args.rtt * 1000:.0f} ms round trip, "
          f"{args.rate_mbit:g} Mbit/s, {args.repeats} runs each (medians)")
    for lib, records in results.items():
        print(f"  {lib}: every series shown {statistics.median(r['every_series_shown_s'] for r in records):.2f} s, "
              f"complete {statistics.median(r['complete_s'] for r in records):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
