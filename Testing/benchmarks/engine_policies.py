"""Engine figures per scheduling policy against a real Orthanc: time to first slice, covered and
complete per series, throughput, and main-thread pump cost. Prints a table; not a test.

    .venv/bin/python Testing/benchmarks/engine_policies.py                 # plain loopback
    .venv/bin/python Testing/benchmarks/engine_policies.py --rate 100mbit  # kernel tbf, private netns
    .venv/bin/python Testing/benchmarks/engine_policies.py --gil-main-loop # Slicer-like main thread

With --rate the script re-runs itself under `unshare -n` (root): a private network namespace
whose loopback is rate-limited by `tc ... tbf`; Orthanc and the client both live in it.
--gil-main-loop emulates Slicer's embedded Python, whose idle main thread holds the GIL
(docs/architecture.md): between pumps the main thread sleeps in `usleep` through ctypes.PyDLL, which
does not release the GIL, so workers advance only while the main thread runs Python.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # Testing/: servers, fixtures_data
sys.path.insert(0, str(HERE))  # the benchmark helpers next to this file

from contenders import MainLoop, run_ours  # noqa: E402
from fixtures_data import cached_sample  # noqa: E402
from netns import inside, limit_loopback, rate_bits, run_inside  # noqa: E402
from servers.orthanc import OrthancServer  # noqa: E402

from ProgressiveDicomFetchLib.output.progress_plot import ProgressRecorder  # noqa: E402

SERIES = ("ct_thin", "ct_thick", "ct_sagittal")
POLICIES = ("breadth-first", "depth-first", "focus-switch")


def run_policy(url: str, sample, policy: str, connections: int, gil: bool, focus_after: float,
               idle_ms: float = 2.0, yield_ms: float = 8.0) -> Dict:
    """One policy through the shared contender loop (contenders.run_ours), in this table's terms."""
    largest = max(SERIES, key=lambda k: sample.series(k).num_instances)
    uids = [sample.series(key).series_uid for key in SERIES]
    run = run_ours(policy, url, sample.series(SERIES[0]).study_uid, uids, sample.series(largest).series_uid,
                   focus_after, ProgressRecorder(), connections, MainLoop(gil, idle_ms, yield_ms))
    per_series = {key: {kind: getattr(run.series[sample.series(key).series_uid], f"{kind}_s")
                        for kind in ("first_slice", "covered", "complete")} for key in SERIES}
    focus = run.focus if run.focus and not run.focus["already_complete"] else None
    return {"policy": policy, "total_s": run.total_s, "bytes": run.body_bytes, "series": per_series,
            "focus_t": focus["t"] if focus else None, "largest": largest,
            "pump_ms_median": run.pump_ms["median"], "pump_ms_max": run.pump_ms["max"],
            "focused_remaining_bytes": focus["remaining_bytes"] if focus else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", help="tbf rate for the private loopback, e.g. 30mbit (needs root)")
    parser.add_argument("--profile", default="full", choices=("small", "full"))
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--gil-main-loop", action="store_true")
    parser.add_argument("--focus-after", type=float, default=2.0, help="seconds before the focus switch")
    parser.add_argument("--idle-ms", type=float, default=2.0, help="GIL-held idle between ticks (timer interval)")
    parser.add_argument("--yield-ms", type=float, default=8.0, help="GIL-free sleep per tick (engine.pump)")
    args = parser.parse_args()
    if args.rate:
        try:
            rate_bits(args.rate)  # a clear error before anything starts
        except ValueError as error:
            parser.error(str(error))
    if args.rate and not inside():
        return run_inside([sys.executable, str(Path(__file__).resolve())] + sys.argv[1:], limited=True)
    sample = cached_sample(args.profile)
    files = [f for key in SERIES for f in sample.files(key)]
    size = sum(f.stat().st_size for f in files)
    link = f"tbf {args.rate}" if args.rate else "plain loopback"
    gil = f", GIL-holding main loop ({args.idle_ms:g} ms idle, {args.yield_ms:g} ms yield)" if args.gil_main_loop else ""
    print(f"{len(SERIES)} series, {len(files)} files, {size / 1e6:.0f} MB, {link}, {args.connections} connections{gil}")
    results: List[Dict] = []
    with OrthancServer() as orthanc:
        orthanc.upload(files)
        if args.rate:  # after the upload: only the fetches cross the limited link
            limit_loopback(args.rate)
        for _ in range(args.repeat):
            for policy in POLICIES:
                results.append(run_policy(orthanc.dicomweb_url, sample, policy, args.connections,
                                          args.gil_main_loop, args.focus_after, args.idle_ms, args.yield_ms))
    print(f"{'policy':14s} {'series':12s} {'first':>7s} {'covered':>8s} {'complete':>9s}   total   MB/s  pump ms (med/max)")
    for policy in POLICIES:
        runs = [r for r in results if r["policy"] == policy]
        med = lambda values: statistics.median(values) if values and None not in values else None  # noqa: E731
        for key in SERIES:
            cells = [med([r["series"][key][kind] for r in runs]) for kind in ("first_slice", "covered", "complete")]
            text = " ".join(f"{c:8.2f}" if c is not None else "       -" for c in cells)
            total = med([r["total_s"] for r in runs])
            rate = med([r["bytes"] / r["total_s"] / 1e6 for r in runs])
            pumps = f"{med([r['pump_ms_median'] for r in runs]):.3f}/{med([r['pump_ms_max'] for r in runs]):.2f}"
            print(f"{policy:14s} {key:12s} {text}  {total:6.2f} {rate:6.1f}  {pumps}")
        focus = [r for r in runs if r["focus_t"] is not None]
        if focus:
            after = statistics.median(r["series"][r["largest"]]["complete"] - r["focus_t"] for r in focus)
            remaining = statistics.median(r["focused_remaining_bytes"] for r in focus)
            line = (f"{'':14s} focus on {runs[0]['largest']} at {statistics.median(r['focus_t'] for r in focus):.2f} s;"
                    f" it completed {after:.2f} s later with {remaining / 1e6:.1f} MB left")
            if args.rate:
                ideal = remaining / (rate_bits(args.rate) / 8)
                line += f" (link limit {ideal:.2f} s: {after / ideal:.2f}x)"
            print(line)
        if args.rate:
            limit = statistics.median(r["bytes"] for r in runs) / (rate_bits(args.rate) / 8)
            print(f"{'':14s} whole study: {med([r['total_s'] for r in runs]):.2f} s vs link limit {limit:.2f} s "
                  f"({med([r['total_s'] for r in runs]) / limit:.2f}x)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
