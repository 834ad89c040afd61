"""Our engine beside dicomweb-client's retrieve_series through far links (issue 19): a user-space
latency relay (Testing/servers/latency_relay.py: delay per direction, one shared rate) in front of
a real Orthanc, one series at a time, both contenders in one run, each in its own process.
Ours runs twice, with 4 fixed connections (as before issue 19) and with the requests in flight
following the link (engine/concurrency.py). Prints first view (whole volume covered) and
complete, and ours / peer; not a test.

    .venv/bin/python Testing/benchmarks/latency_links.py                  # ~3 minutes
    .venv/bin/python Testing/benchmarks/latency_links.py --links 100mbit/100ms --repeats 3

Series: the demo profile's thin CT (200 x 256^2) and the full profile's (240 x 512^2). Orthanc runs
with its own default of 50 HTTP threads (`--orthanc-threads`): it gives each keep-alive connection
a thread, and the test servers' 8 would cap the requests in flight below what a far link needs.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the benchmark helpers next to this file
sys.path.insert(0, str(HERE.parent))  # Testing/: servers, fixtures_data

from contenders import DWC_SERIES, run_in_subprocess  # noqa: E402
from fixtures_data import cached_sample  # noqa: E402
from netns import rate_bits  # noqa: E402
from servers.latency_relay import LatencyRelay  # noqa: E402
from servers.orthanc import OrthancServer  # noqa: E402

logger = logging.getLogger("latency_links")

OURS = "breadth-first"
DEFAULT_LINKS = "100mbit/100ms,30mbit/200ms"
DEFAULT_SERIES = "demo:ct_thin,full:ct_thin"  # 200 x 256^2, 240 x 512^2
SETTLE_S = 1.5  # Orthanc drops idle keep-alive connections after 1 s


def parse_link(text: str) -> Tuple[float, float]:
    """'100mbit/100ms' -> (100e6 bits per second, 0.1 s round trip)."""
    rate, _, rtt = text.partition("/")
    if not rtt.endswith("ms"):
        raise ValueError(f"link {text!r}: use RATE/RTTms, e.g. 100mbit/100ms")
    bits = rate_bits(rate)
    if bits is None:
        raise ValueError(f"link {text!r}: give a rate")
    return bits, float(rtt[:-2]) / 1000.0


FIXED = "ours, 4 fixed"
ADAPTIVE = "ours, adaptive"
PEER = "dicomweb-client"
ORDER = (FIXED, ADAPTIVE, PEER)
MAX_CONNECTIONS = {FIXED: 4, ADAPTIVE: None}  # None: the engine's adaptive maximum


def one(label: str, relay: LatencyRelay, info, out: Path) -> Tuple[float, float]:
    """(first view, complete) seconds of one contender on one series."""
    name = DWC_SERIES if label == PEER else OURS
    run = run_in_subprocess(name, relay.dicomweb_url, info.study_uid, [info.series_uid], info.series_uid, 1e9,
                            out, timeout=600, max_connections=MAX_CONNECTIONS.get(label))
    times = run.series[info.series_uid]
    return times.covered_s, times.complete_s


def run_link(orthanc: OrthancServer, info, text: str, bits: float, rtt: float, repeats: int, scratch: Path) -> List[str]:
    """The contenders on one series through one link (the order rotates per repeat); table rows."""
    label = f"{info.num_slices} x {info.rows}^2"
    figures: Dict[str, List[Tuple[float, float]]] = {name: [] for name in ORDER}
    with LatencyRelay(orthanc.port, rtt, bits) as relay:
        for repeat in range(repeats):
            shift = repeat % len(ORDER)
            for name in ORDER[shift:] + ORDER[:shift]:
                time.sleep(SETTLE_S)
                figures[name].append(one(name, relay, info, scratch / "run.json"))
                logger.info("%s %s %s: first view %.2f s, complete %.2f s", text, label, name, *figures[name][-1])
    peer_done = statistics.median(f[1] for f in figures[PEER])
    rows = []
    for name in (FIXED, ADAPTIVE):
        view = statistics.median(f[0] for f in figures[name])
        done = statistics.median(f[1] for f in figures[name])
        rows.append(f"| {text} | {label} | {name} | {view:.2f} / {done:.2f} | {peer_done:.2f} | {done / peer_done:.2f} | "
                    f"{peer_done / view:.1f}x |")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", default=DEFAULT_LINKS, help=f"RATE/RTTms,... ({DEFAULT_LINKS})")
    parser.add_argument("--series", default=DEFAULT_SERIES, help=f"PROFILE:KEY,... ({DEFAULT_SERIES})")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--orthanc-threads", type=int, default=50, help="Orthanc's HttpThreadsCount (its default: 50)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        links = [(text, *parse_link(text)) for text in args.links.split(",")]
        series = [tuple(item.split(":", 1)) for item in args.series.split(",")]
        if any(len(item) != 2 for item in series) or args.repeats < 1:
            raise ValueError("--series PROFILE:KEY,...; --repeats at least 1")
    except ValueError as error:
        parser.error(str(error))
    load_before = os.getloadavg()[0]
    results: Dict[Tuple[str, str], List[str]] = {}
    for profile, key in series:  # an Orthanc per profile: the profiles share their UIDs
        with OrthancServer(threads=args.orthanc_threads) as orthanc, tempfile.TemporaryDirectory(prefix="pdf-links-") as scratch:
            sample = cached_sample(profile)
            orthanc.upload(sample.files(key))
            info = sample.series(key)
            label = f"{info.num_slices} x {info.rows}^2"
            for text, bits, rtt in links:
                results[(text, label)] = run_link(orthanc, info, text, bits, rtt, args.repeats, Path(scratch))
    rows = [row for text, _, _ in links for (t, label) in results if t == text for row in results[(t, label)]]
    print("| link | series | ours | first view / complete (s) | dicomweb-client retrieve_series: complete (s) "
          "| ours / peer, complete | first view sooner by |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Orthanc with {args.orthanc_threads} HTTP threads, "
          f"medians of {args.repeats}, load average "
          f"{load_before:.1f} before / {os.getloadavg()[0]:.1f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
